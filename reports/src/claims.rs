//! The paper's claims, as it states them, judged on our runs.
//!
//! `paper/claims.yaml` lists each claim the paper makes about how
//! activations compare, with where it makes it. A claim ranges over units
//! at the paper's granularity: for a `pairs` claim, one unit per pair and
//! per column (model, optimizer or dataset) of the tables it names; for a
//! `best` claim, one per column; for a `convergence` claim, one per pair,
//! model and optimizer. Each unit gets a [`Verdict`] from our runs of that
//! exact setting (dataset, model, optimizer): paired by seed, with its
//! interval. Units we did not run are *not run*, never a disagreement.
//!
//! The claim's verdict counts its units against its quantifier (`every`,
//! `most` = more than half, `any`) with what is known: it is supported when
//! the units that support it already suffice, contradicted when even every
//! undecided and unrun unit going its way would not, and otherwise
//! inconclusive (or *not run*, when no unit ran). The paper's own numbers
//! are counted the same way, by their means, for comparison.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::ReportError;
use crate::grid::{Layout, RunKey};
use crate::paper::{PaperTable, PaperTables};
use crate::result::{RunResult, RunStatus};
use crate::stats::{Difference, Needed, Verdict};

/// Where the claims are kept, for messages.
pub const CLAIMS_FILE: &str = "reports/paper/claims.yaml";

const CLAIMS_YAML: &str = include_str!("../paper/claims.yaml");

/// What a claim says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimKind {
    /// The first of each pair beats the second.
    Pairs,
    /// The subject is best (or within a tolerance of the best).
    Best,
    /// The first of each pair converges faster (smaller convergence area).
    Convergence,
    /// Not judged from accuracies or losses.
    Other,
}

/// Over how many units a claim must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Quantifier {
    /// All of them.
    #[default]
    Every,
    /// More than half.
    Most,
    /// At least one.
    Any,
}

impl Quantifier {
    /// Units that must support the claim out of `total`.
    fn needs(self, total: usize) -> usize {
        match self {
            Quantifier::Every => total,
            Quantifier::Most => total / 2 + 1,
            Quantifier::Any => 1,
        }
    }
}

/// One claim as `claims.yaml` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimDef {
    /// Unique id (`adaptive-beats-base`).
    pub id: String,
    /// The claim in the paper's words.
    pub text: String,
    /// Where the paper makes it, with a fragment to find it by.
    #[serde(rename = "where")]
    pub location: String,
    /// What it says.
    pub kind: ClaimKind,
    /// `[better, worse]` activations (pairs, convergence).
    #[serde(default)]
    pub pairs: Vec<[String; 2]>,
    /// The activation claimed best (best).
    #[serde(default)]
    pub subject: Option<String>,
    /// How far below the best still counts as best (best).
    #[serde(default)]
    pub tolerance: f64,
    /// Paper tables whose columns the claim ranges over.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Models whose rows of Table 5 are judged, each on its own.
    #[serde(default)]
    pub row_scope: Vec<String>,
    /// Only these columns; all when absent.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Dataset of a convergence claim.
    #[serde(default)]
    pub dataset: Option<String>,
    /// Optimizers of a convergence claim.
    #[serde(default)]
    pub optimizers: Vec<String>,
    /// Models of a convergence claim.
    #[serde(default)]
    pub models: Vec<String>,
    /// Over how many units it must hold.
    #[serde(default)]
    pub quantifier: Quantifier,
    /// Readings, ambiguities, why it is not judged.
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimsFile {
    claims: Vec<Spanned<ClaimDef>>,
}

/// The paper's claims, in the file's order.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims(pub Vec<ClaimDef>);

impl Claims {
    /// The claims shipped in the binary, checked against `tables`.
    pub fn load(tables: &PaperTables) -> Result<Claims, ReportError> {
        Claims::parse(CLAIMS_YAML, CLAIMS_FILE, tables)
    }

