//! Image folders in the miniImageNet style: `ROOT/train/<class>/*.png|jpg`
//! and `ROOT/test/<class>/...` (or `ROOT/val/`).
//!
//! Classes are the training split's sub-folders sorted by name. Images are
//! decoded in parallel, converted to RGB (or grey), resized (stretched, not
//! cropped) to the requested size and stored CHW. Examples are ordered round
//! robin over the classes so that any prefix (`--limit-train`) is balanced.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use rayon::prelude::*;

use crate::{DataError, Dataset, Split};

/// Colour channels to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Channels {
    /// Three channels, red, green, blue.
    #[default]
    Rgb,
    /// One luminance channel.
    Gray,
}

impl Channels {
    /// Number of channels.
    pub fn count(self) -> usize {
        match self {
            Self::Rgb => 3,
            Self::Gray => 1,
        }
    }
}

/// How to load an image folder.
#[derive(Debug, Clone, Default)]
pub struct FolderOptions {
    /// Output height and width; `None` takes the size of the first training
    /// image.
    pub size: Option<(usize, usize)>,
    /// Channels to keep.
    pub channels: Channels,
    /// Decode only the first N training examples (round-robin order).
    pub limit_train: Option<usize>,
    /// Decode only the first N test examples.
    pub limit_test: Option<usize>,
    /// The most pixels one image may declare (default
    /// [`DEFAULT_MAX_PIXELS`]); a bigger one is an error naming the file,
    /// found from its header before it is decoded.
    pub max_pixels: Option<u64>,
}

/// Whether `dir` looks like an image-folder dataset (has `train/`).
pub fn present(dir: &Path) -> bool {
    dir.join("train").is_dir()
}

/// Loads an image-folder dataset rooted at `root`.
pub fn load_folder(root: &Path, name: &str, opts: &FolderOptions) -> Result<Dataset, DataError> {
    let train_dir = root.join("train");
    if !train_dir.is_dir() {
        return Err(DataError::Layout {
            path: root.to_path_buf(),
            message: "no train/ folder (expected train/<class>/*.png|jpg and test/<class>/...)"
                .to_owned(),
        });
    }
    let test_dir = ["test", "val"]
        .iter()
        .map(|s| root.join(s))
        .find(|p| p.is_dir())
        .ok_or_else(|| DataError::Layout {
            path: root.to_path_buf(),
            message: "no test/ or val/ folder next to train/".to_owned(),
        })?;

    let classes = subfolders(&train_dir)?;
    if classes.is_empty() {
        return Err(DataError::Layout {
            path: train_dir,
            message: "no class folders".to_owned(),
        });
    }
    let mut train_files = Vec::with_capacity(classes.len());
    for c in &classes {
        let files = images_in(&train_dir.join(c))?;
        if files.is_empty() {
            return Err(DataError::Layout {
                path: train_dir.join(c),
                message: "class folder holds no PNG or JPEG images".to_owned(),
            });
        }
        train_files.push(files);
    }
    let mut test_files = vec![Vec::new(); classes.len()];
    for c in subfolders(&test_dir)? {
        let Ok(index) = classes.binary_search(&c) else {
            return Err(DataError::Layout {
                path: test_dir.join(&c),
                message: format!(
                    "class `{c}` is not among the {} training classes",
                    classes.len()
                ),
            });
        };
        test_files[index] = images_in(&test_dir.join(&c))?;
    }

    let mut train_list = round_robin(train_files);
    let mut test_list = round_robin(test_files);
    if test_list.is_empty() {
        return Err(DataError::Layout {
            path: test_dir,
            message: "holds no PNG or JPEG images".to_owned(),
        });
    }
    train_list.truncate(opts.limit_train.unwrap_or(usize::MAX));
    test_list.truncate(opts.limit_test.unwrap_or(usize::MAX));

    let max_pixels = opts.max_pixels.unwrap_or(DEFAULT_MAX_PIXELS);
    let (h, w) = match opts.size {
        Some((h, w)) if h > 0 && w > 0 => (h, w),
        Some(s) => {
            return Err(DataError::InvalidOption(format!(
                "image size {s:?} must be positive"
            )));
        }
        None => match train_list.first() {
            Some((p, _)) => {
                let (w, h) = image::ImageDecoder::dimensions(&checked_decoder(p, max_pixels)?);
                (h as usize, w as usize)
            }
            None => (1, 1),
        },
    };
    let shape = (opts.channels.count(), h, w);
    Ok(Dataset {
        name: name.to_owned(),
        classes: classes.len(),
        shape,
        class_names: classes,
        train: decode_all(&train_dir, &train_list, shape, opts.channels, max_pixels)?,
        test: decode_all(&test_dir, &test_list, shape, opts.channels, max_pixels)?,
    })
}

