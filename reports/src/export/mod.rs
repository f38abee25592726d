//! Report exports: one [`Exporter`] per format, and an [`ExportManager`]
//! that writes every requested format into an output directory.

mod csv;
mod html;
mod json;
mod latex;
mod markdown;
mod terminal;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use self::csv::CsvExporter;
pub use self::html::HtmlExporter;
pub use self::json::JsonExporter;
pub use self::latex::LatexExporter;
pub use self::markdown::MarkdownExporter;
pub use self::terminal::TerminalExporter;
use crate::plot::Plot;
use crate::result::RunResult;
use crate::{Report, ReportError};

/// Renders a whole [`Report`] as text in one format.
pub trait Exporter {
    /// File extension without the dot (`md`); output files are `report.EXT`.
    fn extension(&self) -> &'static str;

    /// The report in this format.
    fn render(&self, report: &Report) -> Result<String, ReportError>;
}

/// A report format that can be written to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The terminal table without colours (`report.txt`).
    Text,
    /// GitHub-flavoured Markdown (`report.md`).
    Markdown,
    /// One line per cell (`report.csv`).
    Csv,
    /// The whole report as data (`report.json`).
    Json,
    /// booktabs tables (`report.tex`).
    Latex,
    /// One self-contained page to browse: sortable tables, the plots
    /// inline, the runs (`report.html`).
    Html,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 6] = [
        Format::Text,
        Format::Markdown,
        Format::Csv,
        Format::Json,
        Format::Latex,
        Format::Html,
    ];

    /// The exporter for this format. Besides the [`Report`], a page to
    /// browse shows the `runs` behind it and the `plots` drawn from them;
    /// the other formats render the report alone.
    pub fn exporter<'a>(self, runs: &'a [RunResult], plots: &'a [Plot]) -> Box<dyn Exporter + 'a> {
        match self {
            Format::Text => Box::new(TerminalExporter { color: false }),
            Format::Markdown => Box::new(MarkdownExporter),
            Format::Csv => Box::new(CsvExporter),
            Format::Json => Box::new(JsonExporter),
            Format::Latex => Box::new(LatexExporter),
            Format::Html => Box::new(HtmlExporter { runs, plots }),
        }
    }
}

/// Writes a report in several formats.
pub struct ExportManager<'a> {
    exporters: Vec<Box<dyn Exporter + 'a>>,
}

impl<'a> ExportManager<'a> {
    /// A manager for `formats` (duplicates are written once) of a report of
    /// `runs`, with `plots` drawn from them (see [`Format::exporter`]).
    pub fn new(formats: &[Format], runs: &'a [RunResult], plots: &'a [Plot]) -> Self {
        let mut unique: Vec<Format> = Vec::new();
        for f in formats {
            if !unique.contains(f) {
                unique.push(*f);
            }
        }
        Self {
            exporters: unique
                .into_iter()
                .map(|f| f.exporter(runs, plots))
                .collect(),
        }
    }

    /// Renders every format and writes `dir/report.EXT` for each, creating
    /// `dir` if needed; returns the written paths.
    pub fn write_all(&self, report: &Report, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
        std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let mut written = Vec::with_capacity(self.exporters.len());
        for e in &self.exporters {
            let text = e.render(report)?;
            let path = dir.join(format!("report.{}", e.extension()));
            std::fs::write(&path, text).map_err(|source| ReportError::Io {
                path: path.clone(),
                source,
            })?;
            written.push(path);
        }
        Ok(written)
    }
}

/// `0.8141 ± 1.52e-3`, or `0.8141` for tables without spread, `—` where the
/// paper printed a dash. The spread keeps the paper's scientific notation:
/// four decimals would print most of them as 0.0000.
pub(crate) fn paper_text(cell: Option<crate::paper::PaperCell>) -> String {
    match cell {
        None => "—".to_owned(),
        Some(c) => match c.spread {
            Some(s) => format!("{:.4} ± {s:.2e}", c.mean),
            None => format!("{:.4}", c.mean),
        },
    }
}

/// The cells beside the paper as text: the header (the difference column
/// called `delta`, present only where the comparison judges values) and one
/// row per cell (row, column, ours, paper[, difference]).
pub(crate) fn comparison_cells(
    grid: &crate::grid::Grid,
    cmp: &crate::compare::Comparison,
    delta: &str,
) -> (Vec<String>, Vec<Vec<String>>) {
    let mut header = vec![
        grid.layout.row_label().to_owned(),
        grid.layout.column_label().to_owned(),
        "ours".to_owned(),
        "paper".to_owned(),
    ];
    if cmp.judges_values() {
        header.push(delta.to_owned());
    }
    let rows = cmp
        .cells
        .iter()
        .map(|c| {
            let mut r = vec![
                c.row.clone(),
                c.column.clone(),
                c.ours.display(),
                paper_text(c.paper),
            ];
            if cmp.judges_values() {
                r.push(c.difference.map(|d| format!("{d:+.4}")).unwrap_or_default());
            }
            r
        })
        .collect();
    (header, rows)
}

/// The line every format opens a comparison with when settings differ.
pub(crate) fn differences_text(differences: &[String]) -> String {
    format!(
        "Settings differ from the paper's: {}. Only the orderings are judged, not the absolute numbers.",
        differences.join("; ")
    )
}

/// What the pairs' lines hold, said once before them.
pub(crate) const PAIRS_HEADING: &str = "The paper's comparisons on our runs: first minus second, \
     its 95% interval (paired by seed where both ran it), P = the probability that a run of the \
     first beats a run of the second; the verdict is on \"the first beats the second\".";

