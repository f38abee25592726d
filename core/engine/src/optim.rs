//! The paper's five optimisers (SGD, Momentum, AdaGrad, AdaDelta, Adam),
//! written against candle [`Var`]s.
//!
//! candle-nn ships only SGD and AdamW, and `candle-optimisers` pins an older
//! candle, so the update rules live here. Each follows the published rule
//! (and TensorFlow 1.x, which the paper's code used, where the two differ in
//! defaults); the tests check them against values computed by hand.
//!
//! The learning rate is not part of the optimiser: the training loop passes
//! the scheduled rate to every [`Optimizer::step`].

use std::str::FromStr;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::params::{Param, ParamKind};
use crate::{Error, Result};

/// Which optimiser to use, with its hyper-parameters (the learning rate comes
/// from the [`Schedule`](crate::schedule::Schedule)).
///
/// Deserialises from a map tagged by `name`, e.g. `{name: adam, beta2: 0.99}`;
/// omitted fields take the defaults below.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Plain gradient descent: `p -= lr * g`.
    Sgd,
    /// TensorFlow's `MomentumOptimizer` (Qian 1999): `v = momentum * v + g;
    /// p -= lr * v`.
    Momentum {
        /// Decay of the velocity (default 0.9).
        #[serde(default = "default_momentum")]
        momentum: f64,
    },
    /// AdaGrad (Duchi et al. 2011) as TensorFlow implements it:
    /// `acc += g^2; p -= lr * g / sqrt(acc)`.
    Adagrad {
        /// Starting value of the accumulator (TensorFlow's default 0.1), which
        /// also keeps the first steps from dividing by a tiny number.
        #[serde(default = "default_initial_accumulator")]
        initial_accumulator: f64,
    },
    /// AdaDelta (Zeiler 2012) as TensorFlow implements it, with the learning
    /// rate applied to Zeiler's unit-corrected update.
    Adadelta {
        /// Decay of both running averages (default 0.95).
        #[serde(default = "default_rho")]
        rho: f64,
        /// Added inside both square roots (default 1e-8).
        #[serde(default = "default_epsilon")]
        epsilon: f64,
    },
    /// Adam (Kingma & Ba 2014, Algorithm 1) with bias-corrected moments:
    /// `p -= lr * m_hat / (sqrt(v_hat) + epsilon)`.
    Adam {
        /// Decay of the first moment (default 0.9).
        #[serde(default = "default_beta1")]
        beta1: f64,
        /// Decay of the second moment (default 0.999).
        #[serde(default = "default_beta2")]
        beta2: f64,
        /// Added to the denominator (default 1e-8).
        #[serde(default = "default_epsilon")]
        epsilon: f64,
    },
}

fn default_momentum() -> f64 {
    0.9
}
fn default_initial_accumulator() -> f64 {
    0.1
}
fn default_rho() -> f64 {
    0.95
}
fn default_epsilon() -> f64 {
    1e-8
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}

impl OptimizerConfig {
    /// Names accepted by [`FromStr`], in the paper's order.
    pub const NAMES: [&'static str; 5] = ["sgd", "momentum", "adagrad", "adadelta", "adam"];

    /// The optimiser's name as used in suites and results.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sgd => "sgd",
            Self::Momentum { .. } => "momentum",
            Self::Adagrad { .. } => "adagrad",
            Self::Adadelta { .. } => "adadelta",
            Self::Adam { .. } => "adam",
        }
    }

    /// How many values of state this optimiser keeps per parameter value
    /// (what a checkpoint stores besides the parameters).
    pub fn state_buffers(&self) -> usize {
        self.state_fields().len()
    }

    /// Names of the per-parameter state buffers this optimiser keeps (Adam
    /// also keeps a step count).
    fn state_fields(&self) -> &'static [&'static str] {
        match self {
            Self::Sgd => &[],
            Self::Momentum { .. } => &["velocity"],
            Self::Adagrad { .. } => &["accumulator"],
            Self::Adadelta { .. } => &["acc_grad", "acc_update"],
            Self::Adam { .. } => &["m", "v"],
        }
    }

    /// Checks that every hyper-parameter is in its valid range.
    pub fn validate(&self) -> Result<()> {
        let unit = |name: &str, v: f64| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::Config(format!(
                    "{}: {name} must be in [0, 1), got {v}",
                    self.name()
                )))
            }
        };
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::Config(format!(
                    "{}: {name} must be positive and finite, got {v}",
                    self.name()
                )))
            }
        };
        match *self {
            Self::Sgd => Ok(()),
            Self::Momentum { momentum } => unit("momentum", momentum),
            Self::Adagrad {
                initial_accumulator,
            } => positive("initial_accumulator", initial_accumulator),
            Self::Adadelta { rho, epsilon } => {
                unit("rho", rho)?;
                positive("epsilon", epsilon)
            }
            Self::Adam {
                beta1,
                beta2,
                epsilon,
            } => {
                unit("beta1", beta1)?;
                unit("beta2", beta2)?;
                positive("epsilon", epsilon)
            }
        }
    }
}

