//! Precision and recall over a category's images: pycocotools' `accumulate`.

use super::image::ImageEval;
use super::params::{AREA_RANGES, MAX_DETS};
use crate::numeric::argsort_descending;

/// pycocotools' `precision[T, R, K, A, M]` and `recall[T, K, A, M]`, flat in
/// C order, -1 where a category has nothing to measure.
#[derive(Debug, Clone)]
pub(super) struct Accumulated {
    pub precision: Vec<f64>,
    pub recall: Vec<f64>,
}

/// Accumulates `per_category[k]`: the evaluated images of category `k`, in
/// ascending image id.
pub(super) fn accumulate(
    per_category: &[Vec<ImageEval>],
    iou_thresholds: &[f64],
    recall_thresholds: &[f64],
) -> Accumulated {
    let (nt, nr, nk, na, nm) = (
        iou_thresholds.len(),
        recall_thresholds.len(),
        per_category.len(),
        AREA_RANGES.len(),
        MAX_DETS.len(),
    );
    let mut precision = vec![-1.0; nt * nr * nk * na * nm];
    let mut recall = vec![-1.0; nt * nk * na * nm];
    let mut rc = Vec::new();
    let mut pr = Vec::new();
    for (k, images) in per_category.iter().enumerate() {
        if images.is_empty() {
            continue;
        }
        for a in 0..na {
            let positives: usize = images.iter().map(|e| e.areas[a].positives).sum();
            if positives == 0 {
                continue;
            }
            let npig = positives as f64;
            for (m, &max_det) in MAX_DETS.iter().enumerate() {
                // (image, detection) of the kept detections, concatenated in
                // image order, then stably by score.
                let kept: Vec<(usize, usize)> = images
                    .iter()
                    .enumerate()
                    .flat_map(|(i, e)| (0..e.scores.len().min(max_det)).map(move |d| (i, d)))
                    .collect();
                let order = argsort_descending(kept.len(), |j| images[kept[j].0].scores[kept[j].1]);
                for t in 0..nt {
                    rc.clear();
                    pr.clear();
                    let (mut tp, mut fp) = (0.0_f64, 0.0_f64);
                    for &j in &order {
                        let (i, d) = kept[j];
                        let eval = &images[i].areas[a];
                        let n_dt = images[i].scores.len();
                        if !eval.ignored[t * n_dt + d] {
                            if eval.matched[t * n_dt + d] {
                                tp += 1.0;
                            } else {
                                fp += 1.0;
                            }
                        }
                        rc.push(tp / npig);
                        // np.spacing(1) is f64::EPSILON.
                        pr.push(tp / (fp + tp + f64::EPSILON));
                    }
                    let recall_at = ((t * nk + k) * na + a) * nm + m;
                    recall[recall_at] = rc.last().copied().unwrap_or(0.0);
                    // The precision envelope, from the end.
                    for i in (1..pr.len()).rev() {
                        if pr[i] > pr[i - 1] {
                            pr[i - 1] = pr[i];
                        }
                    }
                    for (r, &threshold) in recall_thresholds.iter().enumerate() {
                        // np.searchsorted(rc, threshold, side='left'); a
                        // recall never reached has precision 0.
                        let i = rc.partition_point(|&x| x < threshold);
                        let at = (((t * nr + r) * nk + k) * na + a) * nm + m;
                        precision[at] = pr.get(i).copied().unwrap_or(0.0);
                    }
                }
            }
        }
    }
    Accumulated { precision, recall }
}
