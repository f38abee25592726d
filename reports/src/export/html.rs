//! One self-contained page to browse (`report.html`): the grids with their
//! intervals, sortable by any column; the comparison with the paper and its
//! claims; every plot inline; the runs, linked to their plots; the settings
//! and how they differ from the paper's.
//!
//! Nothing is fetched: the style and the sorting script are inline
//! (`html/style.css`, `html/sort.js`), plots are inline SVG, and the page's
//! content security policy forbids any other source. The output holds no
//! time or path, so the same report renders to the same bytes. Every text
//! that comes from runs, suites or the paper goes through [`esc`].

use std::fmt::Write as _;

use super::{
    CLAIMS_HEADING, Exporter, PAIRS_HEADING, PairEntry, comparison_cells, differences_text,
    pair_entries, paper_count, unit_text,
};
use crate::compare::Comparison;
use crate::grid::Grid;
use crate::plot::{Plot, PlotKind};
use crate::result::{RunResult, RunStatus};
use crate::{Report, ReportError};

const STYLE: &str = include_str!("html/style.css");
const SCRIPT: &str = include_str!("html/sort.js");
/// Inline style and script only: the page cannot load anything.
const POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'";

/// The report as one HTML page, with the runs behind it and their plots.
#[derive(Debug, Clone, Copy)]
pub struct HtmlExporter<'a> {
    /// The runs the report was built from, listed at the end.
    pub runs: &'a [RunResult],
    /// The plots drawn from them (`plot::plots`), shown inline.
    pub plots: &'a [Plot],
}

/// `s` with the five characters HTML gives meaning to as entities, fit for
/// text and quoted attribute values alike. Five replacements need no crate.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A table cell: its HTML, the value it sorts by (none sorts last) and its
/// class.
struct Td {
    html: String,
    key: Option<String>,
    class: &'static str,
}

impl Td {
    /// Text that sorts as itself.
    fn text(s: &str) -> Td {
        Td {
            html: esc(s),
            key: Some(s.to_owned()),
            class: "",
        }
    }

    /// Text that sorts by `value`.
    fn num(s: &str, value: Option<f64>) -> Td {
        Td {
            html: esc(s),
            key: value.filter(|v| v.is_finite()).map(|v| v.to_string()),
            class: "",
        }
    }
}

/// One field of a run as text.
type RunField = fn(&RunResult) -> String;

/// A column: its header, and whether it sorts as numbers (`Some(true)`),
/// as text (`Some(false)`) or not at all.
type Column = (String, Option<bool>);

