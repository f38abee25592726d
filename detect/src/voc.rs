//! PASCAL VOC average precision at IoU 0.5, per class, as the VOC devkit
//! computes it (in the form of py-faster-rcnn's `voc_eval` and `voc_ap`):
//!
//! - each class's detections, over all images, sorted by score (stable:
//!   equal scores keep the list's order; py-faster-rcnn's quicksort leaves
//!   that order unspecified), no limit on their number;
//! - each detection compared with every ground truth of its class in its
//!   image; the one of highest IoU (the first of equal ones) is its match if
//!   the IoU is above 0.5 (strictly): a difficult match counts neither way,
//!   a match already taken is a false positive, and so is no match;
//! - recall over the positives (ground truths not difficult), precision
//!   `tp / max(tp + fp, eps)`;
//! - VOC2007's 11-point AP (the mean of the best precision at recall ≥ 0,
//!   0.1, ..., 1) or VOC2010's all-point AP (the area under the
//!   precision envelope).
//!
//! Difficult boxes are [`Annotation::difficult`] ones, and crowd ones too
//! (COCO's crowd regions are not single objects). The devkit's boxes are
//! inclusive pixel indices, its widths `xmax - xmin + 1`: a box `[x, y, w,
//! h]` is taken as `xmin = x`, `xmax = x + w - 1` (likewise in y), and the
//! overlap ([`overlap`]) computed as the devkit does, operation for
//! operation. Mathematically that is [`crate::iou`]; the last bits may
//! differ, which matters only at an IoU of exactly 0.5.
//!
//! A class without positives has no AP (the devkit divides by zero) and is
//! left out of the mean.

use std::collections::HashMap;

use crate::boxes::BBox;
use crate::data::{Annotation, Detection, GroundTruth};
use crate::error::DataError;
use crate::numeric;

/// Which VOC rule turns precision and recall into AP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VocRule {
    /// VOC2007: the mean of the best precision at recall ≥ 0, 0.1, …, 1.
    ElevenPoint,
    /// VOC2010 and later: the area under the precision envelope at every
    /// recall reached.
    AllPoint,
}

/// The AP of one class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassAp {
    /// The category.
    pub category_id: i64,
    /// Its name.
    pub name: String,
    /// Its ground truths that are not difficult.
    pub positives: usize,
    /// Its detections.
    pub detections: usize,
    /// Its AP; `None` without positives.
    pub ap: Option<f64>,
}

/// A VOC evaluation: each category of the ground truth, in ascending id.
#[derive(Debug, Clone, PartialEq)]
pub struct VocResult {
    /// The rule used.
    pub rule: VocRule,
    /// Per class.
    pub classes: Vec<ClassAp>,
    /// The mean AP of the classes that have one (numpy's mean); `None` when
    /// none has.
    pub mean: Option<f64>,
}

/// Evaluates `detections` against `gt` by `rule` (see the module's
/// documentation). Fails only on detections [`GroundTruth::check_detections`]
/// refuses.
pub fn evaluate(
    gt: &GroundTruth,
    detections: &[Detection],
    rule: VocRule,
) -> Result<VocResult, DataError> {
    gt.check_detections(detections)?;
    let mut categories = gt.categories().to_vec();
    categories.sort_by_key(|c| c.id);
    let classes: Vec<ClassAp> = categories
        .iter()
        .map(|c| {
            let gts: Vec<&Annotation> = gt
                .annotations()
                .iter()
                .filter(|a| a.category_id == c.id)
                .collect();
            let dts: Vec<&Detection> = detections
                .iter()
                .filter(|d| d.category_id == c.id)
                .collect();
            let (positives, ap) = class_ap(&gts, &dts, rule);
            ClassAp {
                category_id: c.id,
                name: c.name.clone(),
                positives,
                detections: dts.len(),
                ap,
            }
        })
        .collect();
    let aps: Vec<f64> = classes.iter().filter_map(|c| c.ap).collect();
    Ok(VocResult {
        rule,
        mean: numeric::mean(&aps),
        classes,
    })
}

