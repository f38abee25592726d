//! The paper's adaptive activations as an acbench plugin: ASigmoid, ATanh and
//! AReLU, each with four learnable scalars per layer initialised so that it
//! starts as its fixed counterpart (a = b = 1, c = d = 0).
//!
//! acbench links this crate and reads [`PLUGIN`]'s table through
//! [`acbench_plugin_api::abi`], as it reads any plugin's; the `cdylib/`
//! crate beside it builds the same activations as
//! `libacbench_plugin_adaptive.so`, a plugin loaded at run time. Each
//! activation gives its formula (tier 1, any device) and fused `f32` kernels
//! for CPU (tier 2) that compute exactly the formula, ties included. The
//! kernels are [`Pointwise`]: each activation writes one element's value
//! and gradients, the API the loops.

use std::marker::PhantomData;

use acbench_plugin_api::{
    Activation, ActivationDef, LinkedPlugin, ParamSpec, Pointwise, linked_plugin, math,
};

fn abcd() -> Vec<ParamSpec> {
    vec![
        ParamSpec::scalar("a", 1.0),
        ParamSpec::scalar("b", 1.0),
        ParamSpec::scalar("c", 0.0),
        ParamSpec::scalar("d", 0.0),
    ]
}

/// ASigmoid, ATanh and AReLU.
pub fn activations() -> Vec<Activation> {
    vec![
        Activation::new(ActivationDef {
            name: "asigmoid".into(),
            summary: "adaptive sigmoid b*sigmoid(a*x+c)+d".into(),
            params: abcd(),
            formula: "b * sigmoid(a * x + c) + d".into(),
        })
        .with_kernel::<Squashed<Sigmoid>>(),
        Activation::new(ActivationDef {
            name: "atanh".into(),
            summary: "adaptive tanh b*tanh(a*x+c)+d".into(),
            params: abcd(),
            formula: "b * tanh(a * x + c) + d".into(),
        })
        .with_kernel::<Squashed<Tanh>>(),
        Activation::new(ActivationDef {
            name: "arelu".into(),
            summary: "adaptive ReLU max(a*x+c, b*x+d); ties go to the first argument".into(),
            params: abcd(),
            // With a=b, c=d the two arguments tie everywhere. A rule that
            // split a tie's gradient between them would move a and b (and c
            // and d) by the same amounts, so they would stay equal and the
            // function linear for ever; `max` gives the whole gradient to
            // its first argument, so a and c move first and the function
            // becomes non-linear.
            formula: "max(a * x + c, b * x + d)".into(),
        })
        .with_kernel::<ARelu>(),
    ]
}

/// These activations as a plugin linked into acbench.
pub const PLUGIN: LinkedPlugin = linked_plugin!(activations);

/// A smooth squashing function `s` with its derivative written in terms of
/// its output, as candle's backward computes it.
trait Squash: 'static {
    fn value(z: f32) -> f32;
    /// `s'(z)` given `s(z)`.
    fn slope(s: f32) -> f32;
}

/// `1 / (1 + exp(-z))`.
struct Sigmoid;

impl Squash for Sigmoid {
    /// The API's vectorisable sigmoid (within 2 ulp): libm's `exp`, called
    /// per element, would keep the kernel loops scalar.
    #[inline(always)]
    fn value(z: f32) -> f32 {
        math::sigmoid(z)
    }

    #[inline]
    fn slope(s: f32) -> f32 {
        (1.0 - s) * s
    }
}

/// `tanh(z)`.
struct Tanh;

impl Squash for Tanh {
    /// The API's vectorisable tanh (within 1 ulp), for the same reason.
    #[inline(always)]
    fn value(z: f32) -> f32 {
        math::tanh(z)
    }

    #[inline]
    fn slope(t: f32) -> f32 {
        1.0 - t * t
    }
}

/// `b * s(a * x + c) + d`: ASigmoid and ATanh share everything but `s`.
struct Squashed<S>(PhantomData<S>);

impl<S: Squash> Pointwise for Squashed<S> {
    type Params = [f32; 4];

    #[inline(always)]
    fn value(x: f32, [a, b, c, d]: [f32; 4]) -> f32 {
        b * S::value(a * x + c) + d
    }

    #[inline(always)]
    fn grads(x: f32, g: f32, [a, b, c, _]: [f32; 4]) -> (f32, [f32; 4]) {
        let s = S::value(a * x + c);
        // dL/dz for z = a*x + c, in candle's order: (g * b) * s'(z).
        let gz = (g * b) * S::slope(s);
        (gz * a, [gz * x, g * s, gz, g])
    }
}

/// `max(a*x + c, b*x + d)`; where the two tie (`u >= v`) the value and the
/// whole gradient are the first argument's.
struct ARelu;

impl Pointwise for ARelu {
    type Params = [f32; 4];

    #[inline(always)]
    fn value(x: f32, [a, b, c, d]: [f32; 4]) -> f32 {
        let (u, v) = (a * x + c, b * x + d);
        if u >= v { u } else { v }
    }

    #[inline(always)]
    fn grads(x: f32, g: f32, [a, b, c, d]: [f32; 4]) -> (f32, [f32; 4]) {
        // The whole gradient goes either to u (a, c) or to v (b, d).
        if a * x + c >= b * x + d {
            (g * a, [g * x, 0.0, g, 0.0])
        } else {
            (g * b, [0.0, g * x, 0.0, g])
        }
    }
}

#[cfg(test)]
mod tests;
