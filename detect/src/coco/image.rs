//! One image and one category: pycocotools' `computeIoU` and `evaluateImg`.

use super::params::{AREA_RANGES, IOU_CEILING, MAX_DETS};
use crate::boxes::iou;
use crate::data::{Annotation, Detection};
use crate::numeric::argsort_descending;

/// The matching of one image's detections of one category, for every area
/// range. Only pairs with a ground truth or a detection are evaluated
/// (pycocotools' `None` for the others).
#[derive(Debug, Clone)]
pub(super) struct ImageEval {
    /// Scores of the kept detections (at most the last of [`MAX_DETS`]),
    /// highest first, equal scores in the list's order.
    pub scores: Vec<f64>,
    /// Per area range.
    pub areas: [AreaEval; AREA_RANGES.len()],
}

/// One image, category and area range.
#[derive(Debug, Clone, Default)]
pub(super) struct AreaEval {
    /// `matched[t * D + d]`: detection `d` matched a ground truth at IoU
    /// threshold `t` (`D` the number of kept detections).
    pub matched: Vec<bool>,
    /// `ignored[t * D + d]`: detection `d` matched an ignored ground truth,
    /// or matched none and its area is outside the range.
    pub ignored: Vec<bool>,
    /// Ground truths that count (not crowd, area in range): pycocotools'
    /// `gtIgnore == 0`.
    pub positives: usize,
}

/// Evaluates the ground truths `gts` and detections `dts` of one image and
/// category (each in the files' order) at the IoU thresholds `thresholds`.
pub(super) fn evaluate(gts: &[&Annotation], dts: &[&Detection], thresholds: &[f64]) -> ImageEval {
    let max_det = MAX_DETS[MAX_DETS.len() - 1];
    let mut order = argsort_descending(dts.len(), |i| dts[i].score);
    order.truncate(max_det);
    let dts: Vec<&Detection> = order.iter().map(|&i| dts[i]).collect();
    let (n_dt, n_gt) = (dts.len(), gts.len());
    // ious[d * G + g], ground truths in the files' order.
    let mut ious = vec![0.0; n_dt * n_gt];
    for (d, dt) in dts.iter().enumerate() {
        for (g, gt) in gts.iter().enumerate() {
            ious[d * n_gt + g] = iou(&dt.bbox, &gt.bbox, gt.iscrowd);
        }
    }
    let areas = AREA_RANGES.map(|range| {
        let ignore: Vec<bool> = gts
            .iter()
            .map(|g| g.iscrowd || range.excludes(g.area))
            .collect();
        // Ground truths that count first, each group in the files' order.
        let mut gt_order: Vec<usize> = (0..n_gt).collect();
        gt_order.sort_by_key(|&g| ignore[g]);
        let mut matched = vec![false; thresholds.len() * n_dt];
        let mut ignored = vec![false; thresholds.len() * n_dt];
        for (t, &threshold) in thresholds.iter().enumerate() {
            let mut gt_taken = vec![false; n_gt];
            for d in 0..n_dt {
                let mut best = threshold.min(IOU_CEILING);
                let mut m: Option<usize> = None;
                for &g in &gt_order {
                    // A ground truth already matched is taken, unless a crowd.
                    if gt_taken[g] && !gts[g].iscrowd {
                        continue;
                    }
                    // Matched one that counts: ignored ones cannot beat it.
                    if let Some(m) = m
                        && !ignore[m]
                        && ignore[g]
                    {
                        break;
                    }
                    let v = ious[d * n_gt + g];
                    if v < best {
                        continue;
                    }
                    best = v;
                    m = Some(g);
                }
                if let Some(m) = m {
                    ignored[t * n_dt + d] = ignore[m];
                    matched[t * n_dt + d] = true;
                    gt_taken[m] = true;
                }
            }
        }
        // Unmatched detections outside the range are ignored.
        for (d, dt) in dts.iter().enumerate() {
            if range.excludes(dt.bbox.area()) {
                for t in 0..thresholds.len() {
                    if !matched[t * n_dt + d] {
                        ignored[t * n_dt + d] = true;
                    }
                }
            }
        }
        AreaEval {
            matched,
            ignored,
            positives: ignore.iter().filter(|&&i| !i).count(),
        }
    });
    ImageEval {
        scores: dts.iter().map(|d| d.score).collect(),
        areas,
    }
}
