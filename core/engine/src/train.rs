//! The training loop: seeded shuffling, batching, forward and backward
//! passes, optimiser steps on the scheduled learning rate, evaluation on the
//! whole test split after every epoch, and a divergence guard.
//!
//! Epochs and batches are counted from 0 (epoch 0 is the first).

use std::time::Instant;

use acbench_data::{Augment, Dataset, Normalization};
use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{CheckpointStore, Resume, RngPositions, Snapshot};
use crate::detection::DetectionMetrics;
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
        self.resolve_images(&data.train.images, data.shape)
    }

    /// The data crate's normalisation for training images of `shape`
    /// stored one after another.
    pub fn resolve_images(
        self,
        images: &[u8],
        shape: (usize, usize, usize),
    ) -> Result<Normalization> {
        Ok(match self {
            Self::PerImage => Normalization::PerImage,
            Self::PerChannel => {
                let (mean, std) = acbench_data::image_stats(images, shape)?;
                Normalization::PerChannel { mean, std }
            }
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
    /// (with dropout and augmentation active); 0 for a detector, which
    /// does not classify images.
    pub train_acc: f64,
    /// Mean loss per example over the whole test split.
    pub test_loss: f64,
    /// Fraction of the whole test split classified correctly; for a
    /// detector, COCO's AP at IoU 0.5 on the test split (its primary score,
    /// so that grids and rankings work for both).
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
    /// A detector's scores on the test split (COCO's twelve numbers, VOC
    /// APs, the precision-recall curve); `None` for a classifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection: Option<DetectionMetrics>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
        /// What made the NaN, when a diagnosis of the batch found it: an
        /// activation that turned finite inputs into NaN, or a detector
        /// plugin whose loss was not finite on a finite head
        /// ([`crate::model::Model::diagnose_non_finite`]).
        cause: Option<String>,
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
    let mut task = Classify::new(model, data, cfg, device)?;
    train_from(model, &mut task, cfg, obs, None, None)
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
    let mut task = Classify::new(model, data, cfg, device)?;
    train_from(model, &mut task, cfg, obs, Some(store), resume)
}

/// What differs between training a classifier and a detector: how a batch
/// of the training split becomes an optimiser step, and how the test split
/// is scored. [`train_from`] owns everything else (the epochs, shuffling,
/// checkpoints, resuming, stopping, divergence).
pub(crate) trait Task {
    /// Examples in the training split.
    fn train_len(&self) -> usize;

    /// One optimiser step on the training examples `indices`.
    fn step(
        &mut self,
        trainer: &mut Trainer<'_>,
        indices: &[usize],
        augment_rng: &mut ChaCha8Rng,
        lr: f64,
    ) -> Result<Option<StepOutcome>>;

    /// Scores the model on the whole test split.
    fn evaluate(&mut self, model: &Model) -> Result<Scores>;

    /// After the last [`Task::step`] gave a non-finite loss: what made it,
    /// from the batch that step used, when that can be told.
    fn diagnose(&mut self, model: &Model) -> Result<Option<String>> {
        let _ = model;
        Ok(None)
    }
}

/// What [`Task::evaluate`] measured on the test split.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scores {
    pub test_loss: f64,
    pub test_acc: f64,
    pub detection: Option<DetectionMetrics>,
}

/// The training loop over any [`Task`].
pub(crate) fn train_from(
    model: &mut Model,
    task: &mut dyn Task,
    cfg: &TrainConfig,
    obs: &mut dyn Observer,
    store: Option<&CheckpointStore>,
    resume: Option<Resume>,
) -> Result<TrainOutcome> {
    cfg.validate()?;
    let run_start = Instant::now();
    let mut trainer = Trainer::new(model, cfg)?;
    // One stream per purpose for the whole run (see `rng`), so that e.g.
    // turning on augmentation leaves the shuffling order unchanged.
    let mut shuffle_rng = cfg.seed.stream(Stream::Shuffle);
    let mut augment_rng = cfg.seed.stream(Stream::Augment);

    let n_train = task.train_len();
    let batches = n_train.div_ceil(cfg.batch_size);
    let window = cfg.loss_window(batches);
    let mut order: Vec<usize> = (0..n_train).collect();
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
            let lr = cfg.schedule.lr(epoch, batch, batches, cfg.epochs);
            let Some(step) = task.step(&mut trainer, chunk, &mut augment_rng, lr)? else {
                // A diagnosis that fails must not turn a divergence into
                // an error: the run diverged either way.
                let cause = task.diagnose(trainer.model()).unwrap_or(None);
                return Ok(diverged(
                    trainer.model(),
                    history,
                    (epoch, Some(batch), cause),
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
        let Scores {
            test_loss,
            test_acc,
            detection,
        } = task.evaluate(trainer.model())?;
        if !test_loss.is_finite() {
            return Ok(diverged(
                trainer.model(),
                history,
                (epoch, None, None),
                run_start,
            ));
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
            detection,
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
    (epoch, batch, cause): (usize, Option<usize>, Option<String>),
    run_start: Instant,
) -> TrainOutcome {
    // The parameters may already be NaN; report what there is, and nothing
    // if even that fails, rather than turn a divergence into an error.
    let act_values = model.act_values().unwrap_or_default();
    TrainOutcome {
        status: RunStatus::Diverged {
            epoch,
            batch,
            cause,
        },
        epochs: history,
        act_values,
        wall_s: run_start.elapsed().as_secs_f64(),
    }
}

mod classify;
#[cfg(test)]
mod tests;

use classify::Classify;
pub(crate) use classify::check_input;