/// One entry of the pairs' list: a pair run in none of its columns for one
/// reason, said once, or a pair in one column with the scope its line opens
/// with (`googlenet: ` for rows `model/activation`, else empty).
pub(crate) enum PairEntry<'a> {
    /// `googlenet: AReLU vs PReLU: not run: PReLU (all 3 columns)`.
    Unrun(String),
    /// The scope and the column.
    Column(String, &'a crate::compare::PairColumn),
}

/// Every pair's entries, in order.
pub(crate) fn pair_entries(cmp: &crate::compare::Comparison) -> Vec<PairEntry<'_>> {
    let mut out = Vec::new();
    for p in &cmp.pairs {
        let scope = p.scope().map(|s| format!("{s}: ")).unwrap_or_default();
        match p.unrun_everywhere() {
            Some(note) => out.push(PairEntry::Unrun(format!(
                "{scope}{}: {note} (all {} columns)",
                p.label,
                p.columns.len()
            ))),
            None => out.extend(
                p.columns
                    .iter()
                    .map(|c| PairEntry::Column(scope.clone(), c)),
            ),
        }
    }
    out
}

/// [`pair_entries`] as lines of text.
pub(crate) fn pair_lines(cmp: &crate::compare::Comparison) -> Vec<String> {
    pair_entries(cmp)
        .into_iter()
        .map(|e| match e {
            PairEntry::Unrun(line) => line,
            PairEntry::Column(scope, c) => format!("{scope}{}", c.summary),
        })
        .collect()
}

/// A claim's unit: `table1 alexnet: asigmoid vs sigmoid: +0.0500 [+0.0310,
/// +0.0690] (n=3), P = 1.00: supports; paper yes`.
pub(crate) fn unit_text(u: &crate::claims::Unit) -> String {
    let mut s = u.label.clone();
    if let Some(d) = &u.difference {
        s.push_str(&format!(": {:+.4}", d.mean));
        if let Some(ci) = d.ci {
            s.push_str(&format!(" [{:+.4}, {:+.4}]", ci.lo, ci.hi));
        }
        s.push_str(&format!(" (n={}), P = {:.2}", d.n, d.prob_improvement));
    }
    if let Some(n) = &u.note {
        s.push_str(&format!("; {n}"));
    }
    if let Some(v) = u.ours {
        s.push_str(&format!(": {v}"));
    }
    match u.paper {
        Some(true) => s.push_str("; paper yes"),
        Some(false) => s.push_str("; paper no"),
        None => {}
    }
    s
}

/// What the claims' lines hold, said once before them.
pub(crate) const CLAIMS_HEADING: &str = "The paper's claims (reports/paper/claims.yaml), judged on \
     our runs of the same settings, unit by unit at the paper's granularity (a unit we did not \
     run is \"not run\", never a disagreement); \"paper k/n\" counts the paper's own numbers.";

/// `[supports] adaptive-beats-base: 3 of 24 units support, 21 not run
/// (most must support); paper 19/24`.
pub(crate) fn claim_line(j: &crate::claims::ClaimJudgement) -> String {
    format!(
        "[{}] {}: {}; paper {}",
        j.outcome.label(),
        j.claim.id,
        j.summary,
        paper_count(j)
    )
}

/// `19/24`, or `figures` for a claim the paper makes from figures.
pub(crate) fn paper_count(j: &crate::claims::ClaimJudgement) -> String {
    j.paper
        .map_or("figures".to_owned(), |(k, n)| format!("{k}/{n}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::fixtures::run;
    use crate::result::RunStatus;
    use crate::{ReportSpec, build_report};

    /// Two models, two activations, one partial divergence, one dash.
    pub(crate) fn small_runs() -> Vec<crate::RunResult> {
        vec![
            run("alexnet", "relu", 0, RunStatus::Finished, 0.80),
            run("alexnet", "relu", 1, RunStatus::Finished, 0.82),
            run("alexnet", "relu", 2, RunStatus::Finished, 0.81),
            run("alexnet", "arelu", 0, RunStatus::Finished, 0.85),
            run("alexnet", "arelu", 1, RunStatus::Finished, 0.86),
            run("alexnet", "arelu", 2, RunStatus::Finished, 0.87),
            run("alexnet", "arelu", 3, RunStatus::Diverged, f64::NAN),
            run("vgg", "relu", 0, RunStatus::Finished, 0.90),
            run("vgg", "arelu", 0, RunStatus::Diverged, f64::NAN),
        ]
    }

    /// The report of [`small_runs`].
    pub(crate) fn small_report(paper_table: Option<&str>, deviations: &[&str]) -> Report {
        let runs = small_runs();
        let spec = ReportSpec {
            title: "Fixture".into(),
            paper_table: paper_table.map(str::to_owned),
            deviations: deviations.iter().map(|s| (*s).to_owned()).collect(),
            ..ReportSpec::default()
        };
        match build_report(&runs, &spec) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn manager_writes_each_format_once() {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let m = ExportManager::new(&[Format::Json, Format::Csv, Format::Json], &[], &[]);
        let written = match m.write_all(&small_report(None, &[]), &dir.path().join("out")) {
            Ok(w) => w,
            Err(e) => panic!("{e}"),
        };
        let names: Vec<String> = written
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        assert_eq!(names, ["report.json", "report.csv"]);
        assert!(written.iter().all(|p| p.is_file()));
    }
}
