use super::*;
use acbench_plugin_api::Constraint;
use candle_core::Device;

const P0: [f64; 3] = [1.0, -2.0, 0.5];
/// The gradient of `sum(c * p)` is `c` whatever `p` is, which makes the
/// hand computations below independent of the parameter values.
const C: [f64; 3] = [0.5, -1.0, 2.0];
/// Per-step gradient scale, so that steps differ: g_t = C * S[t].
const S: [f64; 3] = [1.0, -0.5, 2.0];
const LR: f64 = 0.1;

fn param(kind: ParamKind, values: &[f64]) -> Param {
    let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    let var = Var::from_vec(v, values.len(), &Device::Cpu).expect("var");
    Param {
        name: "p".into(),
        var,
        kind,
    }
}

fn grads_for(p: &Param, scale: f64) -> GradStore {
    let c: Vec<f32> = C.iter().map(|&x| (x * scale) as f32).collect();
    let c = Tensor::from_vec(c, 3, &Device::Cpu).expect("c");
    let loss = (p.var.as_tensor() * c)
        .expect("mul")
        .sum_all()
        .expect("sum");
    loss.backward().expect("backward")
}

fn values(p: &Param) -> Vec<f64> {
    p.var
        .as_tensor()
        .to_vec1::<f32>()
        .expect("vec")
        .into_iter()
        .map(f64::from)
        .collect()
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = 1e-6 * w.abs().max(1.0);
        assert!((g - w).abs() <= tol, "{what}[{i}]: got {g}, want {w}");
    }
}

/// Runs three steps and compares the parameters after each with `want`.
fn check(config: OptimizerConfig, want: [[f64; 3]; 3]) {
    let p = param(ParamKind::Weight, &P0);
    let mut opt = Optimizer::new(std::slice::from_ref(&p), config, 0.0).expect("optimizer");
    for (step, want) in want.iter().enumerate() {
        opt.step(&grads_for(&p, S[step]), LR).expect("step");
        assert_close(
            &values(&p),
            want,
            &format!("{} step {}", config.name(), step + 1),
        );
    }
}

// Expected values below were computed in f64 from the published rules,
// with g1 = C, g2 = -0.5 C, g3 = 2 C.

#[test]
fn sgd_matches_reference() {
    // p -= 0.1 g: per step deltas -0.1C, +0.05C, -0.2C.
    check(
        OptimizerConfig::Sgd,
        [[0.95, -1.9, 0.3], [0.975, -1.95, 0.4], [0.875, -1.75, 0.0]],
    );
}

#[test]
fn momentum_matches_reference() {
    // v1 = C, v2 = 0.9C - 0.5C = 0.4C, v3 = 0.36C + 2C = 2.36C.
    // p3 = p0 - 0.1 * (1 + 0.4 + 2.36) C = p0 - 0.376 C.
    check(
        OptimizerConfig::Momentum { momentum: 0.9 },
        [
            [0.95, -1.9, 0.3],
            [0.93, -1.86, 0.22],
            [0.812, -1.624, -0.252],
        ],
    );
}

#[test]
fn adagrad_matches_reference() {
    // acc_t = 0.1 + sum g^2; p -= 0.1 g / sqrt(acc).
    // Step 1, first element: 1 - 0.1 * 0.5 / sqrt(0.35) = 0.91548457...
    check(
        OptimizerConfig::Adagrad {
            initial_accumulator: 0.1,
        },
        [
            [0.9154845745271484, -1.9046537410754407, 0.40122704033504103],
            [0.9544095217352245, -1.9476868893666341, 0.4455077846120458],
            [0.8702688893528903, -1.8612193491332107, 0.3584277157752242],
        ],
    );
}

/// AdaDelta with rho 0.95, eps 1e-8. Step 1, first element: acc_g =
/// 0.05 * 0.25 = 0.0125, upd = sqrt(1e-8) / sqrt(0.0125 + 1e-8) * 0.5 =
/// 4.4721e-4, p = 1 - 0.1 * upd = 0.99995527866.
const ADADELTA: [[f64; 3]; 3] = [
    [0.9999552786583386, -1.9999552786449222, 0.499955278641568],
    [0.9999841461564021, -1.9999841461545327, 0.4999841461540653],
    [0.9999234541022439, -1.9999234540852495, 0.49992345408100075],
];