impl Default for OptimizerConfig {
    /// Plain SGD, as the paper's reference code.
    fn default() -> Self {
        Self::Sgd
    }
}

impl FromStr for OptimizerConfig {
    type Err = Error;

    /// An optimiser by name with default hyper-parameters (for `--optimizer`).
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "sgd" => Self::Sgd,
            "momentum" => Self::Momentum {
                momentum: default_momentum(),
            },
            "adagrad" => Self::Adagrad {
                initial_accumulator: default_initial_accumulator(),
            },
            "adadelta" => Self::Adadelta {
                rho: default_rho(),
                epsilon: default_epsilon(),
            },
            "adam" => Self::Adam {
                beta1: default_beta1(),
                beta2: default_beta2(),
                epsilon: default_epsilon(),
            },
            _ => {
                return Err(Error::Config(format!(
                    "unknown optimizer `{s}` (known: {})",
                    Self::NAMES.join(", ")
                )));
            }
        })
    }
}

/// Per-parameter optimiser state over buffers of type `B`: [`Tensor`]s for
/// parameters updated with tensor ops ([`TensorState`]), plain f32 vectors
/// for parameters updated in place on the CPU ([`CpuState`], see
/// [`InPlace`]). State tensors are plain (non-variable, detached) tensors
/// that are replaced each step: the replacement is already a fresh buffer,
/// so copying it into a `Var` would only add a copy.
#[derive(Debug)]
enum State<B> {
    Sgd,
    Momentum {
        velocity: B,
    },
    Adagrad {
        accumulator: B,
    },
    Adadelta {
        acc_grad: B,
        acc_update: B,
    },
    Adam {
        m: B,
        v: B,
        /// Steps taken by this parameter: the bias correction counts the
        /// updates a parameter actually received.
        t: i32,
    },
}

/// State updated with tensor ops (any device and dtype).
type TensorState = State<Tensor>;

/// State as plain f32 buffers, for contiguous f32 CPU parameters.
type CpuState = State<Vec<f32>>;

impl TensorState {
    /// The starting state of `config` for a parameter like `p`.
    fn new(config: OptimizerConfig, p: &Tensor) -> Result<Self> {
        let zeros = || p.zeros_like();
        Ok(match config {
            OptimizerConfig::Sgd => Self::Sgd,
            OptimizerConfig::Momentum { .. } => Self::Momentum { velocity: zeros()? },
            OptimizerConfig::Adagrad {
                initial_accumulator,
            } => Self::Adagrad {
                accumulator: zeros()?.affine(1.0, initial_accumulator)?,
            },
            OptimizerConfig::Adadelta { .. } => Self::Adadelta {
                acc_grad: zeros()?,
                acc_update: zeros()?,
            },
            OptimizerConfig::Adam { .. } => Self::Adam {
                m: zeros()?,
                v: zeros()?,
                t: 0,
            },
        })
    }
}

