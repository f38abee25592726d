//! SVG plots of the paper's figures, drawn with plotters' SVG backend.
//!
//! Only the SVG backend is compiled: text is written as SVG `<text>` for the
//! viewer to render, and plotters lays it out with its built-in size
//! estimate, so no system font library is needed.
//!
//! Files (the suffix `-OPTIMIZER` / `-DATASET` is added only when the runs
//! span several optimizers / datasets):
//! - `loss-MODEL.svg`: training loss per epoch, one curve per activation,
//!   mean over seeds with a ±std band;
//! - `convergence-area.svg`: area under the training-loss curve per model
//!   and activation (the paper's Fig. 6);
//! - `shapes-MODEL-ACTIVATION.svg`: the learned activation of every act
//!   slot, from its final parameters (Fig. 3);
//! - `increments-MODEL-ACTIVATION.svg`: weight-increment norms per layer and
//!   epoch (Fig. 4);
//! - `pr-MODEL.svg`: for a detector, the precision-recall curve at IoU 0.5
//!   after the last epoch (COCO's 101 recall points, the mean over classes),
//!   one curve per activation, mean ± std over seeds.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::ReportError;
use crate::result::{RunResult, RunStatus};

/// One rendered plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Plot {
    /// File name (`loss-alexnet.svg`).
    pub file_name: String,
    /// What it shows.
    pub kind: PlotKind,
    /// The runs it is drawn from.
    pub scope: PlotScope,
    /// The SVG document.
    pub svg: String,
}

/// What a plot shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlotKind {
    /// Training loss per epoch of one model, a curve per activation.
    Loss,
    /// Convergence area per model and activation.
    ConvergenceArea,
    /// The learned activation of every act slot of one model and activation.
    Shapes,
    /// Weight-increment norms per layer of one model and activation.
    Increments,
    /// Precision-recall curves of one detection model, a curve per
    /// activation.
    PrCurve,
}

/// The runs a plot is drawn from: one dataset and optimizer, and one model
/// (and activation) where the plot is about one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotScope {
    /// Dataset of its runs.
    pub dataset: String,
    /// Optimizer of its runs.
    pub optimizer: String,
    /// Model of its runs, for per-model plots.
    pub model: Option<String>,
    /// Activation of its runs, for per-activation plots.
    pub activation: Option<String>,
}

impl PlotScope {
    /// The scope of `run`'s plots of `kind`.
    fn of(kind: PlotKind, run: &RunResult) -> Self {
        let (model, activation) = match kind {
            PlotKind::ConvergenceArea => (None, None),
            PlotKind::Loss | PlotKind::PrCurve => (Some(run.model.clone()), None),
            PlotKind::Shapes | PlotKind::Increments => {
                (Some(run.model.clone()), Some(run.activation.clone()))
            }
        };
        Self {
            dataset: run.dataset.clone(),
            optimizer: run.optimizer.clone(),
            model,
            activation,
        }
    }
}

const SIZE: (u32, u32) = (900, 560);
const LABEL_FONT: (&str, u32) = ("sans-serif", 15);
/// Samples of x in [-5, 5] for activation shapes.
const SHAPE_SAMPLES: usize = 201;

