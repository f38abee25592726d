//! A seeded detection set built from real images: Fashion-MNIST items
//! pasted on blank canvases.
//!
//! Each 96x96 grey canvas gets 1 to 4 items. An item is a Fashion-MNIST
//! image scaled (bilinear, by the `image` crate) to a square of 12 to 48
//! pixels, placed at a random position entirely inside the canvas and
//! pasted with `max` blending. Its box is tight around its non-zero pixels
//! after scaling, and its class is the item's label. A placement whose box
//! overlaps an earlier box of the canvas with IoU above [`MAX_IOU`] is
//! drawn again, up to [`PLACEMENT_TRIES`] times; then the item is left out
//! (so a canvas may hold fewer items than drawn, never none).
//!
//! Training canvases take items from Fashion-MNIST's training split, test
//! canvases from its test split, so no item is in both. Every number is
//! drawn from a ChaCha8 generator seeded with the set's seed, on stream 0
//! for the training split and stream 1 for the test split: the same seed
//! gives the same set, byte for byte, and the test split does not change
//! with the training split's size.

use image::GrayImage;
use image::imageops::{self, FilterType};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{DetSplit, DetectionSet, ImageInfo, Object};
use crate::registry::LoadOptions;
use crate::{DataError, Dataset, Split};

/// The set's registry name.
pub const NAME: &str = "fashion-mnist-boxes";
/// Canvas side in pixels.
pub const CANVAS: usize = 96;
/// Smallest and largest item side in pixels.
pub const ITEM_SIZES: (u32, u32) = (12, 48);
/// Items drawn per canvas (before overlapping ones are left out).
pub const ITEMS: (usize, usize) = (1, 4);
/// Largest IoU between two boxes of one canvas.
pub const MAX_IOU: f64 = 0.3;
/// Placements tried per item.
pub const PLACEMENT_TRIES: usize = 20;
/// Canvases per split when the options set no limit.
pub const DEFAULT_SIZES: (usize, usize) = (6000, 1000);

/// Generates the set from the `fashion-mnist` dataset (found as `opts`
/// says); `opts.limit_train`/`limit_test` give the number of canvases.
pub fn load(opts: &LoadOptions, seed: u64) -> Result<DetectionSet, DataError> {
    let source = crate::load(
        "fashion-mnist",
        &LoadOptions {
            limit_train: None,
            limit_test: None,
            ..opts.clone()
        },
    )?;
    let train = opts.limit_train.unwrap_or(DEFAULT_SIZES.0);
    let test = opts.limit_test.unwrap_or(DEFAULT_SIZES.1);
    generate(&source, train, test, seed)
}

/// Generates `train` and `test` canvases from the items of `source` (grey
/// images of one size).
pub fn generate(
    source: &Dataset,
    train: usize,
    test: usize,
    seed: u64,
) -> Result<DetectionSet, DataError> {
    if source.shape.0 != 1 {
        return Err(DataError::InvalidOption(format!(
            "{NAME} is built from grey images; `{}` has {} channels",
            source.name, source.shape.0
        )));
    }
    Ok(DetectionSet {
        name: NAME.to_owned(),
        classes: source.classes,
        class_names: source.class_names.clone(),
        shape: (1, CANVAS, CANVAS),
        train: split(&source.train, source.shape, train, seed, 0)?,
        test: split(&source.test, source.shape, test, seed, 1)?,
    })
}

