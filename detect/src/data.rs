//! Ground truth and detections as COCO's files hold them, checked once so
//! that the evaluators never meet a dangling id or a non-finite number.

use std::collections::HashMap;

use crate::boxes::BBox;
use crate::error::DataError;

/// A category (class) of the ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Category {
    /// Its id, as annotations and detections name it.
    pub id: i64,
    /// Its name (`categories[i].name`; the id in decimal when absent).
    pub name: String,
}

/// One ground-truth object.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    /// Its id, unique in the file. Any value works, 0 included: pycocotools
    /// counts a detection matched to an annotation with id 0 as a false
    /// positive (it stores matches as ids, 0 meaning none), a quirk not
    /// reproduced here.
    pub id: i64,
    /// The image it is in.
    pub image_id: i64,
    /// Its category.
    pub category_id: i64,
    /// Its box.
    pub bbox: BBox,
    /// Its `area` field: COCO's area ranges (small, medium, large) test this,
    /// not `bbox`'s `w * h` (for COCO's own files it is the segmentation's
    /// area).
    pub area: f64,
    /// A crowd region (`iscrowd`): never a positive; any number of
    /// detections may match it, and those that do are ignored.
    pub iscrowd: bool,
    /// Difficult for PASCAL VOC (`difficult`, else `ignore`, as VOC files
    /// converted to COCO's format mark it): neither a positive nor a false
    /// positive there. COCO evaluation does not read it: pycocotools
    /// overwrites an annotation's `ignore` with its `iscrowd`.
    pub difficult: bool,
}

/// One detection, as a results file lists it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// The image it is in.
    pub image_id: i64,
    /// The category it claims.
    pub category_id: i64,
    /// Its box; its area for the area ranges is `bbox.area()`, as
    /// pycocotools' `loadRes` sets it.
    pub bbox: BBox,
    /// Its confidence: higher first; equal scores keep the list's order.
    pub score: f64,
}

/// A checked ground truth: unique image, category and annotation ids,
/// annotations only on known images and categories, finite numbers.
#[derive(Debug, Clone)]
pub struct GroundTruth {
    images: Vec<i64>,
    categories: Vec<Category>,
    annotations: Vec<Annotation>,
}

impl GroundTruth {
    /// Checks and keeps the three lists. Errors name the element as the
    /// file does, e.g. `annotations[17].image_id: 9 is not in images`.
    pub fn new(
        images: Vec<i64>,
        categories: Vec<Category>,
        annotations: Vec<Annotation>,
    ) -> Result<Self, DataError> {
        unique("images", images.iter().copied())?;
        unique("categories", categories.iter().map(|c| c.id))?;
        unique("annotations", annotations.iter().map(|a| a.id))?;
        let image_set: std::collections::HashSet<i64> = images.iter().copied().collect();
        let cat_set: std::collections::HashSet<i64> = categories.iter().map(|c| c.id).collect();
        for (i, a) in annotations.iter().enumerate() {
            let at = |field: &str| format!("annotations[{i}].{field}");
            if !image_set.contains(&a.image_id) {
                return Err(DataError::new(
                    at("image_id"),
                    format!("{} is not in images", a.image_id),
                ));
            }
            if !cat_set.contains(&a.category_id) {
                return Err(DataError::new(
                    at("category_id"),
                    format!("{} is not in categories", a.category_id),
                ));
            }
            if !a.bbox.is_finite() {
                return Err(DataError::new(at("bbox"), "expected 4 finite numbers"));
            }
            if !a.area.is_finite() {
                return Err(DataError::new(at("area"), "expected a finite number"));
            }
        }
        Ok(Self {
            images,
            categories,
            annotations,
        })
    }

    /// The image ids, in the file's order.
    pub fn images(&self) -> &[i64] {
        &self.images
    }

    /// The categories, in the file's order.
    pub fn categories(&self) -> &[Category] {
        &self.categories
    }

    /// The annotations, in the file's order.
    pub fn annotations(&self) -> &[Annotation] {
        &self.annotations
    }

