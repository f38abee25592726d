//! A trainable candle model built from an elaborated network ([`Network`]).
//!
//! Every IR node becomes a layer holding its own parameters, named by
//! the node's path (`cba0.conv0.weight`, `basic1.act0.a`); the model keeps
//! the IR so results can name layers and slots.
//!
//! - `build`: IR to layers, seeded initialisation ([`Model::build`]).
//! - `autograd`: the layers as candle ops, trained by candle's autograd
//!   (other dtypes and devices; the reference).
//! - `cpu`: the CPU training path, forward and backward by hand on f32
//!   buffers, for every layer type.

use std::collections::HashMap;
use std::marker::PhantomData;

use acbench_dsl::ir::{Conv2d, Network, Pool2d, Shape};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, TensorId, Var};
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

/// How the layers run: training (batch statistics, dropout masks drawn
/// from the generator) or evaluation (running statistics, no dropout).
enum Mode<'r> {
    /// Batch norm uses and updates batch statistics; dropout is active.
    Train(&'r mut ChaCha8Rng),
    /// Batch norm uses running statistics; dropout is the identity.
    Eval,
    /// As `Eval`, and the first act layer that turns finite inputs into a
    /// non-finite output is described here ([`Model::diagnose_non_finite`]).
    Diagnose(&'r mut Option<String>),
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
    grad_cache: HashMap<TensorId, Tensor>,
}

/// What one [`Model::train_step`] computed. Its gradients are tensors the
/// model refills in place at its next step, so a step borrows its model
/// until it is dropped: no gradient can be read after the next step has
/// overwritten it.
#[derive(Debug)]
pub struct TrainStep<'m> {
    /// Mean loss of the batch.
    pub loss: f32,
    /// Examples of the batch whose largest logit is their label.
    pub correct: u64,
    grads: Option<GradStore>,
    model: PhantomData<&'m mut Model>,
}

/// What a training step minimises.
pub enum Objective<'a> {
    /// Mean softmax cross-entropy of the `[N, classes]` output against
    /// class indices `[N]`.
    Classes(&'a Tensor),
    /// A loss of the whole output that the caller computes (a detector
    /// plugin's), with its gradient.
    Dense(&'a mut dyn DenseLoss),
}

/// A loss over a network's raw output, computed outside the model.
pub trait DenseLoss {
    /// The loss of `output` (row-major, shaped `dims`), writing
    /// `d loss / d output` into every value of `grad` (as long as
    /// `output`). A loss that is not finite is returned as it is: the step
    /// then updates nothing and the run has diverged.
    fn loss(&mut self, output: &[f32], dims: &[usize], grad: &mut [f32]) -> Result<f32>;
}

impl TrainStep<'_> {
    /// Every parameter's gradient; `None` when the loss was not finite (no
    /// backward pass ran).
    pub fn grads(&self) -> Option<&GradStore> {
        self.grads.as_ref()
    }
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

    /// One training step's forward (which updates the batch-norm running
    /// statistics), softmax cross-entropy against `labels` (`[N]` class
    /// indices) and, when the loss is finite, backward. Runs on the CPU path
    /// where it applies, else through candle's autograd.
    pub fn train_step(
        &mut self,
        x: &Tensor,
        labels: &Tensor,
        dropout_rng: &mut ChaCha8Rng,
    ) -> Result<TrainStep<'_>> {
        self.train_step_on(x, Objective::Classes(labels), dropout_rng)
    }

    /// [`Model::train_step`] for any [`Objective`]. With a dense objective
    /// `correct` is 0. On candle's autograd the dense gradient `g` enters as
    /// the loss `sum(output * g)`, whose gradient with respect to the
    /// output is `g`: the backward pass is the same as the CPU path's.
    pub fn train_step_on(
        &mut self,
        x: &Tensor,
        objective: Objective<'_>,
        dropout_rng: &mut ChaCha8Rng,
    ) -> Result<TrainStep<'_>> {
        let (loss, correct, grads) = if self.cpu_path_applies() {
            let step = self.cpu_step(x, objective, dropout_rng)?;
            (step.loss, step.correct, step.grads)
        } else {
            let output = self.forward_train(x, dropout_rng)?;
            let (loss_value, hits, surrogate) = match objective {
                Objective::Classes(labels) => {
                    let loss = candle_nn::loss::cross_entropy(&output, labels)?;
                    let value = loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
                    (value, count_correct(&output.detach(), labels)?, loss)
                }
                Objective::Dense(dense) => {
                    let values: Vec<f32> = output
                        .detach()
                        .to_dtype(DType::F32)?
                        .flatten_all()?
                        .to_vec1()?;
                    let mut grad = vec![0f32; values.len()];
                    let value = dense.loss(&values, output.dims(), &mut grad)?;
                    let g = Tensor::from_vec(grad, output.dims(), output.device())?
                        .to_dtype(output.dtype())?;
                    (value, 0, (&output * &g)?.sum_all()?)
                }
            };
            let grads = if loss_value.is_finite() {
                Some(surrogate.backward()?)
            } else {
                None
            };
            (loss_value, hits, grads)
        };
        Ok(TrainStep {
            loss,
            correct,
            grads,
            model: PhantomData,
        })
    }

    /// Sets the bias of the convolutions that produce the output, where
    /// `bias` (one value per output channel) is not NaN: a detector's
    /// initial head bias. The output must come from a convolution with a
    /// bias, or from a `concat` of branches that each end in one.
    pub fn set_output_bias(&mut self, bias: &[f32]) -> Result<()> {
        if bias.iter().all(|v| v.is_nan()) {
            return Ok(());
        }
        let mut offset = 0;
        set_bias(&self.layers, bias, &mut offset)?;
        if offset != bias.len() {
            return Err(Error::DataMismatch(format!(
                "the network's output has {offset} channels, the detector gave {} initial biases",
                bias.len()
            )));
        }
        Ok(())
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

    /// Logits `[N, classes]` in training mode, through candle ops (so that
    /// candle's autograd can differentiate them), for a batch `x` of shape
    /// `[N, C, H, W]` (or `[N, features]` for a network with a vector
    /// input): batch norm normalises with the batch's statistics and updates
    /// its running ones, dropout draws its masks from `dropout_rng`.
    pub fn forward_train(&mut self, x: &Tensor, dropout_rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let x = self.input(x)?;
        self.run(&self.layers, x, &mut Mode::Train(dropout_rng))
    }

    /// Logits `[N, classes]` in evaluation mode (batch norm with its
    /// running statistics, no dropout) for a batch shaped as for
    /// [`Model::forward_train`]; changes nothing in the model.
    pub fn forward_eval(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.input(x)?;
        if self.cpu_path_applies() {
            return self.cpu_forward_eval(&x);
        }
        self.run(&self.layers, x, &mut Mode::Eval)
    }

    /// After a divergence: runs `x` through the network in evaluation mode
    /// and names the first activation whose output is not finite although
    /// its input is (`act slot \`conv1.act0\`: activation \`x\` from plugin
    /// P turned finite inputs into NaN`): a kernel or formula that makes
    /// NaN, as opposed to a network whose values grew too large. `None` when
    /// no activation does that on `x`. Always on the autograd path, so that
    /// a fused kernel and its formula are judged by the same check.
    pub fn diagnose_non_finite(&self, x: &Tensor) -> Result<Option<String>> {
        let x = self.input(x)?;
        let mut found = None;
        self.run(&self.layers, x, &mut Mode::Diagnose(&mut found))?;
        Ok(found)
    }

    /// `x` checked against the network's input and in the model's dtype
    /// and layout.
    fn input(&self, x: &Tensor) -> Result<Tensor> {
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
        if x.dtype() == self.dtype {
            Ok(x)
        } else {
            Ok(x.to_dtype(self.dtype)?)
        }
    }
}

