//! The training loop: seeded shuffling, batching, forward and backward
//! passes, optimiser steps on the scheduled learning rate, evaluation on the
//! whole test split after every epoch, and a divergence guard.
//!
//! Epochs and batches are counted from 0 (epoch 0 is the first).

use std::time::Instant;

use acbench_data::{Augment, Batcher, Dataset, Normalization, Split};
use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{CheckpointStore, Resume, RngPositions, Snapshot};
use crate::model::{ActSlotValues, Model, Objective};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::params::ParamKind;
use crate::rng::{Seed, Stream};
use crate::schedule::Schedule;
use crate::{Error, Result};

/// Everything a training run needs besides the model and the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training split.
    pub epochs: usize,
    /// Training examples per optimiser step (the last batch of an epoch may
    /// be smaller).
    pub batch_size: usize,
    /// Examples per forward pass during evaluation (does not change results,
    /// only speed and memory).
    #[serde(default = "default_eval_batch_size")]
    pub eval_batch_size: usize,
    /// Optimiser and its hyper-parameters.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule.
    #[serde(default)]
    pub schedule: Schedule,
    /// L2 weight decay on convolution and linear weights only.
    #[serde(default)]
    pub weight_decay: f64,
    /// Seed of every random stream of the run (shuffling, dropout,
    /// augmentation; initial weights are drawn when the model is built).
    pub seed: Seed,
    /// How pixels are turned into network inputs.
    #[serde(default)]
    pub normalization: InputNorm,
    /// Training-time augmentation, none by default (as the paper).
    #[serde(default, with = "AugmentDef")]
    pub augment: Augment,
    /// Record the mean training loss every this many steps (the paper's
    /// per-iteration curves, Fig. 6); `None` picks about
    /// [`STEP_POINTS`] points over the run.
    #[serde(default)]
    pub loss_every: Option<usize>,
}

/// Points of the per-step loss curve a run records when
/// [`TrainConfig::loss_every`] is not set.
pub const STEP_POINTS: usize = 300;

impl TrainConfig {
    /// Steps per point of the loss curve, for `batches` steps an epoch.
    pub fn loss_window(&self, batches: usize) -> usize {
        self.loss_every
            .unwrap_or_else(|| (self.epochs * batches).div_ceil(STEP_POINTS))
            .max(1)
    }
}

/// How pixel bytes become network inputs: the intent, resolved against the
/// dataset when training starts (per-channel statistics come from the
/// training split, so a suite need not spell them out).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputNorm {
    /// TensorFlow's `per_image_standardization`, as the paper's code.
    #[default]
    PerImage,
    /// Mean and standard deviation of each channel over the training split.
    PerChannel,
    /// Bytes divided by 255.
    Unit,
}

impl InputNorm {
    /// The data crate's normalisation for `data`.
    pub fn resolve(self, data: &Dataset) -> Result<Normalization> {
        Ok(match self {
            Self::PerImage => Normalization::PerImage,
            Self::PerChannel => Normalization::per_channel(&data.train, data.shape)?,
            Self::Unit => Normalization::Unit,
        })
    }
}

/// Serde's mirror of the data crate's [`Augment`], which has no serde
/// support of its own.
#[derive(Serialize, Deserialize)]
#[serde(remote = "Augment", deny_unknown_fields)]
struct AugmentDef {
    #[serde(default)]
    crop_padding: usize,
    #[serde(default)]
    hflip: bool,
}

fn default_eval_batch_size() -> usize {
    500
}

/// `Seed` is a plain newtype of the rng module; it is written as its number.
impl TrainConfig {
    /// Checks every value before any work starts.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::Config("batch size must be at least 1".into()));
        }
        if self.eval_batch_size == 0 {
            return Err(Error::Config("eval batch size must be at least 1".into()));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::Config(format!(
                "weight decay must be finite and non-negative, got {}",
                self.weight_decay
            )));
        }
        self.optimizer.validate()?;
        self.schedule.validate()
    }
}

