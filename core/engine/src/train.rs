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
use crate::model::{ActSlotValues, Model};
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
}

/// The result of [`train`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOutcome {
    /// Completed or diverged.
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
        let epoch_start = Instant::now();
        let weights_before = WeightSnapshot::take(trainer.model())?;
        let first_lr = cfg.schedule.lr(epoch, 0, batches, cfg.epochs);
        obs.epoch_start(epoch, cfg.epochs, batches, first_lr);
        order.shuffle(&mut shuffle_rng);
        let mut loss_sum = 0.0f64;
        let mut correct = 0u64;
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
            obs.batch_end(epoch, batch, batches, step.loss);
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
        let step = self.model.train_step(x, y, &mut self.dropout_rng)?;
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
mod tests {
    use super::*;
    use crate::activation::{ActBindings, Registry};
    use crate::checkpoint::Loaded;
    use acbench_data::Split;
    use acbench_dsl::ir::{Conv2d, Network, Node, Op, Padding, Pool2d, PoolKind, Shape, Span};
    use rand::{Rng, SeedableRng};

    const SIDE: usize = 8;

    fn node(path: &str, input: Shape, output: Shape, op: Op) -> Node {
        let span = Span { start: 0, end: 0 };
        Node {
            path: path.into(),
            span,
            input,
            output,
            op,
        }
    }

    /// conv 3x3 (4 channels) -> bn -> act -> maxpool 2 -> flatten -> dropout
    /// -> linear(2), on 1x8x8 inputs: every random stream is used, and there
    /// are running statistics.
    fn tiny_net() -> Network {
        let input = Shape::Image {
            c: 1,
            h: SIDE,
            w: SIDE,
        };
        let fmap = Shape::Image {
            c: 4,
            h: SIDE,
            w: SIDE,
        };
        let pooled = Shape::Image {
            c: 4,
            h: SIDE / 2,
            w: SIDE / 2,
        };
        let flat = Shape::Flat(4 * SIDE * SIDE / 4);
        let conv = Op::Conv2d(Conv2d {
            in_channels: 1,
            out_channels: 4,
            kernel: (3, 3),
            stride: (1, 1),
            padding: Padding {
                top: 1,
                bottom: 1,
                left: 1,
                right: 1,
            },
            dilation: (1, 1),
            groups: 1,
            bias: true,
        });
        let pool = Op::Pool(Pool2d {
            kind: PoolKind::Max,
            kernel: (2, 2),
            stride: (2, 2),
            padding: Padding::default(),
            count_include_pad: false,
        });
        Network {
            name: "tiny".into(),
            args: Vec::new(),
            input,
            output: Shape::Flat(2),
            body: vec![
                node("conv0", input, fmap, conv),
                node(
                    "bn0",
                    fmap,
                    fmap,
                    Op::BatchNorm {
                        channels: 4,
                        eps: 1e-3,
                        momentum: 0.9,
                    },
                ),
                node("act0", fmap, fmap, Op::Act { slot: None }),
                node("pool0", fmap, pooled, pool),
                node("flatten0", pooled, flat, Op::Flatten),
                node("dropout0", flat, flat, Op::Dropout { rate: 0.25 }),
                node(
                    "linear0",
                    flat,
                    Shape::Flat(2),
                    Op::Linear {
                        in_features: flat.numel(),
                        out_features: 2,
                        bias: true,
                    },
                ),
            ],
        }
    }

    fn model(seed: u64) -> Model {
        let registry = Registry::builtin().expect("registry");
        Model::build(
            &tiny_net(),
            &registry,
            &ActBindings::uniform("arelu"),
            &Device::Cpu,
            Seed(seed),
        )
        .expect("model")
    }

