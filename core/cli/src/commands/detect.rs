//! `acbench detect eval --gt instances.json --dt results.json`: COCO's box
//! metrics as pycocotools prints them, and PASCAL VOC AP50 per class.

use std::process::ExitCode;

use acbench_detect::coco::{self, Stats};
use acbench_detect::voc::{self, VocResult, VocRule};
use acbench_detect::{GroundTruth, json};
use serde::Serialize;

use crate::cli::{DetectCommand, DetectEvalArgs};

/// Runs `acbench detect`.
pub fn run(cmd: DetectCommand) -> miette::Result<ExitCode> {
    match cmd {
        DetectCommand::Eval(args) => eval(&args),
    }
}

/// What `--json` writes: the twelve numbers by key, then the VOC results
/// asked for.
#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    stats: &'a Stats,
    #[serde(skip_serializing_if = "Option::is_none")]
    voc07: Option<VocJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    voc12: Option<VocJson>,
}

#[derive(Serialize)]
struct VocJson {
    /// Mean AP50 over the classes with positives; null when none has.
    mean: Option<f64>,
    classes: Vec<VocClassJson>,
}

#[derive(Serialize)]
struct VocClassJson {
    category_id: i64,
    name: String,
    positives: usize,
    detections: usize,
    ap: Option<f64>,
}

impl From<&VocResult> for VocJson {
    fn from(r: &VocResult) -> Self {
        Self {
            mean: r.mean,
            classes: r
                .classes
                .iter()
                .map(|c| VocClassJson {
                    category_id: c.category_id,
                    name: c.name.clone(),
                    positives: c.positives,
                    detections: c.detections,
                    ap: c.ap,
                })
                .collect(),
        }
    }
}

/// `acbench detect eval`.
fn eval(args: &DetectEvalArgs) -> miette::Result<ExitCode> {
    let gt = json::read_ground_truth(&args.gt).map_err(miette::Report::msg)?;
    let dt = json::read_detections(&args.dt, &gt).map_err(miette::Report::msg)?;
    let evaluation = coco::evaluate(&gt, &dt).map_err(miette::Report::msg)?;
    for line in evaluation.lines() {
        println!("{line}");
    }
    let voc07 = args
        .voc07
        .then(|| voc_report(&gt, &dt, VocRule::ElevenPoint))
        .transpose()?;
    let voc12 = args
        .voc12
        .then(|| voc_report(&gt, &dt, VocRule::AllPoint))
        .transpose()?;
    if let Some(path) = &args.json {
        let report = Report {
            stats: evaluation.stats(),
            voc07: voc07.as_ref().map(VocJson::from),
            voc12: voc12.as_ref().map(VocJson::from),
        };
        super::write_json(path, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Evaluates by `rule` and prints a table: per class its positives,
/// detections and AP50, then the mean.
fn voc_report(
    gt: &GroundTruth,
    dt: &[acbench_detect::Detection],
    rule: VocRule,
) -> miette::Result<VocResult> {
    let r = voc::evaluate(gt, dt, rule).map_err(miette::Report::msg)?;
    let title = match rule {
        VocRule::ElevenPoint => "PASCAL VOC2007 AP50 (11-point)",
        VocRule::AllPoint => "PASCAL VOC2010+ AP50 (all points)",
    };
    println!();
    println!("{title}:");
    let width = r
        .classes
        .iter()
        .map(|c| c.name.chars().count())
        .chain([5])
        .max()
        .unwrap_or(5);
    println!(
        "  {:<width$}  {:>9}  {:>10}  {:>6}",
        "class", "positives", "detections", "AP50"
    );
    for c in &r.classes {
        let ap = c.ap.map_or_else(|| "-".to_owned(), |ap| format!("{ap:.4}"));
        println!(
            "  {:<width$}  {:>9}  {:>10}  {ap:>6}",
            c.name, c.positives, c.detections
        );
    }
    let with_ap = r.classes.iter().filter(|c| c.ap.is_some()).count();
    let mean = r.mean.map_or_else(|| "-".to_owned(), |m| format!("{m:.4}"));
    println!("  mean AP50 over {with_ap} classes with positives: {mean}");
    Ok(r)
}