    /// Parses claims from `yaml` (named `file` in errors) and checks that
    /// every id is unique and every table, row and column they name exists.
    pub fn parse(yaml: &str, file: &str, tables: &PaperTables) -> Result<Claims, ReportError> {
        let parsed: ClaimsFile =
            serde_saphyr::from_str(yaml).map_err(|e| ReportError::PaperData {
                file: file.to_owned(),
                line: e.location().map_or(0, |l| l.line()),
                key: "claims".to_owned(),
                message: e.to_string(),
            })?;
        let mut ids: IndexMap<String, u64> = IndexMap::new();
        let mut out = Vec::new();
        for spanned in parsed.claims {
            let line = spanned.referenced.line();
            let claim = spanned.value;
            let err = |message: String| ReportError::PaperData {
                file: file.to_owned(),
                line,
                key: format!("claims.{}", claim.id),
                message,
            };
            if let Some(first) = ids.insert(claim.id.clone(), line) {
                return Err(err(format!("the id is used before, on line {first}")));
            }
            check(&claim, tables).map_err(err)?;
            out.push(claim);
        }
        Ok(Claims(out))
    }
}

/// The names a claim uses exist in the paper's tables.
fn check(claim: &ClaimDef, tables: &PaperTables) -> Result<(), String> {
    let needs = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_owned()) };
    match claim.kind {
        ClaimKind::Pairs | ClaimKind::Convergence => needs(
            !claim.pairs.is_empty(),
            "`pairs` must name at least one pair",
        )?,
        ClaimKind::Best => needs(claim.subject.is_some(), "`subject` is missing")?,
        ClaimKind::Other => {}
    }
    needs(
        claim.kind != ClaimKind::Convergence || claim.dataset.is_some(),
        "a convergence claim needs its `dataset`",
    )?;
    for id in &claim.tables {
        let table = tables.get(id).map_err(|e| e.to_string())?;
        for column in claim.columns.iter().flatten() {
            needs(
                table.columns.contains(column),
                &format!("`{column}` is not a column of {id}"),
            )?;
        }
    }
    Ok(())
}

/// How one unit came out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unit {
    /// What it is: `table1 alexnet: asigmoid vs sigmoid`.
    pub label: String,
    /// Our verdict; `None` when we did not run it.
    pub ours: Option<Verdict>,
    /// The comparison behind it (the closest one, for `best`).
    pub difference: Option<Difference>,
    /// Why it is what it is, when numbers do not say (`sigmoid diverged in
    /// every run`, `not run: fashion-mnist/convnet only`).
    pub note: Option<String>,
    /// Whether the paper's numbers bear it out; `None` where the paper has
    /// no numbers (figures, or a pair neither side of which converged).
    pub paper: Option<bool>,
}

/// The claim-level outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Enough units support it.
    Supports,
    /// Too many units contradict it for it to hold.
    Contradicts,
    /// Undecided units (and unrun ones) could still go either way.
    Inconclusive,
    /// No unit ran.
    NotRun,
    /// Not judged from runs (kind `other`).
    NotJudged,
}

impl Outcome {
    /// One word or two: `supports`, `contradicts`, `inconclusive`, `not run`,
    /// `not judged`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Supports => "supports",
            Outcome::Contradicts => "contradicts",
            Outcome::Inconclusive => "inconclusive",
            Outcome::NotRun => "not run",
            Outcome::NotJudged => "not judged",
        }
    }
}

/// A claim and what our runs and the paper's numbers say of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimJudgement {
    /// The claim.
    pub claim: ClaimDef,
    /// Every unit.
    pub units: Vec<Unit>,
    /// Our outcome.
    pub outcome: Outcome,
    /// Units supporting, contradicting, undecided and not run, on our runs.
    pub counts: [usize; 4],
    /// The paper's units that bear the claim out, of those it has numbers
    /// for; `None` for claims from figures.
    pub paper: Option<(usize, usize)>,
    /// Our units in one line: `3 of 5 units support, 2 not run (every must
    /// support)`.
    pub summary: String,
}

/// Judges every claim on `results`.
pub fn judge_all(
    claims: &Claims,
    tables: &PaperTables,
    results: &[RunResult],
) -> Vec<ClaimJudgement> {
    claims.0.iter().map(|c| judge(c, tables, results)).collect()
}