/// What one finished epoch measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch index, from 0.
    pub epoch: usize,
    /// Learning rate of the epoch's first step.
    pub lr: f64,
    /// Mean of the per-batch mean losses.
    pub train_loss: f64,
    /// Fraction of training examples classified correctly while training
    /// (with dropout and augmentation active).
    pub train_acc: f64,
    /// Mean loss per example over the whole test split.
    pub test_loss: f64,
    /// Fraction of the whole test split classified correctly.
    pub test_acc: f64,
    /// Seconds for the epoch, evaluation included.
    pub wall_s: f64,
    /// Training images per second (the training phase only).
    pub images_per_s: f64,
    /// Activation parameters of every act slot after the epoch.
    pub act_values: Vec<ActSlotValues>,
    /// Per convolution/linear layer: Euclidean norm of the change of its
    /// weights over the epoch (the paper's Fig. 4), in forward order.
    #[serde(default)]
    pub weight_increments: Vec<(String, f64)>,
    /// The loss curve per step: `(steps done in the run, mean training loss
    /// of the steps since the previous point)`, every
    /// [`TrainConfig::loss_window`] steps and at the epoch's end.
    #[serde(default)]
    pub step_losses: Vec<(usize, f64)>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RunStatus {
    /// Every epoch ran.
    Completed,
    /// A loss became NaN or infinite; the run stopped there.
    Diverged {
        /// Epoch in which it happened.
        epoch: usize,
        /// Training batch whose loss was not finite, or `None` when training
        /// losses were finite but the evaluation after the epoch was not.
        batch: Option<usize>,
    },
    /// The observer asked to stop ([`Observer::stop_requested`]): the
    /// epoch in flight was abandoned, so the last checkpoint (after the
    /// epoch before) is where the run resumes.
    Interrupted {
        /// The epoch that was abandoned.
        epoch: usize,
    },
}

/// The result of [`train`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOutcome {
    /// Completed, diverged or interrupted.
    pub status: RunStatus,
    /// Metrics of every epoch that finished (evaluation included).
    pub epochs: Vec<EpochMetrics>,
    /// Activation parameters when the run ended.
    pub act_values: Vec<ActSlotValues>,
    /// Seconds for the whole run.
    pub wall_s: f64,
}

/// Hooks the training loop calls as it goes: progress bars now, the results
/// ledger later. Every method defaults to doing nothing.
pub trait Observer {
    /// Epoch `epoch` of `epochs` starts; it has `batches` training batches.
    fn epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize, lr: f64) {
        let _ = (epoch, epochs, batches, lr);
    }

    /// Training batch `batch` of `batches` finished with mean loss `loss`.
    fn batch_end(&mut self, epoch: usize, batch: usize, batches: usize, loss: f32) {
        let _ = (epoch, batch, batches, loss);
    }

    /// An epoch finished, evaluation included.
    fn epoch_end(&mut self, metrics: &EpochMetrics) {
        let _ = metrics;
    }

    /// Asked before every epoch and after every batch: `true` stops the
    /// run there with [`RunStatus::Interrupted`] (a signal arrived).
    fn stop_requested(&mut self) -> bool {
        false
    }
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl Observer for NoObserver {}

/// Trains `model` on `data.train`, evaluating on the whole of `data.test`
/// after every epoch.
///
/// A non-finite loss ends the run early with [`RunStatus::Diverged`]; that
/// is an outcome, not an error. Errors are configuration problems, a dataset
/// that does not fit the network, or failing tensor operations.
pub fn train(
    model: &mut Model,
    data: &Dataset,
    cfg: &TrainConfig,
    device: &Device,
    obs: &mut dyn Observer,
) -> Result<TrainOutcome> {
    train_from(model, data, cfg, device, obs, None, None)
}

/// [`train`] with a checkpoint in `store` after every finished epoch (see
/// [`crate::checkpoint`]), continuing from `resume` (a checkpoint
/// [`CheckpointStore::load`] read into `model`) when there is one. The
/// results are bit for bit those of an uninterrupted [`train`].
pub fn train_with_checkpoints(
    model: &mut Model,
    data: &Dataset,
    cfg: &TrainConfig,
    device: &Device,
    obs: &mut dyn Observer,
    store: &CheckpointStore,
    resume: Option<Resume>,
) -> Result<TrainOutcome> {
    train_from(model, data, cfg, device, obs, Some(store), resume)
}

