//! `acbench plugins check`: are a plugin's fused kernels the function its
//! formula states, and are the formula's gradients right?
//!
//! For each activation:
//! - **kernels vs formula**: on random inputs in several layouts (images with
//!   per-channel parameters, vectors, a 3-D tensor, one large enough to be
//!   split across threads), at the initial parameter values (where AReLU's
//!   two arguments tie everywhere) and at random ones, with inputs that
//!   include exact zeros: the fused f32 values and gradients (input and every
//!   trainable parameter) against the formula evaluated in f64;
//! - **finite differences**: the formula path's gradients in f64 against
//!   central differences, at random parameter values.
//!
//! Every comparison is one [`CheckRow`] with its largest absolute error.

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::activation::{ActLayer, ActSpec, Registry};
use crate::error::Result;
use crate::params::Param;
use acbench_plugin_api::Constraint;

/// Values and input gradients: `|fused - formula| <= TOL * (1 + |formula|)`.
const TOL_VALUES: f64 = 1e-4;
/// Parameter gradients are f32 sums over up to ~55k elements.
const TOL_PARAM_GRAD: f64 = 1e-3;
/// Finite differences in f64: `|numeric - analytic| <= TOL * (1 + |numeric|)`.
const TOL_FINITE_DIFF: f64 = 1e-5;
const EPS: f64 = 1e-6;

/// The shapes the kernels are checked on: images (per-channel parameters
/// broadcast along axis 1), vectors, a 3-D tensor, a single element, and one
/// large enough to be split into chunks across threads.
const LAYOUTS: &[&[usize]] = &[
    &[4, 3, 5, 6],
    &[7, 5],
    &[2, 3, 4],
    &[1, 1],
    &[48, 8, 12, 12],
];

/// One comparison for one activation.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRow {
    /// Activation name.
    pub activation: String,
    /// What was compared: `fused values`, `fused grad x`, `fused grad a`,
    /// `finite diff x`, `finite diff a`, ...
    pub check: String,
    /// Largest absolute difference over every case.
    pub max_abs_err: f64,
    /// Largest error relative to its tolerance: 1 or less passes.
    pub worst: f64,
    /// The case where `worst` was reached (shape and parameter values).
    pub case: String,
}

impl CheckRow {
    /// Whether the comparison is within tolerance.
    pub fn passed(&self) -> bool {
        self.worst <= 1.0
    }
}

/// Accumulates the errors of one comparison over cases.
struct Acc {
    check: String,
    max_abs: f64,
    worst: f64,
    case: String,
}

impl Acc {
    fn new(check: String) -> Self {
        Self {
            check,
            max_abs: 0.0,
            worst: 0.0,
            case: String::new(),
        }
    }

    /// Compares `got` with `want` elementwise at tolerance `tol`.
    fn add(&mut self, got: &[f64], want: &[f64], tol: f64, case: &str) {
        for (&g, &w) in got.iter().zip(want) {
            // The same non-finite value on both sides (log of a negative,
            // say) is agreement, not error.
            let same_special = (g.is_nan() && w.is_nan()) || (g.is_infinite() && g == w);
            let (abs, ratio) = if same_special {
                (0.0, 0.0)
            } else {
                let abs = (g - w).abs();
                // NaN (one side only) must fail: make it infinite.
                let abs = if abs.is_nan() { f64::INFINITY } else { abs };
                (abs, abs / (tol * (1.0 + w.abs())))
            };
            self.max_abs = self.max_abs.max(abs);
            if ratio > self.worst {
                self.worst = ratio;
                self.case = case.to_owned();
            }
        }
        if got.len() != want.len() {
            self.worst = f64::INFINITY;
            self.case = format!("{case}: {} values, expected {}", got.len(), want.len());
        }
    }

    fn row(self, activation: &str) -> CheckRow {
        CheckRow {
            activation: activation.to_owned(),
            check: self.check,
            max_abs_err: self.max_abs,
            worst: self.worst,
            case: self.case,
        }
    }
}

