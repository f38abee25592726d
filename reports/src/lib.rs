//! Reports of acbench results: the paper's table layout, the comparison
//! with the paper's numbers and claims, exports, and SVG plots.
//!
//! Data flows one way: runs ([`RunResult`], produced by the ledger) are
//! aggregated into [`Grid`]s, optionally compared with a table of the paper
//! ([`compare`]), and rendered by [`Exporter`]s; [`plot`] draws the paper's
//! figures from the same runs. [`render_report`] does all of it for the CLI.

pub mod claims;
pub mod compare;
pub mod detection;
mod error;
pub mod export;
pub mod grid;
pub mod paper;
pub mod plot;
pub mod result;
pub mod stats;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use claims::{ClaimJudgement, Claims, Outcome};
pub use compare::{Comparison, PairComparison};
pub use error::ReportError;
pub use export::{ExportManager, Exporter, Format, TerminalExporter};
pub use grid::{Cell, Grid, Layout};
pub use paper::{PaperSettings, PaperTable, PaperTables};
pub use result::{EpochPoint, LayerIncrements, RunResult, RunStatus, SlotParams};

/// What to report and where.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportSpec {
    /// Heading of the report (the suite's name).
    pub title: String,
    /// Id of the paper table the suite reproduces (`table1`), if any.
    pub paper_table: Option<String>,
    /// Settings the suite knows differ from the paper's, as phrases such as
    /// `5 epochs instead of the paper's 150`. Any difference, including a
    /// dataset or optimizer difference found here, turns the comparison into
    /// an orderings-only one.
    pub deviations: Vec<String>,
    /// Row/column layout; `None` takes the paper table's, or infers one.
    pub layout: Option<Layout>,
    /// Export formats written to the output directory.
    pub formats: Vec<Format>,
    /// Whether to draw the SVG plots into `OUT/plots/` (and into
    /// `report.html`).
    pub plots: bool,
    /// Whether the returned terminal text may use ANSI bold.
    pub color: bool,
}

impl Default for ReportSpec {
    fn default() -> Self {
        Self {
            title: "acbench results".to_owned(),
            paper_table: None,
            deviations: Vec::new(),
            layout: None,
            formats: Format::ALL.to_vec(),
            plots: true,
            color: false,
        }
    }
}

/// One grid and, when a paper table is named, its comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Section {
    /// Our results.
    pub grid: Grid,
    /// Beside the paper.
    pub comparison: Option<Comparison>,
}

/// Everything the exporters render.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Heading.
    pub title: String,
    /// What the cells hold.
    pub metric: String,
    /// One per distinct context (dataset, optimizer, ...).
    pub sections: Vec<Section>,
    /// The paper's claims judged on these runs.
    pub claims: Vec<claims::ClaimJudgement>,
}

impl Report {
    /// The claims a short report shows: those about the paper table the
    /// suite reproduces and those any of our runs bear on; and how many
    /// others there are (not run here).
    pub fn claims_in_view(&self) -> (Vec<&claims::ClaimJudgement>, usize) {
        let tables: Vec<&str> = self
            .sections
            .iter()
            .filter_map(|s| s.comparison.as_ref().map(|c| c.table_id.as_str()))
            .collect();
        let (shown, hidden): (Vec<_>, Vec<_>) = self.claims.iter().partition(|j| {
            j.claim.tables.iter().any(|t| tables.contains(&t.as_str()))
                || !matches!(
                    j.outcome,
                    claims::Outcome::NotRun | claims::Outcome::NotJudged
                )
        });
        (shown, hidden.len())
    }
}

/// What [`render_report`] produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOutput {
    /// The report as a terminal shows it.
    pub text: String,
    /// Files written (exports, then plots).
    pub files: Vec<PathBuf>,
}

const METRIC: &str = "Final test accuracy: mean ± std over seeds [95% Student's t interval of \
     the mean] (n = converged runs; — = every run diverged); bold: better than the column's \
     runner-up with 95% confidence (paired by seed).";