impl CpuState {
    /// The starting state of `config` for a parameter of `len` values.
    fn new(config: OptimizerConfig, len: usize) -> Self {
        let zeros = || vec![0f32; len];
        match config {
            OptimizerConfig::Sgd => Self::Sgd,
            OptimizerConfig::Momentum { .. } => Self::Momentum { velocity: zeros() },
            OptimizerConfig::Adagrad {
                initial_accumulator,
            } => Self::Adagrad {
                accumulator: vec![initial_accumulator as f32; len],
            },
            OptimizerConfig::Adadelta { .. } => Self::Adadelta {
                acc_grad: zeros(),
                acc_update: zeros(),
            },
            OptimizerConfig::Adam { .. } => Self::Adam {
                m: zeros(),
                v: zeros(),
                t: 0,
            },
        }
    }
}

impl<B> State<B> {
    /// The state buffers with their field names, in
    /// [`OptimizerConfig::state_fields`] order.
    fn fields(&self) -> Vec<(&'static str, &B)> {
        match self {
            Self::Sgd => vec![],
            Self::Momentum { velocity } => vec![("velocity", velocity)],
            Self::Adagrad { accumulator } => vec![("accumulator", accumulator)],
            Self::Adadelta {
                acc_grad,
                acc_update,
            } => vec![("acc_grad", acc_grad), ("acc_update", acc_update)],
            Self::Adam { m, v, .. } => vec![("m", m), ("v", v)],
        }
    }

    /// Adam's step count, `None` for the others.
    fn steps(&self) -> Option<i32> {
        match self {
            Self::Adam { t, .. } => Some(*t),
            _ => None,
        }
    }

    /// Replaces the state with `fields` (in [`State::fields`] order, already
    /// checked to be complete) and Adam's step count `steps`.
    fn restore(&mut self, fields: Vec<B>, steps: i32) {
        let mut fields = fields.into_iter();
        let mut next = |old: &mut B| {
            if let Some(new) = fields.next() {
                *old = new;
            }
        };
        match self {
            Self::Sgd => {}
            Self::Momentum { velocity } => next(velocity),
            Self::Adagrad { accumulator } => next(accumulator),
            Self::Adadelta {
                acc_grad,
                acc_update,
            } => {
                next(acc_grad);
                next(acc_update);
            }
            Self::Adam { m, v, t } => {
                next(m);
                next(v);
                *t = steps;
            }
        }
    }
}

/// Adam's step count as the one-element i64 tensor checkpoints store.
fn step_count(t: i32) -> Result<Tensor> {
    Ok(Tensor::from_slice(&[i64::from(t)], 1, &Device::Cpu)?)
}

/// One parameter and what the optimiser keeps for it.
#[derive(Debug)]
struct Slot {
    /// The parameter's name (`cba0.conv0.weight`), which names its state in
    /// checkpoints.
    name: String,
    var: Var,
    decayed: bool,
    min: Option<f64>,
    state: SlotState,
}

/// How a parameter is updated, with its state.
#[derive(Debug)]
enum SlotState {
    /// With tensor ops (any device and dtype).
    Tensors(TensorState),
    /// Contiguous f32 CPU parameters: in place, with the state as buffers
    /// (no tensor is allocated per step).
    InPlace(CpuState),
}

/// An optimiser bound to a model's parameters.
#[derive(Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    weight_decay: f64,
    slots: Vec<Slot>,
}

