//! What a report is made from: one record per training run.
//!
//! The results ledger produces these; reports never read the ledger
//! themselves, so data flows one way (ledger -> reports) and a report can be
//! rendered from any source of runs, such as a JSON file or a test fixture.

use serde::{Deserialize, Serialize};

/// One training run: what was trained, how it ended, and what it measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Network name (`alexnet`, `convnet`).
    pub model: String,
    /// Activation bound to the network's `act` slots (`arelu`).
    pub activation: String,
    /// Optimizer name (`sgd`, `adam`).
    pub optimizer: String,
    /// Dataset name (`cifar10`, `fashion-mnist`).
    pub dataset: String,
    /// Seed of the run; runs that differ only in seed are repeats.
    pub seed: u64,
    /// How the run ended.
    pub status: RunStatus,
    /// Every finished epoch, in order.
    pub epochs: Vec<EpochPoint>,
    /// Activation parameters of every act slot when the run ended.
    #[serde(default)]
    pub final_act_params: Vec<SlotParams>,
    /// Per-layer weight-increment norms, one value per epoch (the paper's Fig. 4).
    #[serde(default)]
    pub weight_increments: Vec<LayerIncrements>,
    /// The training loss per step: `(steps done, mean loss since the
    /// previous point)` (the paper's Fig. 6); empty for runs recorded
    /// before acbench kept it.
    #[serde(default)]
    pub step_losses: Vec<(usize, f64)>,
    /// The detector of a detection run (`fcos`); `None` for a classifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector: Option<String>,
    /// A detection run's scores after its last epoch, `(metric, value)` as
    /// the ledger names them (`coco.ap50`, `voc07.map`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detection: Vec<(String, f64)>,
    /// A detection run's precision at COCO's 101 recall points at IoU 0.5
    /// after its last epoch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pr_curve: Vec<f64>,
}

impl RunResult {
    /// The detection metric `name` after the last epoch (`coco.ap50`).
    pub fn detection_metric(&self, name: &str) -> Option<f64> {
        self.detection
            .iter()
            .find(|(m, _)| m == name)
            .map(|&(_, v)| v)
    }

    /// The run's convergence area: the area under its training-loss curve,
    /// per step where the run recorded one (in loss × epochs, steps scaled
    /// by the run's steps per epoch), else per epoch; `None` unless the run
    /// finished (a diverged run's area would reward stopping early).
    pub fn convergence_area(&self) -> Option<f64> {
        if self.status != RunStatus::Finished {
            return None;
        }
        let area = match (self.step_losses.last(), self.epochs.len()) {
            (Some(&(steps, _)), epochs) if epochs > 0 => {
                let per_epoch = steps as f64 / epochs as f64;
                let points: Vec<(f64, f64)> = self
                    .step_losses
                    .iter()
                    .map(|&(s, l)| (s as f64 / per_epoch, l))
                    .collect();
                crate::stats::area_under(&points)
            }
            _ => {
                let losses: Vec<f64> = self.epochs.iter().map(|e| e.train_loss).collect();
                crate::stats::convergence_area(&losses)
            }
        };
        area.is_finite().then_some(area)
    }

    /// The run's score in tables: the test accuracy after its last epoch,
    /// or `None` when the run did not finish or that value is not finite.
    pub fn final_accuracy(&self) -> Option<f64> {
        if self.status != RunStatus::Finished {
            return None;
        }
        self.epochs
            .last()
            .map(|e| e.test_acc)
            .filter(|a| a.is_finite())
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every epoch ran.
    Finished,
    /// The loss became NaN or infinite (the paper's "—").
    Diverged,
    /// The run stopped with an error.
    Failed,
}

impl std::fmt::Display for RunStatus {
    /// `finished`, `diverged` or `failed`, as the ledger spells them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunStatus::Finished => "finished",
            RunStatus::Diverged => "diverged",
            RunStatus::Failed => "failed",
        })
    }
}

/// Metrics of one finished epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochPoint {
    /// Epoch index, from 0.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Mean loss over the whole test split.
    pub test_loss: f64,
    /// Fraction of the test split classified correctly.
    pub test_acc: f64,
    /// Seconds the epoch took.
    pub wall_s: f64,
}

/// The parameters of one act slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotParams {
    /// Stable node path of the slot (`stage2.basic0.act1`).
    pub path: String,
    /// Activation bound to this slot (slots of one network may differ).
    pub activation: String,
    /// The activation's formula (see `acbench_dsl::formula`), used to draw
    /// its learned shape; `None` when unknown.
    #[serde(default)]
    pub formula: Option<String>,
    /// `(name, values)` in the activation's parameter order: one value for a
    /// per-layer parameter, one per channel for a per-channel one. These
    /// names are the ones the formula uses.
    pub params: Vec<(String, Vec<f64>)>,
}

/// Weight-increment norms of one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerIncrements {
    /// Layer path (`stage1.conv0`).
    pub layer: String,
    /// Norm of the layer's weight change over each epoch, in epoch order.
    pub per_epoch: Vec<f64>,
}