/// Draws every plot the runs support, in a fixed order: loss curves,
/// convergence areas, activation shapes, weight increments.
pub fn plots(results: &[RunResult]) -> Result<Vec<Plot>, ReportError> {
    let naming = Naming::new(results);
    let mut out = Vec::new();
    let mut contexts: Vec<(&str, &str)> = Vec::new();
    let mut groups: Vec<(&str, &str, &str)> = Vec::new();
    for r in results {
        let c = (r.dataset.as_str(), r.optimizer.as_str());
        if !contexts.contains(&c) {
            contexts.push(c);
        }
        let g = (c.0, c.1, r.model.as_str());
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    for &(dataset, optimizer, model) in &groups {
        let runs: Vec<&RunResult> = results
            .iter()
            .filter(|r| r.dataset == dataset && r.optimizer == optimizer && r.model == model)
            .collect();
        if let Some(p) = loss_plot(&naming, &runs)? {
            out.push(p);
        }
        if let Some(p) = pr_plot(&naming, &runs)? {
            out.push(p);
        }
    }
    for &(dataset, optimizer) in &contexts {
        let runs: Vec<&RunResult> = results
            .iter()
            .filter(|r| r.dataset == dataset && r.optimizer == optimizer)
            .collect();
        if let Some(p) = area_plot(&naming, &runs)? {
            out.push(p);
        }
    }
    // Runs of one (dataset, optimizer, model, activation), in result order.
    let mut per_activation: Vec<Vec<&RunResult>> = Vec::new();
    for r in results {
        let same = |x: &&RunResult| {
            x.dataset == r.dataset
                && x.optimizer == r.optimizer
                && x.model == r.model
                && x.activation == r.activation
        };
        if !per_activation.iter().any(|g| g.first().is_some_and(same)) {
            per_activation.push(results.iter().filter(|x| same(x)).collect());
        }
    }
    for runs in &per_activation {
        if let Some(p) = shape_plot(&naming, runs)? {
            out.push(p);
        }
    }
    for runs in &per_activation {
        if let Some(p) = increments_plot(&naming, runs)? {
            out.push(p);
        }
    }
    Ok(out)
}

/// Writes `plots` into `dir` (created if needed); returns the paths.
pub fn write_plots(plots: &[Plot], dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    if plots.is_empty() {
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        path: dir.to_owned(),
        source,
    })?;
    plots
        .iter()
        .map(|p| {
            let path = dir.join(&p.file_name);
            std::fs::write(&path, &p.svg)
                .map(|()| path.clone())
                .map_err(|source| ReportError::Io { path, source })
        })
        .collect()
}

fn distinct<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// File-name parts: the suffix names only what varies across the results.
struct Naming {
    by_dataset: bool,
    by_optimizer: bool,
}

impl Naming {
    fn new(results: &[RunResult]) -> Self {
        Self {
            by_dataset: distinct(results.iter().map(|r| r.dataset.as_str())).len() > 1,
            by_optimizer: distinct(results.iter().map(|r| r.optimizer.as_str())).len() > 1,
        }
    }

    fn file(&self, stem: &[&str], run: &RunResult) -> String {
        let mut parts: Vec<&str> = stem.to_vec();
        if self.by_optimizer {
            parts.push(&run.optimizer);
        }
        if self.by_dataset {
            parts.push(&run.dataset);
        }
        let name: String = parts
            .join("-")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{name}.svg")
    }
}

/// Mean and sample standard deviation of the finite `values`.
fn mean_std(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    crate::stats::Estimate::of(&v).map(|e| (e.mean, e.std.unwrap_or(0.0)))
}

/// One line of a line chart, optionally with a band `(x, low, high)`.
struct Curve {
    label: String,
    points: Vec<(f64, f64)>,
    band: Vec<(f64, f64, f64)>,
}

/// Per-epoch mean (and band) of `value` over runs, 1-based epochs.
fn mean_curve(label: &str, series: &[Vec<f64>]) -> Option<Curve> {
    let indexed: Vec<Vec<(usize, f64)>> = series
        .iter()
        .map(|s| s.iter().enumerate().map(|(e, &v)| (e + 1, v)).collect())
        .collect();
    mean_curve_at(label, &indexed)
}

/// Mean (and band) of `(x, value)` series over runs at each `x` any of
/// them has (the per-step loss curves of seeds share their steps).
fn mean_curve_at(label: &str, series: &[Vec<(usize, f64)>]) -> Option<Curve> {
    let mut xs: Vec<usize> = series.iter().flatten().map(|p| p.0).collect();
    xs.sort_unstable();
    xs.dedup();
    let mut points = Vec::new();
    let mut band = Vec::new();
    for x in xs {
        let at = series
            .iter()
            .filter_map(|s| s.iter().find(|p| p.0 == x).map(|p| p.1));
        if let Some((m, s)) = mean_std(at) {
            let x = x as f64;
            points.push((x, m));
            band.push((x, m - s, m + s));
        }
    }
    if points.is_empty() {
        return None;
    }
    Some(Curve {
        label: label.to_owned(),
        points,
        band,
    })
}

impl Plot {
    /// Whether `run` is drawn in this plot (a shape plot draws only
    /// finished runs).
    pub fn covers(&self, run: &RunResult) -> bool {
        let s = &self.scope;
        s.dataset == run.dataset
            && s.optimizer == run.optimizer
            && s.model.as_ref().is_none_or(|m| *m == run.model)
            && s.activation.as_ref().is_none_or(|a| *a == run.activation)
            && (self.kind != PlotKind::Shapes || run.status == RunStatus::Finished)
    }

