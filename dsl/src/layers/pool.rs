//! Pooling: `maxpool`, `avgpool` and `gap` (global average pooling).

use crate::error::Error;
use crate::ir::{Op, Pool2d, PoolKind, Shape};
use crate::layers::args::{Flag, Pad, Positive, Spanned, layer_args};
use crate::layers::call::{Call, Layer, LayerSig};
use crate::layers::window::{PadSpec, padding, window};

layer_args! {
    /// Arguments of `maxpool(k, stride=k, pad=0)`.
    "maxpool" => struct MaxPoolArgs {
        /// Window height and width.
        k: Positive,
        /// Step between windows, along both axes.
        stride: Positive = k,
        /// Padding on each side (at most half the window), `same` or `valid`.
        pad: Spanned<Pad> = 0,
    }
}

layer_args! {
    /// Arguments of `avgpool(k, stride=k, pad=0, count_pad=false)`.
    "avgpool" => struct AvgPoolArgs {
        /// Window height and width.
        k: Positive,
        /// Step between windows, along both axes.
        stride: Positive = k,
        /// Padding on each side (at most half the window), `same` or `valid`.
        pad: Spanned<Pad> = 0,
        /// Whether padded cells count in the divisor.
        count_pad: Flag = false,
    }
}

/// `maxpool`: the maximum over each window; padded cells never win.
pub(super) const MAXPOOL: Layer = Layer {
    sig: MaxPoolArgs::SIG,
    lower: maxpool,
};

/// `avgpool`: the mean over each window.
pub(super) const AVGPOOL: Layer = Layer {
    sig: AvgPoolArgs::SIG,
    lower: avgpool,
};

/// `gap`: the mean over height and width, `CxHxW -> C`.
pub(super) const GAP: Layer = Layer {
    sig: LayerSig::bare("gap"),
    lower: gap,
};

fn maxpool(call: &Call<'_>) -> Result<(Op, Shape), Error> {
    let (c, h, w) = call.image()?;
    let a = MaxPoolArgs::bind(call)?;
    pool(call, (c, h, w), PoolKind::Max, a.k, a.stride, a.pad, false)
}

fn avgpool(call: &Call<'_>) -> Result<(Op, Shape), Error> {
    let (c, h, w) = call.image()?;
    let a = AvgPoolArgs::bind(call)?;
    pool(
        call,
        (c, h, w),
        PoolKind::Avg,
        a.k,
        a.stride,
        a.pad,
        a.count_pad,
    )
}

fn pool(
    call: &Call<'_>,
    (c, h, w): (usize, usize, usize),
    kind: PoolKind,
    k: usize,
    stride: usize,
    pad: Spanned<PadSpec>,
    count_include_pad: bool,
) -> Result<(Op, Shape), Error> {
    if let PadSpec::Explicit(p) = pad.value
        && p.saturating_mul(2) > k
    {
        return Err(call.value_err(
            format!("pool padding {p} is more than half the {k}x{k} window"),
            pad.span,
        ));
    }
    let (rows, cols) = window(call, (h, w), k, stride, 1, pad.value)?;
    let pool = Pool2d {
        kind,
        kernel: (k, k),
        stride: (stride, stride),
        padding: padding(rows, cols),
        count_include_pad,
    };
    Ok((
        Op::Pool(pool),
        Shape::Image {
            c,
            h: rows.0,
            w: cols.0,
        },
    ))
}

fn gap(call: &Call<'_>) -> Result<(Op, Shape), Error> {
    let (c, _, _) = call.image()?;
    Ok((Op::GlobalAvgPool, Shape::Flat(c)))
}