fn train_from(
    model: &mut Model,
    data: &Dataset,
    cfg: &TrainConfig,
    device: &Device,
    obs: &mut dyn Observer,
    store: Option<&CheckpointStore>,
    resume: Option<Resume>,
) -> Result<TrainOutcome> {
    cfg.validate()?;
    check_fit(model, data)?;
    let run_start = Instant::now();
    let (c, h, w) = data.shape;
    let mut trainer = Trainer::new(model, cfg)?;
    let mut batcher = Batcher::new(data.shape, cfg.normalization.resolve(data)?, cfg.augment)?;
    // One stream per purpose for the whole run (see `rng`), so that e.g.
    // turning on augmentation leaves the shuffling order unchanged.
    let mut shuffle_rng = cfg.seed.stream(Stream::Shuffle);
    let mut augment_rng = cfg.seed.stream(Stream::Augment);

    let n_train = data.train.len();
    let batches = n_train.div_ceil(cfg.batch_size);
    let window = cfg.loss_window(batches);
    let mut order: Vec<usize> = (0..n_train).collect();
    // Reused across batches: only the tensors candle makes are per batch.
    let largest = cfg.batch_size.max(cfg.eval_batch_size);
    let mut buffers = Buffers {
        pixels: Vec::with_capacity(largest * c * h * w),
        labels: Vec::with_capacity(largest),
    };
    let eval_plan = EvalPlan {
        split: &data.test,
        indices: (0..data.test.len()).collect(),
        batch_size: cfg.eval_batch_size,
    };
    let mut history = Vec::with_capacity(cfg.epochs);
    let mut first_epoch = 0;
    if let Some(r) = resume {
        if r.next_epoch > cfg.epochs || r.order.len() != n_train {
            return Err(Error::Config(format!(
                "the checkpoint resumes at epoch {} of {} over {} examples; the run has {} epochs over {n_train}",
                r.next_epoch,
                r.history.len(),
                r.order.len(),
                cfg.epochs
            )));
        }
        trainer
            .optimizer
            .load_state(&|name| r.optimizer.get(name).cloned())?;
        shuffle_rng.set_word_pos(r.rng.shuffle);
        augment_rng.set_word_pos(r.rng.augment);
        trainer.dropout_rng.set_word_pos(r.rng.dropout);
        order = r.order;
        history = r.history;
        first_epoch = r.next_epoch;
    }

    for epoch in first_epoch..cfg.epochs {
        if obs.stop_requested() {
            return interrupted(trainer.model(), history, epoch, run_start);
        }
        let epoch_start = Instant::now();
        let weights_before = WeightSnapshot::take(trainer.model())?;
        let first_lr = cfg.schedule.lr(epoch, 0, batches, cfg.epochs);
        obs.epoch_start(epoch, cfg.epochs, batches, first_lr);
        order.shuffle(&mut shuffle_rng);
        let mut loss_sum = 0.0f64;
        let mut correct = 0u64;
        let mut step_losses = Vec::new();
        let (mut window_sum, mut window_len) = (0.0f64, 0usize);
        for (batch, chunk) in order.chunks(cfg.batch_size).enumerate() {
            batcher.fill(
                &data.train,
                chunk,
                &mut augment_rng,
                &mut buffers.pixels,
                &mut buffers.labels,
            )?;
            let (x, y) = buffers.tensors(data.shape, trainer.model(), device)?;
            let lr = cfg.schedule.lr(epoch, batch, batches, cfg.epochs);
            let Some(step) = trainer.step(&x, &y, lr)? else {
                return Ok(diverged(
                    trainer.model(),
                    history,
                    epoch,
                    Some(batch),
                    run_start,
                ));
            };
            loss_sum += f64::from(step.loss);
            correct += step.correct;
            window_sum += f64::from(step.loss);
            window_len += 1;
            if window_len == window || batch + 1 == batches {
                step_losses.push((epoch * batches + batch + 1, window_sum / window_len as f64));
                (window_sum, window_len) = (0.0, 0);
            }
            obs.batch_end(epoch, batch, batches, step.loss);
            if obs.stop_requested() {
                return interrupted(trainer.model(), history, epoch, run_start);
            }
        }
        let train_s = epoch_start.elapsed().as_secs_f64();
        let (test_loss, test_acc) = evaluate(
            trainer.model(),
            &eval_plan,
            data.shape,
            &mut batcher,
            &mut buffers,
            device,
        )?;
        if !test_loss.is_finite() {
            return Ok(diverged(trainer.model(), history, epoch, None, run_start));
        }
        let metrics = EpochMetrics {
            epoch,
            lr: first_lr,
            train_loss: loss_sum / batches.max(1) as f64,
            train_acc: correct as f64 / n_train.max(1) as f64,
            test_loss,
            test_acc,
            wall_s: epoch_start.elapsed().as_secs_f64(),
            images_per_s: n_train as f64 / train_s.max(f64::MIN_POSITIVE),
            act_values: trainer.model().act_values()?,
            weight_increments: weights_before.increments(trainer.model())?,
            step_losses,
        };
        obs.epoch_end(&metrics);
        history.push(metrics);
        if let Some(store) = store
            && (epoch + 1 < cfg.epochs || store.saves_last())
        {
            store.save(&Snapshot {
                next_epoch: epoch + 1,
                model: trainer.model(),
                optimizer: &trainer.optimizer,
                rng: RngPositions {
                    shuffle: shuffle_rng.get_word_pos(),
                    augment: augment_rng.get_word_pos(),
                    dropout: trainer.dropout_rng.get_word_pos(),
                },
                order: &order,
                history: &history,
            })?;
        }
    }
    Ok(TrainOutcome {
        status: RunStatus::Completed,
        epochs: history,
        act_values: trainer.model().act_values()?,
        wall_s: run_start.elapsed().as_secs_f64(),
    })
}

