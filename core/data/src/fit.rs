//! Fitting batched images to a network's input shape: centred zero padding
//! to a larger height and width, and a grey channel replicated to as many
//! channels as the network takes (Fashion-MNIST into a 3-channel 32x32
//! CIFAR network). Nothing is cropped or resampled.
//!
//! The input is `f32` CHW images after normalisation, so the padded border is
//! exactly 0 in what the network sees, and every replicated channel holds the
//! same values.

/// Why images of one shape cannot be fitted to another.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot fit {}x{}x{} images to {}x{}x{}: {why}",
    from.0, from.1, from.2, to.0, to.1, to.2
)]
pub struct FitError {
    /// The images' shape, `(c, h, w)`.
    pub from: (usize, usize, usize),
    /// The wanted shape, `(c, h, w)`.
    pub to: (usize, usize, usize),
    /// What is wrong, in words.
    pub why: &'static str,
}

/// Whether images of shape `from` can be fitted to shape `to` (both
/// `(c, h, w)`) by [`fit_images`], checked before any data is at hand.
///
/// # Errors
/// [`FitError`] when `to` is smaller than `from` in height or width (that
/// would crop), when the channel counts differ and `from` has more than one
/// channel (only grey is replicated), or when a shape has a zero dimension.
pub fn check_fit(from: (usize, usize, usize), to: (usize, usize, usize)) -> Result<(), FitError> {
    let err = |why| Err(FitError { from, to, why });
    let ((c, h, w), (to_c, to_h, to_w)) = (from, to);
    if [c, h, w, to_c, to_h, to_w].contains(&0) {
        return err("a dimension is zero");
    }
    if to_h < h || to_w < w {
        return err("the target is smaller (images are padded, never cropped)");
    }
    if to_c != c && c != 1 {
        return err("only one-channel images are replicated to other channel counts");
    }
    Ok(())
}

/// Fits CHW images of shape `from` to shape `to`: zero-pads each plane to
/// `to`'s height and width, centred (an odd extra row or column goes to the
/// bottom or right), then, for one-channel images, repeats the plane into
/// every one of `to`'s channels. `src` holds whole images one after another;
/// the result holds as many images of `to`'s shape.
///
/// # Errors
/// [`FitError`] for the shapes [`check_fit`] refuses, or when `src` is not a
/// whole number of images.
pub fn fit_images(
    src: &[f32],
    from: (usize, usize, usize),
    to: (usize, usize, usize),
) -> Result<Vec<f32>, FitError> {
    check_fit(from, to)?;
    let ((c, h, w), (to_c, to_h, to_w)) = (from, to);
    let (plane, image) = (h * w, c * h * w);
    if !src.len().is_multiple_of(image) {
        return Err(FitError {
            from,
            to,
            why: "the data is not a whole number of images",
        });
    }
    let images = src.len() / image;
    let to_plane = to_h * to_w;
    let (top, left) = ((to_h - h) / 2, (to_w - w) / 2);
    let mut out = vec![0.0; images * to_c * to_plane];
    for (img_in, img_out) in src
        .chunks_exact(image)
        .zip(out.chunks_exact_mut(to_c * to_plane))
    {
        for (k, plane_out) in img_out.chunks_exact_mut(to_plane).enumerate() {
            // Grey (c == 1) feeds every output channel; otherwise channel k.
            let plane_in = &img_in[(k % c) * plane..(k % c + 1) * plane];
            for (row_in, row_out) in plane_in
                .chunks_exact(w)
                .zip(plane_out.chunks_exact_mut(to_w).skip(top))
            {
                row_out[left..left + w].copy_from_slice(row_in);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_centres_the_image_and_leaves_zeros() {
        // Two 1x2x2 images into 1x4x5: one row above, one below; one column
        // left, two right.
        let src = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let out = fit_images(&src, (1, 2, 2), (1, 4, 5)).expect("fits");
        #[rustfmt::skip]
        let first = [
            0.0, 0.0, 0.0, 0.0, 0.0,
            0.0, 1.0, 2.0, 0.0, 0.0,
            0.0, 3.0, 4.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0, 0.0,
        ];
        assert_eq!(out[..20], first);
        assert_eq!(out[26..28], [5.0, 6.0]);
        assert_eq!(out[31..33], [7.0, 8.0]);
        assert_eq!(out.len(), 40);
        assert_eq!(fit_images(&src, (1, 2, 2), (1, 2, 2)), Ok(src.to_vec()));
    }

    #[test]
    fn grey_is_padded_then_copied_into_every_channel() {
        // Two 1x2x2 images into 3x3x3 (odd extra row and column go last).
        let src = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let out = fit_images(&src, (1, 2, 2), (3, 3, 3)).expect("fits");
        #[rustfmt::skip]
        let first_plane = [
            1.0, 2.0, 0.0,
            3.0, 4.0, 0.0,
            0.0, 0.0, 0.0,
        ];
        #[rustfmt::skip]
        let second_plane = [
            5.0, 6.0, 0.0,
            7.0, 8.0, 0.0,
            0.0, 0.0, 0.0,
        ];
        assert_eq!(out.len(), 2 * 3 * 9);
        for k in 0..3 {
            assert_eq!(out[k * 9..(k + 1) * 9], first_plane, "image 0, channel {k}");
            assert_eq!(
                out[27 + k * 9..27 + (k + 1) * 9],
                second_plane,
                "image 1, channel {k}"
            );
        }
        // Replication without padding.
        let out = fit_images(&[1.0, 2.0], (1, 1, 2), (3, 1, 2)).expect("fits");
        assert_eq!(out, [1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
    }

    #[test]
    fn colour_images_keep_their_channels_apart() {
        let src = [1.0, 2.0];
        let out = fit_images(&src, (2, 1, 1), (2, 1, 3)).expect("fits");
        assert_eq!(out, [0.0, 1.0, 0.0, 0.0, 2.0, 0.0]);
    }

    #[test]
    fn impossible_fits_say_why() {
        let src = [0.0; 8];
        let small = fit_images(&src, (1, 2, 2), (1, 1, 4)).expect_err("would crop");
        assert!(small.to_string().contains("never cropped"), "{small}");
        let colour = fit_images(&src, (2, 2, 2), (3, 2, 2)).expect_err("2 to 3 channels");
        assert!(colour.to_string().contains("one-channel"), "{colour}");
        let partial = fit_images(&src[..6], (1, 2, 2), (1, 2, 2)).expect_err("1.5 images");
        assert!(partial.to_string().contains("whole number"), "{partial}");
        assert_eq!(check_fit((1, 28, 28), (3, 32, 32)), Ok(()));
        assert_eq!(check_fit((3, 28, 28), (3, 28, 28)), Ok(()));
        let zero = fit_images(&src, (1, 2, 2), (0, 2, 2)).expect_err("no channels");
        assert_eq!(
            zero.to_string(),
            "cannot fit 1x2x2 images to 0x2x2: a dimension is zero"
        );
    }
}
