//! The classification task: one class per image, softmax cross-entropy,
//! accuracy on the test split.

use acbench_data::{Batcher, Dataset, Split};
use candle_core::{DType, Device, Tensor};
use rand_chacha::ChaCha8Rng;

use super::{Scores, StepOutcome, Task, TrainConfig, Trainer};
use crate::model::Model;
use crate::{Error, Result};

/// Training a classifier on a [`Dataset`].
pub(super) struct Classify<'d> {
    data: &'d Dataset,
    batcher: Batcher,
    buffers: Buffers,
    eval_plan: EvalPlan<'d>,
    device: Device,
}

impl<'d> Classify<'d> {
    /// Checks that `data` fits `model` and prepares the batches.
    pub(super) fn new(
        model: &Model,
        data: &'d Dataset,
        cfg: &TrainConfig,
        device: &Device,
    ) -> Result<Self> {
        check_fit(model, data)?;
        let (c, h, w) = data.shape;
        // Reused across batches: only the tensors candle makes are per batch.
        let largest = cfg.batch_size.max(cfg.eval_batch_size);
        Ok(Self {
            data,
            batcher: Batcher::new(data.shape, cfg.normalization.resolve(data)?, cfg.augment)?,
            buffers: Buffers {
                pixels: Vec::with_capacity(largest * c * h * w),
                labels: Vec::with_capacity(largest),
            },
            eval_plan: EvalPlan {
                split: &data.test,
                indices: (0..data.test.len()).collect(),
                batch_size: cfg.eval_batch_size,
            },
            device: device.clone(),
        })
    }
}

impl Task for Classify<'_> {
    fn train_len(&self) -> usize {
        self.data.train.len()
    }

    fn step(
        &mut self,
        trainer: &mut Trainer<'_>,
        indices: &[usize],
        augment_rng: &mut ChaCha8Rng,
        lr: f64,
    ) -> Result<Option<StepOutcome>> {
        self.batcher.fill(
            &self.data.train,
            indices,
            augment_rng,
            &mut self.buffers.pixels,
            &mut self.buffers.labels,
        )?;
        let (x, y) = self
            .buffers
            .tensors(self.data.shape, trainer.model(), &self.device)?;
        trainer.step(&x, &y, lr)
    }

    fn diagnose(&mut self, model: &Model) -> Result<Option<String>> {
        // The buffers still hold the batch of the step that diverged.
        let (x, _) = self.buffers.tensors(self.data.shape, model, &self.device)?;
        model.diagnose_non_finite(&x)
    }

    fn evaluate(&mut self, model: &Model) -> Result<Scores> {
        let (test_loss, test_acc) = evaluate(
            model,
            &self.eval_plan,
            self.data.shape,
            &mut self.batcher,
            &mut self.buffers,
            &self.device,
        )?;
        Ok(Scores {
            test_loss,
            test_acc,
            detection: None,
        })
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

/// Checks that `model` takes images of `shape` (C, H, W) from the set
/// `name`.
pub(crate) fn check_input(
    model: &Model,
    name: &str,
    (c, h, w): (usize, usize, usize),
) -> Result<()> {
    let net = model.network();
    if net.input != (acbench_dsl::ir::Shape::Image { c, h, w }) {
        return Err(Error::DataMismatch(format!(
            "network `{}` takes {} inputs, dataset `{name}` has {c}x{h}x{w} images",
            net.name, net.input
        )));
    }
    Ok(())
}

fn check_fit(model: &Model, data: &Dataset) -> Result<()> {
    use acbench_dsl::ir::Shape;
    check_input(model, &data.name, data.shape)?;
    let net = model.network();
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