/// Our runs of one setting: `(seed, value)` of each finished run and
/// how many runs there were lost (diverged or failed).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Runs {
    pub(crate) values: Vec<(u64, f64)>,
    pub(crate) lost: usize,
}

impl From<&crate::grid::Cell> for Runs {
    fn from(cell: &crate::grid::Cell) -> Runs {
        Runs {
            values: cell.values.clone(),
            lost: cell.diverged + cell.failed,
        }
    }
}

fn runs_of(results: &[RunResult], key: &RunKey, value: impl Fn(&RunResult) -> Option<f64>) -> Runs {
    let mut runs = Runs {
        values: Vec::new(),
        lost: 0,
    };
    let wildcard = |k: &str| k.is_empty() || k == "unstated";
    for r in results.iter().filter(|r| {
        r.dataset == key.dataset
            && r.model == key.model
            && r.activation == key.activation
            && (wildcard(&key.optimizer) || r.optimizer == key.optimizer)
    }) {
        match value(r) {
            Some(v) => runs.values.push((r.seed, v)),
            None if r.status != RunStatus::Finished || r.final_accuracy().is_none() => {
                runs.lost += 1
            }
            None => {}
        }
    }
    runs
}

/// Our verdict on "`a` beats `b` by more than `margin`" from their runs,
/// with a note where running or converging decides it (a function that
/// diverged in every run loses, as the paper counts it).
pub(crate) fn versus(
    a: &Runs,
    b: &Runs,
    names: (&str, &str),
    margin: f64,
) -> (Option<Verdict>, Option<Difference>, Option<String>) {
    let ran = |r: &Runs| !r.values.is_empty() || r.lost > 0;
    if !ran(a) || !ran(b) {
        let missing: Vec<&str> = [(a, names.0), (b, names.1)]
            .iter()
            .filter(|(r, _)| !ran(r))
            .map(|(_, n)| *n)
            .collect();
        return (None, None, Some(format!("not run: {}", missing.join(", "))));
    }
    match (a.values.is_empty(), b.values.is_empty()) {
        (true, true) => (
            Some(Verdict::Inconclusive {
                needed: Needed::Unknown,
            }),
            None,
            Some("both diverged in every run".to_owned()),
        ),
        // As the paper counts it: a function that did not converge loses.
        (false, true) => (
            Some(Verdict::Supports),
            None,
            Some(format!("{} diverged in every run", names.1)),
        ),
        (true, false) => (
            Some(Verdict::Contradicts),
            None,
            Some(format!("{} diverged in every run", names.0)),
        ),
        (false, false) => match Difference::of(&a.values, &b.values) {
            Some(d) => (Some(d.verdict_beyond(margin)), Some(d), None),
            None => (None, None, None),
        },
    }
}

/// The columns of `table` a claim ranges over.
fn columns<'a>(claim: &'a ClaimDef, table: &'a PaperTable) -> Vec<&'a String> {
    table
        .columns
        .iter()
        .filter(|c| claim.columns.as_ref().is_none_or(|cs| cs.contains(c)))
        .collect()
}

/// Row scopes of `table`: the models of Table 5's `model/activation`
/// rows named by the claim, or one unnamed scope.
fn scopes(claim: &ClaimDef, table: &PaperTable) -> Vec<Option<String>> {
    if Layout::for_table(table) != Layout::ModelActivationsByOptimizer {
        return vec![None];
    }
    claim.row_scope.iter().cloned().map(Some).collect()
}

fn row_name(scope: &Option<String>, act: &str) -> String {
    match scope {
        Some(s) => format!("{s}/{act}"),
        None => act.to_owned(),
    }
}

fn table_key(table: &PaperTable, row: &str, column: &str) -> RunKey {
    Layout::for_table(table).run_key(row, column, |k| {
        match k {
            "dataset" => table.dataset.clone(),
            "model" => table.model.clone(),
            _ => table.optimizer.clone(),
        }
        .unwrap_or_default()
    })
}

