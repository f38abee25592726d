//! Readers of COCO's ground-truth files (`instances_*.json`) and results
//! files (a list of `{image_id, category_id, bbox, score}`).
//!
//! A file is split into its elements first (as raw JSON text), and each
//! element is then read on its own, so that an error names the element:
//! `annotations[17].bbox: expected 4 numbers`. Keys the evaluation does not
//! use (`segmentation`, `info`, `licenses`, ...) are skipped unread.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::boxes::BBox;
use crate::data::{Annotation, Category, Detection, GroundTruth};
use crate::error::{DataError, ReadError};

/// Reads a COCO ground-truth file: `images` (each with its `id`),
/// `annotations` (`id`, `image_id`, `category_id`, `bbox`, `area`, and
/// optionally `iscrowd` (0 or 1, default 0) and `difficult` or `ignore` for
/// PASCAL VOC) and `categories` (`id`, optionally `name`).
pub fn read_ground_truth(path: &Path) -> Result<GroundTruth, ReadError> {
    let text = read(path)?;
    parse_ground_truth(&text).map_err(|e| e.in_file(path))
}

/// Reads a COCO results file, checked against the ground truth it is for
/// (see [`GroundTruth::check_detections`]). An empty list is valid: no
/// detections (pycocotools cannot load one).
pub fn read_detections(path: &Path, gt: &GroundTruth) -> Result<Vec<Detection>, ReadError> {
    let text = read(path)?;
    parse_detections(&text, gt).map_err(|e| e.in_file(path))
}

/// What went wrong in a text, before it is known to come from a file.
#[derive(Debug)]
pub enum ParseError {
    /// Not JSON.
    Json(serde_json::Error),
    /// A bad element.
    Data(DataError),
}

impl ParseError {
    fn in_file(self, path: &Path) -> ReadError {
        let path = path.to_path_buf();
        match self {
            Self::Json(source) => ReadError::Json { path, source },
            Self::Data(source) => ReadError::Data { path, source },
        }
    }
}

impl From<DataError> for ParseError {
    fn from(e: DataError) -> Self {
        Self::Data(e)
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Json(e) => write!(f, "not valid JSON: {e}"),
            Self::Data(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ParseError {}

fn read(path: &Path) -> Result<String, ReadError> {
    std::fs::read_to_string(path).map_err(|source| ReadError::Io {
        path: PathBuf::from(path),
        source,
    })
}

/// The top level of a ground-truth file; everything else in it is skipped.
#[derive(Deserialize)]
struct RawGroundTruth<'a> {
    #[serde(borrow)]
    images: Option<&'a RawValue>,
    #[serde(borrow)]
    annotations: Option<&'a RawValue>,
    #[serde(borrow)]
    categories: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawImage {
    id: Option<Value>,
}

#[derive(Deserialize)]
struct RawCategory {
    id: Option<Value>,
    name: Option<Value>,
}

#[derive(Deserialize)]
struct RawAnnotation {
    id: Option<Value>,
    image_id: Option<Value>,
    category_id: Option<Value>,
    bbox: Option<Value>,
    area: Option<Value>,
    iscrowd: Option<Value>,
    difficult: Option<Value>,
    ignore: Option<Value>,
}

#[derive(Deserialize)]
struct RawDetection {
    image_id: Option<Value>,
    category_id: Option<Value>,
    bbox: Option<Value>,
    score: Option<Value>,
}

/// [`read_ground_truth`] on a text.
pub fn parse_ground_truth(text: &str) -> Result<GroundTruth, ParseError> {
    // Any JSON at all first, so that a syntax error is reported as one.
    let top: &RawValue = serde_json::from_str(text).map_err(ParseError::Json)?;
    let raw: RawGroundTruth<'_> = read_object(
        "(top level)",
        top,
        "expected an object with images, annotations and categories",
    )?;
    let images = elements("images", raw.images)?
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let at = format!("images[{i}]");
            let r: RawImage = object(&at, e)?;
            int(&at, "id", r.id.as_ref())
        })
        .collect::<Result<Vec<_>, DataError>>()?;
    let categories = elements("categories", raw.categories)?
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let at = format!("categories[{i}]");
            let r: RawCategory = object(&at, e)?;
            let id = int(&at, "id", r.id.as_ref())?;
            let name = match r.name {
                None => id.to_string(),
                Some(Value::String(s)) => s,
                Some(other) => {
                    return Err(DataError::new(
                        format!("{at}.name"),
                        format!("expected a string, found {}", brief(&other)),
                    ));
                }
            };
            Ok(Category { id, name })
        })
        .collect::<Result<Vec<_>, DataError>>()?;
    let annotations = elements("annotations", raw.annotations)?
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let at = format!("annotations[{i}]");
            let r: RawAnnotation = object(&at, e)?;
            let difficult = match &r.difficult {
                Some(_) => flag(&at, "difficult", r.difficult.as_ref())?,
                None => flag(&at, "ignore", r.ignore.as_ref())?,
            };
            Ok(Annotation {
                id: int(&at, "id", r.id.as_ref())?,
                image_id: int(&at, "image_id", r.image_id.as_ref())?,
                category_id: int(&at, "category_id", r.category_id.as_ref())?,
                bbox: bbox(&at, r.bbox.as_ref())?,
                area: number(&at, "area", r.area.as_ref())?,
                iscrowd: flag(&at, "iscrowd", r.iscrowd.as_ref())?,
                difficult,
            })
        })
        .collect::<Result<Vec<_>, DataError>>()?;
    Ok(GroundTruth::new(images, categories, annotations)?)
}

