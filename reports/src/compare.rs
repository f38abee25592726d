//! Our results beside the paper's: per-cell values and the paper's claims.
//!
//! The claims are not transcribed by hand: they are derived from the paper's
//! numbers, as orderings between pairs of rows of the same table (each
//! adaptive function against its fixed counterpart, AReLU against the other
//! ReLU-like rows), so that the check covers every pair the table supports
//! and cannot drift from the data.

use serde::Serialize;

use crate::grid::{Cell, Grid, Layout};
use crate::paper::{PaperCell, PaperTable};

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
    /// The paper's orderings and whether our runs agree.
    pub claims: Vec<Claim>,
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

/// Which of a pair of rows did better in one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// The claim's first row is better (or the only one that converged).
    First,
    /// The second row is better.
    Second,
    /// Equal means.
    Tie,
    /// Not known: missing, or neither converged.
    Unknown,
}

/// Whether our runs bear out the paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Agreement {
    /// Same ordering.
    Agree,
    /// Opposite ordering.
    Disagree,
    /// One side is missing, diverged or tied.
    CantTell,
}

impl Agreement {
    /// `agree`, `disagree`, `can't tell`.
    pub fn label(self) -> &'static str {
        match self {
            Agreement::Agree => "agree",
            Agreement::Disagree => "disagree",
            Agreement::CantTell => "can't tell",
        }
    }
}

/// The judgement of one claim in one column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnJudgement {
    /// The column (a model, optimizer or dataset).
    pub column: String,
    /// What the paper found.
    pub paper: Order,
    /// What our runs found.
    pub ours: Order,
    /// Whether they agree.
    pub agreement: Agreement,
    /// Why it can't be told, when it can't.
    pub reason: Option<String>,
}

