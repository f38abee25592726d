//! The paper's baselines as an acbench plugin: fixed activations (ReLU,
//! LReLU, Sigmoid, Tanh) and earlier adaptive ones (PReLU, Swish, PELU,
//! FReLU). Initial values are the `standard` preset's; the `paper-code`
//! preset (LReLU slope 0.2, PReLU starting at 0) overrides them per run.
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

use std::marker::PhantomData;

use acbench_plugin_api::{
    Activation, ActivationDef, FusedKernel, Layout, LinkedPlugin, ParamGrad, ParamScope, ParamSpec,
    backward_row, linked_plugin, math, param_at,
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
        Activation::new(def("relu", "max(x, 0)", vec![], "relu(x)"))
            .with_kernel::<Pointwise<Relu>>(),
        Activation::new(def(
            "lrelu",
            "leaky ReLU max(x, s*x) with a fixed slope s",
            vec![ParamSpec::fixed("s", 0.01)],
            "max(x, s * x)",
        ))
        .with_kernel::<WithParam<LRelu>>(),
        Activation::new(def(
            "prelu",
            "parametric ReLU max(x,0) + p*min(x,0) (He et al. 2015)",
            vec![ParamSpec::scalar("p", 0.25)],
            "relu(x) + p * min(x, 0)",
        ))
        .with_kernel::<WithParam<PRelu>>(),
        Activation::new(def(
            "swish",
            "x*sigmoid(beta*x) with a trainable beta",
            vec![ParamSpec::scalar("beta", 1.0)],
            "x * sigmoid(beta * x)",
        ))
        .with_kernel::<WithParam<Swish>>(),
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
        .with_kernel::<WithParam<FRelu>>(),
        Activation::new(def("sigmoid", "logistic sigmoid", vec![], "sigmoid(x)"))
            .with_kernel::<Pointwise<Sigmoid>>(),
        Activation::new(def("tanh", "hyperbolic tangent", vec![], "tanh(x)"))
            .with_kernel::<Pointwise<Tanh>>(),
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

/// The single parameter of a one-parameter activation, for channel `c`.
#[inline]
fn one_param(p: &[&[f32]], c: usize) -> Result<f32, String> {
    match p {
        [only] => Ok(param_at(only, c)),
        _ => Err(format!("1 parameter expected, got {}", p.len())),
    }
}

/// The gradient buffer of a one-parameter activation.
fn one_grad<'a>(grad_params: &'a mut [&mut [f32]]) -> Result<ParamGrad<'a>, String> {
    match grad_params {
        [only] => Ok(ParamGrad::new(only)),
        _ => Err(format!(
            "1 parameter gradient expected, got {}",
            grad_params.len()
        )),
    }
}

/// A parameter-free activation given by its value and its derivative.
trait Elementwise: 'static {
    fn value(x: f32) -> f32;
    /// `f'(x)` given `x` and `y = f(x)` (whichever candle's backward uses).
    fn slope(x: f32, y: f32) -> f32;
}

struct Relu;

impl Elementwise for Relu {
    #[inline]
    fn value(x: f32) -> f32 {
        relu(x)
    }

    #[inline]
    fn slope(x: f32, _: f32) -> f32 {
        relu_slope(x)
    }
}

struct Sigmoid;

impl Elementwise for Sigmoid {
    #[inline(always)]
    fn value(x: f32) -> f32 {
        sigmoid(x)
    }

    #[inline]
    fn slope(_: f32, s: f32) -> f32 {
        (1.0 - s) * s
    }
}

struct Tanh;

impl Elementwise for Tanh {
    #[inline(always)]
    fn value(x: f32) -> f32 {
        math::tanh(x)
    }

    #[inline]
    fn slope(_: f32, t: f32) -> f32 {
        1.0 - t * t
    }
}

/// The fused kernels of an [`Elementwise`] activation.
struct Pointwise<F>(PhantomData<F>);

impl<F: Elementwise> FusedKernel for Pointwise<F> {
    const SCOPES: &'static [ParamScope] = &[];

