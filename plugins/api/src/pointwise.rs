//! Element-wise activations from their scalar math alone.
//!
//! Most activations are `y = f(x; p)` element by element. An author writes
//! `f` and its gradients for one element ([`Pointwise`]); the blanket
//! [`FusedKernel`] implementation below turns them into the slice kernels:
//! the loops over rows and channels, the parameter-gradient sums (through
//! [`backward_row`], in its fixed order), and through [`FusedKernel`] the
//! AVX-512/AVX2 builds, the C ABI shims and the table entry
//! ([`Activation::with_kernel`](crate::Activation::with_kernel)).
//!
//! ```standalone_crate
//! use acbench_plugin_api::{Activation, ActivationDef, ParamSpec, Pointwise, export_plugin};
//!
//! /// `k * tanh(x)`.
//! struct ScaledTanh;
//!
//! impl Pointwise for ScaledTanh {
//!     type Params = [f32; 1];
//!
//!     #[inline(always)]
//!     fn value(x: f32, [k]: [f32; 1]) -> f32 {
//!         k * acbench_plugin_api::math::tanh(x)
//!     }
//!
//!     #[inline(always)]
//!     fn grads(x: f32, g: f32, [k]: [f32; 1]) -> (f32, [f32; 1]) {
//!         let t = acbench_plugin_api::math::tanh(x);
//!         ((g * k) * (1.0 - t * t), [g * t])
//!     }
//! }
//!
//! fn activations() -> Vec<Activation> {
//!     vec![Activation::new(ActivationDef {
//!         name: "scaled_tanh".into(),
//!         summary: "k * tanh(x)".into(),
//!         params: vec![ParamSpec::scalar("k", 1.0)],
//!         formula: "k * tanh(x)".into(),
//!     })
//!     .with_kernel::<ScaledTanh>()]
//! }
//!
//! export_plugin!(activations);
//! ```

use crate::ParamScope;
use crate::abi::Layout;
use crate::kernel::{FusedKernel, LANES, ParamGrad, backward_row, backward_short_rows, param_at};

/// An element-wise activation `y = f(x; p)` given by its value and its
/// gradients at one element; every `Pointwise` type is a [`FusedKernel`].
///
/// Mark both functions `#[inline(always)]`: the kernels are then compiled
/// inside the API's AVX-512 and AVX2 builds and their loops run 16 or 8
/// elements at a time. They must compute exactly what the activation's
/// formula states, ties included (see [`FusedKernel`]), and be pure
/// functions of their arguments: the backward also calls `grads` on zero
/// padding (`x = 0`, `g = 0`) and ignores the result.
pub trait Pointwise: 'static {
    /// The parameter values of one channel, in the definition's order:
    /// `[f32; N]` for `N` parameters, `[f32; 0]` for none.
    type Params: ParamValues;

    /// The scope of each parameter. Every parameter is per layer unless an
    /// implementation says otherwise (the kernels serve either scope).
    const SCOPES: &'static [ParamScope] = Self::Params::PER_LAYER;

    /// `f(x; p)`.
    fn value(x: f32, p: Self::Params) -> f32;

    /// Given `g = dL/dy` at one element: `dL/dx`, and each parameter's term
    /// `g * df/dp[i]` of its gradient (the kernel sums the terms).
    fn grads(x: f32, g: f32, p: Self::Params) -> (f32, Self::Params);
}

/// The values of an activation's parameters at one channel, and how a
/// backward pass sums their gradients: `[f32; N]`, the only implementation.
pub trait ParamValues: Copy + 'static + sealed::Sealed {
    /// [`ParamScope::Layer`] once per parameter.
    const PER_LAYER: &'static [ParamScope];

    /// The values of channel `c`, read with [`param_at`] from the parameter
    /// slices a kernel receives; an error when their count is wrong.
    fn at(values: &[&[f32]], c: usize) -> Result<Self, String>;

    /// [`FusedKernel::backward`] of `grads` (a [`Pointwise::grads`]): one
    /// gradient term per parameter, summed by [`backward_rows`].
    fn backward(
        layout: Layout,
        x: &[f32],
        params: &[&[f32]],
        grad_out: &[f32],
        grad_x: &mut [f32],
        grad_params: &mut [&mut [f32]],
        grads: impl Fn(f32, f32, Self) -> (f32, Self),
    ) -> Result<(), String>;
}