/// A table whose rows start with a row header; rows are `(id, cells)`.
fn table(o: &mut String, class: &str, columns: &[Column], rows: Vec<(Option<String>, Vec<Td>)>) {
    let _ = write!(o, "<table class=\"sortable {class}\">\n<thead><tr>");
    for (name, sort) in columns {
        match sort {
            Some(numeric) => {
                let kind = if *numeric { "num" } else { "text" };
                let _ = write!(
                    o,
                    "<th scope=\"col\" data-type=\"{kind}\"><button type=\"button\">{}</button></th>",
                    esc(name)
                );
            }
            None => {
                let _ = write!(o, "<th scope=\"col\">{}</th>", esc(name));
            }
        }
    }
    o.push_str("</tr></thead>\n<tbody>\n");
    for (id, cells) in rows {
        match id {
            Some(id) => {
                let _ = write!(o, "<tr id=\"{}\">", esc(&id));
            }
            None => o.push_str("<tr>"),
        }
        for (i, td) in cells.into_iter().enumerate() {
            let tag = if i == 0 { "th scope=\"row\"" } else { "td" };
            let _ = write!(o, "<{tag}");
            if !td.class.is_empty() {
                let _ = write!(o, " class=\"{}\"", td.class);
            }
            if let Some(k) = &td.key {
                let _ = write!(o, " data-sort=\"{}\"", esc(k));
            }
            let end = if i == 0 { "th" } else { "td" };
            let _ = write!(o, ">{}</{end}>", td.html);
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</tbody>\n</table>\n");
}

/// A verdict or outcome word in its colour (`not run` -> class `not-run`).
fn verdict(word: &str, text: &str) -> String {
    format!(
        "<span class=\"verdict {}\">{}</span>",
        word.replace(' ', "-"),
        esc(text)
    )
}

/// The anchor of a plot: `plot-loss-alexnet`.
fn plot_id(p: &Plot) -> String {
    let stem = p.file_name.strip_suffix(".svg").unwrap_or(&p.file_name);
    format!("plot-{stem}")
}

/// `svg` to place inline: without an XML declaration, and without the
/// `xmlns` attribute, which HTML does not need (and which is the only URL
/// a plot holds).
fn inline_svg(svg: &str) -> String {
    let svg = match svg.find("<svg") {
        Some(start) => &svg[start..],
        None => svg,
    };
    svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1)
}

impl Exporter for HtmlExporter<'_> {
    fn extension(&self) -> &'static str {
        "html"
    }

    fn render(&self, report: &Report) -> Result<String, ReportError> {
        let mut o = String::new();
        let _ = write!(
            o,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"{POLICY}\">\n\
             <title>{}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<header>\n\
             <h1>{}</h1>\n<p class=\"metric\">{}</p>\n<nav>",
            esc(&report.title),
            esc(&report.title),
            esc(&report.metric)
        );
        let mut nav = vec![("results", "Results")];
        if !report.claims.is_empty() {
            nav.push(("claims", "The paper's claims"));
        }
        if !self.plots.is_empty() {
            nav.push(("plots", "Plots"));
        }
        if !self.runs.is_empty() {
            nav.push(("runs", "Runs"));
        }
        nav.push(("settings", "Settings"));
        for (id, name) in nav {
            let _ = write!(o, "<a href=\"#{id}\">{name}</a> ");
        }
        o.push_str("</nav>\n</header>\n<main>\n<section id=\"results\">\n");
        if report.sections.is_empty() {
            o.push_str("<h2>Results</h2>\n<p>No runs to report.</p>\n");
        }
        for (i, section) in report.sections.iter().enumerate() {
            let caption = section.grid.caption();
            let _ = writeln!(
                o,
                "<h2 id=\"section-{}\">Results{}{}</h2>",
                i + 1,
                if caption.is_empty() { "" } else { ": " },
                esc(&caption)
            );
            grid(&mut o, &section.grid);
            if let Some(cmp) = &section.comparison {
                comparison(&mut o, &section.grid, cmp);
            }
        }
        o.push_str("</section>\n");
        claims(&mut o, report);
        self.plots_section(&mut o);
        self.runs_section(&mut o);
        self.settings(&mut o, report);
        let _ = write!(
            o,
            "</main>\n<script>\n{SCRIPT}</script>\n</body>\n</html>\n"
        );
        Ok(o)
    }
}

fn grid(o: &mut String, grid: &Grid) {
    let columns: Vec<Column> = std::iter::once((grid.layout.row_label().to_owned(), Some(false)))
        .chain(grid.columns.iter().map(|c| (c.clone(), Some(true))))
        .collect();
    let rows = grid
        .marked_rows()
        .map(|(name, cells)| {
            let tds = std::iter::once(Td::text(name))
                .chain(cells.into_iter().map(|(cell, best)| {
                    let mut td = Td::num(&cell.display(), cell.mean);
                    if best {
                        td.class = "best";
                    }
                    td
                }))
                .collect();
            (None, tds)
        })
        .collect();
    table(o, "grid", &columns, rows);
}