/// [`read_detections`] on a text.
pub fn parse_detections(text: &str, gt: &GroundTruth) -> Result<Vec<Detection>, ParseError> {
    let top: &RawValue = serde_json::from_str(text).map_err(ParseError::Json)?;
    let list: Vec<&RawValue> = serde_json::from_str(top.get()).map_err(|_| {
        DataError::new(
            "(top level)",
            "expected a list of detections {image_id, category_id, bbox, score}",
        )
    })?;
    let detections = list
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let at = format!("[{i}]");
            let r: RawDetection = object(&at, e)?;
            Ok(Detection {
                image_id: int(&at, "image_id", r.image_id.as_ref())?,
                category_id: int(&at, "category_id", r.category_id.as_ref())?,
                bbox: bbox(&at, r.bbox.as_ref())?,
                score: number(&at, "score", r.score.as_ref())?,
            })
        })
        .collect::<Result<Vec<_>, DataError>>()?;
    gt.check_detections(&detections)?;
    Ok(detections)
}

/// The elements of the top-level list `key`.
fn elements<'a>(key: &str, raw: Option<&'a RawValue>) -> Result<Vec<&'a RawValue>, DataError> {
    let raw = raw.ok_or_else(|| DataError::new(key, "missing"))?;
    serde_json::from_str(raw.get()).map_err(|_| DataError::new(key, "expected a list"))
}

/// One element read as the object `T` (all of whose fields are optional
/// values, so only a non-object or a repeated key fails).
fn object<'de, T: Deserialize<'de>>(at: &str, raw: &'de RawValue) -> Result<T, DataError> {
    read_object(at, raw, "expected an object")
}

/// [`object`] with `not_object` as the message for a value of another type.
fn read_object<'de, T: Deserialize<'de>>(
    at: &str,
    raw: &'de RawValue,
    not_object: &str,
) -> Result<T, DataError> {
    serde_json::from_str(raw.get()).map_err(|e| {
        if raw.get().trim_start().starts_with('{') {
            // A key given twice: serde's message names it.
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
            DataError::new(at, msg)
        } else {
            DataError::new(at, not_object)
        }
    })
}

fn missing(at: &str, field: &str) -> DataError {
    DataError::new(format!("{at}.{field}"), "missing")
}

/// A short rendering of a JSON value for messages.
fn brief(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        let head: String = s.chars().take(37).collect();
        format!("{head}...")
    } else {
        s
    }
}

fn int(at: &str, field: &str, v: Option<&Value>) -> Result<i64, DataError> {
    let v = v.ok_or_else(|| missing(at, field))?;
    v.as_i64().ok_or_else(|| {
        DataError::new(
            format!("{at}.{field}"),
            format!("expected an integer, found {}", brief(v)),
        )
    })
}

