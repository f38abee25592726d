//! Greedy non-maximum suppression, per class.
//!
//! Boxes are visited by descending score, equal scores in input order; a
//! box is kept unless a kept box of its class overlaps it with an IoU
//! ([`crate::iou`], no crowd rule) strictly above the threshold (as
//! torchvision's `batched_nms`). What comes back is the kept indices in
//! that visiting order.
//!
//! Nothing panics on odd input. A box with a NaN score or a non-finite
//! coordinate is dropped (never kept, never suppresses); scores of ±∞ are
//! ordinary; boxes of zero or negative size overlap nothing and so are
//! kept; a NaN threshold is an error.

use std::collections::HashMap;

use crate::boxes::{BBox, iou};
use crate::error::NmsError;
use crate::numeric::argsort_descending;

/// Non-maximum suppression over boxes of one class: the indices of the
/// boxes kept, by descending score (equal scores in input order).
pub fn nms(boxes: &[BBox], scores: &[f64], iou_threshold: f64) -> Result<Vec<usize>, NmsError> {
    let classes = vec![0; boxes.len()];
    nms_per_class(boxes, scores, &classes, iou_threshold)
}

/// Non-maximum suppression within each class: boxes of different classes
/// never suppress each other. The indices kept, over all classes, by
/// descending score (equal scores in input order).
pub fn nms_per_class(
    boxes: &[BBox],
    scores: &[f64],
    classes: &[i64],
    iou_threshold: f64,
) -> Result<Vec<usize>, NmsError> {
    for (other, what) in [(scores.len(), "scores"), (classes.len(), "classes")] {
        if other != boxes.len() {
            return Err(NmsError::Lengths {
                boxes: boxes.len(),
                other,
                what,
            });
        }
    }
    if iou_threshold.is_nan() {
        return Err(NmsError::NanThreshold);
    }
    let valid: Vec<usize> = (0..boxes.len())
        .filter(|&i| !scores[i].is_nan() && boxes[i].is_finite())
        .collect();
    let order = argsort_descending(valid.len(), |j| scores[valid[j]]);
    let mut kept = Vec::new();
    let mut kept_by_class: HashMap<i64, Vec<usize>> = HashMap::new();
    for j in order {
        let i = valid[j];
        let same = kept_by_class.entry(classes[i]).or_default();
        let suppressed = same
            .iter()
            .any(|&k| iou(&boxes[i], &boxes[k], false) > iou_threshold);
        if !suppressed {
            same.push(i);
            kept.push(i);
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x: f64, y: f64, w: f64, h: f64) -> BBox {
        BBox::new(x, y, w, h)
    }

    #[test]
    fn suppresses_overlaps_above_the_threshold() {
        let boxes = [
            b(0.0, 0.0, 10.0, 10.0),
            b(1.0, 0.0, 10.0, 10.0), // IoU 90/110 with the first
            b(50.0, 50.0, 10.0, 10.0),
        ];
        let kept = nms(&boxes, &[0.9, 0.8, 0.7], 0.5).expect("valid");
        assert_eq!(kept, [0, 2]);
        // A lower score for the first: the second wins.
        let kept = nms(&boxes, &[0.7, 0.8, 0.9], 0.5).expect("valid");
        assert_eq!(kept, [2, 1]);
        // Above the overlap: both kept.
        let kept = nms(&boxes, &[0.9, 0.8, 0.7], 0.9).expect("valid");
        assert_eq!(kept, [0, 1, 2]);
    }

    #[test]
    fn exactly_at_the_threshold_is_kept() {
        // IoU exactly 0.5.
        let boxes = [b(0.0, 0.0, 50.0, 50.0), b(0.0, 0.0, 50.0, 25.0)];
        assert_eq!(iou(&boxes[1], &boxes[0], false), 0.5);
        assert_eq!(nms(&boxes, &[0.9, 0.8], 0.5).expect("valid"), [0, 1]);
        assert_eq!(nms(&boxes, &[0.9, 0.8], 0.49).expect("valid"), [0]);
    }

    #[test]
    fn equal_scores_keep_input_order() {
        let boxes = [b(0.0, 0.0, 10.0, 10.0), b(0.0, 0.0, 10.0, 10.0)];
        assert_eq!(nms(&boxes, &[0.5, 0.5], 0.5).expect("valid"), [0]);
        let boxes = [
            b(0.0, 0.0, 10.0, 10.0),
            b(20.0, 0.0, 10.0, 10.0),
            b(40.0, 0.0, 1.0, 1.0),
        ];
        assert_eq!(
            nms(&boxes, &[0.5, 0.5, 0.5], 0.5).expect("valid"),
            [0, 1, 2]
        );
    }

    #[test]
    fn classes_do_not_suppress_each_other() {
        let boxes = [b(0.0, 0.0, 10.0, 10.0); 3];
        let kept = nms_per_class(&boxes, &[0.9, 0.8, 0.7], &[1, 2, 1], 0.5).expect("valid");
        assert_eq!(kept, [0, 1]);
    }

    #[test]
    fn nan_and_infinity_never_panic() {
        let boxes = [
            b(0.0, 0.0, 10.0, 10.0),
            b(0.0, 0.0, 10.0, 10.0),
            b(f64::NAN, 0.0, 10.0, 10.0),
            b(0.0, 0.0, f64::INFINITY, 10.0),
            b(100.0, 0.0, 10.0, 10.0),
        ];
        let scores = [f64::NAN, 0.5, 0.9, 0.9, f64::INFINITY];
        // The NaN score and the two non-finite boxes are dropped.
        let kept = nms(&boxes, &scores, 0.5).expect("valid");
        assert_eq!(kept, [4, 1]);
        assert_eq!(nms(&boxes, &scores, f64::NAN), Err(NmsError::NanThreshold));
        assert!(nms(&[], &[], 0.5).expect("empty").is_empty());
    }

    #[test]
    fn mismatched_lengths_are_errors() {
        let boxes = [b(0.0, 0.0, 1.0, 1.0)];
        assert!(matches!(
            nms(&boxes, &[], 0.5),
            Err(NmsError::Lengths { what: "scores", .. })
        ));
        assert!(matches!(
            nms_per_class(&boxes, &[1.0], &[], 0.5),
            Err(NmsError::Lengths {
                what: "classes",
                ..
            })
        ));
    }

    /// Against a plain quadratic reference on seeded random boxes: same
    /// kept set and order.
    #[test]
    fn matches_a_reference_on_random_boxes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..200 {
            let n = rng.random_range(0..40);
            let boxes: Vec<BBox> = (0..n)
                .map(|_| {
                    b(
                        rng.random_range(0.0..50.0_f64).round(),
                        rng.random_range(0.0..50.0_f64).round(),
                        rng.random_range(1.0..30.0_f64).round(),
                        rng.random_range(1.0..30.0_f64).round(),
                    )
                })
                .collect();
            // Few distinct scores, so that ties are common.
            let scores: Vec<f64> = (0..n)
                .map(|_| f64::from(rng.random_range(0..5_u8)))
                .collect();
            let classes: Vec<i64> = (0..n).map(|_| rng.random_range(0..3)).collect();
            let thr = rng.random_range(0.1..0.9);
            let got = nms_per_class(&boxes, &scores, &classes, thr).expect("valid");
            // Reference: repeatedly take the first highest remaining box.
            let mut alive: Vec<usize> = (0..n).collect();
            let mut want = Vec::new();
            while !alive.is_empty() {
                let mut top = 0;
                for (p, &i) in alive.iter().enumerate() {
                    if scores[i] > scores[alive[top]] {
                        top = p;
                    }
                }
                let i = alive.remove(top);
                want.push(i);
                alive.retain(|&j| {
                    classes[j] != classes[i] || iou(&boxes[j], &boxes[i], false) <= thr
                });
            }
            assert_eq!(got, want);
        }
    }
}
