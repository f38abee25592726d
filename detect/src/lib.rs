//! Evaluation of object detections, without candle:
//!
//! - [`boxes`]: `[x, y, w, h]` boxes and their IoU as pycocotools computes
//!   it (with its crowd rule);
//! - [`coco`]: COCO's twelve box metrics (AP, AP50, ..., AR_large) as
//!   pycocotools' `COCOeval` computes them;
//! - [`voc`]: PASCAL VOC AP50 per class, VOC2007's 11-point rule or
//!   VOC2010's all-point rule, difficult boxes left out;
//! - [`nms`](mod@nms): per-class non-maximum suppression, stable and NaN-safe;
//! - [`json`]: readers of COCO's ground-truth and results files whose errors
//!   name the file and the element.
//!
//! ```
//! use acbench_detect::{coco, json};
//! let gt = json::parse_ground_truth(r#"{
//!     "images": [{"id": 1}],
//!     "categories": [{"id": 1, "name": "dog"}],
//!     "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
//!                      "bbox": [10, 10, 50, 50], "area": 2500, "iscrowd": 0}]
//! }"#).unwrap();
//! let dt = json::parse_detections(
//!     r#"[{"image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 40], "score": 0.9}]"#,
//!     &gt,
//! ).unwrap();
//! let eval = coco::evaluate(&gt, &dt).unwrap();
//! // IoU 0.8: matched at the thresholds 0.5 to 0.8, seven of ten.
//! assert!((eval.stats().get("AP").unwrap() - 0.7).abs() < 1e-12);
//! ```

pub mod boxes;
pub mod coco;
pub mod data;
pub mod error;
pub mod json;
pub mod nms;
pub mod numeric;
pub mod voc;

pub use boxes::{BBox, iou};
pub use data::{Annotation, Category, Detection, GroundTruth};
pub use error::{DataError, NmsError, ReadError};
pub use nms::{nms, nms_per_class};
