//! Axis-aligned boxes `[x, y, w, h]` in pixels and their overlap.

use serde::{Deserialize, Serialize};

/// An axis-aligned box as COCO writes it: `[x, y, w, h]`, the top-left
/// corner and the size, in continuous pixel coordinates (a box `[0, 0, 1, 1]`
/// covers exactly the first pixel).
///
/// Nothing here requires the size to be positive: a box with `w <= 0` or
/// `h <= 0` overlaps nothing, as in pycocotools.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "[f64; 4]", into = "[f64; 4]")]
pub struct BBox {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

impl BBox {
    /// The box `[x, y, w, h]`.
    pub const fn new(x: f64, y: f64, w: f64, h: f64) -> Self {
        Self { x, y, w, h }
    }

    /// `w * h`: the area pycocotools' `loadRes` gives a detection (and the
    /// area its IoU uses for both boxes).
    pub fn area(&self) -> f64 {
        self.w * self.h
    }

    /// Whether all four numbers are finite.
    pub fn is_finite(&self) -> bool {
        self.x.is_finite() && self.y.is_finite() && self.w.is_finite() && self.h.is_finite()
    }

    /// The four numbers in COCO's order.
    pub const fn to_array(self) -> [f64; 4] {
        [self.x, self.y, self.w, self.h]
    }
}

impl From<[f64; 4]> for BBox {
    fn from([x, y, w, h]: [f64; 4]) -> Self {
        Self { x, y, w, h }
    }
}

impl From<BBox> for [f64; 4] {
    fn from(b: BBox) -> Self {
        b.to_array()
    }
}

/// Intersection over union of a detection `dt` and a ground-truth box `gt`,
/// operation for operation as pycocotools' `maskUtils.iou` computes it for
/// boxes (`bbIou` in its `maskApi.c`), so that results agree to the bit:
///
/// - the overlap's width is `min(dt.x + dt.w, gt.x + gt.w) - max(dt.x, gt.x)`
///   (likewise its height); no overlap (`<= 0`) gives 0;
/// - the union is `dt.area() + gt.area() - intersection`, except for a crowd
///   ground truth (`crowd`), where it is the detection's area alone: a
///   detection wholly inside a crowd region scores 1 however large the
///   region.
///
/// The result is not symmetric when `crowd` is set. With a NaN coordinate
/// the result means nothing (`min` and `max` pass over NaN, as C's `fmin`
/// and `fmax` do); the evaluators refuse such boxes and [`crate::nms()`]
/// drops them before any overlap is taken.
pub fn iou(dt: &BBox, gt: &BBox, crowd: bool) -> f64 {
    let w = (dt.w + dt.x).min(gt.w + gt.x) - dt.x.max(gt.x);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (dt.h + dt.y).min(gt.h + gt.y) - dt.y.max(gt.y);
    if h <= 0.0 {
        return 0.0;
    }
    let i = w * h;
    let da = dt.area();
    let u = if crowd { da } else { da + gt.area() - i };
    i / u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_a_box_with_itself_is_one() {
        let b = BBox::new(3.5, 7.25, 10.0, 4.0);
        assert_eq!(iou(&b, &b, false), 1.0);
        assert_eq!(iou(&b, &b, true), 1.0);
    }

    #[test]
    fn iou_of_half_overlapping_boxes() {
        let a = BBox::new(0.0, 0.0, 2.0, 2.0);
        let b = BBox::new(1.0, 0.0, 2.0, 2.0);
        // Intersection 2, union 6.
        assert_eq!(iou(&a, &b, false), 2.0 / 6.0);
        assert_eq!(iou(&b, &a, false), 2.0 / 6.0);
    }

    #[test]
    fn touching_and_disjoint_boxes_do_not_overlap() {
        let a = BBox::new(0.0, 0.0, 1.0, 1.0);
        assert_eq!(iou(&a, &BBox::new(1.0, 0.0, 1.0, 1.0), false), 0.0);
        assert_eq!(iou(&a, &BBox::new(0.0, 1.0, 1.0, 1.0), false), 0.0);
        assert_eq!(iou(&a, &BBox::new(5.0, 5.0, 1.0, 1.0), true), 0.0);
    }

    #[test]
    fn crowd_union_is_the_detections_area() {
        let crowd = BBox::new(0.0, 0.0, 100.0, 100.0);
        let inside = BBox::new(10.0, 10.0, 5.0, 5.0);
        assert_eq!(iou(&inside, &crowd, true), 1.0);
        assert_eq!(iou(&inside, &crowd, false), 25.0 / 10_000.0);
        // Half of the detection inside the crowd region.
        let half = BBox::new(-5.0, 0.0, 10.0, 10.0);
        assert_eq!(iou(&half, &crowd, true), 0.5);
    }

    #[test]
    fn degenerate_boxes_overlap_nothing() {
        let a = BBox::new(0.0, 0.0, 10.0, 10.0);
        assert_eq!(iou(&BBox::new(1.0, 1.0, 0.0, 5.0), &a, false), 0.0);
        assert_eq!(iou(&BBox::new(1.0, 1.0, 5.0, -2.0), &a, false), 0.0);
        assert_eq!(iou(&a, &BBox::new(1.0, 1.0, -5.0, 2.0), true), 0.0);
    }

    /// As C's `fmin`/`fmax`: a NaN edge is passed over, not propagated.
    #[test]
    fn nan_edges_are_passed_over_as_in_c() {
        let a = BBox::new(0.0, 0.0, 10.0, 10.0);
        // Overlap [0, 10] x [0, 5]: 50 over 25 + 100 - 50.
        let v = iou(&BBox::new(f64::NAN, 0.0, 5.0, 5.0), &a, false);
        assert_eq!(v, 50.0 / 75.0);
        assert!(!BBox::new(f64::NAN, 0.0, 5.0, 5.0).is_finite());
    }

    #[test]
    fn serde_as_four_numbers() {
        let b: BBox = serde_json::from_str("[1, 2.5, 3, 4]").expect("box");
        assert_eq!(b, BBox::new(1.0, 2.5, 3.0, 4.0));
        assert_eq!(
            serde_json::to_string(&b).expect("json"),
            "[1.0,2.5,3.0,4.0]"
        );
        assert!(serde_json::from_str::<BBox>("[1, 2, 3]").is_err());
    }
}
