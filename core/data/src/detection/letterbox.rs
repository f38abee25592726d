//! Photos of any size fitted to a detection set's stored shape: scaled
//! (bilinear, by the `image` crate) to fit inside it with their aspect ratio
//! kept, then centred on a black canvas. The [`ImageInfo`] records the
//! scale and padding, so boxes move between the photo's pixels and the
//! stored ones and detections are scored in the photo's own pixels.

use std::path::Path;

use image::imageops::{self, FilterType};
use rayon::prelude::*;

use super::ImageInfo;
use crate::DataError;

/// Stored side when a suite gives no `image_size`: small enough to train on
/// CPU cores, large enough for VOC's objects.
pub const DEFAULT_SIDE: usize = 256;

/// One photo to read: its id, its file and the size its annotation claims
/// (checked against the decoded image).
#[derive(Debug, Clone)]
pub struct Photo {
    /// Image id.
    pub id: i64,
    /// The image file.
    pub file: std::path::PathBuf,
    /// `(width, height)` as the annotation gives it, if it does.
    pub claimed: Option<(usize, usize)>,
}

/// Decodes and fits every photo (in parallel; the output keeps their
/// order): CHW bytes, image after image, and each photo's [`ImageInfo`].
///
/// # Errors
/// [`DataError::MissingFile`] for a photo that is not there,
/// [`DataError::Image`] for one that does not decode, and
/// [`DataError::Annotation`] (naming `annotation`) when a photo's size is
/// not the size its annotation claims.
pub fn read_all(
    photos: &[Photo],
    shape: (usize, usize, usize),
    annotation: &Path,
) -> Result<(Vec<u8>, Vec<ImageInfo>), DataError> {
    let fitted: Vec<(Vec<u8>, ImageInfo)> = photos
        .par_iter()
        .map(|p| fit(p, shape, annotation))
        .collect::<Result<_, _>>()?;
    let mut bytes = Vec::with_capacity(fitted.len() * shape.0 * shape.1 * shape.2);
    let mut info = Vec::with_capacity(fitted.len());
    for (b, i) in fitted {
        bytes.extend_from_slice(&b);
        info.push(i);
    }
    Ok((bytes, info))
}

/// The scale and padding that fit a `w x h` photo into `to_w x to_h`, and
/// the scaled size.
pub fn geometry(w: usize, h: usize, to_w: usize, to_h: usize) -> (f64, (u32, u32), (f64, f64)) {
    let scale = (to_w as f64 / w as f64).min(to_h as f64 / h as f64);
    let nw = ((w as f64 * scale).round() as usize).clamp(1, to_w);
    let nh = ((h as f64 * scale).round() as usize).clamp(1, to_h);
    let pad = (((to_w - nw) / 2) as f64, ((to_h - nh) / 2) as f64);
    (scale, (nw as u32, nh as u32), pad)
}

fn fit(
    photo: &Photo,
    (c, to_h, to_w): (usize, usize, usize),
    annotation: &Path,
) -> Result<(Vec<u8>, ImageInfo), DataError> {
    if !photo.file.is_file() {
        return Err(DataError::MissingFile {
            path: photo.file.clone(),
            dir: photo.file.parent().unwrap_or(Path::new(".")).to_path_buf(),
        });
    }
    let img = image::open(&photo.file).map_err(|source| DataError::Image {
        path: photo.file.clone(),
        source,
    })?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    if let Some((cw, ch)) = photo.claimed
        && (cw, ch) != (w, h)
    {
        return Err(DataError::Annotation {
            path: annotation.to_path_buf(),
            line: None,
            element: format!("image {} ({})", photo.id, photo.file.display()),
            message: format!("the annotation says {cw}x{ch} but the file is {w}x{h}"),
        });
    }
    let (scale, (nw, nh), (pad_x, pad_y)) = geometry(w, h, to_w, to_h);
    let mut out = vec![0u8; c * to_h * to_w];
    let plane = to_h * to_w;
    let mut put = |ch: usize, x: u32, y: u32, v: u8| {
        out[ch * plane + (y as usize + pad_y as usize) * to_w + x as usize + pad_x as usize] = v;
    };
    if c == 1 {
        let g = imageops::resize(&img.to_luma8(), nw, nh, FilterType::Triangle);
        for (x, y, p) in g.enumerate_pixels() {
            put(0, x, y, p[0]);
        }
    } else {
        let rgb = imageops::resize(&img.to_rgb8(), nw, nh, FilterType::Triangle);
        for (x, y, p) in rgb.enumerate_pixels() {
            for ch in 0..c.min(3) {
                put(ch, x, y, p[ch]);
            }
        }
    }
    Ok((
        out,
        ImageInfo {
            id: photo.id,
            file: Some(photo.file.clone()),
            width: w,
            height: h,
            scale,
            pad_x,
            pad_y,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wide_photo_is_scaled_to_the_width_and_centred() {
        let (scale, (nw, nh), (px, py)) = geometry(500, 250, 256, 256);
        assert_eq!((nw, nh), (256, 128));
        assert!((scale - 0.512).abs() < 1e-12);
        assert_eq!((px, py), (0.0, 64.0));
        let info = ImageInfo {
            id: 1,
            file: None,
            width: 500,
            height: 250,
            scale,
            pad_x: px,
            pad_y: py,
        };
        let stored = info.to_stored([100.0, 50.0, 200.0, 100.0]);
        assert_eq!(stored, [51.2, 89.6, 102.4, 51.2]);
        let back = info.to_original(stored);
        for (a, b) in back.iter().zip([100.0, 50.0, 200.0, 100.0]) {
            assert!((a - b).abs() < 1e-4);
        }
    }
}
