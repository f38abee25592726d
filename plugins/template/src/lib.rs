//! A template acbench activation plugin: `softsign_a(x) = x / (1 + a*|x|)`
//! with one learnable parameter `a` per layer.
//!
//! The parts, top to bottom:
//!
//! 1. [`activations`] lists what this library exports. Each
//!    [`ActivationDef`] has a unique `name` (what `--act` takes), a
//!    one-line `summary`, its parameters ([`ParamSpec`]: name, initial
//!    value, per layer or per channel, constraint, trainable or fixed) and a
//!    `formula` in acbench's expression language. The formula alone is a
//!    complete activation (tier 1): acbench lowers it to tensor operations
//!    with autograd, on every device.
//! 2. `.with_kernel::<SoftsignA>()` adds fused CPU kernels (tier 2, optional):
//!    one pass over the data for forward and one for backward, instead of
//!    one tensor operation per formula node. An element-wise activation only
//!    implements [`Pointwise`] for one element: its value `f(x; a)`, and
//!    given `g = dL/dy` its `dL/dx` and its term of each parameter's
//!    gradient. The API makes the kernels from these (loops, gradient sums,
//!    AVX-512/AVX2 builds). They must compute exactly what the formula says;
//!    `acbench plugins check` verifies it.
//!
//!    For `exp`, `expm1`, `tanh` and the logistic function call
//!    [`acbench_plugin_api::math`] (within 2 ulp), not `f32::exp` or
//!    `f32::tanh`: those call libm once per element, which keeps the loop
//!    scalar, while `math` is plain arithmetic that runs 8 or 16 elements
//!    at a time. `x * tanh(a * x)`, for example, would be:
//!
//!    ```ignore
//!    use acbench_plugin_api::math;
//!
//!    fn value(x: f32, [a]: [f32; 1]) -> f32 {
//!        x * math::tanh(a * x)
//!    }
//!
//!    fn grads(x: f32, g: f32, [a]: [f32; 1]) -> (f32, [f32; 1]) {
//!        let t = math::tanh(a * x);
//!        let gz = (g * x) * (1.0 - t * t); // dL/dz for z = a * x
//!        (g * t + gz * a, [gz * x])
//!    }
//!    ```
//! 3. [`export_plugin!`] generates the C entry point acbench looks up
//!    (`acbench_plugin_entry`). Use it once per library.
//! 4. The tests compare the kernels with a plain `f64` reference and with
//!    finite differences (`cargo test`).
//!
//! To make your own: rename the package in `Cargo.toml`, change the
//! definition and the formula, and rewrite (or delete) the kernel.

use acbench_plugin_api::{Activation, ActivationDef, ParamSpec, Pointwise, export_plugin};

/// The activations this library exports.
fn activations() -> Vec<Activation> {
    vec![
        Activation::new(ActivationDef {
            name: "softsign_a".into(),
            summary: "adaptive softsign x / (1 + a*|x|)".into(),
            // `a` starts at 1 (the plain softsign) and is kept at least 1e-3
            // by the trainer after every step, so the denominator stays
            // positive. `ParamSpec::fixed` would make it a hyper-parameter.
            params: vec![ParamSpec::scalar("a", 1.0).positive(1e-3)],
            formula: "x / (1 + a * abs(x))".into(),
        })
        .with_kernel::<SoftsignA>(),
    ]
}

export_plugin!(activations);

/// Fused kernels for `x / (1 + a*|x|)`.
struct SoftsignA;

impl Pointwise for SoftsignA {
    /// One value per parameter, in the definition's order. Parameters are
    /// per layer unless `const SCOPES` says otherwise.
    type Params = [f32; 1];

    // `#[inline(always)]` lets the API compile these into its AVX-512 and
    // AVX2 loops.
    #[inline(always)]
    fn value(x: f32, [a]: [f32; 1]) -> f32 {
        x / (1.0 + a * x.abs())
    }

    /// `g` is `dL/dy` at this element: returns `dL/dx` and, per parameter,
    /// this element's term `g * dy/da` of its gradient (the API sums them).
    #[inline(always)]
    fn grads(x: f32, g: f32, [a]: [f32; 1]) -> (f32, [f32; 1]) {
        let d = 1.0 + a * x.abs();
        let q = g / (d * d);
        // dy/dx = 1/d^2; dy/da = -x|x|/d^2.
        (q, [-q * x * x.abs()])
    }
}

#[cfg(test)]
mod tests {
    use acbench_plugin_api::abi::Layout;
    use acbench_plugin_api::testing::{
        Partials, TestRng, check_against_reference, check_finite_differences,
    };

    use super::*;

    const LAYOUT: Layout = Layout {
        outer: 2,
        channels: 3,
        inner: 7,
    };

    /// The formula and its derivatives, written out in f64.
    fn reference(x: f64, p: &[f64]) -> Partials {
        let d = 1.0 + p[0] * x.abs();
        Partials {
            value: x / d,
            dx: 1.0 / (d * d),
            dparams: vec![-x * x.abs() / (d * d)],
        }
    }

    #[test]
    fn kernels_match_the_reference() {
        let mut rng = TestRng::new(1);
        for a in [1.0f32, 0.3, 4.0] {
            let mut x = rng.fill(LAYOUT.len(), -5.0, 5.0);
            x[0] = 0.0;
            let g = rng.fill(x.len(), -1.0, 1.0);
            let errors = check_against_reference::<SoftsignA>(LAYOUT, &x, &[&[a]], &g, reference);
            let errors = errors.expect("kernels run");
            assert!(errors.max() < 1e-5, "a = {a}: {errors:?}");
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let mut rng = TestRng::new(2);
        // Away from the kink of |x| at 0.
        let x: Vec<f32> = rng
            .fill(LAYOUT.len(), 0.1, 3.0)
            .into_iter()
            .enumerate()
            .map(|(k, v)| if k % 2 == 0 { v } else { -v })
            .collect();
        let g = rng.fill(x.len(), -1.0, 1.0);
        let err = check_finite_differences::<SoftsignA>(LAYOUT, &x, &[&[0.7]], &g, 3e-3);
        let err = err.expect("kernels run");
        assert!(err < 2e-3, "off by {err}");
    }
}