/// Whether the paper's means bear out "`a` beats `b` by more than
/// `margin`"; a null cell loses; `None` when both are null or absent.
fn paper_says(table: &PaperTable, a: &str, b: &str, column: &str, margin: f64) -> Option<bool> {
    let (x, y) = (table.cell(a, column)?, table.cell(b, column)?);
    match (x, y) {
        (Some(x), Some(y)) => Some(x.mean - y.mean > margin),
        (Some(_), None) => Some(true),
        (None, Some(_)) => Some(false),
        (None, None) => None,
    }
}

fn judge(claim: &ClaimDef, tables: &PaperTables, results: &[RunResult]) -> ClaimJudgement {
    let acc = |r: &RunResult| r.final_accuracy();
    let mut units = Vec::new();
    match claim.kind {
        ClaimKind::Pairs => {
            for table in claim.tables.iter().filter_map(|id| tables.get(id).ok()) {
                for scope in scopes(claim, table) {
                    for column in columns(claim, table) {
                        for [a, b] in &claim.pairs {
                            let (ra, rb) = (row_name(&scope, a), row_name(&scope, b));
                            if table.row(&ra).is_none() || table.row(&rb).is_none() {
                                continue;
                            }
                            let ka = table_key(table, &ra, column);
                            let kb = table_key(table, &rb, column);
                            let (ours, difference, note) = versus(
                                &runs_of(results, &ka, acc),
                                &runs_of(results, &kb, acc),
                                (a, b),
                                0.0,
                            );
                            units.push(Unit {
                                label: format!("{} {column}: {ra} vs {b}", table.id),
                                ours,
                                difference,
                                note,
                                paper: paper_says(table, &ra, &rb, column, 0.0),
                            });
                        }
                    }
                }
            }
        }
        ClaimKind::Best => {
            let subject = claim.subject.as_deref().unwrap_or_default();
            for table in claim.tables.iter().filter_map(|id| tables.get(id).ok()) {
                for scope in scopes(claim, table) {
                    let rs = row_name(&scope, subject);
                    if table.row(&rs).is_none() {
                        continue;
                    }
                    for column in columns(claim, table) {
                        units.push(best_unit(claim, table, &scope, &rs, column, results));
                    }
                }
            }
        }
        ClaimKind::Convergence => {
            // Faster is a smaller area: "a beats b" on the negated areas.
            let area = |r: &RunResult| r.convergence_area().map(|a| -a);
            let dataset = claim.dataset.clone().unwrap_or_default();
            for model in &claim.models {
                for optimizer in &claim.optimizers {
                    for [a, b] in &claim.pairs {
                        let key = |act: &str| RunKey {
                            dataset: dataset.clone(),
                            model: model.clone(),
                            activation: act.to_owned(),
                            optimizer: optimizer.clone(),
                        };
                        let (ours, difference, note) = versus(
                            &runs_of(results, &key(a), area),
                            &runs_of(results, &key(b), area),
                            (a, b),
                            0.0,
                        );
                        units.push(Unit {
                            label: format!("{dataset} {model} {optimizer}: {a} vs {b}"),
                            ours,
                            difference,
                            note,
                            paper: None,
                        });
                    }
                }
            }
        }
        ClaimKind::Other => {}
    }
    summarise(claim.clone(), units)
}

