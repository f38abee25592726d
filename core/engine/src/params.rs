//! Trainable parameters of a built model, named by their `.acnet` path.

use candle_core::Var;

/// What a parameter is, which decides weight decay and constraints.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamKind {
    /// Convolution or linear weight (weight decay applies).
    Weight,
    /// Convolution or linear bias.
    Bias,
    /// Batch-norm scale or shift.
    Norm,
    /// A parameter of an activation function: never weight-decayed; the
    /// constraint is enforced after every optimiser step.
    Activation(acbench_plugin_api::Constraint),
}

/// One trainable tensor.
#[derive(Debug, Clone)]
pub struct Param {
    /// `path.name`, e.g. `cba0.conv0.weight` or `basic1.act0.a`.
    pub name: String,
    /// The variable the optimiser updates.
    pub var: Var,
    /// Its role.
    pub kind: ParamKind,
}
