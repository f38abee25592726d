//! What an acbench activation function is, independent of any tensor library:
//! a name, learnable parameters, and a formula in acbench's expression
//! language (see `acbench_dsl::formula`). The engine lowers the formula to
//! candle operations, so autograd, every device and every dtype come for free.
//!
//! This crate deliberately depends on nothing: plugin authors compile it in
//! seconds, and it is where the C ABI for run-time loaded plugins lives.

/// How many values of a parameter an activation slot owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamScope {
    /// One scalar per activation slot (per layer), as in the paper.
    Layer,
    /// One value per channel (per feature for vectors).
    Channel,
}

/// A constraint the trainer enforces after every optimiser step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Constraint {
    /// Unconstrained.
    None,
    /// Clamped to at least the given small positive value (PELU).
    Positive(f64),
}

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
