//! Our results beside one of the paper's tables: per-cell values, and the
//! pairs of rows the table compares, judged on our runs.
//!
//! The pairs are derived from the table's rows (each adaptive function
//! against its fixed counterpart, AReLU against the other ReLU-like rows),
//! so they cover every pair the table supports. Each is judged per column
//! of our grid with a paired difference and a [`Verdict`], beside the
//! paper's own ordering there. The paper's claims as it states them are
//! judged in [`crate::claims`].

use serde::Serialize;

use crate::claims::{Runs, versus};
use crate::grid::{Cell, Grid};
use crate::paper::{PaperCell, PaperTable};
use crate::stats::{Difference, Pairing, Verdict};

/// Adaptive functions and the fixed functions they generalise.
const ADAPTIVE_PAIRS: [(&str, &str); 3] = [
    ("asigmoid", "sigmoid"),
    ("atanh", "tanh"),
    ("arelu", "relu"),
];

/// Rows AReLU is not compared against beyond its own pair: the saturating
/// families have their own adaptive versions.
const NOT_RELU_LIKE: [&str; 4] = ["sigmoid", "asigmoid", "tanh", "atanh"];

/// A grid set beside one of the paper's tables.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The paper table's id (`table1`).
    pub table_id: String,
    /// Its caption.
    pub table_title: String,
    /// How our settings differ from the paper's. When any differ, absolute
    /// numbers are not comparable: only orderings are judged and no
    /// difference is computed.
    pub differences: Vec<String>,
    /// Our cells that the paper's table also has.
    pub cells: Vec<CellComparison>,
    /// The paper's comparisons of pairs of rows, on our runs.
    pub pairs: Vec<PairComparison>,
}

impl Comparison {
    /// Whether absolute numbers are compared (settings match the paper's).
    pub fn judges_values(&self) -> bool {
        self.differences.is_empty()
    }
}

/// One cell, ours beside the paper's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellComparison {
    /// Row name.
    pub row: String,
    /// Column name.
    pub column: String,
    /// Our aggregate.
    pub ours: Cell,
    /// The paper's value; `None` where it prints "—".
    pub paper: Option<PaperCell>,
    /// Ours minus the paper's mean, only when settings match and both exist.
    pub difference: Option<f64>,
}

/// Which of a pair of rows did better in one of the paper's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// The first row is better (or the only one that converged).
    First,
    /// The second row is better.
    Second,
    /// Equal means.
    Tie,
    /// Not known: not in the paper's table, or neither converged.
    Unknown,
}

/// One of the comparisons the paper's table makes, on our runs: "`first`
/// beats `second`", per column of our grid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairComparison {
    /// Row name of the first function (`asigmoid`, `googlenet/arelu`).
    pub first: String,
    /// Row name of the second.
    pub second: String,
    /// The pair as lines name it: `AReLU vs ReLU`.
    pub label: String,
    /// One per column of our grid where either row ran (pairs neither row
    /// of which ran are left out).
    pub columns: Vec<PairColumn>,
}

impl PairComparison {
    /// The scope of the rows (`googlenet` for `googlenet/arelu`).
    pub fn scope(&self) -> Option<&str> {
        split_scope(&self.first).0
    }

    /// The one reason the pair was run in none of several columns
    /// (`not run: PReLU`), so that reports say it once.
    pub fn unrun_everywhere(&self) -> Option<&str> {
        let note = self.columns.first()?.note.as_deref()?;
        let all = self.columns.len() > 1
            && note.starts_with("not run")
            && self
                .columns
                .iter()
                .all(|c| c.ours.is_none() && c.note.as_deref() == Some(note));
        all.then_some(note)
    }
}

