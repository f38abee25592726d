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

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};

use crate::params::{Param, ParamKind};
use crate::{Error, Result};

mod config;

pub use config::OptimizerConfig;

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
mod tests;