#[test]
fn adadelta_matches_reference() {
    check(
        OptimizerConfig::Adadelta {
            rho: 0.95,
            epsilon: 1e-8,
        },
        ADADELTA,
    );
}

#[test]
fn adadelta_matches_reference_in_full_precision() {
    // AdaDelta's first updates are ~1e-5 of the parameter, close to f32
    // rounding: check them on an f64 parameter to the last digits too.
    let var = Var::from_vec(P0.to_vec(), 3, &Device::Cpu).expect("var");
    let p = Param {
        name: "p".into(),
        var,
        kind: ParamKind::Weight,
    };
    let config = OptimizerConfig::Adadelta {
        rho: 0.95,
        epsilon: 1e-8,
    };
    let mut opt = Optimizer::new(std::slice::from_ref(&p), config, 0.0).expect("optimizer");
    for (s, want) in S.iter().zip(ADADELTA) {
        let c: Vec<f64> = C.iter().map(|c| c * s).collect();
        let c = Tensor::from_vec(c, 3, &Device::Cpu).expect("c");
        let grads = (p.var.as_tensor() * c)
            .and_then(|t| t.sum_all())
            .and_then(|t| t.backward())
            .expect("grads");
        opt.step(&grads, LR).expect("step");
        let got = p.var.as_tensor().to_vec1::<f64>().expect("vec");
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{g} vs {w}");
        }
    }
}

/// The in-place CPU update against the tensor ops, for every optimiser,
/// with weight decay and a positive constraint, over a few steps.
#[test]
fn in_place_update_matches_tensor_ops() {
    let configs = [
        OptimizerConfig::Sgd,
        OptimizerConfig::Momentum { momentum: 0.9 },
        OptimizerConfig::Adagrad {
            initial_accumulator: 0.1,
        },
        OptimizerConfig::Adadelta {
            rho: 0.95,
            epsilon: 1e-6,
        },
        OptimizerConfig::Adam {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        },
    ];
    for config in configs {
        let kinds = [
            ParamKind::Weight,
            ParamKind::Activation(Constraint::Positive(0.4)),
        ];
        let fast: Vec<Param> = kinds.iter().map(|&k| param(k, &P0)).collect();
        let slow: Vec<Param> = kinds.iter().map(|&k| param(k, &P0)).collect();
        let mut fast_opt = Optimizer::new(&fast, config, 0.1).expect("optimizer");
        let mut slow_opt = Optimizer::new(&slow, config, 0.1).expect("optimizer");
        assert!(
            fast_opt
                .slots
                .iter()
                .all(|s| matches!(s.state, SlotState::InPlace(_)))
        );
        for s in &mut slow_opt.slots {
            s.state =
                SlotState::Tensors(TensorState::new(config, s.var.as_tensor()).expect("state"));
        }
        for scale in S {
            for (opt, ps) in [(&mut fast_opt, &fast), (&mut slow_opt, &slow)] {
                let mut grads = grads_for(&ps[0], scale);
                grads.extend(grads_for(&ps[1], -scale)).expect("extend");
                opt.step(&grads, LR).expect("step");
            }
            for (f, s) in fast.iter().zip(&slow) {
                assert_close(&values(f), &values(s), config.name());
            }
        }
    }
}

#[test]
fn adam_matches_reference() {
    // Kingma & Ba, Algorithm 1. Step 1: m_hat = g, v_hat = g^2, so the
    // step is lr * g / (|g| + eps) = 0.1 * sign(g) (less 2e-9).
    check(
        OptimizerConfig::Adam {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        },
        [
            [0.900000002, -1.900000001, 0.4000000005],
            [0.8733662987078463, -1.873366297370903, 0.37336629670243154],
            [0.8075551396770898, -1.8075551378428032, 0.3075551369256599],
        ],
    );
}

