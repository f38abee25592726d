//! What an acbench activation function is, independent of any tensor library,
//! and how a plugin library exports one.
//!
//! An activation is a name, parameters ([`ParamSpec`]) and a formula in
//! acbench's expression language (`max(a * x + c, b * x + d)`). The host
//! lowers the formula to candle operations, so autograd, every device and
//! every dtype come for free (tier 1). A plugin may add fused CPU kernels
//! ([`FusedKernel`], tier 2), which the host uses on CPU and checks against
//! the formula with `acbench plugins check`; for an element-wise activation
//! it is enough to write the value and gradients of one element
//! ([`Pointwise`]).
//!
//! A plugin is a `cdylib` that lists its activations and exports them:
//!
//! ```standalone_crate
//! use acbench_plugin_api::{Activation, ActivationDef, ParamSpec, export_plugin};
//!
//! fn activations() -> Vec<Activation> {
//!     vec![Activation::new(ActivationDef {
//!         name: "scaled_tanh".into(),
//!         summary: "k * tanh(x)".into(),
//!         params: vec![ParamSpec::scalar("k", 1.0)],
//!         formula: "k * tanh(x)".into(),
//!     })]
//! }
//!
//! export_plugin!(activations);
//! ```
//!
//! A plugin linked into the host (as acbench links its shipped ones) gives
//! it a [`LinkedPlugin`] from [`linked_plugin!`] instead: the same table
//! behind an entry point without an exported symbol.
//!
//! Modules: [`abi`] (the raw C ABI the host reads), [`kernel`] (the kernel
//! trait, the shims that expose it, helpers for writing kernels),
//! [`pointwise`] (kernels from one element's math), [`export`]
//! (the table builder behind [`export_plugin!`]), [`linked`] (plugins linked
//! into the host), [`math`] (vectorisable
//! `exp`, `expm1`, `tanh` and `sigmoid` for kernels), [`testing`] (checks for
//! kernel unit tests). This crate deliberately depends on nothing: plugin
//! authors compile it in seconds.

pub mod abi;
pub mod detector;
pub mod export;
pub mod kernel;
pub mod linked;
pub mod math;
pub mod pointwise;
pub mod testing;

pub use abi::Layout;
pub use export::Activation;
pub use kernel::{FusedKernel, ParamGrad, backward_row, param_at};
pub use linked::{Linked, LinkedPlugin};
pub use pointwise::{ParamValues, Pointwise, backward_rows, forward_rows};

/// How many values of a parameter an activation slot owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamScope {
    /// One scalar per activation slot (per layer), as in the paper.
    Layer,
    /// One value per channel (per feature for vectors).
    Channel,
}

impl ParamScope {
    /// The raw code of [`abi::ParamDesc::scope`].
    pub fn to_raw(self) -> u32 {
        match self {
            ParamScope::Layer => abi::SCOPE_LAYER,
            ParamScope::Channel => abi::SCOPE_CHANNEL,
        }
    }

    /// Reads [`abi::ParamDesc::scope`].
    pub fn from_raw(code: u32) -> Result<Self, UnknownCode> {
        match code {
            abi::SCOPE_LAYER => Ok(ParamScope::Layer),
            abi::SCOPE_CHANNEL => Ok(ParamScope::Channel),
            _ => Err(UnknownCode {
                field: "scope",
                code,
            }),
        }
    }
}

/// A constraint the trainer enforces after every optimiser step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Constraint {
    /// Unconstrained.
    None,
    /// Clamped to at least the given small positive value (PELU).
    Positive(f64),
}

impl Constraint {
    /// The raw pair ([`abi::ParamDesc::constraint`], [`abi::ParamDesc::constraint_min`]).
    pub fn to_raw(self) -> (u32, f64) {
        match self {
            Constraint::None => (abi::CONSTRAINT_NONE, 0.0),
            Constraint::Positive(min) => (abi::CONSTRAINT_POSITIVE, min),
        }
    }

    /// Reads [`abi::ParamDesc::constraint`] and its `constraint_min`.
    pub fn from_raw(code: u32, min: f64) -> Result<Self, UnknownCode> {
        match code {
            abi::CONSTRAINT_NONE => Ok(Constraint::None),
            abi::CONSTRAINT_POSITIVE => Ok(Constraint::Positive(min)),
            _ => Err(UnknownCode {
                field: "constraint",
                code,
            }),
        }
    }
}

/// A raw code in a [`abi::ParamDesc`] that this version does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownCode {
    /// The field (`scope`, `constraint`).
    pub field: &'static str,
    /// The value found.
    pub code: u32,
}

// Written by hand: this crate has no dependencies, so no thiserror.
impl std::fmt::Display for UnknownCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown parameter {} code {}", self.field, self.code)
    }
}

impl std::error::Error for UnknownCode {}

/// One parameter of an activation.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// Name used in the formula and in results (`a`, `beta`).
    pub name: String,
    /// Initial value.
    pub init: f64,
    /// Per layer or per channel.
    pub scope: ParamScope,
    /// Enforced after each update.
    pub constraint: Constraint,
    /// Learned (true) or a fixed hyper-parameter such as LReLU's slope.
    pub trainable: bool,
}

impl ParamSpec {
    /// A trainable per-layer scalar without constraint.
    pub fn scalar(name: &str, init: f64) -> Self {
        Self {
            name: name.to_owned(),
            init,
            scope: ParamScope::Layer,
            constraint: Constraint::None,
            trainable: true,
        }
    }

    /// A fixed (not learned) per-layer value.
    pub fn fixed(name: &str, value: f64) -> Self {
        Self {
            trainable: false,
            ..Self::scalar(name, value)
        }
    }

    /// The same parameter kept positive.
    pub fn positive(mut self, min: f64) -> Self {
        self.constraint = Constraint::Positive(min);
        self
    }
}

/// An activation function: parameters and a formula of `x` and those parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationDef {
    /// Unique name (`arelu`).
    pub name: String,
    /// One-line description for `acbench plugins list`.
    pub summary: String,
    /// Parameters, in the order results report them.
    pub params: Vec<ParamSpec>,
    /// The function, e.g. `max(a*x + c, b*x + d)`.
    pub formula: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_codes_round_trip() {
        for scope in [ParamScope::Layer, ParamScope::Channel] {
            assert_eq!(ParamScope::from_raw(scope.to_raw()), Ok(scope));
        }
        for c in [Constraint::None, Constraint::Positive(0.1)] {
            let (code, min) = c.to_raw();
            assert_eq!(Constraint::from_raw(code, min), Ok(c));
        }
        let err = ParamScope::from_raw(7)
            .map(|_| ())
            .expect_err("must be refused");
        assert_eq!(err.to_string(), "unknown parameter scope code 7");
        assert!(Constraint::from_raw(9, 0.0).is_err());
    }
}