impl Optimizer {
    /// Binds `config` to `params`. `weight_decay` (an L2 term `weight_decay *
    /// p` added to the gradient) applies to [`ParamKind::Weight`] only, never
    /// to biases, norms or activation parameters.
    pub fn new(params: &[Param], config: OptimizerConfig, weight_decay: f64) -> Result<Self> {
        config.validate()?;
        if !(weight_decay.is_finite() && weight_decay >= 0.0) {
            return Err(Error::Config(format!(
                "weight decay must be finite and non-negative, got {weight_decay}"
            )));
        }
        let slots = params
            .iter()
            .map(|p| {
                let min = match p.kind {
                    ParamKind::Activation(acbench_plugin_api::Constraint::Positive(min)) => {
                        Some(min)
                    }
                    _ => None,
                };
                let t = p.var.as_tensor();
                let state = if t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous() {
                    SlotState::InPlace(CpuState::new(config, t.elem_count()))
                } else {
                    SlotState::Tensors(TensorState::new(config, t)?)
                };
                Ok(Slot {
                    name: p.name.clone(),
                    var: p.var.clone(),
                    decayed: p.kind == ParamKind::Weight && weight_decay > 0.0,
                    min,
                    state,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config,
            weight_decay,
            slots,
        })
    }

    /// The configuration this optimiser runs.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Every state buffer as `(name, tensor)`, named `PARAM/FIELD`
    /// (`cba0.conv0.weight/velocity`; Adam's step count is `PARAM/t`, an
    /// i64 scalar): what a checkpoint keeps so that training resumes with
    /// exactly this optimiser. Plain SGD has no state.
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for slot in &self.slots {
            let named = |field: &str| format!("{}/{field}", slot.name);
            let steps = match &slot.state {
                SlotState::Tensors(state) => {
                    for (field, t) in state.fields() {
                        out.push((named(field), t.clone()));
                    }
                    state.steps()
                }
                SlotState::InPlace(cpu) => {
                    let shape = slot.var.as_tensor().shape().clone();
                    for (field, v) in cpu.fields() {
                        out.push((named(field), Tensor::from_slice(v, &shape, &Device::Cpu)?));
                    }
                    cpu.steps()
                }
            };
            if let Some(t) = steps {
                out.push((named("t"), step_count(t)?));
            }
        }
        Ok(out)
    }

    /// Restores the state that [`Optimizer::state`] returned, looking each
    /// buffer up by name in `get`. Every buffer is checked (present, of the
    /// parameter's size) before any is replaced, so a mismatch leaves this
    /// optimiser as it was.
    pub fn load_state(&mut self, get: &dyn Fn(&str) -> Option<Tensor>) -> Result<()> {
        let fetch = |slot: &Slot, field: &str| -> Result<Tensor> {
            let name = format!("{}/{field}", slot.name);
            get(&name)
                .ok_or_else(|| Error::Internal(format!("optimizer state `{name}` is missing")))
        };
        let sized = |slot: &Slot, field: &str| -> Result<Tensor> {
            let t = fetch(slot, field)?;
            let want = slot.var.as_tensor().elem_count();
            if t.elem_count() != want {
                return Err(Error::Internal(format!(
                    "optimizer state `{}/{field}` has {} values, the parameter {want}",
                    slot.name,
                    t.elem_count()
                )));
            }
            Ok(t)
        };
        let mut loaded = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            let mut fields = Vec::new();
            for field in self.config.state_fields() {
                fields.push(sized(slot, field)?);
            }
            let t = if matches!(self.config, OptimizerConfig::Adam { .. }) {
                let t = fetch(slot, "t")?.flatten_all()?.to_vec1::<i64>()?;
                let [t] = t[..] else {
                    return Err(Error::Internal(format!(
                        "optimizer state `{}/t` is not one number",
                        slot.name
                    )));
                };
                i32::try_from(t).map_err(|_| {
                    Error::Internal(format!(
                        "optimizer state `{}/t` = {t} is out of range",
                        slot.name
                    ))
                })?
            } else {
                0
            };
            loaded.push((fields, t));
        }
        for (slot, (fields, t)) in self.slots.iter_mut().zip(loaded) {
            match &mut slot.state {
                SlotState::Tensors(state) => {
                    let p = slot.var.as_tensor();
                    let fields = fields
                        .into_iter()
                        .map(|f| {
                            f.reshape(p.shape())?
                                .to_dtype(p.dtype())?
                                .to_device(p.device())
                        })
                        .collect::<candle_core::Result<Vec<_>>>()?;
                    state.restore(fields, t);
                }
                SlotState::InPlace(cpu) => {
                    let fields = fields
                        .into_iter()
                        .map(|f| f.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>())
                        .collect::<candle_core::Result<Vec<_>>>()?;
                    cpu.restore(fields, t);
                }
            }
        }
        Ok(())
    }