/// One optimiser step at a time: forward in train mode, cross-entropy,
/// backward, update. [`train`] runs its batches through this, and so does
/// `acbench bench`, so the benchmark measures exactly the training path.
pub struct Trainer<'m> {
    model: &'m mut Model,
    optimizer: Optimizer,
    dropout_rng: ChaCha8Rng,
}

/// What one [`Trainer::step`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    /// Mean loss of the batch (before the update).
    pub loss: f32,
    /// Examples of the batch the model classified correctly (before the update).
    pub correct: u64,
}

impl<'m> Trainer<'m> {
    /// An optimiser for `model`'s parameters as `cfg` says, and the run's
    /// dropout stream.
    pub fn new(model: &'m mut Model, cfg: &TrainConfig) -> Result<Self> {
        Ok(Self {
            optimizer: Optimizer::new(model.params(), cfg.optimizer, cfg.weight_decay)?,
            model,
            dropout_rng: cfg.seed.stream(Stream::Dropout),
        })
    }

    /// The model being trained.
    pub fn model(&self) -> &Model {
        self.model
    }

    /// Trains on one batch (`x: [N, C, H, W]`, `y: [N]` class indices) at
    /// learning rate `lr`. `None` when the loss is not finite: nothing was
    /// updated and the run has diverged.
    pub fn step(&mut self, x: &Tensor, y: &Tensor, lr: f64) -> Result<Option<StepOutcome>> {
        self.step_on(x, Objective::Classes(y), lr)
    }

    /// [`Trainer::step`] for any [`Objective`] (a detector's dense loss).
    pub fn step_on(
        &mut self,
        x: &Tensor,
        objective: Objective<'_>,
        lr: f64,
    ) -> Result<Option<StepOutcome>> {
        let step = self
            .model
            .train_step_on(x, objective, &mut self.dropout_rng)?;
        let Some(grads) = step.grads().filter(|_| step.loss.is_finite()) else {
            return Ok(None);
        };
        self.optimizer.step(grads, lr)?;
        Ok(Some(StepOutcome {
            loss: step.loss,
            correct: step.correct,
        }))
    }
}

/// Copies of every weight tensor (conv and linear), taken at an epoch's
/// start to measure how far training moved them.
struct WeightSnapshot(Vec<Tensor>);

impl WeightSnapshot {
    fn take(model: &Model) -> Result<Self> {
        let weights = model
            .params()
            .iter()
            .filter(|p| p.kind == ParamKind::Weight);
        Ok(Self(
            weights
                .map(|p| p.var.as_tensor().copy())
                .collect::<candle_core::Result<_>>()?,
        ))
    }

