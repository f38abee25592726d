//! One CSV line per cell (tidy data: every run field in its own column).

use super::Exporter;
use crate::{Report, ReportError};

/// CSV with the fields `dataset, model, activation, optimizer`, the cell's
/// statistics, whether it is its column's best, and the paper's value and
/// the difference where a comparison has them.
#[derive(Debug, Clone, Copy, Default)]
pub struct CsvExporter;

const HEADER: [&str; 15] = [
    "dataset",
    "model",
    "activation",
    "optimizer",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "n",
    "diverged",
    "failed",
    "best",
    "paper_mean",
    "paper_spread",
    "difference",
];

fn num(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.6}")).unwrap_or_default()
}

impl Exporter for CsvExporter {
    fn extension(&self) -> &'static str {
        "csv"
    }

    fn render(&self, report: &Report) -> Result<String, ReportError> {
        let mut w = ::csv::Writer::from_writer(Vec::new());
        w.write_record(HEADER)?;
        for section in &report.sections {
            let grid = &section.grid;
            for (r, row) in grid.rows.iter().enumerate() {
                for (c, column) in grid.columns.iter().enumerate() {
                    let cell = &grid.cells[r][c];
                    if cell.is_empty() {
                        continue;
                    }
                    let key = grid.run_key(row, column);
                    let paper = section.comparison.as_ref().and_then(|cmp| {
                        cmp.cells
                            .iter()
                            .find(|x| &x.row == row && &x.column == column)
                    });
                    let paper_cell = paper.and_then(|p| p.paper);
                    w.write_record([
                        key.dataset,
                        key.model,
                        key.activation,
                        key.optimizer,
                        num(cell.mean),
                        num(cell.std),
                        num(cell.ci.map(|ci| ci.lo)),
                        num(cell.ci.map(|ci| ci.hi)),
                        cell.n.to_string(),
                        cell.diverged.to_string(),
                        cell.failed.to_string(),
                        grid.is_best(r, c).to_string(),
                        num(paper_cell.map(|p| p.mean)),
                        paper_cell
                            .and_then(|p| p.spread)
                            .map(|s| format!("{s:e}"))
                            .unwrap_or_default(),
                        num(paper.and_then(|p| p.difference)),
                    ])?;
                }
            }
        }
        let bytes = w
            .into_inner()
            .map_err(|e| ReportError::Csv(e.into_error().into()))?;
        // The writer only ever received `String`s, so the bytes are UTF-8.
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

#[cfg(test)]
mod tests;
