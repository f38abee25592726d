//! Normalisation: `bn` (batch norm) and `lrn` (local response
//! normalisation).

use crate::error::Error;
use crate::ir::{Op, Shape};
use crate::layers::args::{NonNegative, Number, OrPreset, Preset, Spanned, layer_args};
use crate::layers::call::{Call, Layer};

layer_args! {
    /// Arguments of `bn(eps=1e-3, momentum=Preset)`; `eps` is
    /// TensorFlow's, `momentum` left out is the caller's
    /// ([`CompileOptions::bn_momentum`](crate::CompileOptions)).
    "bn" => struct BnArgs {
        /// Added to the variance; positive.
        eps: Spanned<Number> = 1e-3,
        /// Weight of the running statistics' old value, in [0, 1).
        momentum: Spanned<OrPreset<Number>> = Preset,
    }
}

/// `bn`: batch normalisation over the channels of a feature map, or the
/// features of a vector. Also the norm of a residual's projection.
pub(crate) const BN: Layer = Layer {
    sig: BnArgs::SIG,
    lower: bn,
};

fn bn(call: &Call<'_>) -> Result<(Op, Shape), Error> {
    let a = BnArgs::bind(call)?;
    if a.eps.value <= 0.0 {
        return Err(call.value_err("eps must be positive", a.eps.span));
    }
    let momentum = a.momentum.value.unwrap_or(call.options.bn_momentum);
    if !(0.0..1.0).contains(&momentum) {
        return Err(call.value_err("momentum must be in [0, 1)", a.momentum.span));
    }
    Ok((
        Op::BatchNorm {
            channels: call.input.channels(),
            eps: a.eps.value,
            momentum,
        },
        call.input,
    ))
}

layer_args! {
    /// Arguments of `lrn(radius=2, alpha=1e-4, beta=0.75, bias=1.0)`, in
    /// TensorFlow's convention (alpha is not divided by the window).
    "lrn" => struct LrnArgs {
        /// Channels on each side of the window.
        radius: NonNegative = 2,
        /// Scale of the sum of squares.
        alpha: Number = 1e-4,
        /// Exponent.
        beta: Number = 0.75,
        /// Additive constant.
        bias: Number = 1.0,
    }
}

/// `lrn`: local response normalisation across the channels of a feature map.
pub(super) const LRN: Layer = Layer {
    sig: LrnArgs::SIG,
    lower: lrn,
};

fn lrn(call: &Call<'_>) -> Result<(Op, Shape), Error> {
    call.image()?;
    let a = LrnArgs::bind(call)?;
    Ok((
        Op::Lrn {
            radius: a.radius,
            alpha: a.alpha,
            beta: a.beta,
            bias: a.bias,
        },
        call.input,
    ))
}
