//! pycocotools' default parameters for boxes (`Params.setDetParams`).

use crate::numeric::linspace;

/// The detections kept per image and category, ascending; the last one
/// bounds the matching.
pub const MAX_DETS: [usize; 3] = [1, 10, 100];

/// An area range of the ground truth's `area` field (both ends included).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AreaRange {
    /// `all`, `small`, `medium` or `large`, as pycocotools names it.
    pub label: &'static str,
    /// Smallest area in the range.
    pub lo: f64,
    /// Largest area in the range.
    pub hi: f64,
}

impl AreaRange {
    /// Whether `area` is outside the range (pycocotools'
    /// `area < lo or area > hi`).
    pub fn excludes(&self, area: f64) -> bool {
        area < self.lo || area > self.hi
    }
}

/// all, small, medium, large: `[0, 1e5²]`, `[0, 32²]`, `[32², 96²]`,
/// `[96², 1e5²]`. An area of exactly 32² is both small and medium.
pub const AREA_RANGES: [AreaRange; 4] = [
    AreaRange {
        label: "all",
        lo: 0.0,
        hi: 1e10,
    },
    AreaRange {
        label: "small",
        lo: 0.0,
        hi: 1024.0,
    },
    AreaRange {
        label: "medium",
        lo: 1024.0,
        hi: 9216.0,
    },
    AreaRange {
        label: "large",
        lo: 9216.0,
        hi: 1e10,
    },
];

/// The ten IoU thresholds `np.linspace(.5, .95, 10)`, bit for bit.
pub fn iou_thresholds() -> Vec<f64> {
    // pycocotools: int(np.round((0.95 - .5) / .05)) + 1 = 10.
    linspace(0.5, 0.95, 10)
}

/// The 101 recall thresholds `np.linspace(0, 1, 101)`, bit for bit.
pub fn recall_thresholds() -> Vec<f64> {
    linspace(0.0, 1.0, 101)
}

/// The ceiling of every IoU threshold: pycocotools matches at
/// `min(t, 1 - 1e-10)`.
pub const IOU_CEILING: f64 = 1.0 - 1e-10;