fn number(at: &str, field: &str, v: Option<&Value>) -> Result<f64, DataError> {
    let v = v.ok_or_else(|| missing(at, field))?;
    v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
        DataError::new(
            format!("{at}.{field}"),
            format!("expected a number, found {}", brief(v)),
        )
    })
}

/// 0 or 1 (or false or true); absent is 0.
fn flag(at: &str, field: &str, v: Option<&Value>) -> Result<bool, DataError> {
    match v {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => match v.as_u64() {
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            _ => Err(DataError::new(
                format!("{at}.{field}"),
                format!("expected 0 or 1, found {}", brief(v)),
            )),
        },
    }
}

fn bbox(at: &str, v: Option<&Value>) -> Result<BBox, DataError> {
    let v = v.ok_or_else(|| missing(at, "bbox"))?;
    let bad = || {
        DataError::new(
            format!("{at}.bbox"),
            format!("expected 4 numbers [x, y, w, h], found {}", brief(v)),
        )
    };
    let items = v.as_array().ok_or_else(bad)?;
    if items.len() != 4 {
        return Err(bad());
    }
    let mut xs = [0.0; 4];
    for (x, item) in xs.iter_mut().zip(items) {
        *x = item.as_f64().filter(|x| x.is_finite()).ok_or_else(bad)?;
    }
    Ok(BBox::from(xs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GT: &str = r#"{
        "info": {"year": 2017},
        "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4], "area": 10.5,
             "iscrowd": 0, "segmentation": [[1, 2, 3, 4, 5, 6]]},
            {"id": 2, "image_id": 2, "category_id": 3, "bbox": [0.5, 0, 10, 10], "area": 100,
             "iscrowd": 1, "segmentation": {"counts": "abc", "size": [5, 5]}},
            {"id": 3, "image_id": 2, "category_id": 3, "bbox": [0, 0, 1, 1], "area": 1,
             "ignore": 1}
        ],
        "categories": [{"id": 3, "name": "cat", "supercategory": "animal"}]
    }"#;

    fn gt() -> GroundTruth {
        parse_ground_truth(GT).expect("valid ground truth")
    }

    fn gt_error(text: &str) -> String {
        parse_ground_truth(text).expect_err("an error").to_string()
    }

    #[test]
    fn reads_a_ground_truth() {
        let gt = gt();
        assert_eq!(gt.images(), [1, 2]);
        assert_eq!(gt.categories()[0].name, "cat");
        let a = &gt.annotations()[0];
        assert_eq!(a.bbox, BBox::new(1.0, 2.0, 3.0, 4.0));
        assert_eq!(a.area, 10.5);
        assert!(!a.iscrowd && !a.difficult);
        assert!(gt.annotations()[1].iscrowd);
        // No iscrowd key: not a crowd; `ignore` marks it difficult for VOC.
        assert!(!gt.annotations()[2].iscrowd);
        assert!(gt.annotations()[2].difficult);
    }

    #[test]
    fn names_the_element_of_a_bad_field() {
        let bad = GT.replace("\"bbox\": [0.5, 0, 10, 10]", "\"bbox\": [0.5, 0, 10]");
        assert_eq!(
            gt_error(&bad),
            "annotations[1].bbox: expected 4 numbers [x, y, w, h], found [0.5,0,10]"
        );
        let bad = GT.replace("\"area\": 10.5", "\"area\": \"big\"");
        assert_eq!(
            gt_error(&bad),
            "annotations[0].area: expected a number, found \"big\""
        );
        let bad = GT.replace("\"id\": 3, \"image_id\": 2", "\"image_id\": 2");
        assert_eq!(gt_error(&bad), "annotations[2].id: missing");
        let bad = GT.replace("\"iscrowd\": 1", "\"iscrowd\": 2");
        assert_eq!(
            gt_error(&bad),
            "annotations[1].iscrowd: expected 0 or 1, found 2"
        );
        let bad = GT.replace("{\"id\": 2}", "7");
        assert_eq!(gt_error(&bad), "images[1]: expected an object");
        let bad = GT.replace("{\"id\": 2}", "{\"id\": 2.5}");
        assert_eq!(
            gt_error(&bad),
            "images[1].id: expected an integer, found 2.5"
        );
        let bad = GT.replace("\"name\": \"cat\"", "\"name\": 4");
        assert_eq!(
            gt_error(&bad),
            "categories[0].name: expected a string, found 4"
        );
        let bad = GT.replace("\"area\": 1,", "\"area\": 1, \"area\": 2,");
        assert!(
            gt_error(&bad).starts_with("annotations[2]: duplicate field `area`"),
            "{}",
            gt_error(&bad)
        );
        let bad = GT.replace("\"images\"", "\"imagez\"");
        assert_eq!(gt_error(&bad), "images: missing");
        let bad = GT
            .replace("\"categories\": [", "\"categories\": {\"a\": [")
            .replace("\"animal\"}]", "\"animal\"}]}");
        assert_eq!(gt_error(&bad), "categories: expected a list");
        assert_eq!(
            gt_error("[1, 2]"),
            "(top level): expected an object with images, annotations and categories"
        );
        // The checks of GroundTruth::new, with the same element names.
        let bad = GT.replace("\"image_id\": 1,", "\"image_id\": 5,");
        assert_eq!(
            gt_error(&bad),
            "annotations[0].image_id: 5 is not in images"
        );
    }

    #[test]
    fn syntax_errors_keep_their_position() {
        let e = parse_ground_truth("{\"images\": [}").expect_err("syntax");
        assert!(matches!(e, ParseError::Json(_)));
        assert!(e.to_string().contains("line 1 column"), "{e}");
    }

    #[test]
    fn reads_detections() {
        let gt = gt();
        let d = parse_detections(
            r#"[{"image_id": 2, "category_id": 3, "bbox": [1, 1, 2, 2], "score": 0.5, "area": 99}]"#,
            &gt,
        )
        .expect("valid");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].bbox.area(), 4.0);
        assert!(parse_detections("[]", &gt).expect("empty").is_empty());
    }

    #[test]
    fn names_the_bad_detection() {
        let gt = gt();
        let err = |text: &str| {
            parse_detections(text, &gt)
                .expect_err("an error")
                .to_string()
        };
        let ok = r#"{"image_id": 2, "category_id": 3, "bbox": [1, 1, 2, 2], "score": 0.5}"#;
        assert_eq!(
            err(&format!("[{ok}, {}]", ok.replace("0.5", "null"))),
            "[1].score: missing"
        );
        assert_eq!(
            err(&format!(
                "[{ok}, {}]",
                ok.replace("[1, 1, 2, 2]", "\"box\"")
            )),
            "[1].bbox: expected 4 numbers [x, y, w, h], found \"box\""
        );
        assert_eq!(
            err(&format!(
                "[{ok}, {}]",
                ok.replace("\"image_id\": 2", "\"image_id\": 4")
            )),
            "[1].image_id: 4 is not an image of the ground truth"
        );
        assert_eq!(
            err(&format!(
                "[{}]",
                ok.replace("\"category_id\": 3", "\"category_id\": 0")
            )),
            "[0].category_id: 0 is not a category of the ground truth"
        );
        assert_eq!(
            err(&format!("{{\"a\": {ok}}}")),
            "(top level): expected a list of detections {image_id, category_id, bbox, score}"
        );
        assert!(matches!(
            parse_detections("[{", &gt),
            Err(ParseError::Json(_))
        ));
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("instances_x.json");
        std::fs::write(&path, GT.replace("[1, 2, 3, 4]", "[1, 2, 3, 4, 5]")).expect("write");
        let e = read_ground_truth(&path).expect_err("bad bbox").to_string();
        assert!(e.starts_with(&path.display().to_string()), "{e}");
        assert!(
            e.ends_with("annotations[0].bbox: expected 4 numbers [x, y, w, h], found [1,2,3,4,5]"),
            "{e}"
        );
        let missing = dir.path().join("none.json");
        let e = read_ground_truth(&missing)
            .expect_err("missing")
            .to_string();
        assert!(
            e.starts_with("cannot read ") && e.contains("none.json"),
            "{e}"
        );
        std::fs::write(&path, "{").expect("write");
        let e = read_ground_truth(&path).expect_err("syntax").to_string();
        assert!(e.contains("not valid JSON"), "{e}");
    }
}
