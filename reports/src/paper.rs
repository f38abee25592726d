//! The paper's reference results (`reports/paper/tables.yaml`), typed.
//!
//! The YAML is embedded in the binary so that a report never depends on the
//! working directory; [`PaperTables::parse`] takes any text so that tests can
//! feed it broken data.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::ReportError;

/// Where the embedded data lives in the repository, for error messages.
pub const TABLES_FILE: &str = "reports/paper/tables.yaml";

const TABLES_YAML: &str = include_str!("../paper/tables.yaml");

/// One printed value: a mean and, for most tables, its spread (the paper
/// does not say whether the spread is a variance or a standard deviation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PaperCell {
    /// The printed mean test accuracy.
    pub mean: f64,
    /// The printed spread, when the table has one.
    pub spread: Option<f64>,
}

/// One row of a paper table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaperRow {
    /// Row name: an activation (`asigmoid`) or `model/activation` (Table 5).
    pub name: String,
    /// One entry per column; `None` where the paper prints "—" (did not
    /// converge).
    pub cells: Vec<Option<PaperCell>>,
}

/// One of the paper's tables.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaperTable {
    /// Id used by suites (`table1`).
    pub id: String,
    /// Caption.
    pub title: String,
    /// Dataset of every cell, when the table has a single one.
    pub dataset: Option<String>,
    /// Optimizer of every cell, when the table has a single one.
    pub optimizer: Option<String>,
    /// Model of every cell, when the table has a single one (Table 6).
    pub model: Option<String>,
    /// Epochs and batch size of the table's runs, when the paper states them.
    pub settings: Option<PaperSettings>,
    /// Column names: models, optimizers, datasets or detection metrics.
    pub columns: Vec<String>,
    /// Rows in printed order.
    pub rows: Vec<PaperRow>,
}

/// The training settings of a table's runs, as the paper states them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperSettings {
    /// Epochs per run (the paper trains at least this many).
    pub epochs: usize,
    /// Training batch size.
    pub batch_size: usize,
}

impl PaperSettings {
    /// How runs of `epochs` epochs in batches of `batch_size` differ from
    /// these settings, as phrases for a report (`5 epochs instead of the
    /// paper's 80`). More epochs than the paper's are no deviation: it
    /// states a minimum.
    pub fn deviations(&self, epochs: usize, batch_size: usize) -> Vec<String> {
        let mut out = Vec::new();
        if epochs < self.epochs {
            out.push(format!(
                "{epochs} epochs instead of the paper's {}",
                self.epochs
            ));
        }
        if batch_size != self.batch_size {
            out.push(format!(
                "batch {batch_size} instead of the paper's {}",
                self.batch_size
            ));
        }
        out
    }
}

impl PaperTable {
    /// The row called `name`.
    pub fn row(&self, name: &str) -> Option<&PaperRow> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// The cell at (`row`, `column`): `None` when the table has no such row
    /// or column, `Some(None)` where the paper prints "—".
    pub fn cell(&self, row: &str, column: &str) -> Option<Option<PaperCell>> {
        let c = self.columns.iter().position(|c| c == column)?;
        self.row(row)?.cells.get(c).copied()
    }
}

/// All of the paper's tables, in file order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaperTables {
    /// The tables.
    pub tables: Vec<PaperTable>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    title: String,
    #[serde(default)]
    dataset: Option<String>,
    #[serde(default)]
    optimizer: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    settings: Option<PaperSettings>,
    columns: Vec<String>,
    rows: IndexMap<String, Spanned<Vec<Option<RawCell>>>>,
}

/// Tables 1-6 print `[mean, spread]`, Table 7 single values.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawCell {
    Pair([f64; 2]),
    Single(f64),
}

impl PaperTables {
    /// The tables shipped with acbench.
    pub fn load() -> Result<Self, ReportError> {
        Self::parse(TABLES_YAML, TABLES_FILE)
    }

    /// Parses and checks tables from `yaml`; `file` names it in errors.
    pub fn parse(yaml: &str, file: &str) -> Result<Self, ReportError> {
        let raw: IndexMap<String, Spanned<RawTable>> =
            serde_saphyr::from_str(yaml).map_err(|e| ReportError::PaperData {
                file: file.to_owned(),
                line: e.location().map_or(0, |l| l.line()),
                key: "tables".to_owned(),
                message: e.to_string(),
            })?;
        let mut tables = Vec::with_capacity(raw.len());
        for (id, table) in raw {
            let line = table.referenced.line();
            let t = table.value;
            let err = |line: u64, key: String, message: String| ReportError::PaperData {
                file: file.to_owned(),
                line,
                key,
                message,
            };
            if t.columns.is_empty() {
                return Err(err(line, format!("{id}.columns"), "no columns".into()));
            }
            for (i, c) in t.columns.iter().enumerate() {
                if t.columns[..i].contains(c) {
                    return Err(err(
                        line,
                        format!("{id}.columns"),
                        format!("column `{c}` appears twice"),
                    ));
                }
            }
            let mut rows = Vec::with_capacity(t.rows.len());
            for (name, cells) in t.rows {
                let line = cells.referenced.line();
                let key = format!("{id}.rows.{name}");
                if cells.value.len() != t.columns.len() {
                    return Err(err(
                        line,
                        key,
                        format!(
                            "{} cells for {} columns ({})",
                            cells.value.len(),
                            t.columns.len(),
                            t.columns.join(", ")
                        ),
                    ));
                }
                let mut typed = Vec::with_capacity(cells.value.len());
                for (cell, column) in cells.value.into_iter().zip(&t.columns) {
                    let cell = cell.map(|c| match c {
                        RawCell::Pair([mean, spread]) => PaperCell {
                            mean,
                            spread: Some(spread),
                        },
                        RawCell::Single(mean) => PaperCell { mean, spread: None },
                    });
                    if let Some(c) = cell {
                        let bad_mean = !(0.0..=1.0).contains(&c.mean);
                        let bad_spread = c.spread.is_some_and(|s| !(s >= 0.0 && s.is_finite()));
                        if bad_mean || bad_spread {
                            return Err(err(
                                line,
                                key,
                                format!(
                                    "column `{column}`: accuracy must lie in [0, 1] and spread \
                                     be a finite non-negative number, got {c:?}"
                                ),
                            ));
                        }
                    }
                    typed.push(cell);
                }
                rows.push(PaperRow { name, cells: typed });
            }
            tables.push(PaperTable {
                id,
                title: t.title,
                dataset: t.dataset,
                optimizer: t.optimizer,
                model: t.model,
                settings: t.settings,
                columns: t.columns,
                rows,
            });
        }
        Ok(Self { tables })
    }

    /// The table with id `id`, or an error listing the known ids.
    pub fn get(&self, id: &str) -> Result<&PaperTable, ReportError> {
        self.tables
            .iter()
            .find(|t| t.id == id)
            .ok_or_else(|| ReportError::UnknownPaperTable {
                name: id.to_owned(),
                known: self
                    .tables
                    .iter()
                    .map(|t| t.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

#[cfg(test)]
mod tests;