/// Checks activation `name` of `registry` ([module docs](self)). `seed`
/// fixes the random inputs, so a result is reproducible. An error means a
/// kernel failed outright (its message names the plugin).
pub fn check_activation(registry: &Registry, name: &str, seed: u64) -> Result<Vec<CheckRow>> {
    let act = registry.get(name)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let trainable: Vec<String> = act
        .def
        .params
        .iter()
        .filter(|p| p.trainable)
        .map(|p| p.name.clone())
        .collect();
    let mut rows = Vec::new();
    if act.kernels.is_some() {
        let mut values = Acc::new("fused values".into());
        let mut grad_x = Acc::new("fused grad x".into());
        let mut grad_p: Vec<Acc> = trainable
            .iter()
            .map(|p| Acc::new(format!("fused grad {p}")))
            .collect();
        for dims in LAYOUTS {
            for random_params in [false, true] {
                let setting = ParamSetting::draw(registry, name, dims[1], random_params, &mut rng)?;
                let xs = inputs(dims, true, &mut rng);
                let ws: Vec<f64> = (0..xs.len()).map(|_| rng.random_range(-1.0..1.0)).collect();
                let case = format!("{dims:?} {}", setting.describe());
                let fused = evaluate(registry, &setting, dims, &xs, &ws, DType::F32, true)?;
                let formula = evaluate(registry, &setting, dims, &xs, &ws, DType::F64, false)?;
                values.add(&fused.y, &formula.y, TOL_VALUES, &case);
                grad_x.add(&fused.grad_x, &formula.grad_x, TOL_VALUES, &case);
                for (acc, (got, want)) in grad_p
                    .iter_mut()
                    .zip(fused.grad_params.iter().zip(&formula.grad_params))
                {
                    acc.add(got, want, TOL_PARAM_GRAD, &case);
                }
            }
        }
        rows.push(values.row(name));
        rows.push(grad_x.row(name));
        rows.extend(grad_p.into_iter().map(|a| a.row(name)));
    }
    rows.extend(finite_differences(registry, name, &trainable, &mut rng)?);
    Ok(rows)
}

/// Values for an activation's parameters in one case.
struct ParamSetting {
    /// `spec` overrides for fixed parameters (one value per layer).
    spec: ActSpec,
    /// Values of trainable parameters (1 or C each), in definition order.
    trained: Vec<(String, Vec<f64>)>,
}

impl ParamSetting {
    /// The definition's initial values, or random values near them (kept
    /// inside positivity constraints).
    fn draw(
        registry: &Registry,
        name: &str,
        channels: usize,
        random: bool,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let act = registry.get(name)?;
        let mut overrides = Vec::new();
        let mut trained = Vec::new();
        for p in &act.def.params {
            let len = match p.scope {
                acbench_plugin_api::ParamScope::Layer => 1,
                acbench_plugin_api::ParamScope::Channel => channels,
            };
            let mut draw = || {
                let v = if random {
                    p.init + rng.random_range(-0.4..0.4)
                } else {
                    p.init
                };
                // Values in f32 so both dtypes see exactly the same numbers.
                let v = match p.constraint {
                    Constraint::Positive(min) => v.max(min).max(0.2),
                    Constraint::None => v,
                };
                f64::from(v as f32)
            };
            if p.trainable {
                trained.push((p.name.clone(), (0..len).map(|_| draw()).collect()));
            } else if random {
                overrides.push((p.name.clone(), draw()));
            }
        }
        Ok(Self {
            spec: ActSpec {
                activation: name.to_owned(),
                overrides,
            },
            trained,
        })
    }

    fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .spec
            .overrides
            .iter()
            .map(|(k, v)| format!("{k}={v:.3}"))
            .collect();
        for (k, v) in &self.trained {
            match v.as_slice() {
                [one] => parts.push(format!("{k}={one:.3}")),
                many => parts.push(format!("{k}=[{:.3}, ...]", many[0])),
            }
        }
        if parts.is_empty() {
            "no parameters".into()
        } else {
            parts.join(" ")
        }
    }

    /// An act layer with these values; returns it and its trainable params.
    fn layer(
        &self,
        registry: &Registry,
        channels: usize,
        dtype: DType,
    ) -> Result<(ActLayer, Vec<Param>)> {
        let (layer, params) = ActLayer::new(
            "check",
            None,
            registry,
            &self.spec,
            channels,
            dtype,
            &Device::Cpu,
        )?;
        for (p, (_, values)) in params.iter().zip(&self.trained) {
            let t =
                Tensor::from_vec(values.clone(), values.len(), &Device::Cpu)?.to_dtype(dtype)?;
            p.var.set(&t)?;
        }
        Ok((layer, params))
    }
}

/// Random normal inputs, scaled by 2, about one in eight exactly zero when
/// `zeros` (every kink of the shipped activations at initial values is there).
fn inputs(dims: &[usize], zeros: bool, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let n: usize = dims.iter().product();
    (0..n)
        .map(|_| {
            if zeros && rng.random_range(0..8) == 0 {
                0.0
            } else {
                let v: f64 = StandardNormal.sample(rng);
                f64::from((2.0 * v) as f32)
            }
        })
        .collect()
}

