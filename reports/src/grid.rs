//! Aggregation of runs into the paper's table layout.
//!
//! A [`Grid`] has one row per activation and one column per model (or
//! optimizer, or dataset, as the paper's tables do); each [`Cell`] holds the
//! final test accuracy of each seed, and its [`Estimate`]: mean, standard
//! deviation, n and the 95% Student's t interval. A cell is marked best only
//! when it beats its column's runner-up significantly ([`Grid::is_best`]).
//! Runs that differ in a field neither axis shows (two datasets in one
//! results set, say) go into separate grids, never into one cell.

use serde::{Deserialize, Serialize};

use crate::paper::PaperTable;
use crate::result::{RunResult, RunStatus};
use crate::stats::{Difference, Estimate, Interval, Verdict};

/// Which run fields make the rows and the columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Rows activations, columns models (the paper's Tables 1-4).
    ActivationsByModel,
    /// Rows `model/activation`, columns optimizers (Table 5).
    ModelActivationsByOptimizer,
    /// Rows activations, columns datasets (Table 6).
    ActivationsByDataset,
}

impl Layout {
    /// The layout of a paper table: tables without a single optimizer have
    /// optimizers as columns, tables without a single dataset have datasets.
    pub fn for_table(table: &PaperTable) -> Self {
        if table.dataset.is_none() && table.model.is_some() {
            Layout::ActivationsByDataset
        } else if table.optimizer.is_none() && table.dataset.is_some() {
            Layout::ModelActivationsByOptimizer
        } else {
            Layout::ActivationsByModel
        }
    }

    /// A layout for results that name no paper table: optimizers become
    /// columns when several were compared, else datasets when several were
    /// used, else models.
    pub fn infer(results: &[RunResult]) -> Self {
        let distinct = |f: fn(&RunResult) -> &str| {
            let mut seen: Vec<&str> = results.iter().map(f).collect();
            seen.sort_unstable();
            seen.dedup();
            seen.len()
        };
        if distinct(|r| &r.optimizer) > 1 {
            Layout::ModelActivationsByOptimizer
        } else if distinct(|r| &r.dataset) > 1 && distinct(|r| &r.model) == 1 {
            Layout::ActivationsByDataset
        } else {
            Layout::ActivationsByModel
        }
    }

    /// Header of the row-name column.
    pub fn row_label(self) -> &'static str {
        match self {
            Layout::ModelActivationsByOptimizer => "model/activation",
            _ => "activation",
        }
    }

    /// What one column is, in the singular (`model`).
    pub fn column_label(self) -> &'static str {
        match self {
            Layout::ActivationsByModel => "model",
            Layout::ModelActivationsByOptimizer => "optimizer",
            Layout::ActivationsByDataset => "dataset",
        }
    }

    fn row_key(self, r: &RunResult) -> String {
        match self {
            Layout::ModelActivationsByOptimizer => format!("{}/{}", r.model, r.activation),
            _ => r.activation.clone(),
        }
    }

    fn column_key(self, r: &RunResult) -> &str {
        match self {
            Layout::ActivationsByModel => &r.model,
            Layout::ModelActivationsByOptimizer => &r.optimizer,
            Layout::ActivationsByDataset => &r.dataset,
        }
    }

    /// The run fields of the cell at `row` and `column` in this layout,
    /// the fields neither axis shows read from `context` (`dataset`,
    /// `model`, `optimizer`).
    pub fn run_key(self, row: &str, column: &str, context: impl Fn(&str) -> String) -> RunKey {
        match self {
            Layout::ActivationsByModel => RunKey {
                dataset: context("dataset"),
                model: column.to_owned(),
                activation: row.to_owned(),
                optimizer: context("optimizer"),
            },
            Layout::ModelActivationsByOptimizer => {
                let (model, activation) = row.rsplit_once('/').unwrap_or(("", row));
                RunKey {
                    dataset: context("dataset"),
                    model: model.to_owned(),
                    activation: activation.to_owned(),
                    optimizer: column.to_owned(),
                }
            }
            Layout::ActivationsByDataset => RunKey {
                dataset: column.to_owned(),
                model: context("model"),
                activation: row.to_owned(),
                optimizer: context("optimizer"),
            },
        }
    }

    /// The fields neither axis shows, as `(name, value)`.
    fn context(self, r: &RunResult) -> Vec<(String, String)> {
        let pairs: [(&str, &str); 2] = match self {
            Layout::ActivationsByModel => [("dataset", &r.dataset), ("optimizer", &r.optimizer)],
            Layout::ModelActivationsByOptimizer => [("dataset", &r.dataset), ("optimizer", "")],
            Layout::ActivationsByDataset => [("model", &r.model), ("optimizer", &r.optimizer)],
        };
        pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }
}