/// The positives and AP of one class's ground truths and detections.
fn class_ap(gts: &[&Annotation], dts: &[&Detection], rule: VocRule) -> (usize, Option<f64>) {
    let difficult = |a: &Annotation| a.difficult || a.iscrowd;
    let positives = gts.iter().filter(|a| !difficult(a)).count();
    let mut by_image: HashMap<i64, Vec<usize>> = HashMap::new();
    for (i, a) in gts.iter().enumerate() {
        by_image.entry(a.image_id).or_default().push(i);
    }
    let mut taken = vec![false; gts.len()];
    let order = numeric::argsort_descending(dts.len(), |i| dts[i].score);
    let (mut tp, mut fp) = (Vec::with_capacity(dts.len()), Vec::with_capacity(dts.len()));
    for &d in &order {
        let det = dts[d];
        // The first ground truth of highest overlap (np.max, np.argmax: a
        // NaN overlap, from boxes of no size, is the maximum).
        let mut best: Option<(usize, f64)> = None;
        for &g in by_image.get(&det.image_id).map_or(&[][..], Vec::as_slice) {
            let v = overlap(&det.bbox, &gts[g].bbox);
            let better = match best {
                None => true,
                Some((_, b)) => !b.is_nan() && (v.is_nan() || v > b),
            };
            if better {
                best = Some((g, v));
            }
        }
        let (is_tp, is_fp) = match best {
            Some((g, v)) if v > 0.5 => {
                if difficult(gts[g]) {
                    (false, false)
                } else if taken[g] {
                    (false, true)
                } else {
                    taken[g] = true;
                    (true, false)
                }
            }
            _ => (false, true),
        };
        tp.push(is_tp);
        fp.push(is_fp);
    }
    if positives == 0 {
        return (0, None);
    }
    let npos = positives as f64;
    let (mut rec, mut prec) = (Vec::with_capacity(tp.len()), Vec::with_capacity(tp.len()));
    let (mut ctp, mut cfp) = (0.0_f64, 0.0_f64);
    for (&t, &f) in tp.iter().zip(&fp) {
        ctp += f64::from(u8::from(t));
        cfp += f64::from(u8::from(f));
        rec.push(ctp / npos);
        prec.push(ctp / (ctp + cfp).max(f64::EPSILON));
    }
    (positives, Some(ap(&rec, &prec, rule)))
}

/// The VOC devkit's overlap of two boxes as inclusive pixel ranges
/// (`xmax = x + w - 1`): `iw = max(min(xmax) - max(xmin) + 1, 0)`, likewise
/// `ih`, and the intersection `iw * ih` over the sum of both boxes' areas
/// `(xmax - xmin + 1) * (ymax - ymin + 1)` less the intersection, each
/// operation in py-faster-rcnn's order. Boxes of no size give NaN (0 / 0).
pub fn overlap(dt: &BBox, gt: &BBox) -> f64 {
    let corners = |b: &BBox| (b.x, b.y, b.x + b.w - 1.0, b.y + b.h - 1.0);
    let (dx1, dy1, dx2, dy2) = corners(dt);
    let (gx1, gy1, gx2, gy2) = corners(gt);
    let iw = (gx2.min(dx2) - gx1.max(dx1) + 1.0).max(0.0);
    let ih = (gy2.min(dy2) - gy1.max(dy1) + 1.0).max(0.0);
    let inters = iw * ih;
    let uni =
        (dx2 - dx1 + 1.0) * (dy2 - dy1 + 1.0) + (gx2 - gx1 + 1.0) * (gy2 - gy1 + 1.0) - inters;
    inters / uni
}

