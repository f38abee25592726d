//! The paper's baselines as an acbench plugin: fixed activations (ReLU,
//! LReLU, Sigmoid, Tanh) and earlier adaptive ones (PReLU, Swish, PELU,
//! FReLU). The initial values in the definitions below are what a suite's
//! `standard` preset uses; its `paper-code` preset (what the authors'
//! published code does) starts LReLU's slope and PReLU's parameter at
//! values of its own.
//!
//! acbench links this crate and reads [`PLUGIN`]'s table through
//! [`acbench_plugin_api::abi`], as it reads any plugin's; the `cdylib/`
//! crate beside it builds the same activations as
//! `libacbench_plugin_baselines.so`, a plugin loaded at run time. Each
//! activation gives its formula (tier 1, any device) and fused `f32` kernels
//! for CPU (tier 2) that compute exactly the formula. Tie rules the kernels follow (the formula language's
//! and candle's): `relu'(0) = 1` (candle's relu backward uses `x >= 0`),
//! `max(u, v)` / `min(u, v)` give the whole gradient to `u` when `u >= v` /
//! `u <= v`, and `where(x >= 0, ...)` takes its first branch at 0.
//!
//! All but PELU are [`Pointwise`]: one element's value and gradients. PELU
//! is a [`FusedKernel`] on the API's row loops, because its parameter
//! gradients sum per-row factors that `a` and `b` then scale once per row
//! in `f64`; per-element terms would round differently.

use acbench_plugin_api::{
    Activation, ActivationDef, FusedKernel, Layout, LinkedPlugin, ParamGrad, ParamScope, ParamSpec,
    Pointwise, backward_rows, forward_rows, linked_plugin, math,
};

fn def(name: &str, summary: &str, params: Vec<ParamSpec>, formula: &str) -> ActivationDef {
    ActivationDef {
        name: name.into(),
        summary: summary.into(),
        params,
        formula: formula.into(),
    }
}

/// ReLU, LReLU, PReLU, Swish, PELU, FReLU, Sigmoid and Tanh.
pub fn activations() -> Vec<Activation> {
    vec![
        Activation::new(def("relu", "max(x, 0)", vec![], "relu(x)")).with_kernel::<Relu>(),
        Activation::new(def(
            "lrelu",
            "leaky ReLU max(x, s*x) with a fixed slope s",
            vec![ParamSpec::fixed("s", 0.01)],
            "max(x, s * x)",
        ))
        .with_kernel::<LRelu>(),
        Activation::new(def(
            "prelu",
            "parametric ReLU max(x,0) + p*min(x,0) (He et al. 2015)",
            vec![ParamSpec::scalar("p", 0.25)],
            "relu(x) + p * min(x, 0)",
        ))
        .with_kernel::<PRelu>(),
        Activation::new(def(
            "swish",
            "x*sigmoid(beta*x) with a trainable beta",
            vec![ParamSpec::scalar("beta", 1.0)],
            "x * sigmoid(beta * x)",
        ))
        .with_kernel::<Swish>(),
        Activation::new(def(
            "pelu",
            "parametric ELU (Trottier et al. 2017), a and b kept positive",
            vec![
                ParamSpec::scalar("a", 1.0).positive(0.1),
                ParamSpec::scalar("b", 1.0).positive(0.1),
            ],
            // min(x, 0) inside exp keeps the unused branch finite, so its
            // (masked) gradient is 0 rather than 0 * inf = NaN.
            "where(x >= 0, (a / b) * x, a * (exp(min(x, 0) / b) - 1))",
        ))
        .with_kernel::<Pelu>(),
        Activation::new(def(
            "frelu",
            "flexible ReLU relu(x) + bias (Qiu et al. 2018), layer-wise bias",
            vec![ParamSpec::scalar("bias", -1.0)],
            "relu(x) + bias",
        ))
        .with_kernel::<FRelu>(),
        Activation::new(def("sigmoid", "logistic sigmoid", vec![], "sigmoid(x)"))
            .with_kernel::<Sigmoid>(),
        Activation::new(def("tanh", "hyperbolic tangent", vec![], "tanh(x)")).with_kernel::<Tanh>(),
    ]
}

