//! A trainable candle model built from an elaborated network ([`Network`]).
//!
//! Every IR node becomes a [`Layer`] holding its own parameters, named by
//! the node's path (`cba0.conv0.weight`, `basic1.act0.a`); the model keeps
//! the IR so results can name layers and slots.
//!
//! - `build`: IR to layers, seeded initialisation ([`Model::build`]).
//! - `autograd`: the layers as candle ops, trained by candle's autograd
//!   (other dtypes and devices; the reference).
//! - `cpu`: the CPU training path, forward and backward by hand on f32
//!   buffers, for every layer type.

use acbench_dsl::ir::{Conv2d, Network, Pool2d, Shape};
use candle_core::{DType, Device, Tensor, Var};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::activation::ActLayer;
use crate::error::{Error, Result};
use crate::ops::lrn::Lrn;
use crate::params::Param;

mod autograd;
mod build;
mod cpu;
#[cfg(test)]
mod tests;

/// Training (batch statistics, dropout) or evaluation (running statistics,
/// no dropout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Batch norm uses and updates batch statistics; dropout is active.
    Train,
    /// Batch norm uses running statistics; dropout is the identity.
    Eval,
}

/// The parameters of one `act` node, for results and plots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActSlotValues {
    /// Node path (`stage2.basic0.act1`).
    pub path: String,
    /// Slot name from `act@slot`, if any.
    pub slot: Option<String>,
    /// Bound activation.
    pub activation: String,
    /// `(parameter, values)`: one value per layer-wise parameter, one per
    /// channel for per-channel ones; fixed parameters included.
    pub params: Vec<(String, Vec<f32>)>,
}

/// Batch-norm state: trainable scale and shift, running statistics that are
/// updated in place (not trainable, so not in [`Model::params`]).
#[derive(Debug)]
struct BatchNorm {
    gamma: Var,
    beta: Var,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    momentum: f64,
}

/// One built node.
#[derive(Debug)]
enum Layer {
    Conv {
        spec: Conv2d,
        weight: Var,
        bias: Option<Var>,
    },
    BatchNorm(BatchNorm),
    Lrn(Lrn),
    Pool(Pool2d),
    GlobalAvgPool,
    Dropout {
        rate: f64,
    },
    Flatten,
    Linear {
        weight: Var,
        bias: Option<Var>,
    },
    /// Index into [`Model::acts`].
    Act(usize),
    Residual {
        body: Vec<Layer>,
        shortcut: Vec<Layer>,
    },
    Concat(Vec<Vec<Layer>>),
    Dense(Vec<Vec<Layer>>),
}

/// A network ready to train: layers, parameters and activation slots.
#[derive(Debug)]
pub struct Model {
    network: Network,
    layers: Vec<Layer>,
    params: Vec<Param>,
    /// Non-trainable state: batch-norm running statistics, named
    /// `path.running_mean` / `path.running_var`, in construction order.
    buffers: Vec<(String, Var)>,
    acts: Vec<ActLayer>,
    dtype: DType,
    device: Device,
    /// Use the hand-written CPU path where it applies (see [`cpu`]).
    cpu_path: bool,
    /// The CPU path's gradient tensors, one per parameter, refilled every
    /// step (see [`cpu`]).
    grad_cache: std::sync::Mutex<std::collections::HashMap<candle_core::TensorId, Tensor>>,
}

impl Model {
    /// Turns the hand-written CPU training path off (or back on). With it
    /// off, every step goes through candle's autograd: slower, and the
    /// reference the CPU path is tested against. It only ever applies to f32
    /// models on the CPU.
    pub fn set_cpu_path(&mut self, on: bool) {
        self.cpu_path = on;
    }

    /// Whether training steps and evaluation take the CPU path.
    pub fn uses_cpu_path(&self) -> bool {
        self.cpu_path_applies()
    }

    /// One training step's forward, softmax cross-entropy against `labels`
    /// (`[N]` class indices) and, when the loss is finite, backward: returns
    /// the mean loss, the number of examples whose largest logit is their
    /// label, and the gradients (`None` for a non-finite loss). Runs on the
    /// CPU path where it applies, else through candle's autograd.
    pub fn train_step(
        &self,
        x: &Tensor,
        labels: &Tensor,
        dropout_rng: &mut ChaCha8Rng,
    ) -> Result<(f32, u64, Option<candle_core::backprop::GradStore>)> {
        if self.cpu_path_applies() {
            let step = self.cpu_step(x, labels, dropout_rng)?;
            return Ok((step.loss, step.correct, step.grads));
        }
        let logits = self.forward(x, Mode::Train, dropout_rng)?;
        let loss = candle_nn::loss::cross_entropy(&logits, labels)?;
        let loss_value = loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        let hits = count_correct(&logits.detach(), labels)?;
        if !loss_value.is_finite() {
            return Ok((loss_value, hits, None));
        }
        Ok((loss_value, hits, Some(loss.backward()?)))
    }

    /// The network this model was built from.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Every trainable parameter, in construction (forward) order.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// Non-trainable state that training changes (batch-norm running
    /// statistics), as `(name, variable)` in construction order: with
    /// [`Model::params`] this is everything a checkpoint must keep.
    pub fn buffers(&self) -> &[(String, Var)] {
        &self.buffers
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The parameters' dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Activation parameters of every act node, in forward order.
    pub fn act_values(&self) -> Result<Vec<ActSlotValues>> {
        self.acts
            .iter()
            .map(|a| {
                Ok(ActSlotValues {
                    path: a.path.clone(),
                    slot: a.slot.clone(),
                    activation: a.activation().to_owned(),
                    params: a.values()?,
                })
            })
            .collect()
    }

    /// Logits `[N, classes]` for a batch `x` of shape `[N, C, H, W]` (or
    /// `[N, features]` for a network with a vector input). `dropout_rng`
    /// draws the dropout masks in [`Mode::Train`]; it is untouched in
    /// [`Mode::Eval`].
    pub fn forward(&self, x: &Tensor, mode: Mode, dropout_rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let dims = x.dims();
        let fits = match self.network.input {
            Shape::Image { c, h, w } => dims.len() == 4 && dims[1..] == [c, h, w],
            Shape::Flat(n) => dims.len() >= 2 && dims[1..].iter().product::<usize>() == n,
        };
        if !fits {
            return Err(Error::DataMismatch(format!(
                "the network takes {} per example, got a batch of shape {dims:?}",
                self.network.input
            )));
        }
        let x = match self.network.input {
            Shape::Flat(_) if dims.len() != 2 => x.flatten_from(1)?,
            _ => x.clone(),
        };
        let x = if x.dtype() == self.dtype {
            x
        } else {
            x.to_dtype(self.dtype)?
        };
        if mode == Mode::Eval && self.cpu_path_applies() {
            return self.cpu_forward_eval(&x);
        }
        self.run(&self.layers, x, mode, dropout_rng)
    }
}

/// Rows of `logits: [N, classes]` whose largest value is at the label.
pub(crate) fn count_correct(logits: &Tensor, labels: &Tensor) -> Result<u64> {
    // u8 comparison results would overflow when summed: widen first.
    let hits = logits.argmax(1)?.eq(labels)?.to_dtype(DType::U32)?;
    Ok(u64::from(hits.sum_all()?.to_scalar::<u32>()?))
}
