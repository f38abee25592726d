//! Detection datasets: images with boxes.
//!
//! Every set is stored at the network's input size ([`DetectionSet::shape`]);
//! each image keeps its original size and how it was fitted
//! ([`ImageInfo`]), so that detections are scored in the original image's
//! pixels, as COCO and VOC score them. Boxes are `[x, y, w, h]` in
//! continuous pixel coordinates: the top-left pixel covers `[0, 1) x [0, 1)`.
//!
//! - [`synthetic`]: seeded canvases of real Fashion-MNIST items, for this
//!   machine and for tests;
//! - [`voc`]: PASCAL VOC folders (`voc2007`, `voc2012`, or `voc:PATH`);
//! - [`coco`]: COCO folders (`coco2017`, or `coco:PATH`);
//! - [`letterbox`]: photos fitted to the stored shape;
//! - [`load`]: a set by name.

pub mod coco;
pub mod letterbox;
pub mod synthetic;
pub mod voc;

use std::path::PathBuf;

use acbench_detect::{Annotation, BBox, Category, GroundTruth};

use crate::DataError;
use crate::registry::LoadOptions;

/// A detection dataset: train and test splits of images of one shape.
#[derive(Debug, Clone)]
pub struct DetectionSet {
    /// Registry name (`fashion-mnist-boxes`, `voc2007`, ...).
    pub name: String,
    /// Object classes (not counting background).
    pub classes: usize,
    /// The classes' names; their order is the class index.
    pub class_names: Vec<String>,
    /// Shape of every stored image (channels, height, width): the
    /// network's input.
    pub shape: (usize, usize, usize),
    /// Training split.
    pub train: DetSplit,
    /// Test split.
    pub test: DetSplit,
}

/// One split: images of the set's shape, their objects and where they came
/// from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DetSplit {
    /// Pixel values, image after image, CHW.
    pub images: Vec<u8>,
    /// The objects of each image.
    pub objects: Vec<Vec<Object>>,
    /// Each image's id and original geometry.
    pub info: Vec<ImageInfo>,
}

/// One annotated object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Object {
    /// `[x, y, w, h]` in the stored image's pixels.
    pub bbox: [f32; 4],
    /// Class index.
    pub class: u32,
    /// A crowd region (COCO's `iscrowd`).
    pub crowd: bool,
    /// A difficult object (PASCAL VOC).
    pub difficult: bool,
    /// Area in the original image's pixels, for COCO's area ranges (COCO's
    /// own `area` field where the set has one, else the box's).
    pub area: f64,
}

/// An image's identity and how it was fitted to the stored shape: a stored
/// coordinate is `original * scale + pad`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInfo {
    /// Image id, from 1 (COCO's own ids for COCO).
    pub id: i64,
    /// The file it was read from, for generated sets `None`.
    pub file: Option<PathBuf>,
    /// Original width in pixels.
    pub width: usize,
    /// Original height in pixels.
    pub height: usize,
    /// Scale from original to stored pixels.
    pub scale: f64,
    /// Horizontal padding added on the left, in stored pixels.
    pub pad_x: f64,
    /// Vertical padding added on top, in stored pixels.
    pub pad_y: f64,
}

impl ImageInfo {
    /// An image stored at its own size.
    pub fn native(id: i64, width: usize, height: usize) -> Self {
        Self {
            id,
            file: None,
            width,
            height,
            scale: 1.0,
            pad_x: 0.0,
            pad_y: 0.0,
        }
    }

    /// A box in stored pixels, in the original image's pixels.
    pub fn to_original(&self, [x, y, w, h]: [f32; 4]) -> [f64; 4] {
        [
            (f64::from(x) - self.pad_x) / self.scale,
            (f64::from(y) - self.pad_y) / self.scale,
            f64::from(w) / self.scale,
            f64::from(h) / self.scale,
        ]
    }

    /// A box in original pixels, in the stored image's pixels.
    pub fn to_stored(&self, [x, y, w, h]: [f64; 4]) -> [f32; 4] {
        [
            (x * self.scale + self.pad_x) as f32,
            (y * self.scale + self.pad_y) as f32,
            (w * self.scale) as f32,
            (h * self.scale) as f32,
        ]
    }
}