fn split(
    items: &Split,
    (_, h, w): (usize, usize, usize),
    canvases: usize,
    seed: u64,
    stream: u64,
) -> Result<DetSplit, DataError> {
    if items.is_empty() {
        return Err(DataError::InvalidOption(format!(
            "{NAME}: the source split has no images"
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let plane = CANVAS * CANVAS;
    let mut out = DetSplit {
        images: vec![0; canvases.checked_mul(plane).ok_or_else(too_many)?],
        objects: Vec::with_capacity(canvases),
        info: Vec::with_capacity(canvases),
    };
    for (i, canvas) in out.images.chunks_exact_mut(plane).enumerate() {
        let mut objects: Vec<Object> = Vec::new();
        let count = rng.random_range(ITEMS.0..=ITEMS.1);
        for _ in 0..count {
            let index = rng.random_range(0..items.len());
            let side = rng.random_range(ITEM_SIZES.0..=ITEM_SIZES.1);
            let pixels = items.image(index, h * w).ok_or_else(too_many)?;
            let item =
                GrayImage::from_raw(w as u32, h as u32, pixels.to_vec()).ok_or_else(too_many)?;
            let item = imageops::resize(&item, side, side, FilterType::Triangle);
            let Some((bx, by, bw, bh)) = tight_box(&item) else {
                continue;
            };
            let max = CANVAS as u32 - side;
            for _ in 0..PLACEMENT_TRIES {
                let (x, y) = (rng.random_range(0..=max), rng.random_range(0..=max));
                let bbox = [(x + bx) as f32, (y + by) as f32, bw as f32, bh as f32];
                if objects.iter().any(|o| iou(&o.bbox, &bbox) > MAX_IOU) {
                    continue;
                }
                paste(canvas, &item, x as usize, y as usize);
                objects.push(Object {
                    bbox,
                    class: items.labels[index],
                    crowd: false,
                    difficult: false,
                    area: f64::from(bw * bh),
                });
                break;
            }
        }
        out.objects.push(objects);
        out.info
            .push(ImageInfo::native(i as i64 + 1, CANVAS, CANVAS));
    }
    Ok(out)
}

fn too_many() -> DataError {
    DataError::InvalidOption(format!("{NAME}: the requested size does not fit in memory"))
}

/// `(x, y, w, h)` of the smallest rectangle holding every non-zero pixel,
/// `None` for a blank image.
fn tight_box(img: &GrayImage) -> Option<(u32, u32, u32, u32)> {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in img.enumerate_pixels() {
        if p.0[0] > 0 {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    (x0 != u32::MAX).then(|| (x0, y0, x1 - x0 + 1, y1 - y0 + 1))
}

fn paste(canvas: &mut [u8], item: &GrayImage, x: usize, y: usize) {
    let side = item.width() as usize;
    for (row, values) in item.as_raw().chunks_exact(side).enumerate() {
        let start = (y + row) * CANVAS + x;
        for (c, &v) in canvas[start..start + side].iter_mut().zip(values) {
            *c = (*c).max(v);
        }
    }
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f64 {
    let inter = |a0: f32, al: f32, b0: f32, bl: f32| {
        f64::from(((a0 + al).min(b0 + bl) - a0.max(b0)).max(0.0))
    };
    let i = inter(a[0], a[2], b[0], b[2]) * inter(a[1], a[3], b[1], b[3]);
    let union = f64::from(a[2] * a[3]) + f64::from(b[2] * b[3]) - i;
    if union > 0.0 { i / union } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small source set: 20 items of 28x28, each a filled rectangle whose
    /// size depends on the index, so that boxes are checkable.
    fn source() -> Dataset {
        let (h, w) = (28, 28);
        let mut split = Split::default();
        for i in 0..20usize {
            let mut img = vec![0u8; h * w];
            let (x0, y0, side) = (2 + i % 5, 3 + i % 7, 10 + i % 9);
            for y in y0..y0 + side {
                for x in x0..x0 + side {
                    img[y * w + x] = 200;
                }
            }
            split.images.extend(img);
            split.labels.push((i % 10) as u32);
        }
        Dataset {
            name: "src".into(),
            classes: 10,
            shape: (1, h, w),
            class_names: (0..10).map(|c| c.to_string()).collect(),
            train: split.clone(),
            test: split,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_set_and_another_seed_another() -> Result<(), DataError> {
        let src = source();
        let a = generate(&src, 30, 10, 7)?;
        let b = generate(&src, 30, 10, 7)?;
        assert_eq!(a.train, b.train);
        assert_eq!(a.test, b.test);
        let c = generate(&src, 30, 10, 8)?;
        assert_ne!(a.train.images, c.train.images);
        // The test split does not depend on the training split's size.
        assert_eq!(generate(&src, 5, 10, 7)?.test, a.test);
        Ok(())
    }

    #[test]
    fn boxes_are_tight_inside_the_canvas_and_overlap_little() -> Result<(), DataError> {
        let set = generate(&source(), 50, 5, 1)?;
        assert_eq!(set.shape, (1, 96, 96));
        assert_eq!(set.train.len(), 50);
        let plane = CANVAS * CANVAS;
        for (img, objects) in set.train.images.chunks(plane).zip(&set.train.objects) {
            assert!((1..=4).contains(&objects.len()));
            for (k, o) in objects.iter().enumerate() {
                let [x, y, w, h] = o.bbox.map(|v| v as usize);
                assert!(x + w <= CANVAS && y + h <= CANVAS);
                assert!((1..=48).contains(&w) && (1..=48).contains(&h));
                // Tight: each border row and column holds a lit pixel.
                let lit = |px: usize, py: usize| img[py * CANVAS + px] > 0;
                assert!((x..x + w).any(|px| lit(px, y)));
                assert!((x..x + w).any(|px| lit(px, y + h - 1)));
                assert!((y..y + h).any(|py| lit(x, py)));
                assert!((y..y + h).any(|py| lit(x + w - 1, py)));
                assert_eq!(o.area, (w * h) as f64);
                for other in &objects[..k] {
                    assert!(iou(&o.bbox, &other.bbox) <= MAX_IOU);
                }
            }
        }
        Ok(())
    }

    #[test]
    fn the_ground_truth_numbers_images_categories_and_boxes_from_one() -> Result<(), DataError> {
        let set = generate(&source(), 3, 4, 2)?;
        let gt = set.test.ground_truth(&set.class_names)?;
        assert_eq!(gt.images(), &[1, 2, 3, 4]);
        assert_eq!(gt.categories().len(), 10);
        assert_eq!(gt.categories()[0].id, 1);
        assert_eq!(gt.annotations().len(), set.test.boxes());
        assert_eq!(gt.annotations()[0].id, 1);
        Ok(())
    }

    #[test]
    fn stored_and_original_coordinates_round_trip() {
        let info = ImageInfo {
            scale: 0.5,
            pad_x: 3.0,
            pad_y: 0.0,
            ..ImageInfo::native(1, 200, 100)
        };
        let stored = info.to_stored([10.0, 20.0, 40.0, 60.0]);
        assert_eq!(stored, [8.0, 10.0, 20.0, 30.0]);
        assert_eq!(info.to_original(stored), [10.0, 20.0, 40.0, 60.0]);
    }

    #[test]
    fn real_fashion_mnist_canvases_when_the_data_is_installed() -> Result<(), DataError> {
        let opts = LoadOptions {
            limit_train: Some(200),
            limit_test: Some(50),
            ..LoadOptions::default()
        };
        let set = match load(&opts, 0) {
            Ok(set) => set,
            Err(DataError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        assert_eq!(set.train.len(), 200);
        assert_eq!(set.classes, 10);
        let mean = set.train.boxes() as f64 / 200.0;
        assert!((1.5..=4.0).contains(&mean), "{mean} boxes per canvas");
        Ok(())
    }
}