/// A pair in one column: our difference with its uncertainty and verdict,
/// beside the paper's ordering there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairColumn {
    /// The column (a model, optimizer or dataset).
    pub column: String,
    /// The paper's ordering in this column.
    pub paper: Order,
    /// First minus second on our runs, paired by seed where possible.
    pub ours: Option<Difference>,
    /// Our verdict on "first beats second"; `None` when not run.
    pub verdict: Option<Verdict>,
    /// Why, when the numbers do not say (`not run: relu`, `relu diverged in
    /// every run`).
    pub note: Option<String>,
    /// One line: `AReLU vs ReLU, convnet: +0.0081 [-0.0120, 0.0282] (paired,
    /// n=5), P(AReLU > ReLU) = 0.64: inconclusive (n≈31 would decide)`.
    pub summary: String,
}

/// Compares `grid` with `table`. `deviations` are settings the caller
/// knows differ from the paper's (fewer epochs, another preset); dataset,
/// optimizer and model differences are detected here.
pub fn compare(grid: &Grid, table: &PaperTable, deviations: &[String]) -> Comparison {
    let mut differences = Vec::new();
    for (key, paper) in [
        ("dataset", &table.dataset),
        ("optimizer", &table.optimizer),
        ("model", &table.model),
    ] {
        match (grid.context_value(key), paper) {
            (Some(ours), Some(paper)) if ours != paper && paper != "unstated" => {
                differences.push(format!("{key} {ours} instead of the paper's {paper}"));
            }
            _ => {}
        }
    }
    differences.extend(deviations.iter().cloned());
    let judge_values = differences.is_empty();

    let mut cells = Vec::new();
    for (r, row) in grid.rows.iter().enumerate() {
        for (c, column) in grid.columns.iter().enumerate() {
            let Some(paper) = table.cell(row, column) else {
                continue;
            };
            let ours = grid.cells[r][c].clone();
            if ours.is_empty() {
                continue;
            }
            let difference = match (judge_values, ours.mean, paper) {
                (true, Some(m), Some(p)) => Some(m - p.mean),
                _ => None,
            };
            cells.push(CellComparison {
                row: row.clone(),
                column: column.clone(),
                ours,
                paper,
                difference,
            });
        }
    }

    let pairs = claim_pairs(table)
        .into_iter()
        .map(|(first, second)| pair(grid, table, first, second))
        .filter(|p| !p.columns.is_empty())
        .collect();
    Comparison {
        table_id: table.id.clone(),
        table_title: table.title.clone(),
        differences,
        cells,
        pairs,
    }
}

