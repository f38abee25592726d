//! The detection task of the training loop: batches of images with their
//! boxes, the plugin's targets and loss, and the test split scored after
//! every epoch.

use acbench_data::Batcher;
use acbench_data::detection::{DetSplit, DetectionSet, ImageInfo};
use acbench_detect::{BBox, Detection, GroundTruth};
use acbench_dsl::ir::Shape;
use acbench_plugin_api::detector::abi::{FLAG_CROWD, FLAG_DIFFICULT, Grid, HeadLayout};
use candle_core::{Device, Tensor};
use rand_chacha::ChaCha8Rng;

use super::{DetectionMetrics, DetectorRun};
use crate::model::{DenseLoss, Model, Objective};
use crate::plugin::detector::{Decoded, TruthBatch};
use crate::train::{Scores, StepOutcome, Task, TrainConfig, Trainer, check_input};
use crate::{Error, Result};

/// Training a detector on a [`DetectionSet`].
pub(super) struct Detect<'d> {
    data: &'d DetectionSet,
    run: &'d DetectorRun,
    layout: HeadLayout,
    /// The head's rows and columns.
    map: (usize, usize),
    batcher: Batcher,
    pixels: Vec<f32>,
    truth: TruthBatch,
    targets: Vec<f32>,
    eval_batch: usize,
    ground_truth: GroundTruth,
    device: Device,
}

impl<'d> Detect<'d> {
    /// Checks that `data` and the detector fit `model` and prepares the
    /// batches and the test split's ground truth.
    pub(super) fn new(
        model: &Model,
        data: &'d DetectionSet,
        run: &'d DetectorRun,
        cfg: &TrainConfig,
        device: &Device,
    ) -> Result<Self> {
        check_input(model, &data.name, data.shape)?;
        let layout = run.layout()?;
        let map = head_map(model, layout)?;
        if !cfg.augment.is_identity() {
            return Err(Error::Config(
                "augmentation is not supported for detectors (it would move the boxes); \
                 remove `augment`"
                    .into(),
            ));
        }
        for (split, what) in [(&data.train, "training"), (&data.test, "test")] {
            if split.is_empty() {
                return Err(Error::DataMismatch(format!(
                    "dataset `{}` has an empty {what} split",
                    data.name
                )));
            }
        }
        let norm = cfg
            .normalization
            .resolve_images(&data.train.images, data.shape)?;
        let ground_truth = data
            .test
            .ground_truth(&data.class_names)
            .map_err(|e| Error::DataMismatch(format!("dataset `{}`: {e}", data.name)))?;
        Ok(Self {
            data,
            run,
            layout,
            map,
            batcher: Batcher::new(data.shape, norm, cfg.augment)?,
            pixels: Vec::new(),
            truth: TruthBatch::new(),
            targets: Vec::new(),
            eval_batch: cfg.eval_batch_size,
            ground_truth,
            device: device.clone(),
        })
    }

    fn grid(&self, batch: usize) -> Grid {
        Grid {
            batch,
            height: self.map.0,
            width: self.map.1,
            image_height: self.data.shape.1,
            image_width: self.data.shape.2,
        }
    }

    /// Fills the pixels, the ground truth and the targets of `indices` of
    /// `split`; returns the input tensor.
    fn fill(
        &mut self,
        split: &DetSplit,
        indices: &[usize],
        rng: Option<&mut ChaCha8Rng>,
        model: &Model,
    ) -> Result<Tensor> {
        self.batcher
            .fill_pixels(&split.images, indices, rng, &mut self.pixels)?;
        self.truth.clear();
        for &i in indices {
            for o in &split.objects[i] {
                let flags = if o.crowd { FLAG_CROWD } else { 0 }
                    | if o.difficult { FLAG_DIFFICULT } else { 0 };
                self.truth.push_box(o.bbox, o.class, flags);
            }
            self.truth.end_image();
        }
        let grid = self.grid(indices.len());
        self.run.detector.assign(
            &self.run.config,
            self.layout,
            grid,
            &self.truth,
            &mut self.targets,
        )?;
        let (c, h, w) = self.data.shape;
        Ok(
            Tensor::from_slice(&self.pixels, (indices.len(), c, h, w), &self.device)?
                .to_dtype(model.dtype())?,
        )
    }

    /// Clipped, suppressed detections of one test image in the original
    /// image's coordinates.
    fn detections(
        &self,
        index: usize,
        decoded: Vec<Decoded>,
        out: &mut Vec<Detection>,
    ) -> Result<()> {
        let info = &self.data.test.info[index];
        let [lo_x, lo_y, hi_x, hi_y] = photo_extent(info, self.data.shape);
        let mut boxes = Vec::with_capacity(decoded.len());
        let mut scores = Vec::with_capacity(decoded.len());
        let mut classes = Vec::with_capacity(decoded.len());
        for d in &decoded {
            let [x, y, bw, bh] = d.bbox;
            // Clipped to the photo (the stored image less its padding), as
            // detectors' post-processing clips to the image, then mapped
            // back to the photo's own pixels.
            let (x0, y0) = (x.clamp(lo_x, hi_x), y.clamp(lo_y, hi_y));
            let (x1, y1) = ((x + bw).clamp(lo_x, hi_x), (y + bh).clamp(lo_y, hi_y));
            let [ox, oy, ow, oh] = info.to_original([x0, y0, x1 - x0, y1 - y0]);
            boxes.push(BBox::new(ox, oy, ow, oh));
            scores.push(f64::from(d.score));
            classes.push(i64::from(d.class));
        }
        let keep = acbench_detect::nms_per_class(&boxes, &scores, &classes, self.run.nms_iou)
            .map_err(|e| Error::Internal(format!("non-maximum suppression: {e}")))?;
        for &k in keep.iter().take(self.run.max_detections) {
            out.push(Detection {
                image_id: info.id,
                category_id: classes[k] + 1,
                bbox: boxes[k],
                score: scores[k],
            });
        }
        Ok(())
    }
}

