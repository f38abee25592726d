//! `flatten` and `linear` (fully connected).

use crate::error::{Error, ErrorKind};
use crate::ir::{Op, Shape};
use crate::layers::args::{Flag, Positive, layer_args};
use crate::layers::call::{Call, Layer, LayerSig};

/// `flatten`: `CxHxW -> C*H*W`. On a vector it changes nothing, so that
/// the common `gap flatten linear(n)` reads as it does in other frameworks.
pub(super) const FLATTEN: Layer = Layer {
    sig: LayerSig::bare("flatten"),
    lower: |call| Ok((Op::Flatten, Shape::Flat(call.input.numel()))),
};

layer_args! {
    /// Arguments of `linear(n, bias=true)`.
    "linear" => struct LinearArgs {
        /// Output features.
        n: Positive,
        /// Whether the layer has a bias.
        bias: Flag = true,
    }
}

/// `linear`: a fully connected layer on a vector. On a feature map it is an
/// error asking for `flatten` or `gap`: an implicit flatten would hide a
/// large weight matrix.
pub(super) const LINEAR: Layer = Layer {
    sig: LinearArgs::SIG,
    lower: linear,
};

fn linear(call: &Call<'_>) -> Result<(Op, Shape), Error> {
    let a = LinearArgs::bind(call)?;
    let Shape::Flat(in_features) = call.input else {
        return Err(call
            .cx
            .err(
                ErrorKind::Shape,
                format!(
                    "linear expects a vector, got the feature map {}",
                    call.input
                ),
                call.span,
                "needs a vector",
            )
            .help("add `flatten` (or `gap`) before it"));
    };
    Ok((
        Op::Linear {
            in_features,
            out_features: a.n,
            bias: a.bias,
        },
        Shape::Flat(a.n),
    ))
}