/// These activations as a plugin linked into acbench.
pub const PLUGIN: LinkedPlugin = linked_plugin!(activations);

/// `relu(x)`, as candle computes it (`max(x, 0)`, so NaN becomes 0).
#[inline]
fn relu(x: f32) -> f32 {
    x.max(0.0)
}

/// `relu'(x)`: 1 at 0, as candle's relu backward (`x >= 0`).
#[inline]
fn relu_slope(x: f32) -> f32 {
    if x >= 0.0 { 1.0 } else { 0.0 }
}

/// `1 / (1 + exp(-z))`: the API's vectorisable sigmoid (within 2 ulp),
/// not libm's `exp`, whose call per element would keep the loops scalar.
#[inline(always)]
fn sigmoid(z: f32) -> f32 {
    math::sigmoid(z)
}

/// `relu(x)`.
struct Relu;

impl Pointwise for Relu {
    type Params = [f32; 0];

    #[inline(always)]
    fn value(x: f32, _: [f32; 0]) -> f32 {
        relu(x)
    }

    #[inline(always)]
    fn grads(x: f32, g: f32, _: [f32; 0]) -> (f32, [f32; 0]) {
        (g * relu_slope(x), [])
    }
}

/// `sigmoid(x)`; its derivative from its value, as candle's backward.
struct Sigmoid;

impl Pointwise for Sigmoid {
    type Params = [f32; 0];

    #[inline(always)]
    fn value(x: f32, _: [f32; 0]) -> f32 {
        sigmoid(x)
    }

    #[inline(always)]
    fn grads(x: f32, g: f32, _: [f32; 0]) -> (f32, [f32; 0]) {
        let s = sigmoid(x);
        (g * ((1.0 - s) * s), [])
    }
}

/// `tanh(x)`; its derivative from its value, as candle's backward.
struct Tanh;

impl Pointwise for Tanh {
    type Params = [f32; 0];

    #[inline(always)]
    fn value(x: f32, _: [f32; 0]) -> f32 {
        math::tanh(x)
    }

    #[inline(always)]
    fn grads(x: f32, g: f32, _: [f32; 0]) -> (f32, [f32; 0]) {
        let t = math::tanh(x);
        (g * (1.0 - t * t), [])
    }
}

/// `max(x, s * x)`: on ties (`x >= s*x`, which includes `x = 0`) value and
/// gradient are `x`'s. The slope is fixed, so the host ignores its gradient;
/// it is still computed so that `plugins check` can compare every partial.
struct LRelu;

impl Pointwise for LRelu {
    type Params = [f32; 1];

    #[inline(always)]
    fn value(x: f32, [s]: [f32; 1]) -> f32 {
        let v = s * x;
        if x >= v { x } else { v }
    }

    #[inline(always)]
    fn grads(x: f32, g: f32, [s]: [f32; 1]) -> (f32, [f32; 1]) {
        if x >= s * x {
            (g, [0.0])
        } else {
            (g * s, [g * x])
        }
    }
}

/// `relu(x) + p * min(x, 0)`. At `x = 0` both terms pass gradient
/// (`relu'(0) = 1`, and `min` gives its tie to `x`), so `d/dx = 1 + p` there,
/// exactly as the formula's autograd says.
struct PRelu;

impl Pointwise for PRelu {
    type Params = [f32; 1];

    #[inline(always)]
    fn value(x: f32, [slope]: [f32; 1]) -> f32 {
        let neg = if x <= 0.0 { x } else { 0.0 };
        relu(x) + slope * neg
    }

    #[inline(always)]
    fn grads(x: f32, g: f32, [slope]: [f32; 1]) -> (f32, [f32; 1]) {
        let (neg, on_neg) = if x <= 0.0 { (x, g * slope) } else { (0.0, 0.0) };
        (g * relu_slope(x) + on_neg, [g * neg])
    }
}