/// The aggregate of the runs that share one row and one column.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cell {
    /// Mean final test accuracy over converged runs.
    pub mean: Option<f64>,
    /// Sample standard deviation (n - 1) over converged runs; needs n >= 2.
    pub std: Option<f64>,
    /// The 95% Student's t interval of the mean; needs n >= 2.
    pub ci: Option<Interval>,
    /// Number of converged runs.
    pub n: usize,
    /// `(seed, final test accuracy)` of each converged run, for comparisons
    /// paired by seed.
    pub values: Vec<(u64, f64)>,
    /// Runs whose loss became non-finite.
    pub diverged: usize,
    /// Runs that stopped with an error.
    pub failed: usize,
}

impl Cell {
    /// Aggregates `runs` (all of one row and column).
    pub fn from_runs<'a>(runs: impl IntoIterator<Item = &'a RunResult>) -> Self {
        let mut cell = Cell::default();
        for r in runs {
            match (r.status, r.final_accuracy()) {
                (_, Some(acc)) => cell.values.push((r.seed, acc)),
                (RunStatus::Failed, None) => cell.failed += 1,
                // A finished run without a finite accuracy lost its numbers
                // the same way a diverged one did.
                (_, None) => cell.diverged += 1,
            }
        }
        let accuracies: Vec<f64> = cell.values.iter().map(|v| v.1).collect();
        cell.n = accuracies.len();
        if let Some(e) = Estimate::of(&accuracies) {
            (cell.mean, cell.std, cell.ci) = (Some(e.mean), e.std, e.ci);
        }
        cell
    }

    /// No run at all landed here.
    pub fn is_empty(&self) -> bool {
        self.n + self.diverged + self.failed == 0
    }

    /// Runs landed here but none converged: the paper's "—".
    pub fn all_lost(&self) -> bool {
        self.n == 0 && !self.is_empty()
    }

    /// `0.8123 ± 0.0040 [0.7764, 0.8482] (n=2, 1 diverged)`: mean ± std,
    /// the 95% interval of the mean, n; `—` when every run was lost, empty
    /// when nothing ran.
    pub fn display(&self) -> String {
        let mut notes = Vec::new();
        if self.diverged > 0 {
            notes.push(format!("{} diverged", self.diverged));
        }
        if self.failed > 0 {
            notes.push(format!("{} failed", self.failed));
        }
        match self.mean {
            None if self.is_empty() => String::new(),
            None => {
                if notes.is_empty() {
                    "—".to_owned()
                } else {
                    format!("— ({})", notes.join(", "))
                }
            }
            Some(mean) => {
                let mut s = format!("{mean:.4}");
                if let Some(std) = self.std {
                    s.push_str(&format!(" ± {std:.4}"));
                }
                if let Some(ci) = self.ci {
                    s.push_str(&format!(" [{:.4}, {:.4}]", ci.lo, ci.hi));
                }
                notes.insert(0, format!("n={}", self.n));
                s.push_str(&format!(" ({})", notes.join(", ")));
                s
            }
        }
    }
}

/// Runs aggregated in a paper-style layout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Grid {
    /// Which fields are rows and columns.
    pub layout: Layout,
    /// Fields shared by every run in the grid (`dataset`, `optimizer`).
    pub context: Vec<(String, String)>,
    /// Row names in display order.
    pub rows: Vec<String>,
    /// Column names in display order.
    pub columns: Vec<String>,
    /// `cells[row][column]`.
    pub cells: Vec<Vec<Cell>>,
}

