//! Training and scoring detectors: a network whose output is a dense head
//! (`[N, channels, H, W]`), a detector plugin that turns it into a loss and
//! boxes ([`crate::plugin::detector`]), and the host's clipping,
//! non-maximum suppression and evaluation.
//!
//! - `task`: the training loop's detection task (batches with boxes, the
//!   plugin's targets and loss, the test split scored after every epoch);
//! - `metrics`: [`DetectionMetrics`], what an evaluation measured.
//!
//! A detection run goes: [`DetectorRun::new`] (the detector with its
//! settings) → build the model → [`init_head`] (the detector's initial
//! bias, before any checkpoint is loaded) → [`train_detector`].

use acbench_data::detection::DetectionSet;
use acbench_plugin_api::detector::abi::HeadLayout;
use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::checkpoint::{CheckpointStore, Resume};
use crate::model::Model;
use crate::plugin::detector::{Detector, DetectorConfig};
use crate::train::{Observer, TrainConfig, TrainOutcome, train_from};

mod metrics;
mod task;
#[cfg(test)]
mod tests;

pub use metrics::DetectionMetrics;

/// How a detection run turns head outputs into scored boxes: what a suite
/// says besides the detector's own settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostProcess {
    /// IoU above which a box suppresses a lower-scored one of its class.
    #[serde(default = "default_nms_iou")]
    pub nms_iou: f64,
    /// Boxes scoring below this are dropped before suppression.
    #[serde(default = "default_score_threshold")]
    pub score_threshold: f32,
    /// Candidates per image the detector decodes (the best by score).
    #[serde(default = "default_candidates")]
    pub candidates: usize,
    /// Boxes per image kept after suppression (COCO scores 100).
    #[serde(default = "default_max_detections")]
    pub max_detections: usize,
}

fn default_nms_iou() -> f64 {
    0.6
}
fn default_score_threshold() -> f32 {
    0.05
}
fn default_candidates() -> usize {
    1000
}
fn default_max_detections() -> usize {
    100
}

impl Default for PostProcess {
    fn default() -> Self {
        Self {
            nms_iou: default_nms_iou(),
            score_threshold: default_score_threshold(),
            candidates: default_candidates(),
            max_detections: default_max_detections(),
        }
    }
}

impl PostProcess {
    /// Checks every value.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(crate::Error::Config(m));
        if !(0.0..=1.0).contains(&self.nms_iou) {
            return bad(format!("nms_iou must be in [0, 1], got {}", self.nms_iou));
        }
        if !self.score_threshold.is_finite() {
            return bad(format!(
                "score_threshold must be finite, got {}",
                self.score_threshold
            ));
        }
        if self.candidates == 0 || self.max_detections == 0 {
            return bad("candidates and max_detections must be at least 1".into());
        }
        Ok(())
    }
}

/// A detector with its settings resolved for a run, and the host's
/// post-processing.
#[derive(Debug, Clone)]
pub struct DetectorRun {
    /// The plugin's detector.
    pub detector: Detector,
    /// Its settings and the number of classes.
    pub config: DetectorConfig,
    /// IoU of non-maximum suppression.
    pub nms_iou: f64,
    /// Minimum score of a decoded box.
    pub score_threshold: f32,
    /// Candidates decoded per image.
    pub candidates: usize,
    /// Boxes kept per image.
    pub max_detections: usize,
}

impl DetectorRun {
    /// `detector` with `config` and `post`, checked.
    pub fn new(detector: Detector, config: DetectorConfig, post: &PostProcess) -> Result<Self> {
        post.validate()?;
        let run = Self {
            detector,
            config,
            nms_iou: post.nms_iou,
            score_threshold: post.score_threshold,
            candidates: post.candidates,
            max_detections: post.max_detections,
        };
        run.layout()?;
        Ok(run)
    }

    /// The detector's head layout for this run.
    pub fn layout(&self) -> Result<HeadLayout> {
        Ok(self.detector.layout(&self.config)?)
    }
}

/// Checks that `model` ends in the detector's head and sets the head's
/// initial bias as the detector asks (FCOS's prior on the class logits).
/// Call it right after building the model, before loading a checkpoint.
pub fn init_head(model: &mut Model, run: &DetectorRun) -> Result<()> {
    let layout = run.layout()?;
    task::head_map(model, layout)?;
    let bias = run.detector.init_bias(&run.config, layout.channels)?;
    model.set_output_bias(&bias)
}

/// Trains the detector `model` on `data.train`, scoring it on the whole of
/// `data.test` after every epoch ([`DetectionMetrics`] in each epoch's
/// metrics; `test_acc` is COCO's AP50). With `checkpoints` (a store and
/// what to resume from), a checkpoint after every epoch, as
/// [`crate::train::train_with_checkpoints`].
pub fn train_detector(
    model: &mut Model,
    data: &DetectionSet,
    run: &DetectorRun,
    cfg: &TrainConfig,
    device: &Device,
    obs: &mut dyn Observer,
    checkpoints: Option<(&CheckpointStore, Option<Resume>)>,
) -> Result<TrainOutcome> {
    let mut task = task::Detect::new(model, data, run, cfg, device)?;
    let (store, resume) = checkpoints.map_or((None, None), |(s, r)| (Some(s), r));
    train_from(model, &mut task, cfg, obs, store, resume)
}