/// Outputs and gradients of `loss = sum(y * w)`.
struct Evaluation {
    y: Vec<f64>,
    grad_x: Vec<f64>,
    grad_params: Vec<Vec<f64>>,
}

#[allow(clippy::too_many_arguments)]
fn evaluate(
    registry: &Registry,
    setting: &ParamSetting,
    dims: &[usize],
    xs: &[f64],
    ws: &[f64],
    dtype: DType,
    fused: bool,
) -> Result<Evaluation> {
    let (layer, params) = setting.layer(registry, dims[1], dtype)?;
    let x = Var::from_tensor(&Tensor::from_vec(xs.to_vec(), dims, &Device::Cpu)?.to_dtype(dtype)?)?;
    let w = Tensor::from_vec(ws.to_vec(), dims, &Device::Cpu)?.to_dtype(dtype)?;
    let y = if fused {
        layer.forward_fused(x.as_tensor())?
    } else {
        layer.forward_formula(x.as_tensor())?
    };
    let grads = y.mul(&w)?.sum_all()?.backward()?;
    let flat = |t: &Tensor| -> Result<Vec<f64>> {
        Ok(t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?)
    };
    let grad_of = |t: &Tensor| -> Result<Vec<f64>> {
        match grads.get(t) {
            Some(g) => flat(g),
            // No gradient means the output does not depend on it: zero.
            None => Ok(vec![0.0; t.elem_count()]),
        }
    };
    Ok(Evaluation {
        y: flat(&y)?,
        grad_x: grad_of(x.as_tensor())?,
        grad_params: params
            .iter()
            .map(|p| grad_of(p.var.as_tensor()))
            .collect::<Result<_>>()?,
    })
}

/// The formula path's gradients against central differences in f64, at
/// random parameter values and inputs away from zero (differences across a
/// kink measure the kink, not the gradient).
fn finite_differences(
    registry: &Registry,
    name: &str,
    trainable: &[String],
    rng: &mut ChaCha8Rng,
) -> Result<Vec<CheckRow>> {
    let mut grad_x = Acc::new("finite diff x".into());
    let mut grad_p: Vec<Acc> = trainable
        .iter()
        .map(|p| Acc::new(format!("finite diff {p}")))
        .collect();
    for dims in [&[2usize, 3, 2, 2][..], &[3, 4]] {
        let setting = ParamSetting::draw(registry, name, dims[1], true, rng)?;
        let case = format!("{dims:?} {}", setting.describe());
        let xs = inputs(dims, false, rng);
        let ws: Vec<f64> = (0..xs.len()).map(|_| rng.random_range(-1.0..1.0)).collect();
        let (layer, params) = setting.layer(registry, dims[1], DType::F64)?;
        let w = Tensor::from_vec(ws.clone(), dims, &Device::Cpu)?;
        let loss = |xs: &[f64]| -> Result<f64> {
            let x = Tensor::from_vec(xs.to_vec(), dims, &Device::Cpu)?;
            Ok(layer
                .forward_formula(&x)?
                .mul(&w)?
                .sum_all()?
                .to_scalar::<f64>()?)
        };
        let analytic = evaluate(registry, &setting, dims, &xs, &ws, DType::F64, false)?;
        let mut numeric = Vec::with_capacity(xs.len());
        for i in 0..xs.len() {
            let mut v = xs.clone();
            v[i] = xs[i] + EPS;
            let up = loss(&v)?;
            v[i] = xs[i] - EPS;
            let down = loss(&v)?;
            numeric.push((up - down) / (2.0 * EPS));
        }
        grad_x.add(&analytic.grad_x, &numeric, TOL_FINITE_DIFF, &case);
        for ((acc, p), want) in grad_p.iter_mut().zip(&params).zip(&analytic.grad_params) {
            let base = p.var.as_tensor().to_vec1::<f64>()?;
            let mut numeric = Vec::with_capacity(base.len());
            for i in 0..base.len() {
                let at = |d: f64| -> Result<f64> {
                    let mut v = base.clone();
                    v[i] += d;
                    p.var.set(&Tensor::from_vec(v, base.len(), &Device::Cpu)?)?;
                    loss(&xs)
                };
                let up = at(EPS)?;
                let down = at(-EPS)?;
                numeric.push((up - down) / (2.0 * EPS));
            }
            p.var
                .set(&Tensor::from_vec(base.clone(), base.len(), &Device::Cpu)?)?;
            acc.add(want, &numeric, TOL_FINITE_DIFF, &case);
        }
    }
    let mut rows = vec![grad_x.row(name)];
    rows.extend(grad_p.into_iter().map(|a| a.row(name)));
    Ok(rows)
}
