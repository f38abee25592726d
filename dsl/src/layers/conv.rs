//! `conv`: a 2-D convolution over a feature map.

use crate::error::{Error, ErrorKind};
use crate::ir::{Conv2d, Op, Shape};
use crate::layers::args::{Flag, Pad, Positive, Spanned, layer_args};
use crate::layers::call::{Call, Layer};
use crate::layers::window::{padding, window};

layer_args! {
    /// Arguments of `conv(c, k=3, stride=1, pad=0, groups=1, bias=true, dilation=1)`.
    "conv" => struct ConvArgs {
        /// Output channels.
        c: Positive,
        /// Kernel height and width.
        k: Positive = 3,
        /// Step between windows, along both axes.
        stride: Positive = 1,
        /// Zeros on each side, `same` or `valid`.
        pad: Pad = 0,
        /// Channel groups; divides the input and output channels.
        groups: Spanned<Positive> = 1,
        /// Whether the convolution has a bias.
        bias: Flag = true,
        /// Spacing between kernel taps.
        dilation: Positive = 1,
    }
}

/// `conv`: a square-kernel 2-D convolution.
pub(super) const CONV: Layer = Layer {
    sig: ConvArgs::SIG,
    lower: conv,
};

fn conv(call: &Call<'_>) -> Result<(Op, Shape), Error> {
    let (ci, h, w) = call.image()?;
    let a = ConvArgs::bind(call)?;
    let groups = a.groups.value;
    if ci % groups != 0 || a.c % groups != 0 {
        return Err(call.cx.err(
            ErrorKind::Value,
            format!(
                "groups={groups} must divide both input channels ({ci}) and output channels ({})",
                a.c
            ),
            a.groups.span,
            "does not divide",
        ));
    }
    let (rows, cols) = window(call, (h, w), a.k, a.stride, a.dilation, a.pad)?;
    let conv = Conv2d {
        in_channels: ci,
        out_channels: a.c,
        kernel: (a.k, a.k),
        stride: (a.stride, a.stride),
        padding: padding(rows, cols),
        dilation: (a.dilation, a.dilation),
        groups,
        bias: a.bias,
    };
    Ok((
        Op::Conv2d(conv),
        Shape::Image {
            c: a.c,
            h: rows.0,
            w: cols.0,
        },
    ))
}
