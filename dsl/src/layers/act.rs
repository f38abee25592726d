//! `act` and `act@slot`: an activation placeholder, bound to an activation
//! function by a suite or the command line.

use crate::ir::Op;
use crate::layers::call::{Layer, LayerSig};

/// `act`: keeps the shape; the slot name lets a suite bind it separately.
pub(super) const ACT: Layer = Layer {
    sig: LayerSig::bare("act"),
    lower: |call| {
        Ok((
            Op::Act {
                slot: call.slot.map(str::to_string),
            },
            call.input,
        ))
    },
};