/// py-faster-rcnn's `voc_ap(rec, prec, use_07_metric)`.
pub fn ap(rec: &[f64], prec: &[f64], rule: VocRule) -> f64 {
    match rule {
        VocRule::ElevenPoint => {
            let mut ap = 0.0;
            for t in numeric::arange(0.0, 1.1, 0.1) {
                let p = rec
                    .iter()
                    .zip(prec)
                    .filter(|&(&r, _)| r >= t)
                    .map(|(_, &p)| p)
                    .fold(None, |m: Option<f64>, p| Some(m.map_or(p, |m| m.max(p))))
                    .unwrap_or(0.0);
                ap += p / 11.0;
            }
            ap
        }
        VocRule::AllPoint => {
            let mut mrec = Vec::with_capacity(rec.len() + 2);
            mrec.push(0.0);
            mrec.extend_from_slice(rec);
            mrec.push(1.0);
            let mut mpre = Vec::with_capacity(prec.len() + 2);
            mpre.push(0.0);
            mpre.extend_from_slice(prec);
            mpre.push(0.0);
            for i in (1..mpre.len()).rev() {
                mpre[i - 1] = mpre[i - 1].max(mpre[i]);
            }
            let terms: Vec<f64> = (0..mrec.len() - 1)
                .filter(|&i| mrec[i + 1] != mrec[i])
                .map(|i| (mrec[i + 1] - mrec[i]) * mpre[i + 1])
                .collect();
            numeric::sum(&terms)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boxes::BBox;
    use crate::data::Category;

    fn gt(anns: &[(i64, i64, [f64; 4], bool)]) -> GroundTruth {
        let annotations = anns
            .iter()
            .enumerate()
            .map(|(i, &(image_id, category_id, b, difficult))| Annotation {
                id: i as i64 + 1,
                image_id,
                category_id,
                bbox: BBox::from(b),
                area: b[2] * b[3],
                iscrowd: false,
                difficult,
            })
            .collect();
        let cats = vec![
            Category {
                id: 1,
                name: "dog".into(),
            },
            Category {
                id: 2,
                name: "cat".into(),
            },
        ];
        GroundTruth::new(vec![1, 2], cats, annotations).expect("valid")
    }

    fn det(image_id: i64, category_id: i64, b: [f64; 4], score: f64) -> Detection {
        Detection {
            image_id,
            category_id,
            bbox: BBox::from(b),
            score,
        }
    }

    const A: [f64; 4] = [0.0, 0.0, 10.0, 10.0];
    const B: [f64; 4] = [50.0, 50.0, 10.0, 10.0];
    const C: [f64; 4] = [100.0, 0.0, 10.0, 10.0];

    #[test]
    fn eleven_point_and_all_point_rules() {
        // Two positives; detections: TP, FP, TP.
        let g = gt(&[(1, 1, A, false), (2, 1, B, false)]);
        let d = [det(1, 1, A, 0.9), det(1, 1, C, 0.8), det(2, 1, B, 0.7)];
        // rec = [.5, .5, 1], prec = [1, .5, 2/3].
        let r12 = evaluate(&g, &d, VocRule::AllPoint).expect("valid");
        let dog = &r12.classes[0];
        assert_eq!(
            (dog.name.as_str(), dog.positives, dog.detections),
            ("dog", 2, 3)
        );
        let want12 = 0.5 * 1.0 + 0.5 * (2.0 / 3.0);
        assert!((dog.ap.expect("ap") - want12).abs() < 1e-15);
        let r07 = evaluate(&g, &d, VocRule::ElevenPoint).expect("valid");
        // Recall 0..0.5: precision 1 (6 points); 0.6..1: 2/3 (5 points).
        let want07 = (6.0 + 5.0 * (2.0 / 3.0)) / 11.0;
        assert!((r07.classes[0].ap.expect("ap") - want07).abs() < 1e-15);
        // The cat has no positives: no AP, out of the mean.
        assert_eq!(r07.classes[1].ap, None);
        assert_eq!(r07.mean, r07.classes[0].ap);
    }

    #[test]
    fn difficult_boxes_count_neither_way() {
        let g = gt(&[(1, 1, A, false), (1, 1, B, true)]);
        // The detection of the difficult box ranks first: neither TP nor FP.
        let d = [det(1, 1, B, 0.9), det(1, 1, A, 0.8)];
        let r = evaluate(&g, &d, VocRule::AllPoint).expect("valid");
        assert_eq!(r.classes[0].positives, 1);
        assert_eq!(r.classes[0].ap, Some(1.0));
        // Without the difficult flag it is a second positive, found.
        let g = gt(&[(1, 1, A, false), (1, 1, B, false)]);
        let r = evaluate(&g, &d, VocRule::AllPoint).expect("valid");
        assert_eq!(r.classes[0].positives, 2);
        assert_eq!(r.classes[0].ap, Some(1.0));
    }

    #[test]
    fn duplicates_are_false_positives_and_overlap_must_exceed_half() {
        let g = gt(&[(1, 1, [0.0, 0.0, 50.0, 50.0], false)]);
        // IoU exactly 0.5 is not a match (strict), unlike COCO.
        let half = [0.0, 0.0, 50.0, 25.0];
        let r = evaluate(&g, &[det(1, 1, half, 0.9)], VocRule::AllPoint).expect("valid");
        assert_eq!(r.classes[0].ap, Some(0.0));
        let exact = [0.0, 0.0, 50.0, 50.0];
        let d = [det(1, 1, exact, 0.9), det(1, 1, exact, 0.9)];
        let r = evaluate(&g, &d, VocRule::AllPoint).expect("valid");
        // TP then FP: recall 1 reached at precision 1.
        assert_eq!(r.classes[0].ap, Some(1.0));
        let r = evaluate(&g, &d, VocRule::ElevenPoint).expect("valid");
        assert!((r.classes[0].ap.expect("ap") - 1.0).abs() < 1e-15);
    }

    #[test]
    fn no_detections_give_zero() {
        let g = gt(&[(1, 1, A, false)]);
        for rule in [VocRule::ElevenPoint, VocRule::AllPoint] {
            let r = evaluate(&g, &[], rule).expect("valid");
            assert_eq!(r.classes[0].ap, Some(0.0));
            assert_eq!(r.mean, Some(0.0));
        }
        let none = gt(&[]);
        assert_eq!(
            evaluate(&none, &[], VocRule::AllPoint).expect("valid").mean,
            None
        );
    }
}