    /// Checks detections against this ground truth: each on a known image
    /// (pycocotools refuses others too) and a known category (pycocotools
    /// silently drops others; a results file naming a category the ground
    /// truth lacks is almost always off by one, so it is an error here),
    /// with finite numbers. Errors name the element as `[i].field`.
    pub fn check_detections(&self, detections: &[Detection]) -> Result<(), DataError> {
        let image_set: std::collections::HashSet<i64> = self.images.iter().copied().collect();
        let cat_set: std::collections::HashSet<i64> =
            self.categories.iter().map(|c| c.id).collect();
        for (i, d) in detections.iter().enumerate() {
            let at = |field: &str| format!("[{i}].{field}");
            if !image_set.contains(&d.image_id) {
                return Err(DataError::new(
                    at("image_id"),
                    format!("{} is not an image of the ground truth", d.image_id),
                ));
            }
            if !cat_set.contains(&d.category_id) {
                return Err(DataError::new(
                    at("category_id"),
                    format!("{} is not a category of the ground truth", d.category_id),
                ));
            }
            if !d.bbox.is_finite() {
                return Err(DataError::new(at("bbox"), "expected 4 finite numbers"));
            }
            if !d.score.is_finite() {
                return Err(DataError::new(at("score"), "expected a finite number"));
            }
        }
        Ok(())
    }
}

/// The first id of `what` that appears twice, as an error.
fn unique(what: &str, ids: impl Iterator<Item = i64>) -> Result<(), DataError> {
    let mut seen = HashMap::new();
    for (i, id) in ids.enumerate() {
        if let Some(first) = seen.insert(id, i) {
            return Err(DataError::new(
                format!("{what}[{i}].id"),
                format!("{id} is also the id of {what}[{first}]"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(id: i64) -> Category {
        Category {
            id,
            name: format!("c{id}"),
        }
    }

    fn ann(id: i64, image_id: i64, category_id: i64) -> Annotation {
        Annotation {
            id,
            image_id,
            category_id,
            bbox: BBox::new(0.0, 0.0, 2.0, 2.0),
            area: 4.0,
            iscrowd: false,
            difficult: false,
        }
    }

    #[test]
    fn accepts_a_consistent_ground_truth() {
        let gt = GroundTruth::new(vec![3, 1], vec![cat(1)], vec![ann(1, 3, 1), ann(2, 1, 1)])
            .expect("valid");
        assert_eq!(gt.images(), [3, 1]);
        assert_eq!(gt.annotations().len(), 2);
    }

    #[test]
    fn names_the_bad_element() {
        let e = GroundTruth::new(vec![1, 2, 1], vec![cat(1)], vec![]).expect_err("dup image");
        assert_eq!(e.to_string(), "images[2].id: 1 is also the id of images[0]");
        let e = GroundTruth::new(vec![1], vec![cat(1)], vec![ann(5, 1, 1), ann(5, 1, 1)])
            .expect_err("dup annotation");
        assert_eq!(e.at, "annotations[1].id");
        let e = GroundTruth::new(vec![1], vec![cat(1)], vec![ann(1, 1, 1), ann(2, 9, 1)])
            .expect_err("unknown image");
        assert_eq!(e.to_string(), "annotations[1].image_id: 9 is not in images");
        let e = GroundTruth::new(vec![1], vec![cat(1)], vec![ann(1, 1, 4)])
            .expect_err("unknown category");
        assert_eq!(e.at, "annotations[0].category_id");
        let mut a = ann(1, 1, 1);
        a.bbox.w = f64::NAN;
        let e = GroundTruth::new(vec![1], vec![cat(1)], vec![a]).expect_err("NaN box");
        assert_eq!(e.at, "annotations[0].bbox");
        let mut a = ann(1, 1, 1);
        a.area = f64::INFINITY;
        let e = GroundTruth::new(vec![1], vec![cat(1)], vec![a]).expect_err("infinite area");
        assert_eq!(e.at, "annotations[0].area");
    }

    #[test]
    fn checks_detections() {
        let gt = GroundTruth::new(vec![1], vec![cat(1)], vec![]).expect("valid");
        let d = |image_id, category_id, score| Detection {
            image_id,
            category_id,
            bbox: BBox::new(0.0, 0.0, 1.0, 1.0),
            score,
        };
        gt.check_detections(&[d(1, 1, 0.5)]).expect("valid");
        let e = gt
            .check_detections(&[d(1, 1, 0.5), d(2, 1, 0.5)])
            .expect_err("unknown image");
        assert_eq!(
            e.to_string(),
            "[1].image_id: 2 is not an image of the ground truth"
        );
        let e = gt
            .check_detections(&[d(1, 0, 0.5)])
            .expect_err("category 0");
        assert_eq!(e.at, "[0].category_id");
        let e = gt.check_detections(&[d(1, 1, f64::NAN)]).expect_err("NaN");
        assert_eq!(e.at, "[0].score");
    }
}