/// The pairs of rows whose ordering the table documents, first the adaptive
/// (or AReLU) row. Rows `model/activation` pair only within one model.
fn claim_pairs(table: &PaperTable) -> Vec<(String, String)> {
    let split = |name: &str| match name.rsplit_once('/') {
        Some((scope, act)) => (Some(scope.to_owned()), act.to_owned()),
        None => (None, name.to_owned()),
    };
    let mut scopes: Vec<Option<String>> = Vec::new();
    for r in &table.rows {
        let s = split(&r.name).0;
        if !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    let mut pairs = Vec::new();
    for scope in scopes {
        let name = |act: &str| match &scope {
            Some(s) => format!("{s}/{act}"),
            None => act.to_owned(),
        };
        let acts: Vec<String> = table
            .rows
            .iter()
            .map(|r| split(&r.name))
            .filter(|(s, _)| *s == scope)
            .map(|(_, a)| a)
            .collect();
        let has = |a: &str| acts.iter().any(|x| x == a);
        for (adaptive, fixed) in ADAPTIVE_PAIRS {
            if has(adaptive) && has(fixed) {
                pairs.push((name(adaptive), name(fixed)));
            }
        }
        if has("arelu") {
            for other in &acts {
                if other != "arelu" && other != "relu" && !NOT_RELU_LIKE.contains(&other.as_str()) {
                    pairs.push((name("arelu"), name(other)));
                }
            }
        }
    }
    pairs
}

fn order_of(first: Option<f64>, first_lost: bool, second: Option<f64>, second_lost: bool) -> Order {
    match (first, second) {
        (Some(a), Some(b)) if a > b => Order::First,
        (Some(a), Some(b)) if a < b => Order::Second,
        (Some(_), Some(_)) => Order::Tie,
        (Some(_), None) if second_lost => Order::First,
        (None, Some(_)) if first_lost => Order::Second,
        _ => Order::Unknown,
    }
}

fn paper_order(table: &PaperTable, first: &str, second: &str, column: &str) -> Order {
    let (Some(a), Some(b)) = (table.cell(first, column), table.cell(second, column)) else {
        return Order::Unknown;
    };
    let mean = |c: Option<PaperCell>| c.map(|c| c.mean);
    order_of(mean(a), a.is_none(), mean(b), b.is_none())
}

fn pair(grid: &Grid, table: &PaperTable, first: String, second: String) -> PairComparison {
    let (_, a) = split_scope(&first);
    let (_, b) = split_scope(&second);
    let (a, b) = (display_name(a), display_name(b));
    let columns = grid
        .columns
        .iter()
        .filter_map(|column| {
            let runs = |row: &str| grid.cell(row, column).map(Runs::from).unwrap_or_default();
            let (ra, rb) = (runs(&first), runs(&second));
            if ra == Runs::default() && rb == Runs::default() {
                return None;
            }
            let (verdict, ours, note) = versus(&ra, &rb, (a, b), 0.0);
            let summary = pair_summary((a, b), column, ours.as_ref(), verdict, note.as_deref());
            Some(PairColumn {
                column: column.clone(),
                paper: paper_order(table, &first, &second, column),
                ours,
                verdict,
                note,
                summary,
            })
        })
        .collect();
    let label = format!("{a} vs {b}");
    PairComparison {
        first,
        second,
        label,
        columns,
    }
}

/// `AReLU vs ReLU, convnet: +0.0081 [-0.0120, 0.0282] (paired, n=5),
/// P(AReLU > ReLU) = 0.64: inconclusive (n≈31 would decide)`.
fn pair_summary(
    (a, b): (&str, &str),
    column: &str,
    d: Option<&Difference>,
    verdict: Option<Verdict>,
    note: Option<&str>,
) -> String {
    let mut s = format!("{a} vs {b}, {column}: ");
    if let Some(d) = d {
        s.push_str(&format!("{:+.4}", d.mean));
        if let Some(ci) = d.ci {
            s.push_str(&format!(" [{:+.4}, {:+.4}]", ci.lo, ci.hi));
        }
        let how = match d.pairing {
            Pairing::Paired => "paired",
            Pairing::Welch => "unpaired",
            Pairing::None => "one run each",
        };
        s.push_str(&format!(
            " ({how}, n={}), P({a} > {b}) = {:.2}",
            d.n, d.prob_improvement
        ));
    }
    if let Some(n) = note {
        if d.is_some() {
            s.push_str("; ");
        }
        s.push_str(n);
    }
    if let Some(v) = verdict {
        s.push_str(&format!(": {v}"));
    }
    s
}

fn split_scope(row: &str) -> (Option<&str>, &str) {
    match row.rsplit_once('/') {
        Some((s, a)) => (Some(s), a),
        None => (None, row),
    }
}

/// The paper's spelling of an activation name (`arelu` -> `AReLU`); other
/// names are returned as they are.
pub fn display_name(activation: &str) -> &str {
    match activation {
        "relu" => "ReLU",
        "lrelu" => "LReLU",
        "prelu" => "PReLU",
        "pelu" => "PELU",
        "frelu" => "FReLU",
        "swish" => "Swish",
        "sigmoid" => "Sigmoid",
        "tanh" => "Tanh",
        "asigmoid" => "ASigmoid",
        "atanh" => "ATanh",
        "arelu" => "AReLU",
        other => other,
    }
}

#[cfg(test)]
mod tests;