/// Sets the biases of the convolution(s) that end `layers` from `bias`,
/// starting at channel `offset` (advanced past their channels).
fn set_bias(layers: &[Layer], bias: &[f32], offset: &mut usize) -> Result<()> {
    match layers.last() {
        Some(Layer::Conv { spec, bias: b, .. }) => {
            let n = spec.out_channels;
            let Some(part) = bias.get(*offset..*offset + n) else {
                return Err(Error::DataMismatch(format!(
                    "the network's output has more channels than the detector's {} initial biases",
                    bias.len()
                )));
            };
            *offset += n;
            if part.iter().all(|v| v.is_nan()) {
                return Ok(());
            }
            let Some(b) = b else {
                return Err(Error::DataMismatch(
                    "the detector sets an initial bias, but the network's last convolution has \
                     none (drop `bias=false`)"
                        .into(),
                ));
            };
            let old: Vec<f32> = b.as_tensor().to_dtype(DType::F32)?.to_vec1()?;
            let new: Vec<f32> = part
                .iter()
                .zip(old)
                .map(|(&v, o)| if v.is_nan() { o } else { v })
                .collect();
            let t = Tensor::from_vec(new, n, b.device())?.to_dtype(b.dtype())?;
            b.set(&t)?;
            Ok(())
        }
        Some(Layer::Concat(branches)) => {
            for branch in branches {
                set_bias(branch, bias, offset)?;
            }
            Ok(())
        }
        _ => Err(Error::DataMismatch(
            "a detector's head must end in a convolution (or a `concat` of branches that each end \
             in one), so that its initial bias can be set"
                .into(),
        )),
    }
}

/// Rows of `logits: [N, classes]` whose largest value is at the label.
pub(crate) fn count_correct(logits: &Tensor, labels: &Tensor) -> Result<u64> {
    // u8 comparison results would overflow when summed: widen first.
    let hits = logits.argmax(1)?.eq(labels)?.to_dtype(DType::U32)?;
    Ok(u64::from(hits.sum_all()?.to_scalar::<u32>()?))
}
