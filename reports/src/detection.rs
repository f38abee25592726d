//! Detection runs in the paper's Table 7 layout.
//!
//! Table 7 has one column per detector, dataset and metric
//! (`fcos/coco/ap50`). A detection run carries its detector and its COCO
//! numbers ([`RunResult::detection`]); [`table_columns`] turns each run
//! into one run per metric whose score is that metric and whose model is
//! the table's column, so that grids, intervals over seeds and the paired
//! comparisons of [`crate::compare`] work on them unchanged.
//!
//! Which of our numbers stands for which of the paper's:
//! - `ap50` and `ap75`: COCO's AP at IoU 0.5 and 0.75 (pycocotools');
//! - `map`: COCO's AP over IoU 0.5:0.95. For the COCO columns that is the
//!   paper's "mAP"; for the VOC columns the paper does not say how its mAP
//!   was computed (its values lie between its AP50 and AP75, which fits
//!   neither VOC's AP50 nor COCO's AP), so only orderings are judged there,
//!   as everywhere an analogue dataset is used.

use crate::result::{EpochPoint, RunResult};

/// Our detectors' names as the paper's columns name them, with the
/// dataset the paper trained each on.
const PAPER_DETECTORS: [(&str, &str, &str); 3] = [
    ("fcos", "fcos", "coco"),
    ("yolo", "yolov2", "voc"),
    ("faster-rcnn", "faster-rcnn", "voc"),
];

/// Table 7's metrics and the COCO numbers that stand for them.
pub const METRICS: [(&str, &str); 3] = [
    ("ap50", "coco.ap50"),
    ("ap75", "coco.ap75"),
    ("map", "coco.ap"),
];

/// What the cells of a detection report hold.
pub const METRIC_TEXT: &str = "Final COCO AP50 / AP75 / AP (IoU 0.5:0.95) on the test split, \
     pycocotools' definitions: mean ± std over seeds [95% Student's t interval of the mean] \
     (n = converged runs; — = every run diverged); bold: better than the column's runner-up \
     with 95% confidence (paired by seed).";

/// Whether any run is a detector's.
pub fn any(results: &[RunResult]) -> bool {
    results.iter().any(|r| r.detector.is_some())
}

/// The paper's name and dataset for our detector `name` (an unknown
/// detector keeps its name, with our dataset).
fn paper_detector<'a>(name: &'a str, dataset: &'a str) -> (&'a str, &'a str) {
    PAPER_DETECTORS
        .iter()
        .find(|(ours, _, _)| *ours == name)
        .map_or((name, dataset), |&(_, paper, data)| (paper, data))
}

/// Each detection run as one run per Table 7 metric (module docs);
/// classification runs are left out.
pub fn table_columns(results: &[RunResult]) -> Vec<RunResult> {
    let mut out = Vec::new();
    for r in results {
        let Some(detector) = &r.detector else {
            continue;
        };
        let (paper, data) = paper_detector(detector, &r.dataset);
        for (metric, key) in METRICS {
            let mut run = r.clone();
            run.model = format!("{paper}/{data}/{metric}");
            let value = r.detection_metric(key).unwrap_or(f64::NAN);
            if let Some(last) = run.epochs.last_mut() {
                *last = EpochPoint {
                    test_acc: value,
                    ..*last
                };
            }
            out.push(run);
        }
    }
    out
}

/// The ways a detection study differs from Table 7's, for the report.
pub fn deviations(results: &[RunResult]) -> Vec<String> {
    let mut datasets: Vec<&str> = results
        .iter()
        .filter(|r| r.detector.is_some())
        .map(|r| r.dataset.as_str())
        .collect();
    datasets.sort_unstable();
    datasets.dedup();
    let mut out: Vec<String> = datasets
        .iter()
        .map(|d| {
            format!(
                "detectors trained on {d} instead of the paper's PASCAL VOC and COCO: an \
                 analogue, so only orderings are judged"
            )
        })
        .collect();
    out.push(
        "the paper does not say how its VOC mAP was computed; `map` here is COCO's AP over \
         IoU 0.5:0.95"
            .to_owned(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::run;
    use crate::result::RunStatus;

    fn detection_run(activation: &str, seed: u64, ap50: f64) -> RunResult {
        let mut r = run("fcos-tiny", activation, seed, RunStatus::Finished, ap50);
        r.detector = Some("fcos".into());
        r.dataset = "fashion-mnist-boxes".into();
        r.detection = vec![
            ("coco.ap".into(), ap50 / 2.0),
            ("coco.ap50".into(), ap50),
            ("coco.ap75".into(), ap50 / 3.0),
        ];
        r
    }

    #[test]
    fn each_detection_run_becomes_one_run_per_table_column() {
        let runs = vec![
            detection_run("relu", 0, 0.6),
            run("convnet", "relu", 0, RunStatus::Finished, 0.9),
        ];
        let cols = table_columns(&runs);
        let models: Vec<&str> = cols.iter().map(|r| r.model.as_str()).collect();
        assert_eq!(
            models,
            ["fcos/coco/ap50", "fcos/coco/ap75", "fcos/coco/map"]
        );
        let scores: Vec<Option<f64>> = cols.iter().map(RunResult::final_accuracy).collect();
        let want = [0.6, 0.6 / 3.0, 0.3];
        assert_eq!(scores.len(), want.len());
        for (got, want) in scores.iter().zip(want) {
            assert!(got.is_some_and(|g| (g - want).abs() < 1e-12), "{scores:?}");
        }
        assert!(deviations(&runs)[0].contains("fashion-mnist-boxes"));
    }

    #[test]
    fn the_report_puts_detection_runs_beside_table_7_and_judges_orderings_only()
    -> Result<(), crate::ReportError> {
        let mut runs = Vec::new();
        for seed in 0..3 {
            let s = seed as f64 * 0.01;
            runs.push(detection_run("relu", seed, 0.50 + s));
            runs.push(detection_run("arelu", seed, 0.60 + s));
        }
        let spec = crate::ReportSpec {
            paper_table: Some("table7".into()),
            ..crate::ReportSpec::default()
        };
        let report = crate::build_report(&runs, &spec)?;
        assert_eq!(report.metric, METRIC_TEXT);
        let section = &report.sections[0];
        assert!(section.grid.columns.contains(&"fcos/coco/ap50".to_owned()));
        let comparison = section.comparison.as_ref().expect("beside table 7");
        assert!(!comparison.judges_values(), "an analogue: orderings only");
        let pair = comparison
            .pairs
            .iter()
            .find(|p| p.first == "arelu" && p.second == "relu")
            .expect("arelu against relu");
        let column = pair
            .columns
            .iter()
            .find(|c| c.column == "fcos/coco/ap50")
            .expect("the fcos AP50 column");
        assert!(column.ours.is_some(), "judged on our seeds");
        Ok(())
    }
}
