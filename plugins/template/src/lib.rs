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
//!    one tensor operation per formula node. They must compute exactly what
//!    the formula says; `acbench plugins check` verifies it.
//!    A kernel that needs `exp`, `tanh` or the logistic function should
//!    call [`acbench_plugin_api::math`] (`math::exp`, `math::expm1`,
//!    `math::tanh`, `math::sigmoid`, all within 2 ulp) rather than
//!    `f32::exp` or `f32::tanh`: those call libm once per element, which
//!    keeps the loop scalar, while the `math` functions are plain
//!    arithmetic that the wide builds run 8 or 16 elements at a time. A
//!    kernel for `x * tanh(a * x)` would compute
//!    `*y = xi * math::tanh(a * xi)` in the loop of `forward` below.
//! 3. [`export_plugin!`] generates the C entry point acbench looks up
//!    (`acbench_plugin_entry`). Use it once per library.
//! 4. The tests compare the kernels with a plain `f64` reference and with
//!    finite differences (`cargo test`).
//!
//! To make your own: rename the package in `Cargo.toml`, change the
//! definition and the formula, and rewrite (or delete) the kernel.

use acbench_plugin_api::{
    Activation, ActivationDef, FusedKernel, Layout, ParamGrad, ParamScope, ParamSpec, backward_row,
    export_plugin, param_at,
};

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

impl FusedKernel for SoftsignA {
    /// One entry per parameter, in the definition's order.
    const SCOPES: &'static [ParamScope] = &[ParamScope::Layer];

    #[inline(always)]
    fn forward(layout: Layout, x: &[f32], p: &[&[f32]], out: &mut [f32]) -> Result<(), String> {
        // Buffers are `[outer, channels, inner]`; `rows()` walks them in
        // memory order, so each row reads its channel's parameters once.
        for (c, r) in layout.rows() {
            let a = param_at(p[0], c);
            for (y, &xi) in out[r.clone()].iter_mut().zip(&x[r]) {
                *y = xi / (1.0 + a * xi.abs());
            }
        }
        Ok(())
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
        // Adds the total gradient of `a` to the host's (zeroed) buffer when
        // dropped, summed in f64.
        let mut ga = ParamGrad::new(&mut *grad_params[0]);
        for (c, r) in layout.rows() {
            let a = param_at(p[0], c);
            // For every element: its grad_x, and its term of each parameter
            // gradient; `backward_row` sums the terms fast and in f64.
            let [sa] = backward_row(
                &x[r.clone()],
                &grad_out[r.clone()],
                &mut grad_x[r],
                |xi, g| {
                    let d = 1.0 + a * xi.abs();
                    let q = g / (d * d);
                    // dy/dx = 1/d^2; dy/da = -x|x|/d^2.
                    (q, [-q * xi * xi.abs()])
                },
            );
            ga.add(c, sa);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
