//! LaTeX tables with booktabs rules, ready to `\input`.

use super::{
    CLAIMS_HEADING, Exporter, PAIRS_HEADING, comparison_cells, differences_text, pair_lines,
    paper_count,
};
use crate::grid::Cell;
use crate::{Report, ReportError};

/// booktabs tables; the best value per column in `\textbf`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LatexExporter;

/// Escapes LaTeX's special characters in plain text.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(ch);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            // In LaTeX's default font encoding `<` and `>` print as `¡` and `¿`.
            '<' => out.push_str("\\textless{}"),
            '>' => out.push_str("\\textgreater{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '±' => out.push_str("$\\pm$"),
            '—' => out.push_str("---"),
            'Δ' => out.push_str("$\\Delta$"),
            _ => out.push(ch),
        }
    }
    out
}

fn cell_text(cell: &Cell, best: bool) -> String {
    let text = escape(&cell.display());
    if best {
        format!("\\textbf{{{text}}}")
    } else {
        text
    }
}

/// One booktabs `table` environment.
fn table(caption: &str, header: &[String], rows: &[Vec<String>]) -> String {
    let mut out = String::from("\\begin{table}[t]\n  \\centering\n");
    out.push_str(&format!("  \\caption{{{}}}\n", escape(caption)));
    out.push_str(&format!(
        "  \\begin{{tabular}}{{l{}}}\n    \\toprule\n",
        "c".repeat(header.len().saturating_sub(1))
    ));
    let line = |cells: &[String]| format!("    {} \\\\\n", cells.join(" & "));
    let escaped: Vec<String> = header.iter().map(|h| escape(h)).collect();
    out.push_str(&line(&escaped));
    out.push_str("    \\midrule\n");
    for r in rows {
        out.push_str(&line(r));
    }
    out.push_str("    \\bottomrule\n  \\end{tabular}\n\\end{table}\n");
    out
}

impl Exporter for LatexExporter {
    fn extension(&self) -> &'static str {
        "tex"
    }

    fn render(&self, report: &Report) -> Result<String, ReportError> {
        let mut out = format!(
            "% {}\n% Needs \\usepackage{{booktabs}}.\n",
            report.title.replace('\n', " ")
        );
        for section in &report.sections {
            let grid = &section.grid;
            let context = grid.caption();
            let caption = if context.is_empty() {
                format!("{}. {}", report.title, report.metric)
            } else {
                format!("{} ({context}). {}", report.title, report.metric)
            };
            let header: Vec<String> = std::iter::once(grid.layout.row_label().to_owned())
                .chain(grid.columns.iter().cloned())
                .collect();
            let rows: Vec<Vec<String>> = grid
                .marked_rows()
                .map(|(name, cells)| {
                    std::iter::once(escape(name))
                        .chain(cells.into_iter().map(|(cell, best)| cell_text(cell, best)))
                        .collect()
                })
                .collect();
            out.push('\n');
            out.push_str(&table(&caption, &header, &rows));

            let Some(cmp) = &section.comparison else {
                continue;
            };
            let mut caption = format!("Beside the paper: {} ({})", cmp.table_title, cmp.table_id);
            if !cmp.judges_values() {
                caption.push_str(&format!(". {}", differences_text(&cmp.differences)));
            }
            if !cmp.cells.is_empty() {
                let (header, rows) = comparison_cells(grid, cmp, "Δ");
                let rows: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| r.iter().map(|c| escape(c)).collect())
                    .collect();
                out.push('\n');
                out.push_str(&table(&caption, &header, &rows));
            }
            let lines = pair_lines(cmp);
            if !lines.is_empty() {
                out.push_str(&format!("\n% {}\n", PAIRS_HEADING));
                for line in lines {
                    out.push_str(&format!("% - {line}\n"));
                }
            }
        }
        if !report.claims.is_empty() {
            let header = ["claim", "paper", "ours"].map(str::to_owned);
            let rows: Vec<Vec<String>> = report
                .claims
                .iter()
                .map(|j| {
                    let paper = paper_count(j);
                    vec![
                        escape(&j.claim.id),
                        paper,
                        escape(&format!("{}: {}", j.outcome.label(), j.summary)),
                    ]
                })
                .collect();
            out.push('\n');
            out.push_str(&table(CLAIMS_HEADING, &header, &rows));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::tests::small_report;

    #[test]
    fn escaping() {
        assert_eq!(
            escape("a_b & 50% #1 {x} ~ ^ \\"),
            "a\\_b \\& 50\\% \\#1 \\{x\\} \\textasciitilde{} \\textasciicircum{} \\textbackslash{}"
        );
        assert_eq!(escape("0.8 ± 0.1"), "0.8 $\\pm$ 0.1");
    }

    #[test]
    fn exact_latex() {
        let tex = match LatexExporter.render(&small_report(Some("table1"), &[])) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        let expected = r#"% Fixture
% Needs \usepackage{booktabs}.

\begin{table}[t]
  \centering
  \caption{Fixture (dataset cifar10, optimizer sgd). Final test accuracy: mean $\pm$ std over seeds [95\% Student's t interval of the mean] (n = converged runs; --- = every run diverged); bold: better than the column's runner-up with 95\% confidence (paired by seed).}
  \begin{tabular}{lcc}
    \toprule
    activation & alexnet & vgg \\
    \midrule
    relu & 0.8100 $\pm$ 0.0100 [0.7852, 0.8348] (n=3) & 0.9000 (n=1) \\
    arelu & \textbf{0.8600 $\pm$ 0.0100 [0.8352, 0.8848] (n=3, 1 diverged)} & --- (1 diverged) \\
    \bottomrule
  \end{tabular}
\end{table}

\begin{table}[t]
  \centering
  \caption{Beside the paper: Fixed activations and their adaptive versions, CIFAR10 (table1)}
  \begin{tabular}{lcccc}
    \toprule
    activation & model & ours & paper & $\Delta$ \\
    \midrule
    relu & alexnet & 0.8100 $\pm$ 0.0100 [0.7852, 0.8348] (n=3) & 0.8351 $\pm$ 3.95e-4 & -0.0251 \\
    relu & vgg & 0.9000 (n=1) & 0.8800 $\pm$ 1.01e-4 & +0.0200 \\
    arelu & alexnet & 0.8600 $\pm$ 0.0100 [0.8352, 0.8848] (n=3, 1 diverged) & 0.8331 $\pm$ 2.48e-4 & +0.0269 \\
    arelu & vgg & --- (1 diverged) & 0.8328 $\pm$ 1.26e-3 &  \\
    \bottomrule
  \end{tabular}
\end{table}

% The paper's comparisons on our runs: first minus second, its 95% interval (paired by seed where both ran it), P = the probability that a run of the first beats a run of the second; the verdict is on "the first beats the second".
% - AReLU vs ReLU, alexnet: +0.0500 [+0.0252, +0.0748] (paired, n=3), P(AReLU > ReLU) = 1.00: supports
% - AReLU vs ReLU, vgg: AReLU diverged in every run: contradicts
% - AReLU vs LReLU: not run: LReLU (all 2 columns)

"#;
        assert!(tex.starts_with(expected), "{tex}");
        assert!(tex.contains(
            "    adaptive-beats-base & 19/24 & inconclusive: 1 of 24 units support, 1 contradict, 22 not run (most must support) \\\\\n"
        ), "{tex}");
        assert!(tex.ends_with("  \\end{tabular}\n\\end{table}\n"), "{tex}");
    }
}