fn comparison(o: &mut String, grid: &Grid, cmp: &Comparison) {
    let _ = writeln!(
        o,
        "<h3>Beside the paper: {} ({})</h3>",
        esc(&cmp.table_title),
        esc(&cmp.table_id)
    );
    if !cmp.judges_values() {
        let _ = writeln!(
            o,
            "<p class=\"differ\">{}</p>",
            esc(&differences_text(&cmp.differences))
        );
    }
    if !cmp.cells.is_empty() {
        let (header, rows) = comparison_cells(grid, cmp, "difference");
        let columns: Vec<Column> = header
            .into_iter()
            .enumerate()
            .map(|(i, h)| (h, Some(i >= 2)))
            .collect();
        let rows = rows
            .into_iter()
            .zip(&cmp.cells)
            .map(|(texts, c)| {
                let keys = [
                    None,
                    None,
                    c.ours.mean,
                    c.paper.map(|p| p.mean),
                    c.difference,
                ];
                let tds = texts
                    .iter()
                    .zip(keys)
                    .enumerate()
                    .map(|(i, (t, k))| if i < 2 { Td::text(t) } else { Td::num(t, k) })
                    .collect();
                (None, tds)
            })
            .collect();
        table(o, "cells", &columns, rows);
    }
    let entries = pair_entries(cmp);
    if !entries.is_empty() {
        let _ = write!(o, "<p>{}</p>\n<ul class=\"pairs\">\n", esc(PAIRS_HEADING));
        for entry in entries {
            let (scope, c) = match entry {
                PairEntry::Unrun(line) => {
                    let _ = writeln!(o, "<li>{}</li>", esc(&line));
                    continue;
                }
                PairEntry::Column(scope, c) => (scope, c),
            };
            let line = format!("{scope}{}", c.summary);
            // The summary ends with `: VERDICT`; that word gets its colour.
            let split = c.verdict.and_then(|v| {
                let text = v.to_string();
                let head = line.strip_suffix(&text)?.strip_suffix(": ")?;
                Some((head.to_owned(), v.word(), text))
            });
            match split {
                Some((head, word, text)) => {
                    let _ = writeln!(o, "<li>{}: {}</li>", esc(&head), verdict(word, &text));
                }
                None => {
                    let _ = writeln!(o, "<li>{}</li>", esc(&line));
                }
            }
        }
        o.push_str("</ul>\n");
    }
}

fn claims(o: &mut String, report: &Report) {
    if report.claims.is_empty() {
        return;
    }
    let _ = write!(
        o,
        "<section id=\"claims\">\n<h2>The paper's claims</h2>\n<p>{}</p>\n",
        esc(CLAIMS_HEADING)
    );
    let columns: Vec<Column> = [
        ("claim", Some(false)),
        ("paper k/n", Some(true)),
        ("ours", Some(false)),
        ("summary", Some(false)),
    ]
    .map(|(n, s)| (n.to_owned(), s))
    .to_vec();
    let rows = report
        .claims
        .iter()
        .map(|j| {
            let label = j.outcome.label();
            let tds = vec![
                Td {
                    html: format!(
                        "<a href=\"#claim-{}\">{}</a>",
                        esc(&j.claim.id),
                        esc(&j.claim.id)
                    ),
                    key: Some(j.claim.id.clone()),
                    class: "",
                },
                Td::num(
                    &paper_count(j),
                    j.paper
                        .filter(|p| p.1 > 0)
                        .map(|(k, n)| k as f64 / n as f64),
                ),
                Td {
                    html: verdict(label, label),
                    key: Some(label.to_owned()),
                    class: "",
                },
                Td::text(&j.summary),
            ];
            (None, tds)
        })
        .collect();
    table(o, "claims", &columns, rows);
    for j in &report.claims {
        let c = &j.claim;
        let _ = write!(
            o,
            "<details class=\"claim\" id=\"claim-{}\">\n<summary><b>{}</b> {}</summary>\n\
             <blockquote>{}</blockquote>\n<p class=\"where\">{}</p>\n",
            esc(&c.id),
            esc(&c.id),
            verdict(j.outcome.label(), j.outcome.label()),
            esc(&c.text),
            esc(&c.location)
        );
        if let Some(note) = &c.note {
            let _ = writeln!(o, "<p class=\"note\">{}</p>", esc(note));
        }
        o.push_str("<ul class=\"units\">\n");
        for u in &j.units {
            let class = u.ours.map_or("not-run", |v| v.word());
            let _ = writeln!(o, "<li class=\"{class}\">{}</li>", esc(&unit_text(u)));
        }
        o.push_str("</ul>\n</details>\n");
    }
    o.push_str("</section>\n");
}

