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
    check::<Relu>(
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
    check::<LRelu>(
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
    check::<PRelu>(
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
    check::<Swish>(
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
    check::<FRelu>(
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
    check::<Sigmoid>(
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
    check::<Tanh>(
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
    let grad =
        |run: Result<KernelRun, String>| run.map(|r| (r.grad_x[0], r.grad_params)).expect("kernel");
    assert_eq!(grad(run_kernel::<Relu>(layout, &x, &[], &g)).0, 1.0);
    assert_eq!(grad(run_kernel::<FRelu>(layout, &x, &[&[-1.0]], &g)).0, 1.0);
    assert_eq!(grad(run_kernel::<LRelu>(layout, &x, &[&[0.2]], &g)).0, 1.0);
    assert_eq!(
        grad(run_kernel::<PRelu>(layout, &x, &[&[0.25]], &g)).0,
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