    /// The plot `file_name` of `kind` about the runs like `run`, drawn as
    /// `svg`, or the error that names the file.
    fn drawn(
        file_name: String,
        kind: PlotKind,
        run: &RunResult,
        svg: Result<String, String>,
    ) -> Result<Option<Plot>, ReportError> {
        match svg {
            Ok(svg) => Ok(Some(Plot {
                file_name,
                kind,
                scope: PlotScope::of(kind, run),
                svg,
            })),
            Err(message) => Err(ReportError::Plot {
                file: file_name,
                message,
            }),
        }
    }
}

fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if hi - lo > 1e-12 {
        let pad = (hi - lo) * 0.05;
        (lo - pad, hi + pad)
    } else {
        (lo - 0.5, hi + 0.5)
    }
}

/// The series' legend, at the upper right of `chart`.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(LABEL_FONT)
        .draw()
        .map_err(|e| e.to_string())
}

/// Whether the x axis counts epochs or steps (integer labels only).
#[derive(Clone, Copy, PartialEq)]
enum XAxis {
    Epochs,
    Real,
}

fn line_chart(
    title: &str,
    x_axis: XAxis,
    x_desc: &str,
    y_desc: &str,
    curves: &[Curve],
) -> Result<String, String> {
    let xs = curves.iter().flat_map(|c| c.points.iter().map(|p| p.0));
    let ys = curves.iter().flat_map(|c| {
        c.points
            .iter()
            .map(|p| p.1)
            .chain(c.band.iter().flat_map(|b| [b.1, b.2]))
    });
    let fold = |it: &mut dyn Iterator<Item = f64>| {
        it.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        })
    };
    let (x0, x1) = fold(&mut xs.into_iter());
    let (x0, x1) = if x1 > x0 {
        (x0, x1)
    } else {
        (x0 - 0.5, x1 + 0.5)
    };
    let (y0, y1) = fold(&mut ys.into_iter());
    let (y0, y1) = padded(y0, y1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(65)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| e.to_string())?;
        let epoch_label = |x: &f64| {
            if (x - x.round()).abs() < 1e-9 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        };
        // Tick positions are sums of floating steps (0.30000000000000004):
        // print them to a few digits, without trailing zeros.
        let real_label = |x: &f64| {
            let t = format!("{x:.3}");
            let t = t.trim_end_matches('0').trim_end_matches('.');
            if t == "-0" {
                "0".to_owned()
            } else {
                t.to_owned()
            }
        };
        let x_fmt: &dyn Fn(&f64) -> String = match x_axis {
            XAxis::Epochs => &epoch_label,
            XAxis::Real => &real_label,
        };
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(x_fmt)
            .label_style(LABEL_FONT)
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, c) in curves.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            if c.band.iter().any(|b| b.2 > b.1) {
                let outline: Vec<(f64, f64)> = c
                    .band
                    .iter()
                    .map(|b| (b.0, b.2))
                    .chain(c.band.iter().rev().map(|b| (b.0, b.1)))
                    .collect();
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        outline,
                        color.mix(0.2).filled(),
                    )))
                    .map_err(|e| e.to_string())?;
            }
            chart
                .draw_series(LineSeries::new(c.points.clone(), color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(c.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        draw_legend(&mut chart)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

fn loss_plot(naming: &Naming, runs: &[&RunResult]) -> Result<Option<Plot>, ReportError> {
    let Some(first) = runs.first() else {
        return Ok(None);
    };
    let file = naming.file(&["loss", &first.model], first);
    // Per step (the paper's Fig. 6) where every run recorded its curve.
    let per_step = runs.iter().all(|r| !r.step_losses.is_empty());
    let curves: Vec<Curve> = distinct(runs.iter().map(|r| r.activation.as_str()))
        .into_iter()
        .filter_map(|act| {
            let of_act = runs.iter().filter(|r| r.activation == act);
            if per_step {
                let series: Vec<Vec<(usize, f64)>> =
                    of_act.map(|r| r.step_losses.clone()).collect();
                mean_curve_at(act, &series)
            } else {
                let series: Vec<Vec<f64>> = of_act
                    .map(|r| r.epochs.iter().map(|e| e.train_loss).collect())
                    .collect();
                mean_curve(act, &series)
            }
        })
        .collect();
    if curves.is_empty() {
        return Ok(None);
    }
    let (per, x_desc) = if per_step {
        ("iteration", "iteration")
    } else {
        ("epoch", "epoch")
    };
    let title = format!(
        "Training loss per {per}, {} ({}, {}), mean ± std over seeds",
        first.model, first.dataset, first.optimizer
    );
    Plot::drawn(
        file,
        PlotKind::Loss,
        first,
        line_chart(&title, XAxis::Epochs, x_desc, "training loss", &curves),
    )
}

/// Recall at COCO's point `i` of `n` (numpy's `linspace(0, 1, n)`).
fn recall_at(i: usize, n: usize) -> f64 {
    if n < 2 {
        0.0
    } else {
        i as f64 / (n - 1) as f64
    }
}

fn pr_plot(naming: &Naming, runs: &[&RunResult]) -> Result<Option<Plot>, ReportError> {
    let runs: Vec<&RunResult> = runs
        .iter()
        .copied()
        .filter(|r| r.status == RunStatus::Finished && !r.pr_curve.is_empty())
        .collect();
    let Some(first) = runs.first() else {
        return Ok(None);
    };
    let file = naming.file(&["pr", &first.model], first);
    let curves: Vec<Curve> = distinct(runs.iter().map(|r| r.activation.as_str()))
        .into_iter()
        .filter_map(|act| {
            let of_act: Vec<&RunResult> = runs
                .iter()
                .copied()
                .filter(|r| r.activation == act)
                .collect();
            let n = of_act.iter().map(|r| r.pr_curve.len()).max()?;
            let mut points = Vec::with_capacity(n);
            let mut band = Vec::with_capacity(n);
            for i in 0..n {
                let at = of_act
                    .iter()
                    .filter_map(|r| r.pr_curve.get(i).copied().filter(|p| *p >= 0.0));
                if let Some((m, s)) = mean_std(at) {
                    let x = recall_at(i, n);
                    points.push((x, m));
                    band.push((x, (m - s).max(0.0), (m + s).min(1.0)));
                }
            }
            (!points.is_empty()).then(|| Curve {
                label: act.to_owned(),
                points,
                band,
            })
        })
        .collect();
    if curves.is_empty() {
        return Ok(None);
    }
    let title = format!(
        "Precision-recall at IoU 0.5, {} ({}, {}), mean ± std over seeds",
        first.model, first.dataset, first.optimizer
    );
    Plot::drawn(
        file,
        PlotKind::PrCurve,
        first,
        line_chart(&title, XAxis::Real, "recall", "precision", &curves),
    )
}

fn area_plot(naming: &Naming, runs: &[&RunResult]) -> Result<Option<Plot>, ReportError> {
    let Some(first) = runs.first() else {
        return Ok(None);
    };
    let file = naming.file(&["convergence-area"], first);
    let models = distinct(runs.iter().map(|r| r.model.as_str()));
    let acts = distinct(runs.iter().map(|r| r.activation.as_str()));
    let area = |model: &str, act: &str| {
        mean_std(
            runs.iter()
                .filter(|r| r.model == model && r.activation == act)
                .filter_map(|r| r.convergence_area()),
        )
        .map(|(m, _)| m)
    };
    let bars: Vec<(String, Vec<Option<f64>>)> = acts
        .iter()
        .map(|a| ((*a).to_owned(), models.iter().map(|m| area(m, a)).collect()))
        .collect();
    let top = bars
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .fold(0.0f64, |a, &b| a.max(b));
    if top <= 0.0 {
        return Ok(None);
    }
    let title = format!(
        "Convergence area (area under the training loss), {}, {}",
        first.dataset, first.optimizer
    );
    Plot::drawn(
        file,
        PlotKind::ConvergenceArea,
        first,
        bar_chart(&title, &models, &bars, top),
    )
}

fn bar_chart(
    title: &str,
    groups: &[&str],
    bars: &[(String, Vec<Option<f64>>)],
    top: f64,
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root: DrawingArea<SVGBackend, Shift> =
            SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let n = groups.len() as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(65)
            .build_cartesian_2d(0.0..n, 0.0..top * 1.1)
            .map_err(|e| e.to_string())?;
        // Category names are drawn below each group by hand: plotters places
        // numeric axis labels at round values, not at group centres.
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("area under the loss curve")
            .label_style(LABEL_FONT)
            .draw()
            .map_err(|e| e.to_string())?;
        let width = 0.8 / bars.len().max(1) as f64;
        for (i, (label, values)) in bars.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let rects = values.iter().enumerate().filter_map(|(g, v)| {
                let x = g as f64 + 0.1 + i as f64 * width;
                v.map(|v| Rectangle::new([(x, 0.0), (x + width * 0.9, v)], color.filled()))
            });
            chart
                .draw_series(rects)
                .map_err(|e| e.to_string())?
                .label(label.clone())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        draw_legend(&mut chart)?;
        let style = TextStyle::from(LABEL_FONT.into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        for (g, name) in groups.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(g as f64 + 0.5, 0.0));
            root.draw(&Text::new((*name).to_owned(), (x, y + 8), style.clone()))
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

fn shape_plot(naming: &Naming, runs: &[&RunResult]) -> Result<Option<Plot>, ReportError> {
    let finished: Vec<&RunResult> = runs
        .iter()
        .copied()
        .filter(|r| r.status == RunStatus::Finished)
        .collect();
    let Some(first) = finished.first() else {
        return Ok(None);
    };
    let file = naming.file(&["shapes", &first.model, &first.activation], first);
    let mut curves = Vec::new();
    for slot in &first.final_act_params {
        let (Some(formula), false) = (&slot.formula, slot.params.is_empty()) else {
            continue;
        };
        let names: Vec<&str> = slot.params.iter().map(|(n, _)| n.as_str()).collect();
        let expr = acbench_dsl::formula::parse(formula, &names).map_err(|source| {
            ReportError::Formula {
                activation: slot.activation.clone(),
                formula: formula.clone(),
                source,
            }
        })?;
        // Per-channel parameters are drawn at their channel mean; every
        // parameter is then averaged over the seeds that have this slot.
        let params: Vec<f64> = names
            .iter()
            .map(|name| {
                mean_std(finished.iter().filter_map(|r| {
                    let s = r.final_act_params.iter().find(|s| s.path == slot.path)?;
                    let (_, v) = s.params.iter().find(|(n, _)| n == name)?;
                    mean_std(v.iter().copied()).map(|(m, _)| m)
                }))
                .map_or(f64::NAN, |(m, _)| m)
            })
            .collect();
        let points: Vec<(f64, f64)> = (0..SHAPE_SAMPLES)
            .map(|i| {
                let x = -5.0 + 10.0 * i as f64 / (SHAPE_SAMPLES - 1) as f64;
                (x, expr.eval(x, &params))
            })
            .filter(|p| p.1.is_finite())
            .collect();
        if !points.is_empty() {
            curves.push(Curve {
                label: slot.path.clone(),
                points,
                band: Vec::new(),
            });
        }
    }
    if curves.is_empty() {
        return Ok(None);
    }
    let title = format!(
        "Learned {} per layer, {} ({}, {})",
        crate::compare::display_name(&first.activation),
        first.model,
        first.dataset,
        first.optimizer
    );
    Plot::drawn(
        file,
        PlotKind::Shapes,
        first,
        line_chart(&title, XAxis::Real, "x", "f(x)", &curves),
    )
}

fn increments_plot(naming: &Naming, runs: &[&RunResult]) -> Result<Option<Plot>, ReportError> {
    let Some(first) = runs.first() else {
        return Ok(None);
    };
    let file = naming.file(&["increments", &first.model, &first.activation], first);
    let layers = distinct(
        runs.iter()
            .flat_map(|r| r.weight_increments.iter().map(|l| l.layer.as_str())),
    );
    let curves: Vec<Curve> = layers
        .into_iter()
        .filter_map(|layer| {
            let series: Vec<Vec<f64>> = runs
                .iter()
                .filter_map(|r| r.weight_increments.iter().find(|l| l.layer == layer))
                .map(|l| l.per_epoch.clone())
                .collect();
            let mut c = mean_curve(layer, &series)?;
            c.band.clear();
            Some(c)
        })
        .collect();
    if curves.is_empty() {
        return Ok(None);
    }
    let title = format!(
        "Weight increments per layer, {} with {} ({}, {})",
        first.model,
        crate::compare::display_name(&first.activation),
        first.dataset,
        first.optimizer
    );
    Plot::drawn(
        file,
        PlotKind::Increments,
        first,
        line_chart(
            &title,
            XAxis::Epochs,
            "epoch",
            "‖ΔW‖ over the epoch",
            &curves,
        ),
    )
}

#[cfg(test)]
mod tests;
