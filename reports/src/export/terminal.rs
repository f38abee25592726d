//! The table printed at the end of a suite (tabled).

use tabled::builder::Builder;
use tabled::settings::{Color, Style};

use super::{
    CLAIMS_HEADING, Exporter, PAIRS_HEADING, claim_line, differences_text, pair_lines, paper_text,
};
use crate::compare::Comparison;
use crate::grid::Grid;
use crate::{Report, ReportError};

/// Plain-text tables; with `color`, each column's best value is bold (ANSI),
/// which only a terminal shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct TerminalExporter {
    /// Use ANSI bold for the best value per column.
    pub color: bool,
}

impl Exporter for TerminalExporter {
    fn extension(&self) -> &'static str {
        "txt"
    }

    fn render(&self, report: &Report) -> Result<String, ReportError> {
        let mut out = format!("{}\n{}\n", report.title, report.metric);
        for section in &report.sections {
            out.push('\n');
            let caption = section.grid.caption();
            if !caption.is_empty() {
                out.push_str(&caption);
                out.push('\n');
            }
            out.push_str(&self.grid(&section.grid));
            out.push('\n');
            if let Some(cmp) = &section.comparison {
                out.push_str(&comparison(&section.grid, cmp));
            }
        }
        let (shown, hidden) = report.claims_in_view();
        if !shown.is_empty() {
            out.push_str(&format!("\n{CLAIMS_HEADING}\n"));
            for j in shown {
                out.push_str(&format!("  - {}\n", claim_line(j)));
            }
            if hidden > 0 {
                out.push_str(&format!(
                    "  ({hidden} more claims, about settings not run here: see report.md)\n"
                ));
            }
        }
        Ok(out)
    }
}

impl TerminalExporter {
    fn grid(&self, grid: &Grid) -> String {
        let mut b = Builder::default();
        b.push_record(
            std::iter::once(grid.layout.row_label().to_owned()).chain(grid.columns.clone()),
        );
        for (name, cells) in grid.rows.iter().zip(&grid.cells) {
            b.push_record(std::iter::once(name.clone()).chain(cells.iter().map(|c| c.display())));
        }
        let mut table = b.build();
        table.with(Style::rounded());
        if self.color {
            for r in 0..grid.rows.len() {
                for c in 0..grid.columns.len() {
                    if grid.is_best(r, c) {
                        table.modify((r + 1, c + 1), Color::BOLD);
                    }
                }
            }
        }
        table.to_string()
    }
}

fn comparison(grid: &Grid, cmp: &Comparison) -> String {
    let mut out = format!(
        "\nBeside the paper: {} ({})\n",
        cmp.table_title, cmp.table_id
    );
    if !cmp.judges_values() {
        out.push_str(&differences_text(&cmp.differences));
        out.push('\n');
    }
    if !cmp.cells.is_empty() {
        let rows: Vec<&String> = grid
            .rows
            .iter()
            .filter(|r| cmp.cells.iter().any(|c| &c.row == *r))
            .collect();
        let cols: Vec<&String> = grid
            .columns
            .iter()
            .filter(|col| cmp.cells.iter().any(|c| &c.column == *col))
            .collect();
        let mut b = Builder::default();
        b.push_record(
            std::iter::once(grid.layout.row_label().to_owned())
                .chain(cols.iter().map(|c| (*c).clone())),
        );
        for row in rows {
            let mut record = vec![row.clone()];
            for col in &cols {
                let text = cmp
                    .cells
                    .iter()
                    .find(|c| &c.row == row && &c.column == *col)
                    .map(|c| {
                        let mut t =
                            format!("ours  {}\npaper {}", c.ours.display(), paper_text(c.paper));
                        if let Some(d) = c.difference {
                            t.push_str(&format!("\nΔ     {d:+.4}"));
                        }
                        t
                    })
                    .unwrap_or_default();
                record.push(text);
            }
            b.push_record(record);
        }
        push_table(&mut out, b);
    }
    let lines = pair_lines(cmp);
    if !lines.is_empty() {
        out.push_str(&format!("\n{PAIRS_HEADING}\n"));
        for line in lines {
            out.push_str(&format!("  - {line}\n"));
        }
    }
    out
}

/// Appends the table `b` holds, rounded, and a newline.
fn push_table(out: &mut String, b: Builder) {
    let mut table = b.build();
    table.with(Style::rounded());
    out.push_str(&table.to_string());
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::tests::small_report;

    #[test]
    fn grid_comparison_and_claims() {
        let text =
            match (TerminalExporter { color: false }).render(&small_report(Some("table1"), &[])) {
                Ok(t) => t,
                Err(e) => panic!("{e}"),
            };
        assert!(!text.contains('\u{1b}'), "{text}");
        let expected_grid = r#"dataset cifar10, optimizer sgd
╭────────────┬────────────────────────────────────────────────────┬────────────────╮
│ activation │ alexnet                                            │ vgg            │
├────────────┼────────────────────────────────────────────────────┼────────────────┤
│ relu       │ 0.8100 ± 0.0100 [0.7852, 0.8348] (n=3)             │ 0.9000 (n=1)   │
│ arelu      │ 0.8600 ± 0.0100 [0.8352, 0.8848] (n=3, 1 diverged) │ — (1 diverged) │
╰────────────┴────────────────────────────────────────────────────┴────────────────╯
"#;
        assert!(text.contains(expected_grid), "{text}");
        assert!(text.contains(
            "Beside the paper: Fixed activations and their adaptive versions, CIFAR10 (table1)"
        ));
        assert!(text.contains("paper 0.8351 ± 3.95e-4"), "{text}");
        assert!(text.contains("Δ     -0.0251"), "{text}");
        assert!(text.contains(
            "  - AReLU vs ReLU, alexnet: +0.0500 [+0.0252, +0.0748] (paired, n=3), P(AReLU > ReLU) = 1.00: supports\n"
        ), "{text}");
        assert!(
            text.contains("  - AReLU vs ReLU, vgg: AReLU diverged in every run: contradicts\n"),
            "{text}"
        );
        // Claims about table1 are shown, whether run or not; others only
        // when our runs bear on them.
        assert!(
            text.contains(
                "  - [not run] asigmoid-beats-sigmoid-cifar10: none of its 5 units run; paper 5/5\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "  - [inconclusive] adaptive-beats-base: 1 of 24 units support, 1 contradict, 22 not run (most must support); paper 19/24\n"
        ), "{text}");
        assert!(!text.contains("arelu-best-cifar100"), "{text}");
        assert!(
            text.contains("more claims, about settings not run here: see report.md)"),
            "{text}"
        );
    }

    #[test]
    fn bold_best_only_with_color() {
        let report = small_report(None, &[]);
        let text = match (TerminalExporter { color: true }).render(&report) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        // AReLU is ahead of ReLU on alexnet with 95% confidence; on vgg
        // ReLU stands alone (AReLU diverged): no runner-up, no bold.
        assert!(
            text.contains("\u{1b}[1m0.8600 ± 0.0100 [0.8352, 0.8848] (n=3, 1 diverged)\u{1b}[22m"),
            "{text}"
        );
        assert_eq!(text.matches("\u{1b}[1m").count(), 1);
    }
}