impl HtmlExporter<'_> {
    fn plots_section(&self, o: &mut String) {
        if self.plots.is_empty() {
            return;
        }
        o.push_str("<section id=\"plots\">\n<h2>Plots</h2>\n<div class=\"figures\">\n");
        for p in self.plots {
            let _ = write!(
                o,
                "<figure id=\"{}\">\n<figcaption>{}</figcaption>\n{}</figure>\n",
                esc(&plot_id(p)),
                esc(&p.file_name),
                inline_svg(&p.svg)
            );
        }
        o.push_str("</div>\n</section>\n");
    }

    fn runs_section(&self, o: &mut String) {
        if self.runs.is_empty() {
            return;
        }
        o.push_str("<section id=\"runs\">\n<h2>Runs</h2>\n");
        let columns: Vec<Column> = [
            ("model", Some(false)),
            ("activation", Some(false)),
            ("optimizer", Some(false)),
            ("dataset", Some(false)),
            ("seed", Some(true)),
            ("status", Some(false)),
            ("final test accuracy", Some(true)),
            ("epochs", Some(true)),
            ("plots", None),
        ]
        .map(|(n, s)| (n.to_owned(), s))
        .to_vec();
        let rows = self
            .runs
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let acc = r.final_accuracy();
                let links: Vec<String> = self
                    .plots
                    .iter()
                    .filter(|p| p.kind != PlotKind::ConvergenceArea && p.covers(r))
                    .map(|p| {
                        let label = match p.kind {
                            PlotKind::Loss => "loss",
                            PlotKind::Shapes => "shapes",
                            PlotKind::PrCurve => "precision-recall",
                            _ => "increments",
                        };
                        format!("<a href=\"#{}\">{label}</a>", esc(&plot_id(p)))
                    })
                    .collect();
                let tds = vec![
                    Td::text(&r.model),
                    Td::text(&r.activation),
                    Td::text(&r.optimizer),
                    Td::text(&r.dataset),
                    Td::num(&r.seed.to_string(), Some(r.seed as f64)),
                    Td {
                        class: if r.status == RunStatus::Finished {
                            ""
                        } else {
                            "lost"
                        },
                        ..Td::text(&r.status.to_string())
                    },
                    Td::num(&acc.map_or("—".to_owned(), |a| format!("{a:.4}")), acc),
                    Td::num(&r.epochs.len().to_string(), Some(r.epochs.len() as f64)),
                    Td {
                        html: links.join(" "),
                        key: None,
                        class: "",
                    },
                ];
                (Some(format!("run-{}", i + 1)), tds)
            })
            .collect();
        table(o, "runs", &columns, rows);
        o.push_str("</section>\n");
    }

    fn settings(&self, o: &mut String, report: &Report) {
        o.push_str("<section id=\"settings\">\n<h2>Settings and deviations from the paper</h2>\n");
        let distinct = |f: RunField| {
            let mut seen: Vec<String> = Vec::new();
            for r in self.runs {
                let v = f(r);
                if !seen.contains(&v) {
                    seen.push(v);
                }
            }
            seen.join(", ")
        };
        if !self.runs.is_empty() {
            let _ = write!(o, "<dl>\n<dt>runs</dt><dd>{}</dd>\n", self.runs.len());
            let fields: [(&str, RunField); 5] = [
                ("models", |r| r.model.clone()),
                ("activations", |r| r.activation.clone()),
                ("optimizers", |r| r.optimizer.clone()),
                ("datasets", |r| r.dataset.clone()),
                ("seeds", |r| r.seed.to_string()),
            ];
            for (name, f) in fields {
                let _ = writeln!(o, "<dt>{name}</dt><dd>{}</dd>", esc(&distinct(f)));
            }
            o.push_str("</dl>\n");
        }
        for (i, section) in report.sections.iter().enumerate() {
            let caption = section.grid.caption();
            let _ = writeln!(
                o,
                "<h3><a href=\"#section-{}\">{}</a></h3>",
                i + 1,
                esc(if caption.is_empty() {
                    "Results"
                } else {
                    &caption
                })
            );
            match &section.comparison {
                None => o.push_str("<p>No paper table named: nothing is compared.</p>\n"),
                Some(cmp) if cmp.judges_values() => {
                    let _ = writeln!(
                        o,
                        "<p>Beside the paper's {}: the settings match, so values are compared.</p>",
                        esc(&cmp.table_id)
                    );
                }
                Some(cmp) => {
                    let _ = write!(
                        o,
                        "<p>Beside the paper's {}, with these deviations (only orderings \
                         are judged):</p>\n<ul class=\"deviations\">\n",
                        esc(&cmp.table_id)
                    );
                    for d in &cmp.differences {
                        let _ = writeln!(o, "<li>{}</li>", esc(d));
                    }
                    o.push_str("</ul>\n");
                }
            }
        }
        o.push_str("</section>\n");
    }
}

#[cfg(test)]
mod tests;