fn best_unit(
    claim: &ClaimDef,
    table: &PaperTable,
    scope: &Option<String>,
    subject: &str,
    column: &str,
    results: &[RunResult],
) -> Unit {
    let acc = |r: &RunResult| r.final_accuracy();
    let others: Vec<String> = table
        .rows
        .iter()
        .map(|r| r.name.clone())
        .filter(|r| r != subject && scopes_match(scope, r))
        .collect();
    let ours_subject = runs_of(results, &table_key(table, subject, column), acc);
    let (mut supports, mut contradicted, mut undecided, mut unrun) = (0, None, 0, Vec::new());
    let mut closest: Option<Difference> = None;
    for other in &others {
        let o = runs_of(results, &table_key(table, other, column), acc);
        let short = other.rsplit('/').next().unwrap_or(other);
        let (v, d, _) = versus(&ours_subject, &o, (subject, short), -claim.tolerance);
        match v {
            Some(Verdict::Supports) => supports += 1,
            Some(Verdict::Contradicts) => contradicted = Some(short.to_owned()),
            Some(Verdict::Inconclusive { .. }) => undecided += 1,
            None => unrun.push(short.to_owned()),
        }
        if let Some(d) = d
            && closest.as_ref().is_none_or(|c| d.mean < c.mean)
        {
            closest = Some(d);
        }
    }
    let subject_ran = !ours_subject.values.is_empty() || ours_subject.lost > 0;
    let (ours, note) = if !subject_ran {
        (None, Some(format!("not run: {subject}")))
    } else if let Some(winner) = contradicted {
        (Some(Verdict::Contradicts), Some(format!("behind {winner}")))
    } else if supports == others.len() {
        (Some(Verdict::Supports), None)
    } else if supports + undecided == 0 {
        (None, Some(format!("not run: {}", unrun.join(", "))))
    } else {
        let mut why = Vec::new();
        if undecided > 0 {
            why.push(format!("{undecided} undecided"));
        }
        if !unrun.is_empty() {
            why.push(format!("not run: {}", unrun.join(", ")));
        }
        (
            Some(Verdict::Inconclusive {
                needed: Needed::Unknown,
            }),
            Some(why.join("; ")),
        )
    };
    let paper = {
        let best_other = others
            .iter()
            .filter_map(|o| table.cell(o, column).flatten())
            .map(|c| c.mean)
            .fold(f64::NEG_INFINITY, f64::max);
        table
            .cell(subject, column)
            .map(|c| c.is_some_and(|c| c.mean >= best_other - claim.tolerance))
    };
    Unit {
        label: format!("{} {column}: {subject} best", table.id),
        ours,
        difference: closest,
        note,
        paper,
    }
}

fn scopes_match(scope: &Option<String>, row: &str) -> bool {
    match (scope, row.rsplit_once('/')) {
        (Some(s), Some((m, _))) => s == m,
        (None, None) => true,
        _ => false,
    }
}

fn summarise(claim: ClaimDef, units: Vec<Unit>) -> ClaimJudgement {
    let mut counts = [0usize; 4];
    for u in &units {
        counts[match u.ours {
            Some(Verdict::Supports) => 0,
            Some(Verdict::Contradicts) => 1,
            Some(Verdict::Inconclusive { .. }) => 2,
            None => 3,
        }] += 1;
    }
    let [s, c, i, n] = counts;
    let need = claim.quantifier.needs(units.len());
    let outcome = if claim.kind == ClaimKind::Other {
        Outcome::NotJudged
    } else if s + c + i == 0 {
        Outcome::NotRun
    } else if s >= need {
        Outcome::Supports
    } else if s + i + n < need {
        Outcome::Contradicts
    } else {
        Outcome::Inconclusive
    };
    let judged: Vec<bool> = units.iter().filter_map(|u| u.paper).collect();
    let paper = (!judged.is_empty()).then(|| (judged.iter().filter(|&&b| b).count(), judged.len()));
    let quantifier = match claim.quantifier {
        Quantifier::Every => "every",
        Quantifier::Most => "most",
        Quantifier::Any => "any",
    };
    let summary = match outcome {
        Outcome::NotJudged => "not from accuracies or losses".to_owned(),
        Outcome::NotRun => format!("none of its {} units run", units.len()),
        _ => {
            let mut parts = vec![format!("{s} of {} units support", units.len())];
            for (k, what) in [(c, "contradict"), (i, "undecided"), (n, "not run")] {
                if k > 0 {
                    parts.push(format!("{k} {what}"));
                }
            }
            format!("{} ({quantifier} must support)", parts.join(", "))
        }
    };
    ClaimJudgement {
        claim,
        units,
        outcome,
        counts,
        paper,
        summary,
    }
}

#[cfg(test)]
mod tests;
