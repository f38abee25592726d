//! COCO detection sets: `annotations/instances_SPLIT.json` and the photos
//! in `SPLIT/`.
//!
//! Boxes are COCO's `[x, y, w, h]` in continuous pixels, kept as they are;
//! `iscrowd` regions are kept and flagged (COCO's evaluation matches them
//! without penalty) and each object keeps COCO's own `area` for the area
//! ranges. Categories are mapped to contiguous classes in the order of
//! their ids (COCO's 80 ids run from 1 to 90 with gaps). Image ids are
//! COCO's own.
//!
//! Malformed JSON (with its line and column), an annotation naming an
//! unknown image or category, a box outside its image, or a missing photo
//! is an error naming the file and the element.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::letterbox::{self, DEFAULT_SIDE, Photo};
use super::{DetSplit, DetectionSet, Object};
use crate::DataError;
use crate::registry::LoadOptions;

/// How far past its image's border (in pixels) a box may reach before it is
/// an error; within this it is clipped (rounding in COCO's own files).
pub const BORDER_SLACK: f64 = 1.0;

#[derive(Debug, Deserialize)]
struct InstancesFile {
    images: Vec<ImageEntry>,
    #[serde(default)]
    annotations: Vec<AnnotationEntry>,
    categories: Vec<CategoryEntry>,
}

#[derive(Debug, Deserialize)]
struct ImageEntry {
    id: i64,
    file_name: String,
    width: usize,
    height: usize,
}

#[derive(Debug, Deserialize)]
struct AnnotationEntry {
    id: i64,
    image_id: i64,
    category_id: i64,
    bbox: [f64; 4],
    area: Option<f64>,
    #[serde(default)]
    iscrowd: u8,
}

#[derive(Debug, Deserialize)]
struct CategoryEntry {
    id: i64,
    name: String,
}

/// One image of an instances file with its objects, in the photo's pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoImage {
    /// COCO's image id.
    pub id: i64,
    /// The photo's file name in the split's folder.
    pub file_name: String,
    /// `(width, height)`.
    pub size: (usize, usize),
    /// `(class, [x, y, w, h], iscrowd, area)` per annotation.
    pub objects: Vec<(u32, [f64; 4], bool, f64)>,
}

/// A parsed instances file: the class names (by category id) and the
/// images in the file's order.
#[derive(Debug, Clone, PartialEq)]
pub struct Instances {
    /// Category names, in the order of their ids.
    pub class_names: Vec<String>,
    /// Images with their objects.
    pub images: Vec<CocoImage>,
}

/// Parses an instances file's text; `path` names it in errors.
pub fn parse_instances(path: &Path, text: &str) -> Result<Instances, DataError> {
    let err = |line: Option<usize>, element: String, message: String| DataError::Annotation {
        path: path.to_path_buf(),
        line,
        element,
        message,
    };
    let file: InstancesFile = serde_json::from_str(text).map_err(|e| {
        err(
            Some(e.line()),
            format!("column {}", e.column()),
            format!("not a COCO instances file: {e}"),
        )
    })?;
    let mut cats: Vec<&CategoryEntry> = file.categories.iter().collect();
    cats.sort_by_key(|c| c.id);
    if let Some(w) = cats.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(err(
            None,
            format!("categories (id {})", w[0].id),
            "category id given twice".into(),
        ));
    }
    let class_of: HashMap<i64, u32> = cats
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id, i as u32))
        .collect();
    let mut images: Vec<CocoImage> = Vec::with_capacity(file.images.len());
    let mut index: HashMap<i64, usize> = HashMap::with_capacity(file.images.len());
    for (k, im) in file.images.iter().enumerate() {
        if im.width == 0 || im.height == 0 {
            return Err(err(
                None,
                format!("images[{k}] (id {})", im.id),
                format!("size {}x{} is not an image size", im.width, im.height),
            ));
        }
        if index.insert(im.id, images.len()).is_some() {
            return Err(err(
                None,
                format!("images[{k}] (id {})", im.id),
                "image id given twice".into(),
            ));
        }
        images.push(CocoImage {
            id: im.id,
            file_name: im.file_name.clone(),
            size: (im.width, im.height),
            objects: Vec::new(),
        });
    }
    for (k, a) in file.annotations.iter().enumerate() {
        let at = || format!("annotations[{k}] (id {})", a.id);
        let &i = index
            .get(&a.image_id)
            .ok_or_else(|| err(None, at(), format!("unknown image_id {}", a.image_id)))?;
        let &class = class_of
            .get(&a.category_id)
            .ok_or_else(|| err(None, at(), format!("unknown category_id {}", a.category_id)))?;
        let (w, h) = images[i].size;
        let [x, y, bw, bh] = a.bbox;
        let (w, h) = (w as f64, h as f64);
        let inside = [x, y, bw, bh].iter().all(|v| v.is_finite())
            && bw >= 0.0
            && bh >= 0.0
            && x >= -BORDER_SLACK
            && y >= -BORDER_SLACK
            && x + bw <= w + BORDER_SLACK
            && y + bh <= h + BORDER_SLACK;
        if !inside {
            return Err(err(
                None,
                at(),
                format!(
                    "bbox {:?} is outside its {w}x{h} image {}",
                    a.bbox, a.image_id
                ),
            ));
        }
        let x0 = x.max(0.0);
        let y0 = y.max(0.0);
        let bbox = [x0, y0, (x + bw).min(w) - x0, (y + bh).min(h) - y0];
        let area = a
            .area
            .filter(|v| v.is_finite() && *v >= 0.0)
            .unwrap_or(bw * bh);
        images[i].objects.push((class, bbox, a.iscrowd != 0, area));
    }
    Ok(Instances {
        class_names: cats.iter().map(|c| c.name.clone()).collect(),
        images,
    })
}