/// Aggregates `results` and compares them with the paper as `spec` asks.
pub fn build_report(results: &[RunResult], spec: &ReportSpec) -> Result<Report, ReportError> {
    if detection::any(results) {
        return build_detection_report(results, spec);
    }
    let tables = PaperTables::load()?;
    let table = spec
        .paper_table
        .as_deref()
        .map(|id| tables.get(id))
        .transpose()?;
    let layout = spec
        .layout
        .or(table.map(Layout::for_table))
        .unwrap_or_else(|| Layout::infer(results));
    let (rows, columns) = match table {
        Some(t) => (
            t.rows.iter().map(|r| r.name.clone()).collect(),
            t.columns.clone(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    let sections = Grid::build(results, layout, &rows, &columns)
        .into_iter()
        .map(|grid| Section {
            comparison: table.map(|t| compare::compare(&grid, t, &spec.deviations)),
            grid,
        })
        .collect();
    let claims = claims::judge_all(&claims::Claims::load(&tables)?, &tables, results);
    Ok(Report {
        title: spec.title.clone(),
        metric: METRIC.to_owned(),
        sections,
        claims,
    })
}

/// [`build_report`] for detection runs: the grid has Table 7's columns
/// (detector, dataset, metric; see [`detection`]), and the comparison
/// carries the ways the study differs from the paper's.
fn build_detection_report(results: &[RunResult], spec: &ReportSpec) -> Result<Report, ReportError> {
    let tables = PaperTables::load()?;
    let table = spec
        .paper_table
        .as_deref()
        .map(|id| tables.get(id))
        .transpose()?;
    let columns = detection::table_columns(results);
    let (rows, cols) = match table {
        Some(t) => (
            t.rows.iter().map(|r| r.name.clone()).collect(),
            t.columns.clone(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    let mut deviations = spec.deviations.clone();
    deviations.extend(detection::deviations(results));
    let sections = Grid::build(&columns, Layout::ActivationsByModel, &rows, &cols)
        .into_iter()
        .map(|grid| Section {
            comparison: table.map(|t| compare::compare(&grid, t, &deviations)),
            grid,
        })
        .collect();
    Ok(Report {
        title: spec.title.clone(),
        metric: detection::METRIC_TEXT.to_owned(),
        sections,
        claims: Vec::new(),
    })
}

/// Builds the report, writes the requested exports and plots into
/// `out_dir` (when given), and returns the terminal text.
pub fn render_report(
    results: &[RunResult],
    spec: &ReportSpec,
    out_dir: Option<&Path>,
) -> Result<ReportOutput, ReportError> {
    let report = build_report(results, spec)?;
    let mut text = TerminalExporter { color: spec.color }.render(&report)?;
    if results.is_empty() {
        text.push_str("\nNo runs to report.\n");
    }
    let mut files = Vec::new();
    if let Some(dir) = out_dir {
        // Drawn once: written into `plots/` and shown inline by report.html.
        let plots = if spec.plots {
            plot::plots(results)?
        } else {
            Vec::new()
        };
        files.extend(ExportManager::new(&spec.formats, results, &plots).write_all(&report, dir)?);
        files.extend(plot::write_plots(&plots, &dir.join("plots"))?);
    }
    Ok(ReportOutput { text, files })
}

#[cfg(test)]
pub(crate) mod fixtures {
    use crate::result::*;

    /// A three-epoch run whose last test accuracy is `acc`; AReLU runs carry
    /// two act slots with parameters, every run two layers of increments.
    pub(crate) fn run(
        model: &str,
        activation: &str,
        seed: u64,
        status: RunStatus,
        acc: f64,
    ) -> RunResult {
        let s = seed as f64 * 0.01;
        let epochs = (0..3)
            .map(|e| EpochPoint {
                epoch: e,
                train_loss: 1.0 / (e as f64 + 1.0) + s,
                test_loss: 1.1 / (e as f64 + 1.0) + s,
                test_acc: if e == 2 { acc } else { 0.5 },
                wall_s: 1.0,
            })
            .collect();
        let final_act_params = if activation == "arelu" {
            ["features.act0", "classifier.act1"]
                .iter()
                .enumerate()
                .map(|(i, path)| SlotParams {
                    path: (*path).to_owned(),
                    activation: "arelu".to_owned(),
                    formula: Some("max(a * x + c, b * x + d)".to_owned()),
                    params: vec![
                        ("a".to_owned(), vec![0.5 + i as f64 * 0.1 + s]),
                        ("b".to_owned(), vec![1.2, 1.4]),
                        ("c".to_owned(), vec![0.0]),
                        ("d".to_owned(), vec![0.1]),
                    ],
                })
                .collect()
        } else {
            Vec::new()
        };
        RunResult {
            model: model.to_owned(),
            activation: activation.to_owned(),
            optimizer: "sgd".to_owned(),
            dataset: "cifar10".to_owned(),
            seed,
            status,
            epochs,
            final_act_params,
            weight_increments: vec![
                LayerIncrements {
                    layer: "conv0".to_owned(),
                    per_epoch: vec![0.3, 0.2, 0.1 + s],
                },
                LayerIncrements {
                    layer: "fc1".to_owned(),
                    per_epoch: vec![0.5, 0.25, 0.2],
                },
            ],
            step_losses: Vec::new(),
            detector: None,
            detection: Vec::new(),
            pr_curve: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