impl<const N: usize> ParamValues for [f32; N] {
    const PER_LAYER: &'static [ParamScope] = &[ParamScope::Layer; N];

    #[inline(always)]
    fn at(values: &[&[f32]], c: usize) -> Result<Self, String> {
        if values.len() != N {
            return Err(format!("{N} parameters expected, got {}", values.len()));
        }
        let mut at = [0.0; N];
        for (v, values) in at.iter_mut().zip(values) {
            *v = param_at(values, c);
        }
        Ok(at)
    }

    #[inline(always)]
    fn backward(
        layout: Layout,
        x: &[f32],
        params: &[&[f32]],
        grad_out: &[f32],
        grad_x: &mut [f32],
        grad_params: &mut [&mut [f32]],
        grads: impl Fn(f32, f32, Self) -> (f32, Self),
    ) -> Result<(), String> {
        if grad_params.len() != N {
            return Err(format!(
                "{N} parameter gradients expected, got {}",
                grad_params.len()
            ));
        }
        // An array, not a `Vec`: the per-layer totals then stay in
        // registers across rows instead of going through memory each row.
        let mut outs = grad_params.iter_mut();
        let mut sums: [ParamGrad<'_>; N] =
            std::array::from_fn(|_| ParamGrad::new(outs.next().map_or(&mut [], |g| &mut **g)));
        backward_rows(
            layout,
            params,
            x,
            grad_out,
            grad_x,
            grads,
            |c, _, totals: [f64; N]| {
                for (sum, total) in sums.iter_mut().zip(totals) {
                    sum.add(c, total);
                }
            },
        )
    }
}

/// Keeps [`ParamValues`] to the arrays: its `backward` is the kernels' own
/// business, not something an author should have to write.
mod sealed {
    /// Implemented for `[f32; N]` only.
    pub trait Sealed {}