/// `x * sigmoid(beta * x)`.
struct Swish;

impl Pointwise for Swish {
    type Params = [f32; 1];

    #[inline(always)]
    fn value(x: f32, [beta]: [f32; 1]) -> f32 {
        x * sigmoid(beta * x)
    }

    #[inline(always)]
    fn grads(x: f32, g: f32, [beta]: [f32; 1]) -> (f32, [f32; 1]) {
        let s = sigmoid(beta * x);
        // dL/dz for z = beta * x, in candle's order.
        let gz = (g * x) * ((1.0 - s) * s);
        (g * s + gz * beta, [gz * x])
    }
}

/// `relu(x) + bias`.
struct FRelu;

impl Pointwise for FRelu {
    type Params = [f32; 1];

    #[inline(always)]
    fn value(x: f32, [bias]: [f32; 1]) -> f32 {
        relu(x) + bias
    }

    #[inline(always)]
    fn grads(x: f32, g: f32, _: [f32; 1]) -> (f32, [f32; 1]) {
        (g * relu_slope(x), [g])
    }
}

/// `where(x >= 0, (a / b) * x, a * (exp(min(x, 0) / b) - 1))`; `x = 0` takes
/// the first branch. Keeping `a, b` positive is the trainer's job.
struct Pelu;

impl FusedKernel for Pelu {
    const SCOPES: &'static [ParamScope] = &[ParamScope::Layer, ParamScope::Layer];

    #[inline(always)]
    fn forward(layout: Layout, x: &[f32], p: &[&[f32]], out: &mut [f32]) -> Result<(), String> {
        forward_rows(layout, p, x, out, |xi, [a, b]: [f32; 2]| {
            // Both branches are computed and one selected, so the loop has
            // no branch and vectorises. `min(x, 0)` is x on the negative
            // side except for NaN, which the formula's min turns into 0.
            // `expm1` is `exp - 1` without its cancellation near 0.
            let m = if xi <= 0.0 { xi } else { 0.0 };
            let neg = a * math::expm1(m / b);
            if xi >= 0.0 { (a / b) * xi } else { neg }
        })
    }

    #[inline(always)]
    fn backward(
        layout: Layout,
        x: &[f32],
        p: &[&[f32]],
        grad_out: &[f32],
        grad_x: &mut [f32],
        grad_params: &mut [&mut [f32]],
    ) -> Result<(), String> {
        let [ga, gb] = grad_params else {
            return Err(format!(
                "2 parameter gradients expected, got {}",
                grad_params.len()
            ));
        };
        let (mut ga, mut gb) = (ParamGrad::new(ga), ParamGrad::new(gb));
        // Row sums of the per-element factors; a and b are constant over a
        // row, so they multiply the sums once.
        backward_rows(
            layout,
            p,
            x,
            grad_out,
            grad_x,
            |xi, g, [a, b]: [f32; 2]| {
                // Both sides computed, one selected: no branch in the loop
                // (see `forward`).
                let on_x = xi <= 0.0;
                let m = if on_x { xi } else { 0.0 };
                let em = math::expm1(m / b);
                let e = em + 1.0;
                let neg_gx = if on_x { (g * a) * e / b } else { 0.0 };
                if xi >= 0.0 {
                    (g * (a / b), [g * xi, 0.0, 0.0])
                } else {
                    (neg_gx, [0.0, g * em, g * e * m])
                }
            },
            |c, [a, b], [pos_gx, neg_ge1, neg_gex]| {
                let (a, b) = (f64::from(a), f64::from(b));
                // d/da: x/b on the positive side, exp(m/b) - 1 on the
                // negative; d/db: -a x / b^2 and -a exp(m/b) m / b^2.
                ga.add(c, pos_gx / b + neg_ge1);
                gb.add(c, -a / (b * b) * (pos_gx + neg_gex));
            },
        )
    }
}

#[cfg(test)]
mod tests;