    #[inline(always)]
    fn forward(_: Layout, x: &[f32], _: &[&[f32]], out: &mut [f32]) -> Result<(), String> {
        for (y, &xi) in out.iter_mut().zip(x) {
            *y = F::value(xi);
        }
        Ok(())
    }

    #[inline(always)]
    fn backward(
        _: Layout,
        x: &[f32],
        _: &[&[f32]],
        grad_out: &[f32],
        grad_x: &mut [f32],
        _: &mut [&mut [f32]],
    ) -> Result<(), String> {
        for ((gx, &xi), &g) in grad_x.iter_mut().zip(x).zip(grad_out) {
            *gx = g * F::slope(xi, F::value(xi));
        }
        Ok(())
    }
}

/// An activation with one parameter `p` given by its value and its
/// gradients: the four one-parameter baselines differ only in these two.
trait OneParam: 'static {
    fn value(x: f32, p: f32) -> f32;
    /// `(dL/dx, dL/dp)` for one element, given `g = dL/dy`.
    fn grads(x: f32, g: f32, p: f32) -> (f32, f32);
}

/// The fused kernels of a [`OneParam`] activation (a layer-wise parameter).
struct WithParam<F>(PhantomData<F>);

impl<F: OneParam> FusedKernel for WithParam<F> {
    const SCOPES: &'static [ParamScope] = &[ParamScope::Layer];

