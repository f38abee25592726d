//! PASCAL VOC detection sets: the VOCdevkit layout, XML annotations and
//! `ImageSets/Main/*.txt` splits.
//!
//! A VOC folder (`VOCdevkit/VOC2007`) holds `Annotations/ID.xml`,
//! `JPEGImages/ID.jpg` and `ImageSets/Main/SPLIT.txt` (one image id per
//! line). An annotation's boxes are 1-based and inclusive: `xmin = 1` is the
//! first pixel column and `xmax` the last one covered, so the continuous box
//! is `[xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1]` (the
//! conversion py-faster-rcnn and torchvision's detection references make).
//! `difficult` objects are kept and flagged: VOC's evaluation neither counts
//! nor penalises them.
//!
//! Malformed XML, a missing or non-numeric field, a box outside its image,
//! a class the set does not know, or a missing image is an error naming the
//! file, the line and the element.

use std::path::{Path, PathBuf};

use super::letterbox::{self, DEFAULT_SIDE, Photo};
use super::{DetSplit, DetectionSet, Object};
use crate::DataError;
use crate::registry::LoadOptions;

/// The 20 PASCAL VOC classes, in the devkit's order (the class index).
pub const VOC_CLASSES: [&str; 20] = [
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
];

/// One object of an annotation, in the photo's continuous pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct VocObject {
    /// The class name as written.
    pub name: String,
    /// `[x, y, w, h]`.
    pub bbox: [f64; 4],
    /// VOC's `difficult` flag.
    pub difficult: bool,
}

/// One parsed annotation file.
#[derive(Debug, Clone, PartialEq)]
pub struct VocAnnotation {
    /// `filename` (the image in `JPEGImages/`), if given.
    pub filename: Option<String>,
    /// `size/width` and `size/height`.
    pub size: (usize, usize),
    /// Every `object`.
    pub objects: Vec<VocObject>,
}

/// Parses one annotation file's text; `path` names it in errors.
pub fn parse_annotation(path: &Path, text: &str) -> Result<VocAnnotation, DataError> {
    let err = |line: Option<usize>, element: &str, message: String| DataError::Annotation {
        path: path.to_path_buf(),
        line,
        element: element.to_owned(),
        message,
    };
    let doc = roxmltree::Document::parse(text).map_err(|e| {
        err(
            Some(e.pos().row as usize),
            "xml",
            format!("not well-formed XML: {e}"),
        )
    })?;
    let line = |n: roxmltree::Node<'_, '_>| Some(doc.text_pos_at(n.range().start).row as usize);
    let root = doc.root_element();
    if !root.has_tag_name("annotation") {
        return Err(err(
            line(root),
            root.tag_name().name(),
            "the root element must be <annotation>".into(),
        ));
    }
    let number = |n: roxmltree::Node<'_, '_>, tag: &str, at: &str| -> Result<f64, DataError> {
        let c = child(n, tag).ok_or_else(|| err(line(n), at, format!("missing <{tag}>")))?;
        let t = c.text().unwrap_or("").trim();
        t.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| {
                err(
                    line(c),
                    &format!("{at}/{tag}"),
                    format!("`{t}` is not a number"),
                )
            })
    };
    let size = child(root, "size")
        .ok_or_else(|| err(line(root), "annotation", "missing <size>".into()))?;
    let (w, h) = (
        number(size, "width", "size")?,
        number(size, "height", "size")?,
    );
    if !(w >= 1.0 && h >= 1.0 && w.fract() == 0.0 && h.fract() == 0.0) {
        return Err(err(
            line(size),
            "size",
            format!("{w}x{h} is not an image size"),
        ));
    }
    let mut objects = Vec::new();
    for (k, o) in root
        .children()
        .filter(|c| c.has_tag_name("object"))
        .enumerate()
    {
        let at = format!("object[{k}]");
        let name = child(o, "name")
            .and_then(|n| n.text())
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| err(line(o), &at, "missing <name>".into()))?
            .to_owned();
        let difficult = match child(o, "difficult") {
            None => false,
            Some(_) => number(o, "difficult", &at)? != 0.0,
        };
        let b = child(o, "bndbox").ok_or_else(|| err(line(o), &at, "missing <bndbox>".into()))?;
        let bat = format!("{at}/bndbox");
        let [x0, y0, x1, y1] = [
            number(b, "xmin", &bat)?,
            number(b, "ymin", &bat)?,
            number(b, "xmax", &bat)?,
            number(b, "ymax", &bat)?,
        ];
        if x0 < 1.0 || y0 < 1.0 || x1 > w || y1 > h || x1 < x0 || y1 < y0 {
            return Err(err(
                line(b),
                &bat,
                format!(
                    "box ({x0}, {y0}) to ({x1}, {y1}) is outside its {w}x{h} image \
                     (VOC boxes are 1-based and inclusive)"
                ),
            ));
        }
        objects.push(VocObject {
            name,
            bbox: [x0 - 1.0, y0 - 1.0, x1 - x0 + 1.0, y1 - y0 + 1.0],
            difficult,
        });
    }
    let filename = child(root, "filename")
        .and_then(|n| n.text())
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    Ok(VocAnnotation {
        filename,
        size: (w as usize, h as usize),
        objects,
    })
}