impl DetSplit {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.info.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.info.is_empty()
    }

    /// Boxes in the split.
    pub fn boxes(&self) -> usize {
        self.objects.iter().map(Vec::len).sum()
    }

    /// Keeps the first `n` images of `chw` bytes each.
    pub fn truncate(&mut self, n: usize, chw: usize) {
        self.info.truncate(n);
        self.objects.truncate(n);
        self.images.truncate(self.info.len().saturating_mul(chw));
    }

    /// The split's ground truth in the original images' pixels, as COCO's
    /// evaluation reads it: category id = class + 1, annotation ids from 1
    /// (id 0 confuses pycocotools' matching), crowd and difficult flags
    /// kept (VOC's evaluation leaves difficult boxes out).
    pub fn ground_truth(&self, class_names: &[String]) -> Result<GroundTruth, DataError> {
        let categories = class_names
            .iter()
            .enumerate()
            .map(|(i, name)| Category {
                id: i as i64 + 1,
                name: name.clone(),
            })
            .collect();
        let mut annotations = Vec::with_capacity(self.boxes());
        for (info, objects) in self.info.iter().zip(&self.objects) {
            for o in objects {
                let [x, y, w, h] = info.to_original(o.bbox);
                annotations.push(Annotation {
                    id: annotations.len() as i64 + 1,
                    image_id: info.id,
                    category_id: i64::from(o.class) + 1,
                    bbox: BBox::new(x, y, w, h),
                    area: o.area,
                    iscrowd: o.crowd,
                    difficult: o.difficult,
                });
            }
        }
        let images = self.info.iter().map(|i| i.id).collect();
        GroundTruth::new(images, categories, annotations)
            .map_err(|e| DataError::InvalidOption(format!("ground truth: {e}")))
    }
}

impl DetectionSet {
    /// Bytes per stored image.
    pub fn image_len(&self) -> usize {
        self.shape.0 * self.shape.1 * self.shape.2
    }
}

/// The detection sets acbench knows, with one line each.
pub const NAMES: &[(&str, &str)] = &[
    (
        synthetic::NAME,
        "Fashion-MNIST items pasted on 96x96 canvases (seeded; built from fashion-mnist)",
    ),
    (
        "voc2007",
        "PASCAL VOC 2007 (trainval / test), 20 classes, VOCdevkit/VOC2007 under a data root",
    ),
    (
        "voc2012",
        "PASCAL VOC 2012 (train / val), 20 classes, VOCdevkit/VOC2012 under a data root",
    ),
    (
        "coco2017",
        "COCO 2017 (train2017 / val2017), 80 classes, coco/ under a data root",
    ),
];

/// The prefix of a VOC folder given by path (`voc:PATH`).
pub const VOC_PREFIX: &str = "voc:";
/// The prefix of a COCO folder given by path (`coco:PATH`).
pub const COCO_PREFIX: &str = "coco:";

/// Whether `name` is a detection set.
pub fn is_detection(name: &str) -> bool {
    NAMES.iter().any(|(n, _)| *n == name)
        || name.starts_with(VOC_PREFIX)
        || name.starts_with(COCO_PREFIX)
}

/// Classes and stored shape of the set `name` without loading it (`None`
/// for a folder given by path, whose classes are in its files);
/// `image_size` is the stored size photos are fitted to.
pub fn geometry(
    name: &str,
    image_size: Option<(usize, usize)>,
) -> Option<(usize, (usize, usize, usize))> {
    let (h, w) = image_size.unwrap_or((letterbox::DEFAULT_SIDE, letterbox::DEFAULT_SIDE));
    match name {
        synthetic::NAME => Some((10, (1, synthetic::CANVAS, synthetic::CANVAS))),
        "voc2007" | "voc2012" => Some((voc::VOC_CLASSES.len(), (3, h, w))),
        "coco2017" => Some((80, (3, h, w))),
        _ => None,
    }
}

/// Images in the (training, test) splits of the set `name` as it is
/// distributed (a generated set's default sizes), for cost estimates.
pub fn split_sizes(name: &str) -> Option<(usize, usize)> {
    match name {
        synthetic::NAME => Some(synthetic::DEFAULT_SIZES),
        "voc2007" => Some((5011, 4952)),
        "voc2012" => Some((5717, 5823)),
        "coco2017" => Some((118_287, 5000)),
        _ => None,
    }
}

