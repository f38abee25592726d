use acbench_dsl::formula;
use acbench_plugin_api::FusedKernel;
use acbench_plugin_api::abi::Layout;
use acbench_plugin_api::testing::{
    Partials, TestRng, check_against_reference, check_finite_differences,
    check_same_on_every_width, run_kernel,
};

use super::*;

const LAYOUT: Layout = Layout {
    outer: 3,
    channels: 4,
    inner: 5,
};

/// The parsed formula of a shipped activation.
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

/// Random inputs with exact zeros and the given special points mixed in.
fn inputs(rng: &mut TestRng, special: &[f32]) -> Vec<f32> {
    let mut x = rng.fill(LAYOUT.len(), -4.0, 4.0);
    for (k, v) in x.iter_mut().enumerate() {
        if k % 7 == 0 {
            *v = 0.0;
        } else if k % 7 == 3 && !special.is_empty() {
            *v = special[k % special.len()];
        }
    }
    x
}

/// Kernel vs the f64 reference (itself checked against the formula) on
/// random inputs, for each parameter set.
fn check_reference<K: FusedKernel>(
    name: &str,
    sets: &[([f32; 4], &[f32])],
    reference: fn(f64, &[f64]) -> Partials,
) {
    let expr = formula_of(name);
    let mut rng = TestRng::new(7);
    for (params, special) in sets {
        let x = inputs(&mut rng, special);
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
    }
}

/// Backward vs central differences of forward, inputs kept away from kinks.
fn check_fd<K: FusedKernel>(name: &str, params: [f32; 4], kink: Option<f32>) {
    let mut rng = TestRng::new(11);
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
    let g = rng.fill(x.len(), -1.0, 1.0);
    let views: Vec<&[f32]> = params.iter().map(std::slice::from_ref).collect();
    let err = check_finite_differences::<K>(LAYOUT, &x, &views, &g, 1e-2)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(err < 2e-3, "{name}: finite differences off by {err}");
}

fn squashed(s: fn(f64) -> f64, slope: fn(f64) -> f64) -> impl Fn(f64, &[f64]) -> Partials {
    move |x, p| {
        let (a, b, c, d) = (p[0], p[1], p[2], p[3]);
        let z = a * x + c;
        let dz = b * slope(z);
        Partials {
            value: b * s(z) + d,
            dx: dz * a,
            dparams: vec![dz * x, s(z), dz, 1.0],
        }
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn asigmoid_ref(x: f64, p: &[f64]) -> Partials {
    squashed(sigmoid, |z| sigmoid(z) * (1.0 - sigmoid(z)))(x, p)
}

fn atanh_ref(x: f64, p: &[f64]) -> Partials {
    squashed(f64::tanh, |z| 1.0 - z.tanh().powi(2))(x, p)
}

fn arelu_ref(x: f64, p: &[f64]) -> Partials {
    let (a, b, c, d) = (p[0], p[1], p[2], p[3]);
    let (u, v) = (a * x + c, b * x + d);
    if u >= v {
        Partials {
            value: u,
            dx: a,
            dparams: vec![x, 0.0, 1.0, 0.0],
        }
    } else {
        Partials {
            value: v,
            dx: b,
            dparams: vec![0.0, x, 0.0, 1.0],
        }
    }
}

const INIT: [f32; 4] = [1.0, 1.0, 0.0, 0.0];
const MOVED: [f32; 4] = [1.3, -0.7, 0.2, -0.4];

#[test]
fn asigmoid_matches_its_formula() {
    check_reference::<Squashed<Sigmoid>>(
        "asigmoid",
        &[(INIT, &[]), (MOVED, &[60.0, -60.0])],
        asigmoid_ref,
    );
    check_fd::<Squashed<Sigmoid>>("asigmoid", MOVED, None);
}

#[test]
fn atanh_matches_its_formula() {
    check_reference::<Squashed<Tanh>>("atanh", &[(INIT, &[]), (MOVED, &[20.0, -20.0])], atanh_ref);
    check_fd::<Squashed<Tanh>>("atanh", MOVED, None);
}

#[test]
fn arelu_matches_its_formula_including_ties() {
    // a=2, b=0.5, c=1, d=-0.5 tie exactly at x = -1 (u = v = -1).
    let kinked = [2.0, 0.5, 1.0, -0.5];
    check_reference::<ARelu>(
        "arelu",
        &[
            (INIT, &[]),
            (MOVED, &[]),
            (kinked, &[-1.0]),
            ([0.5, 2.0, 0.0, 0.0], &[]),
        ],
        arelu_ref,
    );
    check_fd::<ARelu>("arelu", kinked, Some(-1.0));
    check_fd::<ARelu>("arelu", MOVED, Some(-0.6 / 2.0));
}

/// From the linear start every element ties: the whole gradient goes to
/// a and c, none to b and d (a tie-splitting rule would keep a = b).
#[test]
fn arelu_gives_ties_to_the_first_argument() {
    let layout = Layout {
        outer: 1,
        channels: 1,
        inner: 4,
    };
    let x = [-2.0f32, 0.0, 0.5, 3.0];
    let g = [1.0f32, 1.0, -2.0, 0.5];
    let params: Vec<&[f32]> = INIT.iter().map(std::slice::from_ref).collect();
    let run = run_kernel::<ARelu>(layout, &x, &params, &g).expect("kernel");
    let gp = &run.grad_params;
    assert_eq!(run.out, x);
    assert_eq!(run.grad_x, g);
    assert_eq!(gp[0], [-2.0 * 1.0 + 0.0 - 1.0 + 1.5]);
    assert_eq!(gp[1], [0.0]);
    assert_eq!(gp[2], [g.iter().sum::<f32>()]);
    assert_eq!(gp[3], [0.0]);
}

/// The kernels read parameters per channel, so per-channel values (one
/// per channel) work as well as the shipped per-layer ones.
#[test]
fn kernels_serve_per_channel_parameters_too() {
    let mut rng = TestRng::new(5);
    let x = inputs(&mut rng, &[]);
    let g = rng.fill(x.len(), -1.0, 1.0);
    let values: Vec<Vec<f32>> = (0..4)
        .map(|_| rng.fill(LAYOUT.channels, -1.5, 1.5))
        .collect();
    let views: Vec<&[f32]> = values.iter().map(Vec::as_slice).collect();
    let errors =
        check_against_reference::<ARelu>(LAYOUT, &x, &views, &g, arelu_ref).expect("kernels run");
    assert!(errors.max() < 1e-5, "{errors:?}");
    let errors = check_against_reference::<Squashed<Tanh>>(LAYOUT, &x, &views, &g, atanh_ref)
        .expect("kernels run");
    assert!(errors.max() < 1e-5, "{errors:?}");
}

#[test]
fn the_plugin_exports_all_three_with_kernels() {
    let table = PLUGIN.table().expect("the table builds");
    assert_eq!(PLUGIN.name(), "acbench-adaptive");
    assert_eq!(table.activation_count, 3);
    // SAFETY: `activation_count` descriptors.
    let acts = unsafe { std::slice::from_raw_parts(table.activations, 3) };
    for a in acts {
        assert!(a.forward.is_some() && a.backward.is_some());
        assert_eq!(a.param_count, 4);
    }
}
