//! Hand-worked cases of the COCO evaluation; pycocotools' own numbers on
//! many more are in `tests/coco_goldens.rs`.

use super::*;
use crate::boxes::BBox;
use crate::data::Category;

/// A ground truth of images 1..=`images` and categories 1..=`categories`,
/// with the annotations `(image, category, box, crowd)`, ids from 1, areas
/// `w * h`.
fn ground_truth(images: i64, categories: i64, anns: &[(i64, i64, [f64; 4], bool)]) -> GroundTruth {
    let annotations = anns
        .iter()
        .enumerate()
        .map(|(i, &(image_id, category_id, b, iscrowd))| Annotation {
            id: i as i64 + 1,
            image_id,
            category_id,
            bbox: BBox::from(b),
            area: b[2] * b[3],
            iscrowd,
            difficult: false,
        })
        .collect();
    let categories = (1..=categories)
        .map(|id| Category {
            id,
            name: format!("c{id}"),
        })
        .collect();
    GroundTruth::new((1..=images).collect(), categories, annotations).expect("valid")
}

fn det(image_id: i64, category_id: i64, b: [f64; 4], score: f64) -> Detection {
    Detection {
        image_id,
        category_id,
        bbox: BBox::from(b),
        score,
    }
}

fn stats(gt: &GroundTruth, dt: &[Detection]) -> Stats {
    *evaluate(gt, dt).expect("valid").stats()
}

/// Precision with one true positive and nothing else: `1 / (1 + eps)`
/// (pycocotools adds `np.spacing(1)` to the denominator).
const ONE_TP: f64 = 1.0 / (1.0 + f64::EPSILON);

/// `value` within a few ulps of `want` (a mean of equal values need not
/// give the value back exactly).
fn near(s: &Stats, key: &str, want: f64) {
    let v = s.get(key).expect("a stat");
    assert!(
        (v - want).abs() <= 4.0 * f64::EPSILON,
        "{key}: {v} vs {want}"
    );
}

const BOX: [f64; 4] = [10.0, 10.0, 50.0, 50.0];
const FAR: [f64; 4] = [200.0, 200.0, 50.0, 50.0];

#[test]
fn perfect_detections_score_one() {
    let gt = ground_truth(2, 1, &[(1, 1, BOX, false), (2, 1, FAR, false)]);
    let s = stats(&gt, &[det(1, 1, BOX, 0.9), det(2, 1, FAR, 0.8)]);
    for key in [
        "ap",
        "ap50",
        "ap75",
        "ap_medium",
        "ar1",
        "ar10",
        "ar100",
        "ar_medium",
    ] {
        assert_eq!(s.get(key), Some(1.0), "{key}");
    }
    // 50x50 boxes are medium: nothing small or large to measure.
    for key in ["ap_small", "ap_large", "ar_small", "ar_large"] {
        assert_eq!(s.get(key), Some(-1.0), "{key}");
    }
}

#[test]
fn no_detections_score_zero() {
    let gt = ground_truth(1, 1, &[(1, 1, BOX, false)]);
    let s = stats(&gt, &[]);
    assert_eq!(s.get("AP"), Some(0.0));
    assert_eq!(s.get("AR100"), Some(0.0));
}

#[test]
fn a_false_positive_ranked_first_halves_precision() {
    // FP at 0.9, TP at 0.8: precision 0.5 at every recall.
    let gt = ground_truth(1, 1, &[(1, 1, BOX, false)]);
    let s = stats(&gt, &[det(1, 1, FAR, 0.9), det(1, 1, BOX, 0.8)]);
    assert_eq!(s.get("AP"), Some(0.5));
    // One detection kept: the false positive.
    assert_eq!(s.get("AR1"), Some(0.0));
    assert_eq!(s.get("AR10"), Some(1.0));
}

#[test]
fn equal_scores_keep_the_lists_order() {
    let gt = ground_truth(1, 1, &[(1, 1, BOX, false)]);
    let fp_first = stats(&gt, &[det(1, 1, FAR, 0.5), det(1, 1, BOX, 0.5)]);
    assert_eq!(fp_first.get("AP"), Some(0.5));
    let tp_first = stats(&gt, &[det(1, 1, BOX, 0.5), det(1, 1, FAR, 0.5)]);
    near(&tp_first, "AP", ONE_TP);
    const { assert!(ONE_TP < 1.0) };
}

#[test]
fn crowd_regions_absorb_detections() {
    let crowd = [0.0, 0.0, 400.0, 400.0];
    let gt = ground_truth(1, 1, &[(1, 1, BOX, false), (1, 1, crowd, true)]);
    // Three detections inside the crowd region, ranked above the true one:
    // all ignored, not false positives.
    let dt = [
        det(1, 1, [300.0, 300.0, 20.0, 20.0], 0.9),
        det(1, 1, [250.0, 300.0, 20.0, 20.0], 0.9),
        det(1, 1, [300.0, 250.0, 20.0, 20.0], 0.9),
        det(1, 1, BOX, 0.5),
    ];
    let s = stats(&gt, &dt);
    near(&s, "AP", ONE_TP);
    // A crowd-only category has nothing to measure.
    let gt = ground_truth(1, 1, &[(1, 1, crowd, true)]);
    assert_eq!(stats(&gt, &dt).get("AP"), Some(-1.0));
}