#[test]
fn weight_decay_applies_to_weights_only() {
    let kinds = [
        ParamKind::Weight,
        ParamKind::Bias,
        ParamKind::Norm,
        ParamKind::Activation(Constraint::None),
    ];
    let params: Vec<Param> = kinds.iter().map(|&k| param(k, &P0)).collect();
    let mut opt = Optimizer::new(&params, OptimizerConfig::Sgd, 0.5).expect("optimizer");
    let mut grads = grads_for(&params[0], 1.0);
    for p in &params[1..] {
        grads.extend(grads_for(p, 1.0)).expect("extend");
    }
    opt.step(&grads, LR).expect("step");
    // Weight: p -= 0.1 * (C + 0.5 p); others: p -= 0.1 C.
    let decayed: Vec<f64> = (0..3).map(|i| P0[i] - LR * (C[i] + 0.5 * P0[i])).collect();
    let plain: Vec<f64> = (0..3).map(|i| P0[i] - LR * C[i]).collect();
    assert_close(&values(&params[0]), &decayed, "weight");
    for p in &params[1..] {
        assert_close(&values(p), &plain, &format!("{:?}", p.kind));
    }
}

#[test]
fn positive_constraint_is_clamped_after_step() {
    let p = param(
        ParamKind::Activation(Constraint::Positive(0.1)),
        &[0.15, 1.0, 0.05],
    );
    let mut opt =
        Optimizer::new(std::slice::from_ref(&p), OptimizerConfig::Sgd, 0.0).expect("optimizer");
    // Gradient C = [0.5, -1, 2]: 0.15 - 0.05 = 0.1, 1 + 0.1 = 1.1, 0.05 - 0.2 < min.
    opt.step(&grads_for(&p, 1.0), LR).expect("step");
    assert_close(&values(&p), &[0.1, 1.1, 0.1], "clamped");
}

#[test]
fn params_without_gradient_are_skipped() {
    let used = param(ParamKind::Weight, &P0);
    let unused = param(ParamKind::Weight, &P0);
    let mut opt = Optimizer::new(
        &[used.clone(), unused.clone()],
        OptimizerConfig::Adam {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        },
        0.1,
    )
    .expect("optimizer");
    opt.step(&grads_for(&used, 1.0), LR).expect("step");
    assert_eq!(values(&unused), P0.to_vec());
    assert_ne!(values(&used), P0.to_vec());
}

#[test]
fn config_parses_with_defaults_and_rejects_bad_values() {
    let adam: OptimizerConfig =
        serde_json::from_str(r#"{"name": "adam", "beta2": 0.99}"#).expect("adam");
    assert_eq!(
        adam,
        OptimizerConfig::Adam {
            beta1: 0.9,
            beta2: 0.99,
            epsilon: 1e-8
        }
    );
    let sgd: OptimizerConfig = serde_json::from_str(r#"{"name": "sgd"}"#).expect("sgd");
    assert_eq!(sgd, OptimizerConfig::Sgd);
    assert!(serde_json::from_str::<OptimizerConfig>(r#"{"name": "adam", "beta": 1}"#).is_err());
    for name in OptimizerConfig::NAMES {
        let c: OptimizerConfig = name.parse().expect("known name");
        assert_eq!(c.name(), name);
        c.validate().expect("defaults are valid");
        let json = serde_json::to_string(&c).expect("serialise");
        assert_eq!(
            serde_json::from_str::<OptimizerConfig>(&json).expect("round trip"),
            c
        );
    }
    assert!("rmsprop".parse::<OptimizerConfig>().is_err());
    assert!(
        OptimizerConfig::Momentum { momentum: 1.0 }
            .validate()
            .is_err()
    );
    assert!(
        OptimizerConfig::Adadelta {
            rho: 0.9,
            epsilon: 0.0
        }
        .validate()
        .is_err()
    );
    let p = param(ParamKind::Weight, &P0);
    assert!(Optimizer::new(&[p], OptimizerConfig::Sgd, f64::NAN).is_err());
}