/// The first child element of `n` called `tag`.
fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, tag: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| c.has_tag_name(tag))
}

/// The image ids of `ImageSets/Main/SPLIT.txt`.
pub fn split_ids(root: &Path, split: &str) -> Result<Vec<String>, DataError> {
    let path = root.join("ImageSets/Main").join(format!("{split}.txt"));
    let text = std::fs::read_to_string(&path).map_err(|source| DataError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.split_whitespace().next().unwrap_or(l).to_owned())
        .collect())
}

/// Whether `dir` looks like a VOC folder.
pub fn present(dir: &Path) -> bool {
    dir.join("Annotations").is_dir() && dir.join("ImageSets/Main").is_dir()
}

/// Reads split `split` of the VOC folder `root`: annotations parsed, class
/// names mapped through `classes`, photos fitted to `shape`; at most
/// `limit` images (the split file's first ones).
pub fn read_split(
    root: &Path,
    split: &str,
    classes: &[String],
    shape: (usize, usize, usize),
    limit: Option<usize>,
) -> Result<DetSplit, DataError> {
    let mut ids = split_ids(root, split)?;
    if let Some(n) = limit {
        ids.truncate(n);
    }
    let mut photos = Vec::with_capacity(ids.len());
    let mut all = Vec::with_capacity(ids.len());
    for (k, id) in ids.iter().enumerate() {
        let path = annotation_path(root, id);
        let ann = read_annotation(&path)?;
        let mut objects = Vec::with_capacity(ann.objects.len());
        for (j, o) in ann.objects.iter().enumerate() {
            let class =
                classes
                    .iter()
                    .position(|c| *c == o.name)
                    .ok_or_else(|| DataError::Annotation {
                        path: path.clone(),
                        line: None,
                        element: format!("object[{j}]/name"),
                        message: format!(
                            "unknown class `{}`; the set's classes: {}",
                            o.name,
                            classes.join(", ")
                        ),
                    })?;
            objects.push((class as u32, o.bbox, o.difficult));
        }
        let file = root
            .join("JPEGImages")
            .join(ann.filename.clone().unwrap_or_else(|| format!("{id}.jpg")));
        photos.push(Photo {
            id: k as i64 + 1,
            file,
            claimed: Some(ann.size),
        });
        all.push(objects);
    }
    let (images, info) = letterbox::read_all(&photos, shape, &root.join("Annotations"))?;
    let objects = info
        .iter()
        .zip(all)
        .map(|(i, objs)| {
            objs.into_iter()
                .map(|(class, bbox, difficult)| Object {
                    bbox: i.to_stored(bbox),
                    class,
                    crowd: false,
                    difficult,
                    area: bbox[2] * bbox[3],
                })
                .collect()
        })
        .collect();
    Ok(DetSplit {
        images,
        objects,
        info,
    })
}

fn annotation_path(root: &Path, id: &str) -> PathBuf {
    root.join("Annotations").join(format!("{id}.xml"))
}

fn read_annotation(path: &Path) -> Result<VocAnnotation, DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_annotation(path, &text)
}

/// The classes of a VOC folder: VOC's 20 when every name in `splits` is
/// one of them, else the names found there, sorted (a custom set in VOC's
/// format, such as a set of tree crowns).
pub fn classes_of(root: &Path, splits: &[&str]) -> Result<Vec<String>, DataError> {
    let mut names: Vec<String> = Vec::new();
    for split in splits {
        for id in split_ids(root, split)? {
            for o in read_annotation(&annotation_path(root, &id))?.objects {
                if !names.contains(&o.name) {
                    names.push(o.name);
                }
            }
        }
    }
    if names.iter().all(|n| VOC_CLASSES.contains(&n.as_str())) {
        return Ok(VOC_CLASSES.iter().map(|s| (*s).to_owned()).collect());
    }
    names.sort();
    Ok(names)
}

/// Loads a VOC folder as a detection set named `name`: `train_split` and
/// `test_split` of `ImageSets/Main`, classes from `classes` (or found with
/// [`classes_of`]), photos fitted to `opts.image_size` (default
/// [`DEFAULT_SIDE`] square), RGB.
pub fn load(
    name: &str,
    root: &Path,
    (train_split, test_split): (&str, &str),
    classes: Option<Vec<String>>,
    opts: &LoadOptions,
) -> Result<DetectionSet, DataError> {
    let classes = match classes {
        Some(c) => c,
        None => classes_of(root, &[train_split, test_split])?,
    };
    let (h, w) = opts.image_size.unwrap_or((DEFAULT_SIDE, DEFAULT_SIDE));
    let shape = (3, h, w);
    let train = read_split(root, train_split, &classes, shape, opts.limit_train)?;
    let test = read_split(root, test_split, &classes, shape, opts.limit_test)?;
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