/// Whether `name` is generated, so that its limits are its sizes rather
/// than caps.
pub fn is_generated(name: &str) -> bool {
    name == synthetic::NAME
}

/// Whether a folder holds a dataset's files.
type Present = fn(&std::path::Path) -> bool;

/// The registered detection sets' folders under a data root, and what
/// such a folder must hold.
const FOLDERS: [(&str, &str, Present); 3] = [
    ("voc2007", "VOCdevkit/VOC2007", voc::present),
    ("voc2012", "VOCdevkit/VOC2012", voc::present),
    ("coco2017", "coco", coco::present),
];

/// The registered detection sets stored on disk (not the generated one),
/// with where (whether) each was found, for `acbench data list`.
pub fn list(opts: &LoadOptions) -> Vec<crate::DatasetStatus> {
    FOLDERS
        .iter()
        .map(|&(name, sub, present)| crate::DatasetStatus {
            name,
            description: NAMES
                .iter()
                .find(|(n, _)| *n == name)
                .map_or("", |(_, d)| d),
            found_at: locate(name, sub, present, opts).ok(),
            fetchable: crate::fetch::source(name).is_ok(),
        })
        .collect()
}

/// The folder of the registered set `name` under the first data root that
/// has it.
fn folder(name: &str, opts: &LoadOptions) -> Result<PathBuf, DataError> {
    let (_, sub, present) =
        FOLDERS
            .iter()
            .find(|(n, _, _)| *n == name)
            .ok_or_else(|| DataError::UnknownDataset {
                name: name.to_owned(),
                known: NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
            })?;
    locate(name, sub, *present, opts)
}

/// The registered folder of `name` (`VOCdevkit/VOC2007`, `coco`) under the
/// first data root that has it.
fn locate(
    name: &str,
    sub: &str,
    present: fn(&std::path::Path) -> bool,
    opts: &LoadOptions,
) -> Result<PathBuf, DataError> {
    let looked: Vec<PathBuf> = crate::registry::search_roots(opts)
        .into_iter()
        .map(|r| r.join(sub))
        .collect();
    looked
        .iter()
        .find(|d| present(d))
        .cloned()
        .ok_or_else(|| DataError::NotFound {
            name: name.to_owned(),
            looked,
            hint: format!(
                "run `acbench data fetch {name}`, or place it as DIR/{sub} and pass --data-dir DIR"
            ),
        })
}

/// Loads the detection set `name`; `limit_train`/`limit_test` of `opts`
/// cap (for generated sets: give) the number of images, and `seed` picks
/// a generated set.
pub fn load(name: &str, opts: &LoadOptions, seed: u64) -> Result<DetectionSet, DataError> {
    for (what, limit) in [
        ("--limit-train", opts.limit_train),
        ("--limit-test", opts.limit_test),
    ] {
        if limit == Some(0) {
            return Err(DataError::InvalidOption(format!(
                "{what} must be at least 1"
            )));
        }
    }
    if let Some(path) = name.strip_prefix(VOC_PREFIX) {
        let root = std::path::Path::new(path);
        let splits = if root.join("ImageSets/Main/test.txt").is_file() {
            ("trainval", "test")
        } else {
            ("train", "val")
        };
        return voc::load(name, root, splits, None, opts);
    }
    if let Some(path) = name.strip_prefix(COCO_PREFIX) {
        return coco::load(
            name,
            std::path::Path::new(path),
            ("train2017", "val2017"),
            opts,
        );
    }
    let voc_classes = || Some(voc::VOC_CLASSES.iter().map(|c| (*c).to_owned()).collect());
    match name {
        synthetic::NAME => synthetic::load(opts, seed),
        "voc2007" => {
            let root = folder(name, opts)?;
            voc::load(name, &root, ("trainval", "test"), voc_classes(), opts)
        }
        "voc2012" => {
            let root = folder(name, opts)?;
            voc::load(name, &root, ("train", "val"), voc_classes(), opts)
        }
        "coco2017" => {
            let root = folder(name, opts)?;
            coco::load(name, &root, ("train2017", "val2017"), opts)
        }
        _ => Err(DataError::UnknownDataset {
            name: name.to_owned(),
            known: NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
        }),
    }
}