    /// `(layer path, ||w_now - w_before||)` per weight, in forward order.
    fn increments(&self, model: &Model) -> Result<Vec<(String, f64)>> {
        let weights = model
            .params()
            .iter()
            .filter(|p| p.kind == ParamKind::Weight);
        weights
            .zip(&self.0)
            .map(|(p, before)| {
                let norm = (p.var.as_tensor() - before)?
                    .to_dtype(DType::F64)?
                    .sqr()?
                    .sum_all()?
                    .sqrt()?
                    .to_scalar::<f64>()?;
                let layer = p.name.strip_suffix(".weight").unwrap_or(&p.name).to_owned();
                Ok((layer, norm))
            })
            .collect()
    }
}

/// Batch buffers reused for the whole run: only the tensors candle makes
/// from them are allocated per batch.
struct Buffers {
    pixels: Vec<f32>,
    labels: Vec<u32>,
}

impl Buffers {
    /// The filled batch as `[N, C, H, W]` inputs in the model's dtype and
    /// `[N]` labels.
    fn tensors(
        &self,
        (c, h, w): (usize, usize, usize),
        model: &Model,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let n = self.labels.len();
        let x = Tensor::from_slice(&self.pixels, (n, c, h, w), device)?.to_dtype(model.dtype())?;
        let y = Tensor::from_slice(&self.labels, n, device)?;
        Ok((x, y))
    }
}

/// The whole test split, and how to walk it.
struct EvalPlan<'a> {
    split: &'a Split,
    indices: Vec<usize>,
    batch_size: usize,
}

/// Mean loss per example and accuracy over the whole split, in Eval mode
/// and without augmentation.
fn evaluate(
    model: &Model,
    plan: &EvalPlan<'_>,
    shape: (usize, usize, usize),
    batcher: &mut Batcher,
    buffers: &mut Buffers,
    device: &Device,
) -> Result<(f64, f64)> {
    let mut loss_sum = 0.0f64;
    let mut correct = 0u64;
    for chunk in plan.indices.chunks(plan.batch_size) {
        batcher.fill_eval(plan.split, chunk, &mut buffers.pixels, &mut buffers.labels)?;
        let (x, y) = buffers.tensors(shape, model, device)?;
        let logits = model.forward_eval(&x)?.detach();
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        // The batch mean times its size, so that a smaller last batch
        // weighs by its examples, not as a whole batch.
        loss_sum += f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?) * chunk.len() as f64;
        correct += crate::model::count_correct(&logits, &y)?;
    }
    let n = plan.indices.len().max(1) as f64;
    Ok((loss_sum / n, correct as f64 / n))
}

/// The outcome of a run stopped by its observer in `epoch`.
fn interrupted(
    model: &Model,
    history: Vec<EpochMetrics>,
    epoch: usize,
    run_start: Instant,
) -> Result<TrainOutcome> {
    Ok(TrainOutcome {
        status: RunStatus::Interrupted { epoch },
        epochs: history,
        act_values: model.act_values()?,
        wall_s: run_start.elapsed().as_secs_f64(),
    })
}

fn diverged(
    model: &Model,
    history: Vec<EpochMetrics>,
    epoch: usize,
    batch: Option<usize>,
    run_start: Instant,
) -> TrainOutcome {
    // The parameters may already be NaN; report what there is, and nothing
    // if even that fails, rather than turn a divergence into an error.
    let act_values = model.act_values().unwrap_or_default();
    TrainOutcome {
        status: RunStatus::Diverged { epoch, batch },
        epochs: history,
        act_values,
        wall_s: run_start.elapsed().as_secs_f64(),
    }
}

fn check_fit(model: &Model, data: &Dataset) -> Result<()> {
    use acbench_dsl::ir::Shape;
    let net = model.network();
    let (c, h, w) = data.shape;
    if net.input != (Shape::Image { c, h, w }) {
        return Err(Error::DataMismatch(format!(
            "network `{}` takes {} inputs, dataset `{}` has {c}x{h}x{w} images",
            net.name, net.input, data.name
        )));
    }
    if net.output != Shape::Flat(data.classes) {
        return Err(Error::DataMismatch(format!(
            "network `{}` outputs {}, dataset `{}` has {} classes",
            net.name, net.output, data.name, data.classes
        )));
    }
    if data.train.is_empty() {
        return Err(Error::DataMismatch(format!(
            "dataset `{}` has an empty training split",
            data.name
        )));
    }
    if data.test.is_empty() {
        return Err(Error::DataMismatch(format!(
            "dataset `{}` has an empty test split",
            data.name
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
