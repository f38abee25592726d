//! acbench-detect against the reference implementations: the expected values
//! in `fixtures/coco-goldens.json` were computed by `scripts/coco-goldens.py`
//! with PyPI's pycocotools (`COCOeval`, iouType='bbox': its 12 stats and the
//! lines `summarize` prints) and with a copy of py-faster-rcnn's `voc_eval`
//! and `voc_ap` (VOC AP50 per class, 11-point and all-point), on hand-made
//! edge cases and seeded random ones. Each case's ground truth and
//! detections go through the crate's JSON readers.

use acbench_detect::voc::{self, VocRule};
use acbench_detect::{coco, json};
use serde_json::Value;

/// Agreement asked of every number (absolute).
const TOL: f64 = 1e-12;

fn goldens() -> Value {
    let text = include_str!("fixtures/coco-goldens.json");
    serde_json::from_str(text).expect("the fixture is JSON")
}

/// Each case with its name, ground truth and detections read by the crate.
fn cases(
    g: &Value,
) -> Vec<(
    &Value,
    acbench_detect::GroundTruth,
    Vec<acbench_detect::Detection>,
)> {
    g["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|case| {
            let name = case["name"].as_str().expect("name");
            let gt = json::parse_ground_truth(&case["gt"].to_string())
                .unwrap_or_else(|e| panic!("{name}: ground truth: {e}"));
            let dt = json::parse_detections(&case["dt"].to_string(), &gt)
                .unwrap_or_else(|e| panic!("{name}: detections: {e}"));
            (case, gt, dt)
        })
        .collect()
}

/// Compares, returning the absolute deviation.
fn check(what: &str, ours: f64, theirs: f64) -> f64 {
    let dev = (ours - theirs).abs();
    assert!(
        dev <= TOL,
        "{what}: ours {ours:e}, the reference's {theirs:e} (off by {dev:e})"
    );
    dev
}

#[test]
fn coco_stats_match_pycocotools() {
    let g = goldens();
    let cases = cases(&g);
    let hand = g["hand_made"].as_u64().expect("hand_made") as usize;
    assert!(hand >= 15, "hand-made cases: {hand}");
    assert!(
        cases.len() - hand >= 200,
        "random cases: {}",
        cases.len() - hand
    );
    let mut worst = 0.0_f64;
    let mut exact = 0;
    for (case, gt, dt) in &cases {
        let name = case["name"].as_str().expect("name");
        let eval = coco::evaluate(gt, dt).unwrap_or_else(|e| panic!("{name}: {e}"));
        let theirs = case["stats"].as_array().expect("stats");
        assert_eq!(theirs.len(), 12);
        for ((spec, ours), want) in eval.stats().iter().zip(theirs) {
            let want = want.as_f64().expect("a number");
            worst = worst.max(check(&format!("{name}: {}", spec.name), ours, want));
            exact += usize::from(ours.to_bits() == want.to_bits());
        }
        if let Some(lines) = case.get("lines") {
            let lines: Vec<&str> = lines
                .as_array()
                .expect("lines")
                .iter()
                .map(|l| l.as_str().expect("a line"))
                .collect();
            assert_eq!(eval.lines(), lines, "{name}");
        }
    }
    eprintln!(
        "{} cases, {} numbers: largest deviation {worst:e}, {exact} equal to the bit",
        cases.len(),
        12 * cases.len()
    );
}

#[test]
fn voc_aps_match_py_faster_rcnn() {
    let g = goldens();
    let mut worst = 0.0_f64;
    let mut aps = 0;
    for (case, gt, dt) in &cases(&g) {
        let name = case["name"].as_str().expect("name");
        let want = &case["voc"];
        for (rule, key, mean_key) in [
            (VocRule::ElevenPoint, "ap07", "mean07"),
            (VocRule::AllPoint, "ap12", "mean12"),
        ] {
            let r = voc::evaluate(gt, dt, rule).unwrap_or_else(|e| panic!("{name}: {e}"));
            let classes = want["classes"].as_array().expect("classes");
            assert_eq!(r.classes.len(), classes.len(), "{name}");
            for (ours, theirs) in r.classes.iter().zip(classes) {
                assert_eq!(
                    ours.category_id,
                    theirs["category_id"].as_i64().expect("id"),
                    "{name}"
                );
                assert_eq!(
                    ours.positives as u64,
                    theirs["positives"].as_u64().expect("positives"),
                    "{name}: class {}",
                    ours.category_id
                );
                match (ours.ap, theirs[key].as_f64()) {
                    (Some(a), Some(b)) => {
                        let what = format!("{name}: class {} {key}", ours.category_id);
                        worst = worst.max(check(&what, a, b));
                        aps += 1;
                    }
                    (None, None) => {}
                    (a, b) => panic!("{name}: class {}: {a:?} vs {b:?}", ours.category_id),
                }
            }
            match (r.mean, want[mean_key].as_f64()) {
                (Some(a), Some(b)) => {
                    worst = worst.max(check(&format!("{name}: {mean_key}"), a, b));
                }
                (None, None) => {}
                (a, b) => panic!("{name}: {mean_key}: {a:?} vs {b:?}"),
            }
        }
    }
    assert!(aps >= 400, "APs compared: {aps}");
    eprintln!("{aps} VOC APs: largest deviation {worst:e}");
}
