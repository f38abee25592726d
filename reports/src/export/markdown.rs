//! GitHub-flavoured Markdown (tables drawn by tabled's markdown style).

use tabled::builder::Builder;
use tabled::settings::Style;

use super::{
    CLAIMS_HEADING, Exporter, PAIRS_HEADING, comparison_cells, differences_text, pair_lines,
    paper_count, unit_text,
};
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
                .marked_rows()
                .map(|(name, cells)| {
                    std::iter::once(name.to_owned())
                        .chain(cells.into_iter().map(|(cell, best)| {
                            if best {
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
            let lines = pair_lines(cmp);
            if !lines.is_empty() {
                out.push_str(&format!("{PAIRS_HEADING}\n\n"));
                for line in lines {
                    out.push_str(&format!("- {}\n", esc(&line)));
                }
            }
        }
        if !report.claims.is_empty() {
            out.push_str(&format!("\n## The paper's claims\n\n{CLAIMS_HEADING}\n\n"));
            let header = ["claim", "paper", "ours"].map(str::to_owned).to_vec();
            let rows = report
                .claims
                .iter()
                .map(|j| {
                    let paper = paper_count(j);
                    vec![
                        j.claim.id.clone(),
                        paper,
                        format!("{}: {}", j.outcome.label(), j.summary),
                    ]
                })
                .collect();
            out.push_str(&table(header, rows));
            out.push_str("\n\n");
            for j in &report.claims {
                out.push_str(&format!(
                    "- **{}** ({}): {} *{}*\n",
                    j.claim.id,
                    j.outcome.label(),
                    j.claim.text,
                    j.claim.location
                ));
                for u in j.units.iter().filter(|u| u.ours.is_some()) {
                    out.push_str(&format!("  - {}\n", esc(&unit_text(u))));
                }
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
        // Everything up to the claims, to the letter.
        let expected = r#"# Fixture

Final test accuracy: mean ± std over seeds [95% Student's t interval of the mean] (n = converged runs; — = every run diverged); bold: better than the column's runner-up with 95% confidence (paired by seed).

## dataset cifar10, optimizer sgd

| activation | alexnet                                                | vgg            |
|------------|--------------------------------------------------------|----------------|
| relu       | 0.8100 ± 0.0100 [0.7852, 0.8348] (n=3)                 | 0.9000 (n=1)   |
| arelu      | **0.8600 ± 0.0100 [0.8352, 0.8848] (n=3, 1 diverged)** | — (1 diverged) |

### Beside the paper: Fixed activations and their adaptive versions, CIFAR10 (table1)

| activation | model   | ours                                               | paper            | difference |
|------------|---------|----------------------------------------------------|------------------|------------|
| relu       | alexnet | 0.8100 ± 0.0100 [0.7852, 0.8348] (n=3)             | 0.8351 ± 3.95e-4 | -0.0251    |
| relu       | vgg     | 0.9000 (n=1)                                       | 0.8800 ± 1.01e-4 | +0.0200    |
| arelu      | alexnet | 0.8600 ± 0.0100 [0.8352, 0.8848] (n=3, 1 diverged) | 0.8331 ± 2.48e-4 | +0.0269    |
| arelu      | vgg     | — (1 diverged)                                     | 0.8328 ± 1.26e-3 |            |

The paper's comparisons on our runs: first minus second, its 95% interval (paired by seed where both ran it), P = the probability that a run of the first beats a run of the second; the verdict is on "the first beats the second".

- AReLU vs ReLU, alexnet: +0.0500 [+0.0252, +0.0748] (paired, n=3), P(AReLU > ReLU) = 1.00: supports
- AReLU vs ReLU, vgg: AReLU diverged in every run: contradicts
- AReLU vs LReLU: not run: LReLU (all 2 columns)

"#;
        assert!(md.starts_with(expected), "{md}");
        // Every claim in the table, then each with its text, where the
        // paper makes it and the units we ran.
        assert!(md.contains(
            "| adaptive-beats-base                          | 19/24   | inconclusive: 1 of 24 units support, 1 contradict, 22 not run (most must support)              |"
        ), "{md}");
        assert!(md.contains("| negligible-parameter-overhead                | figures | not judged: not from accuracies or losses"), "{md}");
        assert!(md.contains(
            "  - table1 alexnet: arelu vs relu: +0.0500 [+0.0252, +0.0748] (n=3), P = 1.00: supports; paper no\n"
        ), "{md}");
        assert!(
            md.contains("- **asigmoid-beats-sigmoid-cifar10** (not run): ASigmoid can surpass"),
            "{md}"
        );
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
