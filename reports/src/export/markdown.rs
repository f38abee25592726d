//! GitHub-flavoured Markdown (tables drawn by tabled's markdown style).

use tabled::builder::Builder;
use tabled::settings::Style;

use super::{Exporter, claim_label, comparison_cells, differences_text, shared_columns};
use crate::{Report, ReportError};

/// Markdown with the best value per column in `**bold**`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MarkdownExporter;

/// A pipe inside a cell would end it.
fn esc(s: &str) -> String {
    s.replace('|', "\\|")
}

fn table(header: Vec<String>, rows: Vec<Vec<String>>) -> String {
    let mut b = Builder::default();
    b.push_record(header.iter().map(|h| esc(h)));
    for r in rows {
        b.push_record(r.iter().map(|c| esc(c)));
    }
    let mut t = b.build();
    t.with(Style::markdown());
    t.to_string()
}

impl Exporter for MarkdownExporter {
    fn extension(&self) -> &'static str {
        "md"
    }

    fn render(&self, report: &Report) -> Result<String, ReportError> {
        let mut out = format!("# {}\n\n{}\n", report.title, report.metric);
        for section in &report.sections {
            let grid = &section.grid;
            let caption = grid.caption();
            out.push_str(&format!(
                "\n## {}\n\n",
                if caption.is_empty() {
                    "Results"
                } else {
                    &caption
                }
            ));
            let header = std::iter::once(grid.layout.row_label().to_owned())
                .chain(grid.columns.iter().cloned())
                .collect();
            let rows = grid
                .rows
                .iter()
                .zip(&grid.cells)
                .enumerate()
                .map(|(r, (name, cells))| {
                    std::iter::once(name.clone())
                        .chain(cells.iter().enumerate().map(|(c, cell)| {
                            if grid.is_best(r, c) {
                                format!("**{}**", cell.display())
                            } else {
                                cell.display()
                            }
                        }))
                        .collect()
                })
                .collect();
            out.push_str(&table(header, rows));
            out.push('\n');

            let Some(cmp) = &section.comparison else {
                continue;
            };
            out.push_str(&format!(
                "\n### Beside the paper: {} ({})\n\n",
                cmp.table_title, cmp.table_id
            ));
            if !cmp.judges_values() {
                out.push_str(&format!("> {}\n\n", differences_text(&cmp.differences)));
            }
            if !cmp.cells.is_empty() {
                let (header, rows) = comparison_cells(grid, cmp, "difference");
                out.push_str(&table(header, rows));
                out.push_str("\n\n");
            }
            if cmp.claims.is_empty() {
                continue;
            }
            let shared = shared_columns(grid, cmp);
            if !shared.is_empty() {
                let header = std::iter::once("claim".to_owned())
                    .chain(shared.iter().map(|c| (*c).clone()))
                    .collect();
                let rows = cmp
                    .claims
                    .iter()
                    .map(|claim| {
                        std::iter::once(claim_label(claim))
                            .chain(shared.iter().map(|col| {
                                claim
                                    .columns
                                    .iter()
                                    .find(|j| &j.column == *col)
                                    .map(|j| j.agreement.label().to_owned())
                                    .unwrap_or_default()
                            }))
                            .collect()
                    })
                    .collect();
                out.push_str(&table(header, rows));
                out.push_str("\n\n");
            }
            for claim in &cmp.claims {
                out.push_str(&format!("- {}\n", claim.summary));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::tests::small_report;

    #[test]
    fn exact_markdown() {
        let md = match MarkdownExporter.render(&small_report(Some("table1"), &[])) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        let expected = r#"# Fixture

Final test accuracy, mean ± std over seeds (n = converged runs; — = every run diverged).

## dataset cifar10, optimizer sgd

| activation | alexnet                      | vgg              |
|------------|------------------------------|------------------|
| relu       | 0.8100 ± 0.0141 (n=2)        | **0.9000 (n=1)** |
| arelu      | **0.8500 (n=1, 1 diverged)** | — (1 diverged)   |

### Beside the paper: Fixed activations and their adaptive versions, CIFAR10 (table1)

| activation | model   | ours                     | paper            | difference |
|------------|---------|--------------------------|------------------|------------|
| relu       | alexnet | 0.8100 ± 0.0141 (n=2)    | 0.8351 ± 3.95e-4 | -0.0251    |
| relu       | vgg     | 0.9000 (n=1)             | 0.8800 ± 1.01e-4 | +0.0200    |
| arelu      | alexnet | 0.8500 (n=1, 1 diverged) | 0.8331 ± 2.48e-4 | +0.0169    |
| arelu      | vgg     | — (1 diverged)           | 0.8328 ± 1.26e-3 |            |

| claim              | alexnet    | vgg        |
|--------------------|------------|------------|
| ASigmoid > Sigmoid | can't tell | can't tell |
| ATanh > Tanh       | can't tell | can't tell |
| AReLU > ReLU       | disagree   | agree      |
| AReLU > LReLU      | can't tell | can't tell |

- ASigmoid beats Sigmoid on every model: paper yes (5/5), ours can't tell (not run)
- ATanh beats Tanh on every model: paper no (3/5), ours can't tell (not run)
- AReLU beats ReLU on every model: paper no (3/5), ours no (1/2): agree
- AReLU beats LReLU on every model: paper no (4/5), ours can't tell (not run)
"#;
        assert_eq!(md, expected);
    }

    #[test]
    fn settings_differ_drops_the_difference_column() {
        let md = match MarkdownExporter
            .render(&small_report(Some("table1"), &["5 epochs instead of 80"]))
        {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        assert!(md.contains(
            "> Settings differ from the paper's: 5 epochs instead of 80. Only the orderings are judged, not the absolute numbers.\n"
        ), "{md}");
        assert!(md.contains("| activation | model   | ours "), "{md}");
        assert!(!md.contains("difference"), "{md}");
    }
}