    impl<const N: usize> Sealed for [f32; N] {}
}

/// Whether every parameter slice holds one value (a per-layer parameter),
/// so that every element of the buffer sees the same values.
fn one_value_each(params: &[&[f32]]) -> bool {
    params.iter().all(|p| p.len() == 1)
}

/// A forward kernel from one element's function: `out[k] = f(x[k], p)`
/// with `p` the parameter values of element `k`'s channel.
///
/// Rows matter only for per-channel values; with none it is one loop over
/// the whole buffer (a dense layer's rows are single elements).
#[inline(always)]
pub fn forward_rows<V: ParamValues>(
    layout: Layout,
    params: &[&[f32]],
    x: &[f32],
    out: &mut [f32],
    f: impl Fn(f32, V) -> f32,
) -> Result<(), String> {
    if one_value_each(params) {
        let p = V::at(params, 0)?;
        for (y, &xi) in out.iter_mut().zip(x) {
            *y = f(xi, p);
        }
        return Ok(());
    }
    for (c, r) in layout.rows() {
        let p = V::at(params, c)?;
        for (y, &xi) in out[r.clone()].iter_mut().zip(&x[r]) {
            *y = f(xi, p);
        }
    }
    Ok(())
}

/// A backward kernel from one element's gradients: `term(x, grad_out, p)`
/// gives `grad_x` and `N` terms to sum, `p` being the parameter values of
/// the element's channel; `row_totals(c, p, totals)` then receives each
/// row's sums of the terms, row by row in memory order.
///
/// The sums are [`backward_row`]'s for every row, even for per-layer
/// parameters: their order (lanes within a row, rows in `f64`) is part of
/// the results. Rows shorter than its sixteen lanes with the same parameter
/// values everywhere are summed alike but computed sixteen elements at a
/// time across rows, so `term` must be pure: it also runs on zero padding.
/// Without terms (`N = 0`) and with the same values everywhere it is one
/// loop over the whole buffer.
#[inline(always)]
pub fn backward_rows<V: ParamValues, const N: usize>(
    layout: Layout,
    params: &[&[f32]],
    x: &[f32],
    grad_out: &[f32],
    grad_x: &mut [f32],
    term: impl Fn(f32, f32, V) -> (f32, [f32; N]),
    mut row_totals: impl FnMut(usize, V, [f64; N]),
) -> Result<(), String> {
    let same_everywhere = one_value_each(params);
    if N == 0 && same_everywhere {
        let p = V::at(params, 0)?;
        for ((d, &xi), &g) in grad_x.iter_mut().zip(x).zip(grad_out) {
            *d = term(xi, g, p).0;
        }
        return Ok(());
    }
    if same_everywhere && (1..LANES).contains(&layout.inner) {
        let p = V::at(params, 0)?;
        let n = layout.len();
        let channels = layout.channels;
        backward_short_rows(
            layout.inner,
            &x[..n],
            &grad_out[..n],
            &mut grad_x[..n],
            |xi, g| term(xi, g, p),
            |row, totals| row_totals(row % channels, p, totals),
        );
        return Ok(());
    }
    for (c, r) in layout.rows() {
        let p = V::at(params, c)?;
        let totals = backward_row(
            &x[r.clone()],
            &grad_out[r.clone()],
            &mut grad_x[r],
            |xi, g| term(xi, g, p),
        );
        row_totals(c, p, totals);
    }
    Ok(())
}

impl<P: Pointwise> FusedKernel for P {
    const SCOPES: &'static [ParamScope] = <P as Pointwise>::SCOPES;

    #[inline(always)]
    fn forward(
        layout: Layout,
        x: &[f32],
        params: &[&[f32]],
        out: &mut [f32],
    ) -> Result<(), String> {
        forward_rows(layout, params, x, out, P::value)
    }

