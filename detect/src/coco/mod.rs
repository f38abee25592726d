//! COCO evaluation of boxes, as pycocotools' `COCOeval` with
//! `iouType='bbox'` and its default parameters computes it, to the bit
//! where its arithmetic allows (checked against pycocotools on hand-made
//! and random cases in `tests/coco_goldens.rs`).
//!
//! Per image and category (`image.rs`, pycocotools' `evaluateImg`): the
//! detections sorted by score (stable: equal scores keep the list's
//! order) and cut to 100; for each area range the ground truths that count
//! first (crowd ones and those whose `area` is outside the range are
//! ignored, as pycocotools overwrites an annotation's `ignore` with its
//! `iscrowd`); each detection, at each IoU threshold, matched greedily to
//! the free ground truth of highest IoU (`>= min(t, 1 - 1e-10)`), a crowd
//! ground truth taking any number of detections. A detection matched to an
//! ignored ground truth, or unmatched with its area (`w * h`) outside the
//! range, is ignored. Per category, area range and number of detections
//! kept (1, 10, 100) (`accumulate.rs`): the images' detections merged by
//! score, precision made non-increasing and read at the 101 recall
//! thresholds. `summary.rs` averages the categories that have ground truth
//! in the range (the others hold -1 and are left out).
//!
//! Why not the `hotcoco` crate, which also reproduces pycocotools: it is a
//! toolkit of some 30,000 lines (masks, keypoints, LVIS, Open Images,
//! panoptic quality, format conversion) with PNG, XML, rayon and rand among
//! its dependencies, for the few hundred lines box evaluation takes; and
//! its readers report serde's line and column, not the element an error is
//! in.

mod accumulate;
mod image;
pub mod params;
mod summary;

use std::collections::{BTreeMap, HashMap};

pub use params::{AREA_RANGES, AreaRange, MAX_DETS};
pub use summary::{STATS, StatSpec, Stats};

use crate::data::{Annotation, Detection, GroundTruth};
use crate::error::DataError;

/// A finished evaluation: pycocotools' `eval['precision']`,
/// `eval['recall']` and `stats`.
#[derive(Debug, Clone)]
pub struct Evaluation {
    category_ids: Vec<i64>,
    iou_thresholds: Vec<f64>,
    recall_thresholds: Vec<f64>,
    acc: accumulate::Accumulated,
    stats: Stats,
}

/// Evaluates `detections` against `gt` (see the module's documentation).
/// Fails only when a detection names an image or category `gt` lacks, or
/// holds a non-finite number.
pub fn evaluate(gt: &GroundTruth, detections: &[Detection]) -> Result<Evaluation, DataError> {
    gt.check_detections(detections)?;
    let mut category_ids: Vec<i64> = gt.categories().iter().map(|c| c.id).collect();
    category_ids.sort_unstable();
    let index: HashMap<i64, usize> = category_ids
        .iter()
        .enumerate()
        .map(|(k, &id)| (id, k))
        .collect();
    // Per category, the images with a ground truth or a detection of it,
    // by ascending id; each list in the files' order.
    type Pair<'a> = (Vec<&'a Annotation>, Vec<&'a Detection>);
    let mut pairs: Vec<BTreeMap<i64, Pair<'_>>> = vec![BTreeMap::new(); category_ids.len()];
    for a in gt.annotations() {
        if let Some(&k) = index.get(&a.category_id) {
            pairs[k].entry(a.image_id).or_default().0.push(a);
        }
    }
    for d in detections {
        if let Some(&k) = index.get(&d.category_id) {
            pairs[k].entry(d.image_id).or_default().1.push(d);
        }
    }
    let iou_thresholds = params::iou_thresholds();
    let recall_thresholds = params::recall_thresholds();
    let per_category: Vec<Vec<image::ImageEval>> = pairs
        .iter()
        .map(|images| {
            images
                .values()
                .map(|(g, d)| image::evaluate(g, d, &iou_thresholds))
                .collect()
        })
        .collect();
    let acc = accumulate::accumulate(&per_category, &iou_thresholds, &recall_thresholds);
    let stats = summary::summarize(
        &acc,
        category_ids.len(),
        &iou_thresholds,
        recall_thresholds.len(),
    );
    Ok(Evaluation {
        category_ids,
        iou_thresholds,
        recall_thresholds,
        acc,
        stats,
    })
}

impl Evaluation {
    /// The twelve numbers of `summarize`.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The twelve lines pycocotools' `summarize` prints.
    pub fn lines(&self) -> Vec<String> {
        self.stats.lines(&self.iou_thresholds)
    }

    /// The category ids, ascending: the `k` of [`Self::precision`].
    pub fn category_ids(&self) -> &[i64] {
        &self.category_ids
    }

    /// The IoU thresholds: the `t` of [`Self::precision`].
    pub fn iou_thresholds(&self) -> &[f64] {
        &self.iou_thresholds
    }

    /// The recall thresholds: the `r` of [`Self::precision`].
    pub fn recall_thresholds(&self) -> &[f64] {
        &self.recall_thresholds
    }

    /// `precision[t, r, k, a, m]` (IoU threshold, recall threshold, category,
    /// area range, index into [`MAX_DETS`]); -1 where the category has no
    /// ground truth that counts; `None` out of bounds.
    pub fn precision(&self, t: usize, r: usize, k: usize, a: usize, m: usize) -> Option<f64> {
        let (nt, nr, nk, na, nm) = self.dims();
        if t >= nt || r >= nr || k >= nk || a >= na || m >= nm {
            return None;
        }
        self.acc
            .precision
            .get((((t * nr + r) * nk + k) * na + a) * nm + m)
            .copied()
    }

    /// `recall[t, k, a, m]`, as [`Self::precision`].
    pub fn recall(&self, t: usize, k: usize, a: usize, m: usize) -> Option<f64> {
        let (nt, _, nk, na, nm) = self.dims();
        if t >= nt || k >= nk || a >= na || m >= nm {
            return None;
        }
        self.acc
            .recall
            .get(((t * nk + k) * na + a) * nm + m)
            .copied()
    }

    fn dims(&self) -> (usize, usize, usize, usize, usize) {
        (
            self.iou_thresholds.len(),
            self.recall_thresholds.len(),
            self.category_ids.len(),
            AREA_RANGES.len(),
            MAX_DETS.len(),
        )
    }
}

#[cfg(test)]
mod tests;