#[test]
fn area_borders_belong_to_both_ranges() {
    // 32 x 32 = 1024 is small and medium; 96 x 96 medium and large.
    let gt = ground_truth(
        2,
        1,
        &[
            (1, 1, [0.0, 0.0, 32.0, 32.0], false),
            (2, 1, [0.0, 0.0, 96.0, 96.0], false),
        ],
    );
    let dt = [
        det(1, 1, [0.0, 0.0, 32.0, 32.0], 0.9),
        det(2, 1, [0.0, 0.0, 96.0, 96.0], 0.8),
    ];
    let s = stats(&gt, &dt);
    // Both count as medium; one true positive each for small and large.
    assert_eq!(s.get("ap_medium"), Some(1.0));
    near(&s, "ap_small", ONE_TP);
    near(&s, "ap_large", ONE_TP);
    for key in ["ar_small", "ar_medium", "ar_large"] {
        assert_eq!(s.get(key), Some(1.0), "{key}");
    }
}

#[test]
fn the_ground_truths_area_field_decides_its_range() {
    // A 10x10 box whose annotation says area 5000: medium, not small.
    let mut gt = ground_truth(1, 1, &[(1, 1, [0.0, 0.0, 10.0, 10.0], false)]);
    let mut anns = gt.annotations().to_vec();
    anns[0].area = 5000.0;
    gt = GroundTruth::new(gt.images().to_vec(), gt.categories().to_vec(), anns).expect("valid");
    let s = stats(&gt, &[det(1, 1, [0.0, 0.0, 10.0, 10.0], 0.9)]);
    assert_eq!(s.get("AP_small"), Some(-1.0));
    near(&s, "AP_medium", ONE_TP);
}

#[test]
fn categories_without_ground_truth_are_left_out() {
    let gt = ground_truth(1, 2, &[(1, 1, BOX, false)]);
    // Category 2 has only a false positive and no ground truth.
    let s = stats(&gt, &[det(1, 1, BOX, 0.9), det(1, 2, FAR, 0.95)]);
    near(&s, "AP", ONE_TP);
    let e = evaluate(&gt, &[det(1, 1, BOX, 0.9)]).expect("valid");
    assert_eq!(e.precision(0, 0, 1, 0, 2), Some(-1.0));
    assert_eq!(e.precision(0, 0, 0, 0, 2), Some(ONE_TP));
    assert_eq!(e.precision(10, 0, 0, 0, 2), None);
    assert_eq!(e.recall(0, 1, 0, 2), Some(-1.0));
}

#[test]
fn only_a_hundred_detections_per_image_and_category() {
    let gt = ground_truth(1, 2, &[(1, 1, BOX, false), (1, 2, BOX, false)]);
    // 100 false positives above the true one in category 1: cut.
    let mut dt: Vec<Detection> = (0..100)
        .map(|i| det(1, 1, [300.0 + i as f64, 0.0, 5.0, 5.0], 0.9))
        .collect();
    dt.push(det(1, 1, BOX, 0.1));
    let s = stats(&gt, &dt);
    assert_eq!(s.get("AR100"), Some(0.0));
    // In category 2 the same 100 do not count against its detection.
    dt.push(det(1, 2, BOX, 0.05));
    let s = stats(&gt, &dt);
    assert_eq!(s.get("AR100"), Some(0.5));
}

#[test]
fn iou_exactly_at_a_threshold_matches() {
    // IoU 0.5 exactly: 40x50 inside 50x50... intersection 1250, union 2500.
    let gt = ground_truth(1, 1, &[(1, 1, [0.0, 0.0, 50.0, 50.0], false)]);
    let dt = [det(1, 1, [25.0, 0.0, 50.0, 50.0], 0.9)];
    assert_eq!(
        crate::boxes::iou(&dt[0].bbox, &gt.annotations()[0].bbox, false),
        1.0 / 3.0
    );
    let dt = [det(1, 1, [0.0, 0.0, 50.0, 25.0], 0.9)];
    assert_eq!(
        crate::boxes::iou(&dt[0].bbox, &gt.annotations()[0].bbox, false),
        0.5
    );
    let e = evaluate(&gt, &dt).expect("valid");
    near(e.stats(), "AP50", ONE_TP);
    assert_eq!(e.stats().get("AP75"), Some(0.0));
    // Matched at the first threshold only: recall 1 of 10.
    assert_eq!(e.recall(0, 0, 0, 2), Some(1.0));
    assert_eq!(e.recall(1, 0, 0, 2), Some(0.0));
    assert_eq!(e.stats().get("AR100"), Some(0.1));
}

#[test]
fn summary_lines_are_pycocotools() {
    let gt = ground_truth(1, 1, &[(1, 1, BOX, false)]);
    let lines = evaluate(&gt, &[det(1, 1, FAR, 0.9), det(1, 1, BOX, 0.8)])
        .expect("valid")
        .lines();
    assert_eq!(lines.len(), 12);
    assert_eq!(
        lines[0],
        " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.500"
    );
    assert_eq!(
        lines[1],
        " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.500"
    );
    assert_eq!(
        lines[3],
        " Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = -1.000"
    );
    assert_eq!(
        lines[6],
        " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.000"
    );
    assert_eq!(
        lines[10],
        " Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 1.000"
    );
}

#[test]
fn stats_serialise_in_order() {
    let gt = ground_truth(1, 1, &[(1, 1, BOX, false), (1, 1, FAR, false)]);
    let s = stats(&gt, &[det(1, 1, BOX, 0.8), det(1, 1, FAR, 0.7)]);
    let json = serde_json::to_string(&s).expect("json");
    assert!(
        json.starts_with("{\"ap\":1.0,\"ap50\":1.0,\"ap75\":1.0,\"ap_small\":-1.0,"),
        "{json}"
    );
    assert!(json.ends_with("\"ar_large\":-1.0}"), "{json}");
}

#[test]
fn bad_detections_are_errors() {
    let gt = ground_truth(1, 1, &[(1, 1, BOX, false)]);
    let e = evaluate(&gt, &[det(3, 1, BOX, 0.5)]).expect_err("unknown image");
    assert_eq!(e.at, "[0].image_id");
}