impl Grid {
    /// Groups `results` into one grid per distinct context. Rows and columns
    /// named in `row_order` / `column_order` (the paper table's) come first
    /// in that order, the rest in order of first appearance.
    pub fn build(
        results: &[RunResult],
        layout: Layout,
        row_order: &[String],
        column_order: &[String],
    ) -> Vec<Grid> {
        let mut contexts: Vec<Vec<(String, String)>> = Vec::new();
        for r in results {
            let c = layout.context(r);
            if !contexts.contains(&c) {
                contexts.push(c);
            }
        }
        contexts
            .into_iter()
            .map(|context| {
                let runs: Vec<&RunResult> = results
                    .iter()
                    .filter(|r| layout.context(r) == context)
                    .collect();
                let rows = ordered(runs.iter().map(|r| layout.row_key(r)), row_order);
                let columns = ordered(
                    runs.iter().map(|r| layout.column_key(r).to_owned()),
                    column_order,
                );
                let cells = rows
                    .iter()
                    .map(|row| {
                        columns
                            .iter()
                            .map(|col| {
                                Cell::from_runs(runs.iter().copied().filter(|r| {
                                    layout.row_key(r) == *row && layout.column_key(r) == col
                                }))
                            })
                            .collect()
                    })
                    .collect();
                Grid {
                    layout,
                    context,
                    rows,
                    columns,
                    cells,
                }
            })
            .collect()
    }

    /// The cell at (`row`, `column`), if both exist.
    pub fn cell(&self, row: &str, column: &str) -> Option<&Cell> {
        let r = self.rows.iter().position(|x| x == row)?;
        let c = self.columns.iter().position(|x| x == column)?;
        self.cells.get(r)?.get(c)
    }

    /// Whether cell (`row`, `column`) (indices) holds its column's highest
    /// mean *and* beats the runner-up (the next highest mean)
    /// significantly: the 95% interval of their difference, paired by seed
    /// where they share seeds, lies above zero. A column with one result,
    /// or whose leader is not significantly ahead, has no best.
    pub fn is_best(&self, row: usize, column: usize) -> bool {
        let mut ranked: Vec<(usize, f64)> = self
            .cells
            .iter()
            .enumerate()
            .filter_map(|(r, cells)| Some((r, cells.get(column)?.mean?)))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let [(best, _), (second, _), ..] = ranked[..] else {
            return false;
        };
        if best != row {
            return false;
        }
        let cell = |r: usize| &self.cells[r][column];
        Difference::of(&cell(best).values, &cell(second).values)
            .is_some_and(|d| d.verdict == Verdict::Supports)
    }

    /// Each row's name and its cells, each with whether it is its column's
    /// best ([`Grid::is_best`]), in display order.
    pub fn marked_rows(&self) -> impl Iterator<Item = (&str, Vec<(&Cell, bool)>)> + '_ {
        self.rows
            .iter()
            .zip(&self.cells)
            .enumerate()
            .map(move |(r, (name, cells))| {
                let marked = cells
                    .iter()
                    .enumerate()
                    .map(|(c, cell)| (cell, self.is_best(r, c)))
                    .collect();
                (name.as_str(), marked)
            })
    }

    /// The run fields of cell (`row`, `column`): dataset, model, activation
    /// and optimizer, recovered from the axes and the context.
    pub fn run_key(&self, row: &str, column: &str) -> RunKey {
        self.layout.run_key(row, column, |k| {
            self.context_value(k).unwrap_or_default().to_owned()
        })
    }

    /// `dataset cifar10, optimizer sgd`.
    pub fn caption(&self) -> String {
        self.context
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The value of context field `key` (`dataset`), if the grid has one.
    pub fn context_value(&self, key: &str) -> Option<&str> {
        self.context
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What identifies the runs of one cell, seeds aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunKey {
    /// Dataset.
    pub dataset: String,
    /// Model.
    pub model: String,
    /// Activation.
    pub activation: String,
    /// Optimizer.
    pub optimizer: String,
}

/// Distinct `keys`, those in `preferred` first in its order.
fn ordered(keys: impl Iterator<Item = String>, preferred: &[String]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for k in keys {
        if !seen.contains(&k) {
            seen.push(k);
        }
    }
    let mut out: Vec<String> = preferred
        .iter()
        .filter(|p| seen.contains(p))
        .cloned()
        .collect();
    out.extend(seen.into_iter().filter(|k| !preferred.contains(k)));
    out
}

#[cfg(test)]
mod tests;