/// "`first` beats `second`", checked column by column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Claim {
    /// Row name of the first function (`asigmoid`, `googlenet/arelu`).
    pub first: String,
    /// Row name of the second.
    pub second: String,
    /// Per column.
    pub columns: Vec<ColumnJudgement>,
    /// Columns of the paper's table where the first row is better.
    pub paper_wins: usize,
    /// Columns of the paper's table with an ordering.
    pub paper_judged: usize,
    /// Our columns where the first row is better.
    pub ours_wins: usize,
    /// Our columns with an ordering.
    pub ours_judged: usize,
    /// Our columns where the ordering can't be told.
    pub ours_unknown: usize,
    /// Whether we agree with the paper that the first wins everywhere (or
    /// that it does not).
    pub verdict: Agreement,
    /// One line: `ASigmoid beats Sigmoid on every model: paper yes (5/5), ours yes (3/3): agree`.
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

    let claims = claim_pairs(table)
        .into_iter()
        .map(|(first, second)| judge(grid, table, first, second))
        .collect();
    Comparison {
        table_id: table.id.clone(),
        table_title: table.title.clone(),
        differences,
        cells,
        claims,
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

fn paper_order(table: &PaperTable, first: &str, second: &str, column: &str) -> Option<Order> {
    let a = table.cell(first, column)?;
    let b = table.cell(second, column)?;
    let mean = |c: Option<PaperCell>| c.map(|c| c.mean);
    Some(order_of(mean(a), a.is_none(), mean(b), b.is_none()))
}

fn our_order(grid: &Grid, first: &str, second: &str, column: &str) -> (Order, Option<String>) {
    let (Some(a), Some(b)) = (grid.cell(first, column), grid.cell(second, column)) else {
        return (Order::Unknown, Some("not run".into()));
    };
    if a.is_empty() || b.is_empty() {
        return (Order::Unknown, Some("not run".into()));
    }
    let order = order_of(a.mean, a.all_lost(), b.mean, b.all_lost());
    let reason = match order {
        Order::Unknown => Some("both diverged".into()),
        Order::Tie => Some("tie".into()),
        _ => None,
    };
    (order, reason)
}

fn judge(grid: &Grid, table: &PaperTable, first: String, second: String) -> Claim {
    let mut columns: Vec<String> = table.columns.clone();
    for c in &grid.columns {
        if !columns.contains(c) {
            columns.push(c.clone());
        }
    }
    let judgements: Vec<ColumnJudgement> = columns
        .into_iter()
        .map(|column| {
            let paper = paper_order(table, &first, &second, &column);
            let (ours, our_reason) = our_order(grid, &first, &second, &column);
            let (agreement, reason) = match (paper, ours) {
                (None, _) => (
                    Agreement::CantTell,
                    Some("not in the paper's table".to_owned()),
                ),
                (Some(Order::Unknown), _) => (
                    Agreement::CantTell,
                    Some("neither converged in the paper".to_owned()),
                ),
                (Some(Order::Tie), _) => (Agreement::CantTell, Some("tie in the paper".into())),
                (_, Order::Unknown | Order::Tie) => (Agreement::CantTell, our_reason),
                (Some(p), o) if p == o => (Agreement::Agree, None),
                _ => (Agreement::Disagree, None),
            };
            ColumnJudgement {
                column,
                paper: paper.unwrap_or(Order::Unknown),
                ours,
                agreement,
                reason,
            }
        })
        .collect();

    let judged = |o: Order| matches!(o, Order::First | Order::Second | Order::Tie);
    let paper_judged = judgements.iter().filter(|j| judged(j.paper)).count();
    let paper_wins = judgements
        .iter()
        .filter(|j| j.paper == Order::First)
        .count();
    let ours_cols: Vec<&ColumnJudgement> = judgements
        .iter()
        .filter(|j| grid.columns.contains(&j.column))
        .collect();
    let ours_judged = ours_cols.iter().filter(|j| judged(j.ours)).count();
    let ours_wins = ours_cols.iter().filter(|j| j.ours == Order::First).count();
    let ours_unknown = ours_cols.len() - ours_judged;

    let paper_every = paper_judged > 0 && paper_wins == paper_judged;
    let ours_every = ours_judged > 0 && ours_wins == ours_judged;
    let verdict = if paper_judged == 0 || ours_judged == 0 {
        Agreement::CantTell
    } else if paper_every == ours_every {
        Agreement::Agree
    } else {
        Agreement::Disagree
    };

    let (scope, a) = split_scope(&first);
    let (_, b) = split_scope(&second);
    let every = match grid.layout {
        Layout::ActivationsByModel => "on every model",
        Layout::ModelActivationsByOptimizer => "with every optimizer",
        Layout::ActivationsByDataset => "on every dataset",
    };
    let yes = |b: bool| if b { "yes" } else { "no" };
    let verdict_text = if ours_judged == 0 {
        String::new()
    } else {
        format!(": {}", verdict.label())
    };
    let ours_text = if ours_judged > 0 {
        format!("{} ({ours_wins}/{ours_judged})", yes(ours_every))
    } else if ours_cols
        .iter()
        .any(|j| j.reason.as_deref() == Some("both diverged"))
    {
        "can't tell (diverged)".to_owned()
    } else {
        "can't tell (not run)".to_owned()
    };
    let unknown_text = if ours_unknown > 0 && ours_judged > 0 {
        format!(", {ours_unknown} can't tell")
    } else {
        String::new()
    };
    let scope_text = scope.map(|s| format!("{s}: ")).unwrap_or_default();
    let summary = format!(
        "{scope_text}{} beats {} {every}: paper {} ({paper_wins}/{paper_judged}), ours {ours_text}{unknown_text}{verdict_text}",
        display_name(a),
        display_name(b),
        yes(paper_every),
    );
    Claim {
        first,
        second,
        columns: judgements,
        paper_wins,
        paper_judged,
        ours_wins,
        ours_judged,
        ours_unknown,
        verdict,
        summary,
    }
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