    /// Applies one update with learning rate `lr` from the gradients in
    /// `grads`, then clamps constrained activation parameters. Parameters
    /// without a gradient (unused in this forward pass, or not trainable)
    /// are left untouched, state included.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        for slot in &mut self.slots {
            let Some(grad) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            let state = match &mut slot.state {
                SlotState::InPlace(cpu) => {
                    // The parameter is f32 on the CPU, and so is its gradient.
                    let grad = grad.contiguous()?;
                    let (storage, layout) = grad.storage_and_layout();
                    let (candle_core::Storage::Cpu(candle_core::CpuStorage::F32(g)), Some((a, b))) =
                        (&*storage, layout.contiguous_offsets())
                    else {
                        return Err(Error::Internal(format!(
                            "optimizer: the gradient of an f32 CPU parameter is {:?} on {:?}",
                            grad.dtype(),
                            grad.device().location()
                        )));
                    };
                    let op = InPlace {
                        grad: &g[a..b],
                        state: std::cell::RefCell::new(cpu),
                        config: self.config,
                        lr,
                        decay: if slot.decayed { self.weight_decay } else { 0.0 },
                        min: slot.min,
                    };
                    slot.var.as_tensor().inplace_op1(&op)?;
                    continue;
                }
                SlotState::Tensors(state) => state,
            };
            // Gradients in the store still reference the forward graph, and
            // so would every state tensor computed from them: detach both
            // inputs so that state never keeps old graphs alive.
            let mut g = grad.detach();
            let p = slot.var.as_detached_tensor();
            if slot.decayed {
                g = (&g + p.affine(self.weight_decay, 0.0)?)?;
            }
            let new_p = match (state, self.config) {
                (State::Sgd, _) => (&p - g.affine(lr, 0.0)?)?,
                (State::Momentum { velocity }, OptimizerConfig::Momentum { momentum }) => {
                    *velocity = (velocity.affine(momentum, 0.0)? + &g)?;
                    (&p - velocity.affine(lr, 0.0)?)?
                }
                (State::Adagrad { accumulator }, _) => {
                    *accumulator = (&*accumulator + g.sqr()?)?;
                    (&p - (g.affine(lr, 0.0)? / accumulator.sqrt()?)?)?
                }
                (
                    State::Adadelta {
                        acc_grad,
                        acc_update,
                    },
                    OptimizerConfig::Adadelta { rho, epsilon },
                ) => {
                    *acc_grad = (acc_grad.affine(rho, 0.0)? + g.sqr()?.affine(1.0 - rho, 0.0)?)?;
                    let update = ((acc_update.affine(1.0, epsilon)?.sqrt()?
                        / acc_grad.affine(1.0, epsilon)?.sqrt()?)?
                        * &g)?;
                    *acc_update =
                        (acc_update.affine(rho, 0.0)? + update.sqr()?.affine(1.0 - rho, 0.0)?)?;
                    (&p - update.affine(lr, 0.0)?)?
                }
                (
                    State::Adam { m, v, t },
                    OptimizerConfig::Adam {
                        beta1,
                        beta2,
                        epsilon,
                    },
                ) => {
                    *t = t.saturating_add(1);
                    *m = (m.affine(beta1, 0.0)? + g.affine(1.0 - beta1, 0.0)?)?;
                    *v = (v.affine(beta2, 0.0)? + g.sqr()?.affine(1.0 - beta2, 0.0)?)?;
                    let correction1 = 1.0 - beta1.powi(*t);
                    let correction2 = 1.0 - beta2.powi(*t);
                    // m_hat / (sqrt(v_hat) + eps) with the corrections folded
                    // into the scalar factors of two ops.
                    let denom = v.sqrt()?.affine(1.0 / correction2.sqrt(), epsilon)?;
                    (&p - (m.affine(lr / correction1, 0.0)? / denom)?)?
                }
                (state, config) => {
                    // `new` builds the state from the same config, so this
                    // pairing cannot be reached; report rather than panic.
                    return Err(Error::Internal(format!(
                        "optimizer state {state:?} does not match {}",
                        config.name()
                    )));
                }
            };
            let new_p = match slot.min {
                Some(min) => new_p.maximum(min)?,
                None => new_p,
            };
            slot.var.set(&new_p)?;
        }
        Ok(())
    }
}