/// Whether `dir` looks like a COCO folder (it has `annotations/`).
pub fn present(dir: &Path) -> bool {
    dir.join("annotations").is_dir()
}

/// Reads split `split` of the COCO folder `root`; at most `limit` images
/// (the file's first ones). Returns the split and its class names.
pub fn read_split(
    root: &Path,
    split: &str,
    shape: (usize, usize, usize),
    limit: Option<usize>,
) -> Result<(DetSplit, Vec<String>), DataError> {
    let path = root
        .join("annotations")
        .join(format!("instances_{split}.json"));
    let text = std::fs::read_to_string(&path).map_err(|source| DataError::Io {
        path: path.clone(),
        source,
    })?;
    let mut inst = parse_instances(&path, &text)?;
    if let Some(n) = limit {
        inst.images.truncate(n);
    }
    let photos: Vec<Photo> = inst
        .images
        .iter()
        .map(|im| Photo {
            id: im.id,
            file: root.join(split).join(&im.file_name),
            claimed: Some(im.size),
        })
        .collect();
    let (images, info) = letterbox::read_all(&photos, shape, &path)?;
    let objects = info
        .iter()
        .zip(&inst.images)
        .map(|(i, im)| {
            im.objects
                .iter()
                .map(|&(class, bbox, crowd, area)| Object {
                    bbox: i.to_stored(bbox),
                    class,
                    crowd,
                    difficult: false,
                    area,
                })
                .collect()
        })
        .collect();
    Ok((
        DetSplit {
            images,
            objects,
            info,
        },
        inst.class_names,
    ))
}

/// Loads a COCO folder as a detection set named `name` from its
/// `train_split` and `test_split` (`train2017`, `val2017`), photos fitted to
/// `opts.image_size` (default [`DEFAULT_SIDE`] square), RGB. The two files
/// must name the same categories.
pub fn load(
    name: &str,
    root: &Path,
    (train_split, test_split): (&str, &str),
    opts: &LoadOptions,
) -> Result<DetectionSet, DataError> {
    let (h, w) = opts.image_size.unwrap_or((DEFAULT_SIDE, DEFAULT_SIDE));
    let shape = (3, h, w);
    let (train, classes) = read_split(root, train_split, shape, opts.limit_train)?;
    let (test, test_classes) = read_split(root, test_split, shape, opts.limit_test)?;
    if classes != test_classes {
        return Err(DataError::Annotation {
            path: root
                .join("annotations")
                .join(format!("instances_{test_split}.json")),
            line: None,
            element: "categories".into(),
            message: format!("the categories differ from instances_{train_split}.json's"),
        });
    }
    Ok(DetectionSet {
        name: name.to_owned(),
        classes: classes.len(),
        class_names: classes,
        shape,
        train,
        test,
    })
}

#[cfg(test)]
pub(crate) mod tests;