    /// Class 0 has a bright left half, class 1 a bright right half, both
    /// under noise: learnable, but not in one step.
    fn split(n: usize, rng: &mut impl Rng) -> Split {
        let mut images = Vec::with_capacity(n * SIDE * SIDE);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let label = (i % 2) as u32;
            for _row in 0..SIDE {
                for col in 0..SIDE {
                    let bright = (col < SIDE / 2) == (label == 0);
                    let base: u8 = if bright { 150 } else { 60 };
                    images.push(base.saturating_add(rng.random_range(0..80)));
                }
            }
            labels.push(label);
        }
        Split { images, labels }
    }

    fn dataset(n_train: usize, n_test: usize) -> Dataset {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
        Dataset {
            name: "halves".into(),
            classes: 2,
            shape: (1, SIDE, SIDE),
            class_names: vec!["left".into(), "right".into()],
            train: split(n_train, &mut rng),
            test: split(n_test, &mut rng),
        }
    }

    fn config(epochs: usize, lr: f64, seed: u64) -> TrainConfig {
        TrainConfig {
            epochs,
            batch_size: 10,
            eval_batch_size: 4,
            optimizer: OptimizerConfig::Sgd,
            schedule: Schedule::Constant { lr },
            weight_decay: 0.0,
            seed: Seed(seed),
            normalization: InputNorm::PerImage,
            augment: Augment {
                crop_padding: 1,
                hflip: false,
            },
        }
    }

    #[derive(Default)]
    struct Recorder {
        starts: Vec<(usize, usize, usize)>,
        batches: Vec<(usize, usize, usize)>,
        ends: usize,
    }

    impl Observer for Recorder {
        fn epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize, _lr: f64) {
            self.starts.push((epoch, epochs, batches));
        }
        fn batch_end(&mut self, epoch: usize, batch: usize, batches: usize, loss: f32) {
            assert!(loss.is_finite());
            self.batches.push((epoch, batch, batches));
        }
        fn epoch_end(&mut self, _metrics: &EpochMetrics) {
            self.ends += 1;
        }
    }

    #[test]
    fn loss_goes_down_and_observer_sees_every_batch() {
        let data = dataset(64, 21);
        let mut rec = Recorder::default();
        let out = train(
            &mut model(1),
            &data,
            &config(6, 0.05, 1),
            &Device::Cpu,
            &mut rec,
        )
        .expect("train");
        assert_eq!(out.status, RunStatus::Completed);
        assert_eq!(out.epochs.len(), 6);
        let (first, last) = (&out.epochs[0], &out.epochs[5]);
        assert!(
            last.train_loss < 0.7 * first.train_loss,
            "train loss {} -> {}",
            first.train_loss,
            last.train_loss
        );
        assert!(last.test_acc >= 0.9, "test accuracy {}", last.test_acc);
        assert!(last.images_per_s > 0.0 && last.wall_s > 0.0);
        // 64 examples in batches of 10: six full batches and a kept partial one.
        assert_eq!(rec.starts[0], (0, 6, 7));
        assert_eq!(rec.batches.len(), 6 * 7);
        assert_eq!(rec.batches[6], (0, 6, 7));
        assert_eq!(rec.ends, 6);
        assert_eq!(out.act_values, last.act_values);
        assert_eq!(out.act_values[0].activation, "arelu");
    }

    fn losses(out: &TrainOutcome) -> Vec<(u64, u64)> {
        out.epochs
            .iter()
            .map(|m| (m.train_loss.to_bits(), m.test_loss.to_bits()))
            .collect()
    }

    #[test]
    fn same_seed_is_bit_identical_and_another_seed_differs() {
        let data = dataset(40, 9);
        let run = |model_seed, train_seed| {
            train(
                &mut model(model_seed),
                &data,
                &config(2, 0.05, train_seed),
                &Device::Cpu,
                &mut NoObserver,
            )
            .expect("train")
        };
        let (a, b) = (run(3, 3), run(3, 3));
        assert_eq!(losses(&a), losses(&b));
        assert_eq!(a.act_values, b.act_values);
        for (x, y) in a.epochs.iter().zip(&b.epochs) {
            assert_eq!(x.act_values, y.act_values);
        }
        // Same initial weights, different shuffling/dropout/augmentation.
        let c = run(3, 4);
        assert_ne!(losses(&a), losses(&c));
        assert_ne!(a.act_values, c.act_values);
        // Different initial weights too.
        assert_ne!(losses(&a), losses(&run(4, 4)));
    }

    #[test]
    fn huge_learning_rate_diverges_without_error() {
        let data = dataset(64, 5);
        let out = train(
            &mut model(2),
            &data,
            &config(5, 1e12, 2),
            &Device::Cpu,
            &mut NoObserver,
        )
        .expect("a divergence is an outcome, not an error");
        let RunStatus::Diverged { epoch, .. } = out.status else {
            panic!("expected divergence, got {:?}", out.status);
        };
        assert_eq!(out.epochs.len(), epoch);
        assert!(epoch < 5);
    }

    #[test]
    fn evaluation_covers_the_whole_test_split() {
        // 23 test examples in eval batches of 4: five full and one of 3.
        let data = dataset(20, 23);
        let mut cfg = config(1, 0.05, 5);
        let small =
            train(&mut model(5), &data, &cfg, &Device::Cpu, &mut NoObserver).expect("train");
        cfg.eval_batch_size = 1000;
        let whole =
            train(&mut model(5), &data, &cfg, &Device::Cpu, &mut NoObserver).expect("train");
        let (s, w) = (&small.epochs[0], &whole.epochs[0]);
        assert_eq!(s.train_loss.to_bits(), w.train_loss.to_bits());
        assert_eq!(s.test_acc, w.test_acc);
        assert!((s.test_acc * 23.0 - (s.test_acc * 23.0).round()).abs() < 1e-9);
        assert!(
            (s.test_loss - w.test_loss).abs() < 1e-5 * w.test_loss.abs().max(1.0),
            "{} vs {}",
            s.test_loss,
            w.test_loss
        );
    }

    #[test]
    fn each_epoch_runs_at_its_scheduled_rate() {
        let data = dataset(10, 3);
        let mut cfg = config(3, 0.05, 6);
        cfg.schedule = Schedule::Step {
            lr: 0.05,
            milestones: vec![1, 2],
            factor: 10.0,
        };
        let out = train(&mut model(6), &data, &cfg, &Device::Cpu, &mut NoObserver).expect("train");
        let lrs: Vec<f64> = out.epochs.iter().map(|m| m.lr).collect();
        assert_eq!(lrs, [0.05, 0.005, 0.0005]);
    }

    #[test]
    fn rejects_data_that_does_not_fit_and_bad_config() {
        let mut data = dataset(8, 3);
        data.classes = 3;
        let err = train(
            &mut model(0),
            &data,
            &config(1, 0.1, 0),
            &Device::Cpu,
            &mut NoObserver,
        );
        assert!(matches!(err, Err(Error::DataMismatch(_))), "{err:?}");
        let data = dataset(8, 3);
        let mut cfg = config(1, 0.1, 0);
        cfg.batch_size = 0;
        let err = train(&mut model(0), &data, &cfg, &Device::Cpu, &mut NoObserver);
        assert!(matches!(err, Err(Error::Config(_))), "{err:?}");
    }

    #[test]
    fn config_deserialises_with_defaults() {
        let cfg: TrainConfig =
            serde_json::from_str(r#"{"epochs": 150, "batch_size": 64, "seed": 7}"#)
                .expect("config");
        assert_eq!(cfg.seed, Seed(7));
        assert_eq!(cfg.optimizer, OptimizerConfig::Sgd);
        assert_eq!(cfg.schedule, Schedule::paper());
        assert_eq!(cfg.normalization, InputNorm::PerImage);
        assert_eq!(cfg.augment, Augment::default());
        assert_eq!(cfg.weight_decay, 0.0);
        let json = serde_json::to_string(&config(2, 0.1, 3)).expect("serialise");
        let back: TrainConfig = serde_json::from_str(&json).expect("round trip");
        assert_eq!(back, config(2, 0.1, 3));
        assert!(
            serde_json::from_str::<TrainConfig>(
                r#"{"epochs": 1, "batch_size": 1, "seed": 0, "lr": 1}"#
            )
            .is_err()
        );
    }

    fn params_bits(model: &Model) -> Vec<(String, Vec<u32>)> {
        let mut out: Vec<(String, Vec<u32>)> = model
            .params()
            .iter()
            .map(|p| (p.name.clone(), p.var.as_tensor().clone()))
            .chain(
                model
                    .buffers()
                    .iter()
                    .map(|(n, v)| (n.clone(), v.as_tensor().clone())),
            )
            .map(|(n, t)| {
                let v: Vec<f32> = t.flatten_all().and_then(|t| t.to_vec1()).expect("values");
                (n, v.into_iter().map(f32::to_bits).collect())
            })
            .collect();
        out.sort();
        out
    }

    /// Copies the run's checkpoint folder when epoch `at` ends: what a kill
    /// during epoch `at` would leave on disk.
    struct CopyAt {
        at: usize,
        from: std::path::PathBuf,
        to: std::path::PathBuf,
    }

    impl Observer for CopyAt {
        fn epoch_end(&mut self, m: &EpochMetrics) {
            if m.epoch == self.at {
                std::fs::create_dir_all(&self.to).expect("dir");
                for e in std::fs::read_dir(&self.from).expect("checkpoint dir") {
                    let e = e.expect("entry");
                    std::fs::copy(e.path(), self.to.join(e.file_name())).expect("copy");
                }
            }
        }
    }

    fn adam_config() -> TrainConfig {
        let mut cfg = config(4, 0.01, 8);
        cfg.optimizer = serde_json::from_str(r#"{"name": "adam"}"#).expect("adam");
        cfg
    }

    #[test]
    fn a_resumed_run_is_bit_identical_to_an_uninterrupted_one() {
        let data = dataset(40, 9);
        let cfg = adam_config();
        let mut whole_model = model(8);
        let whole =
            train(&mut whole_model, &data, &cfg, &Device::Cpu, &mut NoObserver).expect("train");

        let root = tempfile::tempdir().expect("tmp");
        let store = CheckpointStore::new(&root.path().join("a"), "run", false);
        let killed = root.path().join("b").join("run");
        let mut copy = CopyAt {
            at: 2,
            from: store.dir().to_owned(),
            to: killed.clone(),
        };
        train_with_checkpoints(
            &mut model(8),
            &data,
            &cfg,
            &Device::Cpu,
            &mut copy,
            &store,
            None,
        )
        .expect("train");
        // Only the last checkpoint is kept: one tensor file.
        let tensor_files = std::fs::read_dir(&killed)
            .expect("copy")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".safetensors"))
            })
            .count();
        assert_eq!(tensor_files, 1);

        // A fresh process: the model is built from the seed again, then the
        // checkpoint written after epoch 1 is loaded into it.
        let mut resumed_model = model(8);
        let store = CheckpointStore::new(&root.path().join("b"), "run", false);
        let Loaded::Resume(resume) = store.load(&mut resumed_model) else {
            panic!("the checkpoint should load");
        };
        assert_eq!(resume.next_epoch, 2);
        let mut rec = Recorder::default();
        let resumed = train_with_checkpoints(
            &mut resumed_model,
            &data,
            &cfg,
            &Device::Cpu,
            &mut rec,
            &store,
            Some(resume),
        )
        .expect("resume");
        assert_eq!(
            rec.starts.first().map(|s| s.0),
            Some(2),
            "epochs 0-1 were not redone"
        );
        assert_eq!(losses(&whole), losses(&resumed));
        assert_eq!(whole.act_values, resumed.act_values);
        assert_eq!(params_bits(&whole_model), params_bits(&resumed_model));
        for (a, b) in whole.epochs.iter().zip(&resumed.epochs) {
            assert_eq!(a.test_acc.to_bits(), b.test_acc.to_bits());
            assert_eq!(a.weight_increments, b.weight_increments);
        }
        // Finished: the run's checkpoint is gone unless kept.
        store.finish().expect("finish");
        assert!(!store.dir().exists());
    }

    #[test]
    fn foreign_or_damaged_checkpoints_are_refused_and_leave_the_model_alone() {
        let data = dataset(20, 5);
        let mut cfg = adam_config();
        cfg.epochs = 1;
        let root = tempfile::tempdir().expect("tmp");
        let store = CheckpointStore::new(root.path(), "run", true);
        assert!(matches!(store.load(&mut model(3)), Loaded::None));
        train_with_checkpoints(
            &mut model(3),
            &data,
            &cfg,
            &Device::Cpu,
            &mut NoObserver,
            &store,
            None,
        )
        .expect("train");
        let json_path = store.dir().join("checkpoint.json");
        let json = std::fs::read_to_string(&json_path).expect("kept checkpoint");

        let refused = |store: &CheckpointStore, want: &str| {
            let mut fresh = model(3);
            let before = params_bits(&fresh);
            match store.load(&mut fresh) {
                Loaded::Refused(why) => assert!(why.contains(want), "{why}"),
                other => panic!("expected a refusal naming `{want}`, got {other:?}"),
            }
            assert_eq!(before, params_bits(&fresh));
        };
        // Another run's key (another spec hash).
        std::fs::create_dir_all(root.path().join("other")).expect("dir");
        for e in std::fs::read_dir(store.dir()).expect("dir") {
            let e = e.expect("entry");
            std::fs::copy(e.path(), root.path().join("other").join(e.file_name())).expect("copy");
        }
        refused(
            &CheckpointStore::new(root.path(), "other", false),
            "another spec hash",
        );
        // Another format, another acbench version.
        std::fs::write(&json_path, json.replace("\"format\": 1", "\"format\": 99")).expect("w");
        refused(&store, "format 99");
        std::fs::write(
            &json_path,
            json.replace(env!("CARGO_PKG_VERSION"), "0.0.0-old"),
        )
        .expect("w");
        refused(&store, "acbench 0.0.0-old");
        // A damaged tensor file.
        std::fs::write(&json_path, &json).expect("w");
        let tensors = std::fs::read_dir(store.dir())
            .expect("dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .expect("tensor file");
        let mut bytes = std::fs::read(&tensors).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&tensors, bytes).expect("w");
        refused(&store, "SHA-256");
        // A model of another shape never gets half-loaded.
        std::fs::write(&json_path, "{not json").expect("w");
        refused(&store, "not a checkpoint");
    }
}