/// One parameter's update in place on its CPU storage: the same rules as
/// [`Optimizer::step`]'s tensor ops, element by element, in f32.
struct InPlace<'a> {
    grad: &'a [f32],
    state: std::cell::RefCell<&'a mut CpuState>,
    config: OptimizerConfig,
    lr: f64,
    decay: f64,
    min: Option<f64>,
}

impl candle_core::InplaceOp1 for InPlace<'_> {
    fn name(&self) -> &'static str {
        "acbench-optimizer-step"
    }

    fn cpu_fwd(
        &self,
        storage: &mut candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<()> {
        let candle_core::CpuStorage::F32(data) = storage else {
            candle_core::bail!("in-place optimizer step on a non-f32 parameter")
        };
        let Some((a, b)) = layout.contiguous_offsets() else {
            candle_core::bail!("in-place optimizer step on a non-contiguous parameter")
        };
        let p = &mut data[a..b];
        if p.len() != self.grad.len() {
            candle_core::bail!(
                "optimizer: gradient of {} values for a parameter of {}",
                self.grad.len(),
                p.len()
            );
        }
        let (lr, decay) = (self.lr as f32, self.decay as f32);
        let grad = |i: usize, p: f32| self.grad[i] + if decay != 0.0 { decay * p } else { 0.0 };
        let mut state = self.state.borrow_mut();
        match (&mut **state, self.config) {
            (CpuState::Sgd, _) => {
                for (i, v) in p.iter_mut().enumerate() {
                    *v -= grad(i, *v) * lr;
                }
            }
            (CpuState::Momentum { velocity }, OptimizerConfig::Momentum { momentum }) => {
                let m = momentum as f32;
                for (i, (v, vel)) in p.iter_mut().zip(velocity.iter_mut()).enumerate() {
                    *vel = *vel * m + grad(i, *v);
                    *v -= *vel * lr;
                }
            }
            (CpuState::Adagrad { accumulator }, _) => {
                for (i, (v, acc)) in p.iter_mut().zip(accumulator.iter_mut()).enumerate() {
                    let g = grad(i, *v);
                    *acc += g * g;
                    *v -= g * lr / acc.sqrt();
                }
            }
            (
                CpuState::Adadelta {
                    acc_grad,
                    acc_update,
                },
                OptimizerConfig::Adadelta { rho, epsilon },
            ) => {
                // Coefficients in f64 first: `1 - rho` in f32 loses digits.
                let (keep, add, eps) = (rho as f32, (1.0 - rho) as f32, epsilon as f32);
                for (i, v) in p.iter_mut().enumerate() {
                    let g = grad(i, *v);
                    acc_grad[i] = acc_grad[i] * keep + g * g * add;
                    let update = (acc_update[i] + eps).sqrt() / (acc_grad[i] + eps).sqrt() * g;
                    acc_update[i] = acc_update[i] * keep + update * update * add;
                    *v -= update * lr;
                }
            }
            (
                CpuState::Adam { m, v: second, t },
                OptimizerConfig::Adam {
                    beta1,
                    beta2,
                    epsilon,
                },
            ) => {
                *t = t.saturating_add(1);
                let c1 = 1.0 - beta1.powi(*t);
                let c2 = 1.0 - beta2.powi(*t);
                let (b1, b2) = (beta1 as f32, beta2 as f32);
                let (a1, a2) = ((1.0 - beta1) as f32, (1.0 - beta2) as f32);
                let (step, inv_c2, eps) = (
                    (self.lr / c1) as f32,
                    (1.0 / c2.sqrt()) as f32,
                    epsilon as f32,
                );
                for (i, v) in p.iter_mut().enumerate() {
                    let g = grad(i, *v);
                    m[i] = m[i] * b1 + g * a1;
                    second[i] = second[i] * b2 + g * g * a2;
                    *v -= m[i] * step / (second[i].sqrt() * inv_c2 + eps);
                }
            }
            (state, config) => {
                candle_core::bail!("optimizer state {state:?} does not match {}", config.name())
            }
        }
        if let Some(min) = self.min {
            let min = min as f32;
            for v in p.iter_mut() {
                *v = v.max(min);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
}
