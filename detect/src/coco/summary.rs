//! The twelve numbers of pycocotools' `summarize` for boxes.

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::accumulate::Accumulated;
use super::params::{AREA_RANGES, MAX_DETS};
use crate::numeric;

/// What one of the twelve numbers averages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatSpec {
    /// Its name: `AP`, `AP50`, ..., `AR_large`.
    pub name: &'static str,
    /// Its key in JSON: `ap`, `ap50`, ..., `ar_large`.
    pub key: &'static str,
    /// Precision (AP) or recall (AR).
    pub precision: bool,
    /// One IoU threshold, or all ten.
    pub iou: Option<f64>,
    /// Index into [`super::AREA_RANGES`].
    pub area: usize,
    /// Detections kept per image and category.
    pub max_dets: usize,
}

const fn spec(
    name: &'static str,
    key: &'static str,
    precision: bool,
    iou: Option<f64>,
    area: usize,
    max_dets: usize,
) -> StatSpec {
    StatSpec {
        name,
        key,
        precision,
        iou,
        area,
        max_dets,
    }
}

/// The twelve numbers in pycocotools' order (`_summarizeDets`).
pub const STATS: [StatSpec; 12] = [
    spec("AP", "ap", true, None, 0, 100),
    spec("AP50", "ap50", true, Some(0.5), 0, 100),
    spec("AP75", "ap75", true, Some(0.75), 0, 100),
    spec("AP_small", "ap_small", true, None, 1, 100),
    spec("AP_medium", "ap_medium", true, None, 2, 100),
    spec("AP_large", "ap_large", true, None, 3, 100),
    spec("AR1", "ar1", false, None, 0, 1),
    spec("AR10", "ar10", false, None, 0, 10),
    spec("AR100", "ar100", false, None, 0, 100),
    spec("AR_small", "ar_small", false, None, 1, 100),
    spec("AR_medium", "ar_medium", false, None, 2, 100),
    spec("AR_large", "ar_large", false, None, 3, 100),
];

/// pycocotools' `stats`: the twelve numbers in the order of [`STATS`]. A
/// number with nothing to average (no category with ground truth in its
/// area range) is -1, as pycocotools gives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// The values, in the order of [`STATS`].
    pub values: [f64; 12],
}

impl Stats {
    /// The value named `name` (`AP`, ...) or keyed `key` (`ap`, ...).
    pub fn get(&self, name_or_key: &str) -> Option<f64> {
        STATS
            .iter()
            .position(|s| s.name == name_or_key || s.key == name_or_key)
            .map(|i| self.values[i])
    }

    /// Each number with what it averages.
    pub fn iter(&self) -> impl Iterator<Item = (&'static StatSpec, f64)> + '_ {
        STATS.iter().zip(self.values.iter().copied())
    }

    /// The twelve lines pycocotools' `summarize` prints, e.g.
    /// ` Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.123`.
    pub fn lines(&self, iou_thresholds: &[f64]) -> Vec<String> {
        let all = match (iou_thresholds.first(), iou_thresholds.last()) {
            (Some(first), Some(last)) => format!("{first:.2}:{last:.2}"),
            _ => String::new(),
        };
        self.iter()
            .map(|(s, v)| {
                let (title, kind) = if s.precision {
                    ("Average Precision", "(AP)")
                } else {
                    ("Average Recall", "(AR)")
                };
                let iou = s.iou.map_or_else(|| all.clone(), |t| format!("{t:.2}"));
                format!(
                    " {title:<18} {kind} @[ IoU={iou:<9} | area={:>6} | maxDets={:>3} ] = {v:.3}",
                    AREA_RANGES[s.area].label, s.max_dets
                )
            })
            .collect()
    }
}

/// JSON: a map from each key (`ap`, ..., `ar_large`) to its value, in
/// pycocotools' order.
impl Serialize for Stats {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(STATS.len()))?;
        for (s, v) in self.iter() {
            map.serialize_entry(s.key, &v)?;
        }
        map.end()
    }
}

/// pycocotools' `_summarize`: the mean of the selected entries that are not
/// -1, taken in numpy's C order (threshold, then recall threshold, then
/// category) with numpy's summation; -1 when none is left.
pub(super) fn summarize(
    acc: &Accumulated,
    n_categories: usize,
    iou_thresholds: &[f64],
    n_recall: usize,
) -> Stats {
    let (nk, na, nm) = (n_categories, AREA_RANGES.len(), MAX_DETS.len());
    let mut values = [-1.0; 12];
    let mut selected = Vec::new();
    for (value, s) in values.iter_mut().zip(&STATS) {
        let Some(m) = MAX_DETS.iter().position(|&d| d == s.max_dets) else {
            continue;
        };
        let a = s.area;
        selected.clear();
        // np.where(iouThr == p.iouThrs): an exact comparison.
        for (t, &threshold) in iou_thresholds.iter().enumerate() {
            if s.iou.is_some_and(|want| want != threshold) {
                continue;
            }
            if s.precision {
                for r in 0..n_recall {
                    for k in 0..nk {
                        selected
                            .push(acc.precision[(((t * n_recall + r) * nk + k) * na + a) * nm + m]);
                    }
                }
            } else {
                for k in 0..nk {
                    selected.push(acc.recall[((t * nk + k) * na + a) * nm + m]);
                }
            }
        }
        selected.retain(|&v| v > -1.0);
        *value = numeric::mean(&selected).unwrap_or(-1.0);
    }
    Stats { values }
}