/// Names of the visible sub-folders of `dir`, sorted.
fn subfolders(dir: &Path) -> Result<Vec<String>, DataError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && entry.path().is_dir() {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// PNG and JPEG files directly in `dir`, sorted; other files are ignored.
fn images_in(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        if matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg")) && path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Interleaves per-class lists: class 0's first file, class 1's first, ...
fn round_robin(per_class: Vec<Vec<PathBuf>>) -> Vec<(PathBuf, u32)> {
    let total = per_class.iter().map(Vec::len).sum();
    let mut iters: Vec<_> = per_class.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        for (label, it) in iters.iter_mut().enumerate() {
            if let Some(p) = it.next() {
                out.push((p, label as u32));
            }
        }
    }
    out
}

fn decode_all(
    dir: &Path,
    list: &[(PathBuf, u32)],
    shape: (usize, usize, usize),
    channels: Channels,
    max_pixels: u64,
) -> Result<Split, DataError> {
    let (c, h, w) = shape;
    let too_big = || {
        DataError::InvalidOption(format!(
            "{} images of {c}x{h}x{w} are too many bytes",
            list.len()
        ))
    };
    let chw = c
        .checked_mul(h)
        .and_then(|v| v.checked_mul(w))
        .ok_or_else(too_big)?;
    let total = chw.checked_mul(list.len()).ok_or_else(too_big)?;
    crate::memory::ensure(
        dir,
        &format!("{} images of {c}x{h}x{w}", list.len()),
        total as u64,
    )?;
    let mut images = vec![0u8; total];
    images
        .par_chunks_mut(chw)
        .zip(list.par_iter())
        .try_for_each(|(out, (path, _))| decode_one(path, (h, w), channels, max_pixels, out))?;
    Ok(Split {
        images,
        labels: list.iter().map(|(_, l)| *l).collect(),
    })
}

/// The longest side of an image the loader decodes: far above any
/// dataset's photos.
const MAX_SIDE: u32 = 16_384;

/// The most pixels an image may have when [`FolderOptions::max_pixels`] is
/// not set: 64 megapixels, more than a camera's photo and far more than
/// any dataset's. Decoding costs what the header declares, so this bounds
/// the time and memory a crafted file of a few bytes can take.
pub const DEFAULT_MAX_PIXELS: u64 = 64 << 20;

/// A decoder for `path`, its format guessed from the bytes, once its
/// header has been read and found within [`MAX_SIDE`] a side and
/// `max_pixels` in all (and `image`'s default limit of 512 MiB per
/// decode): the one open of each image, so its size is known before
/// anything of that size is allocated.
fn checked_decoder(path: &Path, max_pixels: u64) -> Result<impl image::ImageDecoder, DataError> {
    let img_err = |e| DataError::Image {
        path: path.to_path_buf(),
        source: e,
    };
    let decoder = image::ImageReader::open(path)
        .and_then(image::ImageReader::with_guessed_format)
        .map_err(|e| DataError::io(path, e))?
        .into_decoder()
        .map_err(img_err)?;
    let (w, h) = image::ImageDecoder::dimensions(&decoder);
    let pixels = u64::from(w) * u64::from(h);
    if w > MAX_SIDE || h > MAX_SIDE || pixels > max_pixels {
        return Err(DataError::Malformed {
            path: path.to_path_buf(),
            offset: 0,
            message: format!(
                "the image is {w}x{h}; images up to {MAX_SIDE} pixels a side and {max_pixels} \
                 pixels in all are read"
            ),
        });
    }
    Ok(decoder)
}

/// Decodes `path` into `out` (CHW, `out.len() == c*h*w`).
fn decode_one(
    path: &Path,
    (h, w): (usize, usize),
    channels: Channels,
    max_pixels: u64,
    out: &mut [u8],
) -> Result<(), DataError> {
    let img_err = |e| DataError::Image {
        path: path.to_path_buf(),
        source: e,
    };
    let img =
        image::DynamicImage::from_decoder(checked_decoder(path, max_pixels)?).map_err(img_err)?;
    let (tw, th) = (
        u32::try_from(w).map_err(|_| DataError::InvalidOption(format!("image width {w}")))?,
        u32::try_from(h).map_err(|_| DataError::InvalidOption(format!("image height {h}")))?,
    );
    let img = if img.width() == tw && img.height() == th {
        img
    } else {
        img.resize_exact(tw, th, FilterType::Triangle)
    };
    let plane = h * w;
    match channels {
        Channels::Gray => out.copy_from_slice(img.to_luma8().as_raw()),
        Channels::Rgb => {
            for (i, px) in img.to_rgb8().as_raw().chunks_exact(3).enumerate() {
                out[i] = px[0];
                out[plane + i] = px[1];
                out[2 * plane + i] = px[2];
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes `ROOT/{train,test}/{cat,ant}/` with small solid-colour images:
    /// 3 cats and 2 ants for training, one of each for testing; cats are PNG
    /// with red = 10*i, ants JPEG.
    pub(crate) fn write_folder(root: &Path, test_name: &str) {
        for (split, n_cat, n_ant) in [("train", 3u8, 2u8), (test_name, 1, 1)] {
            let cat = root.join(split).join("cat");
            let ant = root.join(split).join("ant");
            std::fs::create_dir_all(&cat).expect("mkdir");
            std::fs::create_dir_all(&ant).expect("mkdir");
            for i in 0..n_cat {
                let img = image::RgbImage::from_pixel(6, 4, image::Rgb([10 * i, 20, 30]));
                img.save(cat.join(format!("{i}.png"))).expect("save png");
            }
            for i in 0..n_ant {
                let img = image::RgbImage::from_pixel(8, 8, image::Rgb([200, 100, 50 + i]));
                img.save(ant.join(format!("{i}.JPG"))).expect("save jpeg");
            }
            std::fs::write(cat.join("notes.txt"), "ignored").expect("write");
        }
    }

    #[test]
    fn round_trip_sorted_classes_round_robin() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_folder(dir.path(), "val");
        let opts = FolderOptions {
            size: Some((4, 6)),
            ..Default::default()
        };
        let d = load_folder(dir.path(), "f", &opts).expect("loads");
        assert_eq!(d.class_names, ["ant", "cat"]);
        assert_eq!(d.shape, (3, 4, 6));
        // ant0 cat0 ant1 cat1 cat2
        assert_eq!(d.train.labels, [0, 1, 0, 1, 1]);
        assert_eq!(d.test.labels, [0, 1]);
        let chw = 3 * 4 * 6;
        // cat1 (example 3): a lossless PNG, solid (10, 20, 30), planes in CHW order.
        let cat1 = &d.train.images[3 * chw..4 * chw];
        assert!(cat1[..24].iter().all(|&v| v == 10));
        assert!(cat1[24..48].iter().all(|&v| v == 20));
        assert!(cat1[48..].iter().all(|&v| v == 30));
        // ant0: JPEG, resized from 8x8; lossy, so only roughly (200, 100, 50).
        let ant0 = &d.train.images[..chw];
        assert!(ant0[..24].iter().all(|&v| v.abs_diff(200) < 8), "{ant0:?}");
        assert!(ant0[48..].iter().all(|&v| v.abs_diff(50) < 8), "{ant0:?}");
    }

    #[test]
    fn gray_default_size_and_limits() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_folder(dir.path(), "test");
        let opts = FolderOptions {
            channels: Channels::Gray,
            limit_train: Some(2),
            limit_test: Some(1),
            ..Default::default()
        };
        let d = load_folder(dir.path(), "f", &opts).expect("loads");
        // The first training example is ant0, an 8x8 image.
        assert_eq!(d.shape, (1, 8, 8));
        assert_eq!(d.train.labels, [0, 1]);
        assert_eq!(d.test.len(), 1);
        assert_eq!(d.train.images.len(), 2 * 64);
    }

    /// A JPEG whose frame header claims 60000x60000 pixels (JPEG headers
    /// carry no checksum, so patching the SOF0 segment is enough): refused
    /// from its header, before anything of that size is allocated.
    #[test]
    fn a_header_claiming_a_huge_image_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_folder(dir.path(), "test");
        let ant = dir.path().join("train/ant/0.JPG");
        let mut bytes = std::fs::read(&ant).expect("jpeg");
        let sof = bytes
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("a baseline JPEG has SOF0");
        // Marker (2), length (2), precision (1), then height and width.
        bytes[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
        std::fs::write(&ant, &bytes).expect("patched");
        let m = load_folder(dir.path(), "f", &FolderOptions::default())
            .map(|_| ())
            .expect_err("too big")
            .to_string();
        assert!(
            m.contains("0.JPG: the image is 60000x60000; images up to 16384 pixels a side"),
            "{m}"
        );
        // With a fixed size the file is refused the same way, and so is
        // one over a pixel budget.
        let opts = FolderOptions {
            size: Some((8, 8)),
            ..Default::default()
        };
        let m = load_folder(dir.path(), "f", &opts)
            .map(|_| ())
            .expect_err("too big")
            .to_string();
        assert!(m.contains("0.JPG: the image is 60000x60000"), "{m}");
        bytes[sof + 5..sof + 9].copy_from_slice(&[0x00, 0x40, 0x00, 0x40]);
        std::fs::write(&ant, &bytes).expect("patched");
        let opts = FolderOptions {
            max_pixels: Some(1000),
            ..Default::default()
        };
        let m = load_folder(dir.path(), "f", &opts)
            .map(|_| ())
            .expect_err("over the budget")
            .to_string();
        assert!(
            m.contains(
                "the image is 64x64; images up to 16384 pixels a side and 1000 pixels in all"
            ),
            "{m}"
        );
    }

    #[test]
    fn layout_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let m = load_folder(dir.path(), "f", &FolderOptions::default())
            .map(|_| ())
            .expect_err("empty")
            .to_string();
        assert!(m.contains("no train/ folder"), "{m}");

        write_folder(dir.path(), "test");
        std::fs::create_dir_all(dir.path().join("test/zebra")).expect("mkdir");
        let m = load_folder(dir.path(), "f", &FolderOptions::default())
            .map(|_| ())
            .expect_err("unknown class")
            .to_string();
        assert!(
            m.contains("zebra: class `zebra` is not among the 2 training classes"),
            "{m}"
        );
        std::fs::remove_dir(dir.path().join("test/zebra")).expect("rmdir");

        std::fs::write(
            dir.path().join("train/cat/9.png"),
            b"\x89PNG\r\n\x1a\nbroken",
        )
        .expect("write");
        let m = load_folder(dir.path(), "f", &FolderOptions::default())
            .map(|_| ())
            .expect_err("broken png")
            .to_string();
        assert!(m.contains("9.png: cannot decode image"), "{m}");
    }
}