    #[inline(always)]
    fn backward(
        layout: Layout,
        x: &[f32],
        params: &[&[f32]],
        grad_out: &[f32],
        grad_x: &mut [f32],
        grad_params: &mut [&mut [f32]],
    ) -> Result<(), String> {
        P::Params::backward(layout, x, params, grad_out, grad_x, grad_params, P::grads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{
        Partials, TestRng, check_against_reference, check_finite_differences,
        check_same_on_every_width, run_kernel,
    };

    /// `k * x + bias * x * x`, `k` per channel, `bias` per layer.
    struct Quadratic;

    impl Pointwise for Quadratic {
        type Params = [f32; 2];
        const SCOPES: &'static [ParamScope] = &[ParamScope::Channel, ParamScope::Layer];

        #[inline(always)]
        fn value(x: f32, [k, q]: [f32; 2]) -> f32 {
            k * x + q * (x * x)
        }

        #[inline(always)]
        fn grads(x: f32, g: f32, [k, q]: [f32; 2]) -> (f32, [f32; 2]) {
            (g * (k + 2.0 * q * x), [g * x, g * (x * x)])
        }
    }

    /// `x * |x|`, no parameters.
    struct SignedSquare;

    impl Pointwise for SignedSquare {
        type Params = [f32; 0];

        #[inline(always)]
        fn value(x: f32, _: [f32; 0]) -> f32 {
            x * x.abs()
        }

        #[inline(always)]
        fn grads(x: f32, g: f32, _: [f32; 0]) -> (f32, [f32; 0]) {
            (g * (2.0 * x.abs()), [])
        }
    }

    /// Rows of 37 elements: two 16-lane blocks and a tail.
    const LAYOUT: Layout = Layout {
        outer: 3,
        channels: 4,
        inner: 37,
    };

    fn quadratic_ref(x: f64, p: &[f64]) -> Partials {
        Partials {
            value: p[0] * x + p[1] * x * x,
            dx: p[0] + 2.0 * p[1] * x,
            dparams: vec![x, x * x],
        }
    }

    #[test]
    fn scopes_default_to_per_layer() {
        assert_eq!(<[f32; 3]>::PER_LAYER, [ParamScope::Layer; 3]);
        assert_eq!(<SignedSquare as FusedKernel>::SCOPES, []);
        assert_eq!(
            <Quadratic as FusedKernel>::SCOPES,
            [ParamScope::Channel, ParamScope::Layer]
        );
    }

    #[test]
    fn per_channel_and_per_layer_values_both_match_the_reference() {
        let mut rng = TestRng::new(9);
        let x = rng.fill(LAYOUT.len(), -3.0, 3.0);
        let g = rng.fill(x.len(), -1.0, 1.0);
        let k = rng.fill(LAYOUT.channels, -2.0, 2.0);
        for params in [vec![&k[..], &[0.3][..]], vec![&[1.5][..], &[-0.2][..]]] {
            let errors =
                check_against_reference::<Quadratic>(LAYOUT, &x, &params, &g, quadratic_ref)
                    .expect("kernels run");
            assert!(errors.max() < 1e-5, "{errors:?}");
            let fd = check_finite_differences::<Quadratic>(LAYOUT, &x, &params, &g, 1e-2)
                .expect("kernels run");
            assert!(fd < 2e-3, "finite differences off by {fd}");
        }
        check_same_on_every_width::<Quadratic>(LAYOUT, &x, &[&k, &[0.3]], &g).expect("kernels run");
    }

    /// Per-layer gradients sum each row in `backward_row`'s lanes, rows in
    /// f64: the order the results depend on.
    #[test]
    fn parameter_gradients_are_summed_row_by_row() {
        let mut rng = TestRng::new(4);
        let x = rng.fill(LAYOUT.len(), -3.0, 3.0);
        let g = rng.fill(x.len(), -1.0, 1.0);
        let run = run_kernel::<Quadratic>(LAYOUT, &x, &[&[1.5], &[-0.2]], &g).expect("kernel");
        let mut want = [0.0f64; 2];
        let mut gx = vec![0.0f32; x.len()];
        for (_, r) in LAYOUT.rows() {
            let totals = backward_row(&x[r.clone()], &g[r.clone()], &mut gx[r], |xi, gi| {
                Quadratic::grads(xi, gi, [1.5, -0.2])
            });
            for (w, t) in want.iter_mut().zip(totals) {
                *w += t;
            }
        }
        assert_eq!(run.grad_x, gx);
        assert_eq!(run.grad_params, [[want[0] as f32], [want[1] as f32]]);
    }

    #[test]
    fn without_parameters_every_element_is_computed() {
        let x = [-2.0f32, -0.5, 0.0, 0.5, 3.0];
        let g = [1.0f32, 2.0, 3.0, 4.0, 5.0];
        let layout = Layout {
            outer: 5,
            channels: 1,
            inner: 1,
        };
        let run = run_kernel::<SignedSquare>(layout, &x, &[], &g).expect("kernel");
        assert_eq!(run.out, [-4.0, -0.25, 0.0, 0.25, 9.0]);
        assert_eq!(run.grad_x, [4.0, 2.0, 0.0, 4.0, 30.0]);
        check_same_on_every_width::<SignedSquare>(layout, &x, &[], &g).expect("kernels run");
    }

    #[test]
    fn a_wrong_parameter_count_is_an_error() {
        let layout = Layout {
            outer: 1,
            channels: 1,
            inner: 2,
        };
        let err = run_kernel::<Quadratic>(layout, &[1.0, 2.0], &[&[1.0]], &[1.0, 1.0])
            .expect_err("must be refused");
        assert_eq!(err, "2 parameters expected, got 1");
    }
}
