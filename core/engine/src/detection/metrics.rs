//! A detector's scores on a test split: COCO's twelve box metrics, the
//! PASCAL VOC APs by both rules, and the precision-recall curve, all from
//! `acbench-detect` (which computes them as pycocotools and the VOC devkit
//! do).

use acbench_detect::coco::{self, MAX_DETS};
use acbench_detect::voc::{self, VocRule};
use acbench_detect::{Detection, GroundTruth};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// What one evaluation of a detector measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionMetrics {
    /// COCO's twelve numbers as `(key, value)` in pycocotools' order
    /// (`ap`, `ap50`, `ap75`, `ap_small`, ..., `ar_large`); -1 where
    /// pycocotools gives -1 (no ground truth in that area range).
    pub coco: Vec<(String, f64)>,
    /// VOC AP50 per class by the VOC2007 11-point rule, `(class, AP)`, for
    /// the classes with ground truth that is not difficult.
    pub voc07: Vec<(String, f64)>,
    /// The same by the VOC2010+ all-point rule.
    pub voc12: Vec<(String, f64)>,
    /// Mean of `voc07` (0 when no class has ground truth).
    pub voc07_map: f64,
    /// Mean of `voc12` (0 when no class has ground truth).
    pub voc12_map: f64,
    /// Precision at COCO's 101 recall points at IoU 0.5 (all areas, 100
    /// detections per image), the mean over the classes that have ground
    /// truth: the precision-recall curve behind AP50.
    pub pr_curve: Vec<f64>,
    /// Detections scored (after non-maximum suppression).
    pub detections: usize,
}

impl DetectionMetrics {
    /// The COCO number keyed `key` (`ap50`).
    pub fn coco(&self, key: &str) -> Option<f64> {
        self.coco.iter().find(|(k, _)| k == key).map(|&(_, v)| v)
    }

    /// Scores `detections` against `gt`.
    pub fn evaluate(gt: &GroundTruth, detections: &[Detection]) -> Result<Self> {
        let eval = |e: acbench_detect::DataError| Error::Internal(format!("evaluation: {e}"));
        let coco_eval = coco::evaluate(gt, detections).map_err(eval)?;
        let coco = coco_eval
            .stats()
            .iter()
            .map(|(spec, v)| (spec.key.to_owned(), v))
            .collect();
        let aps = |rule| -> Result<(Vec<(String, f64)>, f64)> {
            let r = voc::evaluate(gt, detections, rule).map_err(eval)?;
            let per_class = r
                .classes
                .iter()
                .filter_map(|c| Some((c.name.clone(), c.ap?)))
                .collect();
            Ok((per_class, r.mean.unwrap_or(0.0)))
        };
        let (voc07, voc07_map) = aps(VocRule::ElevenPoint)?;
        let (voc12, voc12_map) = aps(VocRule::AllPoint)?;
        Ok(Self {
            coco,
            voc07,
            voc12,
            voc07_map,
            voc12_map,
            pr_curve: pr_curve(&coco_eval),
            detections: detections.len(),
        })
    }
}

/// Mean precision over the classes with ground truth, at each recall
/// point, at IoU 0.5 (the first threshold), all areas, 100 detections.
fn pr_curve(eval: &coco::Evaluation) -> Vec<f64> {
    let m = MAX_DETS.len() - 1;
    let classes = eval.category_ids().len();
    (0..eval.recall_thresholds().len())
        .map(|r| {
            let values: Vec<f64> = (0..classes)
                .filter_map(|k| eval.precision(0, r, k, 0, m))
                .filter(|&p| p >= 0.0)
                .collect();
            acbench_detect::numeric::mean(&values).unwrap_or(0.0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use acbench_detect::{Annotation, BBox, Category};

    fn gt() -> GroundTruth {
        let ann = |id, image_id, category_id, x| Annotation {
            id,
            image_id,
            category_id,
            bbox: BBox::new(x, 10.0, 20.0, 20.0),
            area: 400.0,
            iscrowd: false,
            difficult: false,
        };
        GroundTruth::new(
            vec![1, 2],
            vec![
                Category {
                    id: 1,
                    name: "a".into(),
                },
                Category {
                    id: 2,
                    name: "b".into(),
                },
            ],
            vec![ann(1, 1, 1, 0.0), ann(2, 2, 1, 40.0)],
        )
        .expect("valid ground truth")
    }

    #[test]
    fn perfect_detections_score_one_and_classes_without_truth_are_left_out() -> Result<()> {
        let dts = [(1, 0.0), (2, 40.0)].map(|(image_id, x)| Detection {
            image_id,
            category_id: 1,
            bbox: BBox::new(x, 10.0, 20.0, 20.0),
            score: 0.9,
        });
        let m = DetectionMetrics::evaluate(&gt(), &dts)?;
        assert_eq!(m.coco.len(), 12);
        assert_eq!(m.coco("ap50"), Some(1.0));
        assert_eq!(m.coco("ap"), Some(1.0));
        // The devkit adds p / 11 eleven times: 1 up to rounding.
        assert_eq!(m.voc07.len(), 1);
        assert_eq!(m.voc07[0].0, "a");
        assert!((m.voc07[0].1 - 1.0).abs() < 1e-12, "{:?}", m.voc07);
        assert_eq!(m.voc12_map, 1.0);
        assert_eq!(m.pr_curve.len(), 101);
        assert!(m.pr_curve.iter().all(|&p| p == 1.0));
        Ok(())
    }

    #[test]
    fn no_detections_score_zero() -> Result<()> {
        let m = DetectionMetrics::evaluate(&gt(), &[])?;
        assert_eq!(m.coco("ap50"), Some(0.0));
        assert_eq!(m.voc07_map, 0.0);
        assert!(m.pr_curve.iter().all(|&p| p == 0.0));
        Ok(())
    }
}
