//! Sliding windows (convolution and pooling): padding as written, and the
//! output size and padding along each axis.

use crate::error::{Error, ErrorKind};
use crate::ir::Padding;
use crate::layers::call::Call;

/// Output length, padding before and padding after, along one axis.
pub(crate) type Axis = (usize, usize, usize);

/// How a window is padded, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PadSpec {
    /// The same number of zeros on every side.
    Explicit(usize),
    /// TensorFlow `SAME`: output = ceil(input / stride), extra padding at the end.
    Same,
    /// No padding.
    Valid,
}

/// Output length along one axis and the padding before and after, or `None`
/// when the (dilated) window is larger than the padded input.
pub(crate) fn window_axis(
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad: PadSpec,
) -> Option<Axis> {
    let span = kernel
        .checked_sub(1)?
        .checked_mul(dilation)?
        .checked_add(1)?;
    let (before, after) = match pad {
        PadSpec::Valid => (0, 0),
        PadSpec::Explicit(p) => (p, p),
        PadSpec::Same => {
            let out = input.div_ceil(stride);
            let needed = (out - 1).checked_mul(stride)?.checked_add(span)?;
            let total = needed.saturating_sub(input);
            (total / 2, total - total / 2)
        }
    };
    let padded = input.checked_add(before)?.checked_add(after)?;
    if span > padded {
        return None;
    }
    Some(((padded - span) / stride + 1, before, after))
}

/// The output and padding along both axes of a square `k`x`k` window over
/// the call's `h`x`w` input; an error when the window does not fit.
pub(crate) fn window(
    call: &Call<'_>,
    (h, w): (usize, usize),
    k: usize,
    stride: usize,
    dilation: usize,
    pad: PadSpec,
) -> Result<(Axis, Axis), Error> {
    match (
        window_axis(h, k, stride, dilation, pad),
        window_axis(w, k, stride, dilation, pad),
    ) {
        (Some(r), Some(c)) => Ok((r, c)),
        _ => Err(call.cx.err(
            ErrorKind::Shape,
            format!(
                "{} window {k}x{k} is larger than its {h}x{w} input",
                call.layer
            ),
            call.span,
            format!("input is {h}x{w} here"),
        )),
    }
}

/// Padding of a 2-D window from the two axes' results.
pub(crate) fn padding(rows: Axis, cols: Axis) -> Padding {
    Padding {
        top: rows.1,
        bottom: rows.2,
        left: cols.1,
        right: cols.2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_follows_tensorflow() {
        // 32 -> 16 with a 7x7/2 window: total = (16-1)*2 + 7 - 32 = 5, split 2/3.
        assert_eq!(window_axis(32, 7, 2, 1, PadSpec::Same), Some((16, 2, 3)));
        // 3x3/1 keeps the size with one on each side.
        assert_eq!(window_axis(8, 3, 1, 1, PadSpec::Same), Some((8, 1, 1)));
        // Even window, stride 1: the extra zero goes after.
        assert_eq!(window_axis(8, 2, 1, 1, PadSpec::Same), Some((8, 0, 1)));
        // Window larger than the input still works under SAME (pooling 8x8 on 1x1).
        assert_eq!(window_axis(1, 8, 1, 1, PadSpec::Same), Some((1, 3, 4)));
        // Dilation widens the window: 3x3 dilated 2 spans 5.
        assert_eq!(window_axis(10, 3, 1, 2, PadSpec::Same), Some((10, 2, 2)));
        // 2x2/2 on an odd size: ceil(7/2) = 4 with one zero after.
        assert_eq!(window_axis(7, 2, 2, 1, PadSpec::Same), Some((4, 0, 1)));
    }

    #[test]
    fn valid_and_explicit_padding() {
        assert_eq!(window_axis(32, 11, 2, 1, PadSpec::Valid), Some((11, 0, 0)));
        assert_eq!(
            window_axis(5, 3, 2, 1, PadSpec::Explicit(1)),
            Some((3, 1, 1))
        );
        assert_eq!(window_axis(2, 3, 1, 1, PadSpec::Valid), None);
        assert_eq!(window_axis(2, 5, 1, 1, PadSpec::Explicit(1)), None);
        assert_eq!(
            window_axis(usize::MAX, 3, 1, usize::MAX, PadSpec::Same),
            None
        );
    }
}
