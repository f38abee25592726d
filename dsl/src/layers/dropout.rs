//! `dropout`: zeroes each unit with a probability while training.

use crate::error::Error;
use crate::ir::{Op, Shape};
use crate::layers::args::{Number, Spanned, layer_args};
use crate::layers::call::{Call, Layer};

layer_args! {
    /// Arguments of `dropout(p)`.
    "dropout" => struct DropoutArgs {
        /// The probability of dropping a unit, in [0, 1).
        p: Spanned<Number>,
    }
}

/// `dropout`: the identity outside training.
pub(super) const DROPOUT: Layer = Layer {
    sig: DropoutArgs::SIG,
    lower: dropout,
};

fn dropout(call: &Call<'_>) -> Result<(Op, Shape), Error> {
    let p = DropoutArgs::bind(call)?.p;
    if !(0.0..1.0).contains(&p.value) {
        return Err(call
            .value_err("dropout probability must be in [0, 1)", p.span)
            .help("`p` is the probability of dropping a unit (TensorFlow 1.x code passes the keep probability)"));
    }
    Ok((Op::Dropout { rate: p.value }, call.input))
}