    #[inline(always)]
    fn forward(layout: Layout, x: &[f32], p: &[&[f32]], out: &mut [f32]) -> Result<(), String> {
        for (c, r) in layout.rows() {
            let pc = one_param(p, c)?;
            for (y, &xi) in out[r.clone()].iter_mut().zip(&x[r]) {
                *y = F::value(xi, pc);
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
        let mut gp = one_grad(grad_params)?;
        for (c, r) in layout.rows() {
            let pc = one_param(p, c)?;
            let [sp] = backward_row(
                &x[r.clone()],
                &grad_out[r.clone()],
                &mut grad_x[r],
                |xi, g| {
                    let (gx, gpar) = F::grads(xi, g, pc);
                    (gx, [gpar])
                },
            );
            gp.add(c, sp);
        }
        Ok(())
    }
}

/// `max(x, s * x)`: on ties (`x >= s*x`, which includes `x = 0`) value and
/// gradient are `x`'s. The slope is fixed, so the host ignores its gradient;
/// it is still computed so that `plugins check` can compare every partial.
struct LRelu;

impl OneParam for LRelu {
    #[inline]
    fn value(x: f32, s: f32) -> f32 {
        let v = s * x;
        if x >= v { x } else { v }
    }

    #[inline]
    fn grads(x: f32, g: f32, s: f32) -> (f32, f32) {
        if x >= s * x { (g, 0.0) } else { (g * s, g * x) }
    }
}

/// `relu(x) + p * min(x, 0)`. At `x = 0` both terms pass gradient
/// (`relu'(0) = 1`, and `min` gives its tie to `x`), so `d/dx = 1 + p` there,
/// exactly as the formula's autograd says.
struct PRelu;

impl OneParam for PRelu {
    #[inline]
    fn value(x: f32, slope: f32) -> f32 {
        let neg = if x <= 0.0 { x } else { 0.0 };
        relu(x) + slope * neg
    }

    #[inline]
    fn grads(x: f32, g: f32, slope: f32) -> (f32, f32) {
        let (neg, on_neg) = if x <= 0.0 { (x, g * slope) } else { (0.0, 0.0) };
        (g * relu_slope(x) + on_neg, g * neg)
    }
}

/// `x * sigmoid(beta * x)`.
struct Swish;

impl OneParam for Swish {
    #[inline(always)]
    fn value(x: f32, beta: f32) -> f32 {
        x * sigmoid(beta * x)
    }

    #[inline(always)]
    fn grads(x: f32, g: f32, beta: f32) -> (f32, f32) {
        let s = sigmoid(beta * x);
        // dL/dz for z = beta * x, in candle's order.
        let gz = (g * x) * ((1.0 - s) * s);
        (g * s + gz * beta, gz * x)
    }
}

/// `relu(x) + bias`.
struct FRelu;

impl OneParam for FRelu {
    #[inline]
    fn value(x: f32, bias: f32) -> f32 {
        relu(x) + bias
    }

    #[inline]
    fn grads(x: f32, g: f32, _: f32) -> (f32, f32) {
        (g * relu_slope(x), g)
    }
}

/// `where(x >= 0, (a / b) * x, a * (exp(min(x, 0) / b) - 1))`; `x = 0` takes
/// the first branch. Keeping `a, b` positive is the trainer's job.
struct Pelu;

/// `(a, b)` of channel `c`.
#[inline]
fn pelu_params(p: &[&[f32]], c: usize) -> Result<(f32, f32), String> {
    match p {
        [a, b] => Ok((param_at(a, c), param_at(b, c))),
        _ => Err(format!("2 parameters expected, got {}", p.len())),
    }
}

impl FusedKernel for Pelu {
    const SCOPES: &'static [ParamScope] = &[ParamScope::Layer, ParamScope::Layer];

    #[inline(always)]
    fn forward(layout: Layout, x: &[f32], p: &[&[f32]], out: &mut [f32]) -> Result<(), String> {
        for (c, r) in layout.rows() {
            let (a, b) = pelu_params(p, c)?;
            let ratio = a / b;
            for (y, &xi) in out[r.clone()].iter_mut().zip(&x[r]) {
                // Both branches are computed and one selected, so the loop
                // has no branch and vectorises. `min(x, 0)` is x on the
                // negative side except for NaN, which the formula's min
                // turns into 0. `expm1` is `exp - 1` without its
                // cancellation near 0.
                let m = if xi <= 0.0 { xi } else { 0.0 };
                let neg = a * math::expm1(m / b);
                *y = if xi >= 0.0 { ratio * xi } else { neg };
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
        let [ga, gb] = grad_params else {
            return Err(format!(
                "2 parameter gradients expected, got {}",
                grad_params.len()
            ));
        };
        let (mut ga, mut gb) = (ParamGrad::new(ga), ParamGrad::new(gb));
        for (c, r) in layout.rows() {
            let (a, b) = pelu_params(p, c)?;
            let ratio = a / b;
            // Row sums of the per-element factors; a and b are constant over
            // the row, so they multiply the sums once.
            let [pos_gx, neg_ge1, neg_gex] = backward_row(
                &x[r.clone()],
                &grad_out[r.clone()],
                &mut grad_x[r],
                |xi, g| {
                    // Both sides computed, one selected: no branch in the
                    // loop (see `forward`).
                    let on_x = xi <= 0.0;
                    let m = if on_x { xi } else { 0.0 };
                    let em = math::expm1(m / b);
                    let e = em + 1.0;
                    let neg_gx = if on_x { (g * a) * e / b } else { 0.0 };
                    if xi >= 0.0 {
                        (g * ratio, [g * xi, 0.0, 0.0])
                    } else {
                        (neg_gx, [0.0, g * em, g * e * m])
                    }
                },
            );
            let (a, b) = (f64::from(a), f64::from(b));
            // d/da: x/b on the positive side, exp(m/b) - 1 on the negative;
            // d/db: -a x / b^2 and -a exp(m/b) m / b^2.
            ga.add(c, pos_gx / b + neg_ge1);
            gb.add(c, -a / (b * b) * (pos_gx + neg_gex));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use acbench_dsl::formula;
    use acbench_plugin_api::testing::{
        KernelRun, Partials, TestRng, check_against_reference, check_finite_differences,
        check_same_on_every_width, run_kernel,
    };

    use super::*;

    const LAYOUT: Layout = Layout {
        outer: 3,
        channels: 4,
        inner: 5,
    };

    /// Values that exercise ties, kinks and saturation.
    const SPECIAL: [f32; 6] = [0.0, -0.0, 1.0, -1.0, 100.0, -100.0];

    fn formula_of(name: &str) -> formula::Expr {
        let acts = activations();
        let def = acts
            .iter()
            .map(Activation::def)
            .find(|d| d.name == name)
            .unwrap_or_else(|| panic!("no activation {name}"));
        let names: Vec<&str> = def.params.iter().map(|p| p.name.as_str()).collect();
        formula::parse(&def.formula, &names).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Kernel vs the f64 reference (itself checked against the formula) on
    /// random inputs with [`SPECIAL`] mixed in, for each parameter set; then
    /// backward vs finite differences away from `kink`.
    fn check<K: FusedKernel>(
        name: &str,
        sets: &[&[f32]],
        reference: fn(f64, &[f64]) -> Partials,
        kink: Option<f32>,
    ) {
        let expr = formula_of(name);
        let mut rng = TestRng::new(3);
        for params in sets {
            let mut x = rng.fill(LAYOUT.len(), -4.0, 4.0);
            for (k, v) in x.iter_mut().enumerate().step_by(5) {
                *v = SPECIAL[(k / 5) % SPECIAL.len()];
            }
            let g = rng.fill(x.len(), -1.0, 1.0);
            let views: Vec<&[f32]> = params.iter().map(std::slice::from_ref).collect();
            let errors = check_against_reference::<K>(LAYOUT, &x, &views, &g, |xi, p| {
                let r = reference(xi, p);
                let want = expr.eval(xi, p);
                assert!(
                    (r.value - want).abs() <= 1e-12 * (1.0 + want.abs()),
                    "{name}: reference {} but formula {want} at x={xi}, {p:?}",
                    r.value
                );
                r
            })
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(errors.max() < 1e-5, "{name} with {params:?}: {errors:?}");
            check_same_on_every_width::<K>(LAYOUT, &x, &views, &g)
                .unwrap_or_else(|e| panic!("{name}: {e}"));

            let x: Vec<f32> = (0..LAYOUT.len())
                .map(|_| {
                    loop {
                        let v = rng.uniform(-3.0, 3.0);
                        if kink.is_none_or(|k| (v - k).abs() > 0.1) {
                            break v;
                        }
                    }
                })
                .collect();
            let err = check_finite_differences::<K>(LAYOUT, &x, &views, &g, 3e-3)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                err < 2e-3,
                "{name} with {params:?}: finite differences off by {err}"
            );
        }
    }

    fn sigmoid64(z: f64) -> f64 {
        1.0 / (1.0 + (-z).exp())
    }

    fn step(x: f64) -> f64 {
        if x >= 0.0 { 1.0 } else { 0.0 }
    }

    #[test]
    fn relu_matches_its_formula() {
        check::<Pointwise<Relu>>(
            "relu",
            &[&[]],
            |x, _| Partials {
                value: x.max(0.0),
                dx: step(x),
                dparams: vec![],
            },
            Some(0.0),
        );
    }

    #[test]
    fn lrelu_matches_its_formula() {
        check::<WithParam<LRelu>>(
            "lrelu",
            &[&[0.01], &[0.2], &[1.5]],
            |x, p| {
                let v = p[0] * x;
                if x >= v {
                    Partials {
                        value: x,
                        dx: 1.0,
                        dparams: vec![0.0],
                    }
                } else {
                    Partials {
                        value: v,
                        dx: p[0],
                        dparams: vec![x],
                    }
                }
            },
            Some(0.0),
        );
    }

    #[test]
    fn prelu_matches_its_formula() {
        check::<WithParam<PRelu>>(
            "prelu",
            &[&[0.25], &[0.0], &[-0.7]],
            |x, p| {
                let (neg, dneg) = if x <= 0.0 { (x, 1.0) } else { (0.0, 0.0) };
                Partials {
                    value: x.max(0.0) + p[0] * neg,
                    dx: step(x) + p[0] * dneg,
                    dparams: vec![neg],
                }
            },
            Some(0.0),
        );
    }

    #[test]
    fn swish_matches_its_formula() {
        check::<WithParam<Swish>>(
            "swish",
            &[&[1.0], &[0.3], &[-2.0]],
            |x, p| {
                let s = sigmoid64(p[0] * x);
                let ds = s * (1.0 - s);
                Partials {
                    value: x * s,
                    dx: s + x * p[0] * ds,
                    dparams: vec![x * x * ds],
                }
            },
            None,
        );
    }

    #[test]
    fn pelu_matches_its_formula() {
        check::<Pelu>(
            "pelu",
            &[&[1.0, 1.0], &[0.4, 2.5], &[3.0, 0.2]],
            |x, p| {
                let (a, b) = (p[0], p[1]);
                if x >= 0.0 {
                    Partials {
                        value: (a / b) * x,
                        dx: a / b,
                        dparams: vec![x / b, -a * x / (b * b)],
                    }
                } else {
                    let e = (x / b).exp();
                    Partials {
                        value: a * (e - 1.0),
                        dx: a * e / b,
                        dparams: vec![e - 1.0, -a * e * x / (b * b)],
                    }
                }
            },
            Some(0.0),
        );
    }

    #[test]
    fn frelu_matches_its_formula() {
        check::<WithParam<FRelu>>(
            "frelu",
            &[&[-1.0], &[0.5]],
            |x, p| Partials {
                value: x.max(0.0) + p[0],
                dx: step(x),
                dparams: vec![1.0],
            },
            Some(0.0),
        );
    }

    #[test]
    fn sigmoid_and_tanh_match_their_formulas() {
        check::<Pointwise<Sigmoid>>(
            "sigmoid",
            &[&[]],
            |x, _| {
                let s = sigmoid64(x);
                Partials {
                    value: s,
                    dx: s * (1.0 - s),
                    dparams: vec![],
                }
            },
            None,
        );
        check::<Pointwise<Tanh>>(
            "tanh",
            &[&[]],
            |x, _| Partials {
                value: x.tanh(),
                dx: 1.0 - x.tanh().powi(2),
                dparams: vec![],
            },
            None,
        );
    }

    /// The tie rules at exactly 0, spelled out: relu'(0) = 1 (candle),
    /// LReLU's max gives the tie to x, PReLU gets both terms (1 + p), PELU
    /// takes its first branch.
    #[test]
    fn kinks_at_zero_follow_the_formula_rules() {
        let layout = Layout {
            outer: 1,
            channels: 1,
            inner: 1,
        };
        let (x, g) = ([0.0f32], [1.0f32]);
        let grad = |run: Result<KernelRun, String>| {
            run.map(|r| (r.grad_x[0], r.grad_params)).expect("kernel")
        };
        assert_eq!(
            grad(run_kernel::<Pointwise<Relu>>(layout, &x, &[], &g)).0,
            1.0
        );
        assert_eq!(
            grad(run_kernel::<WithParam<FRelu>>(layout, &x, &[&[-1.0]], &g)).0,
            1.0
        );
        assert_eq!(
            grad(run_kernel::<WithParam<LRelu>>(layout, &x, &[&[0.2]], &g)).0,
            1.0
        );
        assert_eq!(
            grad(run_kernel::<WithParam<PRelu>>(layout, &x, &[&[0.25]], &g)).0,
            1.25
        );
        let (gx, gp) = grad(run_kernel::<Pelu>(layout, &x, &[&[2.0], &[4.0]], &g));
        assert_eq!((gx, gp[0][0], gp[1][0]), (0.5, 0.0, 0.0));
    }

    #[test]
    fn the_plugin_exports_all_eight_with_kernels() {
        let table = PLUGIN.table().expect("the table builds");
        assert_eq!(PLUGIN.name(), "acbench-baselines");
        assert_eq!(table.activation_count, 8);
        // SAFETY: `activation_count` descriptors.
        let acts = unsafe { std::slice::from_raw_parts(table.activations, 8) };
        assert!(
            acts.iter()
                .all(|a| a.forward.is_some() && a.backward.is_some())
        );
    }
}