impl Task for Detect<'_> {
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
        let data = self.data;
        let x = self.fill(&data.train, indices, Some(augment_rng), trainer.model())?;
        let mut loss = PluginLoss {
            run: self.run,
            layout: self.layout,
            grid: self.grid(indices.len()),
            targets: &self.targets,
        };
        trainer.step_on(&x, Objective::Dense(&mut loss), lr)
    }

    fn diagnose(&mut self, model: &Model) -> Result<Option<String>> {
        // The pixels are still those of the batch whose loss was not finite.
        let (c, h, w) = self.data.shape;
        let n = self.pixels.len() / (c * h * w).max(1);
        if n == 0 {
            return Ok(None);
        }
        let x = Tensor::from_slice(&self.pixels, (n, c, h, w), &self.device)?
            .to_dtype(model.dtype())?;
        if let Some(cause) = model.diagnose_non_finite(&x)? {
            return Ok(Some(cause));
        }
        let head = model.forward_eval(&x)?.flatten_all()?.to_vec1::<f32>()?;
        if head.iter().all(|v| v.is_finite()) {
            return Ok(Some(format!(
                "detector `{}` from plugin {}: its loss is not finite on a finite head output",
                self.run.detector.name(),
                self.run.detector.plugin().display()
            )));
        }
        Ok(None)
    }

    fn evaluate(&mut self, model: &Model) -> Result<Scores> {
        let n = self.data.test.len();
        let indices: Vec<usize> = (0..n).collect();
        let mut loss_sum = 0f64;
        let mut detections = Vec::new();
        for chunk in indices.chunks(self.eval_batch) {
            let data = self.data;
            let x = self.fill(&data.test, chunk, None, model)?;
            let head = model.forward_eval(&x)?.flatten_all()?.to_vec1::<f32>()?;
            let grid = self.grid(chunk.len());
            let terms = self.run.detector.loss(
                &self.run.config,
                self.layout,
                grid,
                &head,
                &self.targets,
                None,
            )?;
            let loss: f64 = terms.iter().map(|&t| f64::from(t)).sum();
            // The batch's loss weighs by its images, as a classifier's.
            loss_sum += loss * chunk.len() as f64;
            let decoded = self.run.detector.decode(
                &self.run.config,
                self.layout,
                grid,
                &head,
                self.run.score_threshold,
                self.run.candidates,
            )?;
            for (&i, boxes) in chunk.iter().zip(decoded) {
                self.detections(i, boxes, &mut detections)?;
            }
        }
        let metrics = DetectionMetrics::evaluate(&self.ground_truth, &detections)?;
        Ok(Scores {
            test_loss: loss_sum / n.max(1) as f64,
            test_acc: metrics.coco("ap50").unwrap_or(0.0),
            detection: Some(metrics),
        })
    }
}

/// The detector's loss of one training batch, as the model's dense
/// objective.
struct PluginLoss<'a> {
    run: &'a DetectorRun,
    layout: HeadLayout,
    grid: Grid,
    targets: &'a [f32],
}

impl DenseLoss for PluginLoss<'_> {
    fn loss(&mut self, output: &[f32], _dims: &[usize], grad: &mut [f32]) -> Result<f32> {
        let terms = self.run.detector.loss(
            &self.run.config,
            self.layout,
            self.grid,
            output,
            self.targets,
            Some(grad),
        )?;
        Ok(terms.iter().sum())
    }
}

/// Where the photo lies in its stored image, `[x0, y0, x1, y1]` in stored
/// pixels: all of it for a generated set, less the padding for a
/// letterboxed photo.
pub(super) fn photo_extent(info: &ImageInfo, (_, h, w): (usize, usize, usize)) -> [f32; 4] {
    let x1 = (info.pad_x + info.width as f64 * info.scale).min(w as f64);
    let y1 = (info.pad_y + info.height as f64 * info.scale).min(h as f64);
    [info.pad_x as f32, info.pad_y as f32, x1 as f32, y1 as f32]
}

/// The head's rows and columns, checking that the network ends in one
/// tensor of the detector's channels per location.
pub(super) fn head_map(model: &Model, layout: HeadLayout) -> Result<(usize, usize)> {
    let net = model.network();
    match net.output {
        Shape::Image { c, h, w } if c == layout.channels => Ok((h, w)),
        ref other => Err(Error::DataMismatch(format!(
            "network `{}` outputs {other}; the detector needs a map of {} channels per location",
            net.name, layout.channels
        ))),
    }
}
