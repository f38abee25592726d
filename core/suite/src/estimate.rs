//! What a suite will cost on this machine before it runs: wall time and
//! disk.
//!
//! Time comes from timing a few training steps ([`Trainer::step`], the
//! step every run takes) and evaluation batches of each distinct network,
//! on random inputs of the dataset's shape, with the suite's batch sizes and
//! the first activation the suite binds to that network. Timings are cached
//! (keyed by everything that changes them: network contents and arguments,
//! activations, batch sizes, device, threads, acbench version), so a second
//! `--dry-run` is instant. A run's estimate is `epochs x (training batches
//! x step time + evaluation batches x evaluation time)`; runs the ledger
//! already ended cost nothing.
//!
//! Disk: the ledger grows by one row per epoch, activation-parameter value
//! and weight layer; a checkpoint holds every parameter, its optimiser
//! state, the running statistics and the example order. By default one
//! run's checkpoint exists at a time (two tensor files while one is
//! replaced); with `--keep-checkpoints` every run keeps its last one.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use acbench_dsl::ir::Shape;
use acbench_engine::activation::Registry;
use acbench_engine::model::{DenseLoss, Model, Objective};
use acbench_engine::params::ParamKind;
use acbench_engine::rng::{Seed, Stream};
use acbench_engine::train::Trainer;
use candle_core::{Device, Tensor};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::runner::{RunFailure, build_compiled, compile_network};
use crate::spec::RunSpec;

/// Rough bytes of one ledger row (SQLite page overhead included).
const LEDGER_ROW_BYTES: u64 = 64;
/// Rough bytes of a run's spec, manifest and labels in the ledger.
const LEDGER_RUN_BYTES: u64 = 8 * 1024;

/// Seconds per batch of one network, as measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// One training step (forward, backward, update) of a full batch.
    pub train_batch_s: f64,
    /// One evaluation batch.
    pub eval_batch_s: f64,
}

/// The estimate for the runs of one network.
#[derive(Debug, Clone)]
pub struct ModelEstimate {
    /// The network's label.
    pub model: String,
    /// Activation the timing used.
    pub activation: String,
    /// Runs of this network the ledger has not ended.
    pub runs_left: usize,
    /// All runs of this network in the suite.
    pub runs: usize,
    /// Measured (or cached) per-batch times.
    pub calibration: Calibration,
    /// Whether the timing came from the cache.
    pub cached: bool,
    /// Seconds for all the runs left, `None` when the dataset size is unknown.
    pub seconds_left: Option<f64>,
    /// Bytes of one checkpoint of the largest run of this network.
    pub checkpoint_bytes: u64,
    /// Memory the hungriest run of this network needs to train (its
    /// parameters, gradients, optimiser state and one batch's activations:
    /// [`acbench_engine::memory::estimate`], a lower bound).
    pub memory_bytes: u64,
}

/// The whole suite's estimate.
#[derive(Debug, Clone)]
pub struct Estimate {
    /// Per network, in the suite's order.
    pub models: Vec<ModelEstimate>,
    /// Seconds for every run left (runs on datasets of unknown size count 0).
    pub seconds_left: f64,
    /// Bytes the ledger will take when every run has ended.
    pub ledger_bytes: u64,
    /// Most bytes the checkpoints take at one time (default: only the
    /// running run's, two tensor files while it is replaced).
    pub checkpoint_peak_bytes: u64,
    /// Bytes with `--keep-checkpoints` (every run's last checkpoint).
    pub checkpoint_kept_bytes: u64,
}

/// Why an estimate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EstimateError {
    /// A network of the suite could not be built or timed.
    #[error("timing {model}")]
    Calibrate {
        /// The network's label.
        model: String,
        /// What failed.
        #[source]
        source: Box<RunFailure>,
    },
}

/// How to calibrate.
pub struct EstimateOptions<'a> {
    /// Activations.
    pub registry: &'a Registry,
    /// Device the suite would train on.
    pub device: Device,
    /// Timed training steps per network (after one untimed warm-up step).
    pub steps: usize,
    /// Where timings are cached (`None`: no cache).
    pub cache: Option<PathBuf>,
    /// Time again even when the cache has a timing.
    pub recalibrate: bool,
}

/// The default cache file: `calibration.json` in acbench's user cache folder.
pub fn default_cache() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("acbench").join("calibration.json"))
}

/// Estimates `runs`, of which those whose keys are in `ended` are already
/// done. `progress` is told before each network is timed.
pub fn estimate(
    runs: &[RunSpec],
    ended: &HashSet<String>,
    opts: &EstimateOptions<'_>,
    progress: &mut dyn FnMut(&str),
) -> Result<Estimate, EstimateError> {
    let mut cache = opts.cache.as_deref().map(Cache::read).unwrap_or_default();
    let mut groups: Vec<(String, Vec<&RunSpec>)> = Vec::new();
    for run in runs {
        let id = network_id(run);
        match groups.iter_mut().find(|(g, _)| *g == id) {
            Some((_, members)) => members.push(run),
            None => groups.push((id, vec![run])),
        }
    }
    let mut models = Vec::new();
    let (mut seconds_left, mut ledger_bytes) = (0.0, 0u64);
    let (mut checkpoint_peak_bytes, mut checkpoint_kept_bytes) = (0u64, 0u64);
    for (_, members) in &groups {
        let first = members[0];
        let fail = |source: RunFailure| EstimateError::Calibrate {
            model: first.model.label.clone(),
            source: Box::new(source),
        };
        let net = compile_network(first).map_err(fail)?;
        let memory_bytes = members
            .iter()
            .map(|r| {
                acbench_engine::memory::estimate(&net, r.train.batch_size, &r.train.optimizer)
                    .total()
            })
            .max()
            .unwrap_or(0);
        let mut model = build_compiled(&net, first, opts.registry, &opts.device).map_err(fail)?;
        let sizes = dataset_sizes(first);
        let cache_key = calibration_key(first, &opts.device);
        let (calibration, cached) = match cache.get(&cache_key) {
            Some(c) if !opts.recalibrate => (c, true),
            _ => {
                progress(&format!(
                    "timing {} with {} ({} training and 2 evaluation batches)",
                    first.model.label,
                    first.activation.label,
                    opts.steps + 1
                ));
                let c =
                    calibrate(&mut model, first, opts).map_err(|e| fail(RunFailure::Engine(e)))?;
                cache.insert(cache_key, c);
                (c, false)
            }
        };
        let act_values: usize = model
            .act_values()
            .map_err(|e| fail(RunFailure::Engine(e)))?
            .iter()
            .flat_map(|slot| slot.params.iter().map(|(_, v)| v.len()))
            .sum();
        let weight_layers = model
            .params()
            .iter()
            .filter(|p| p.kind == ParamKind::Weight)
            .count();
        let mut left = None::<f64>;
        let mut largest_checkpoint = 0u64;
        let mut runs_left = 0;
        for run in members {
            let train_examples = sizes.map_or(0, |(t, _)| t);
            let bytes = acbench_engine::checkpoint::estimated_bytes(
                &model,
                run.train.optimizer.state_buffers(),
                train_examples,
            );
            largest_checkpoint = largest_checkpoint.max(bytes);
            checkpoint_kept_bytes += bytes;
            let epochs = run.train.epochs as u64;
            ledger_bytes += LEDGER_RUN_BYTES
                + epochs * LEDGER_ROW_BYTES * (1 + act_values + weight_layers) as u64;
            if ended.contains(&run.key()) {
                continue;
            }
            runs_left += 1;
            if let Some((n_train, n_test)) = sizes {
                let per_epoch = n_train.div_ceil(run.train.batch_size) as f64
                    * calibration.train_batch_s
                    + n_test.div_ceil(run.train.eval_batch_size) as f64 * calibration.eval_batch_s;
                *left.get_or_insert(0.0) += per_epoch * run.train.epochs as f64;
            }
        }
        checkpoint_peak_bytes = checkpoint_peak_bytes.max(2 * largest_checkpoint);
        seconds_left += left.unwrap_or(0.0);
        models.push(ModelEstimate {
            model: first.model.label.clone(),
            activation: first.activation.label.clone(),
            runs_left,
            runs: members.len(),
            calibration,
            cached,
            seconds_left: if sizes.is_some() {
                Some(left.unwrap_or(0.0))
            } else {
                None
            },
            checkpoint_bytes: largest_checkpoint,
            memory_bytes,
        });
    }
    if let Some(path) = &opts.cache {
        // A cache that cannot be written only costs the next dry run time.
        let _ = cache.write(path);
    }
    Ok(Estimate {
        models,
        seconds_left,
        ledger_bytes,
        checkpoint_peak_bytes,
        checkpoint_kept_bytes,
    })
}

/// What makes runs share a timing: the network and how it is fed.
fn network_id(run: &RunSpec) -> String {
    format!(
        "{}|{:?}|{:?}|{}|{}|{:?}",
        run.model.sha256,
        run.model.network,
        run.model.args,
        run.train.batch_size,
        run.train.eval_batch_size,
        run.dataset.image_size
    )
}

/// The cache key of a timing: the network, the activation it was timed
/// with, and what else changes the speed.
fn calibration_key(run: &RunSpec, device: &Device) -> String {
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_default();
    let text = format!(
        "{}|{:?}|{:?}|{}|{}|{:?}|{:?}|{:?}|{threads}|{}",
        run.model.sha256,
        run.model.network,
        run.model.args,
        run.train.batch_size,
        run.train.eval_batch_size,
        run.activation.bindings,
        run.plugins.iter().map(|p| &p.sha256).collect::<Vec<_>>(),
        device.location(),
        env!("CARGO_PKG_VERSION"),
    );
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// (training, test) examples per epoch, `None` when unknown.
fn dataset_sizes(run: &RunSpec) -> Option<(usize, usize)> {
    if let Some((train, test)) = acbench_data::detection::split_sizes(&run.dataset.name) {
        // A generated set's limits are its sizes; a read one's cap them.
        let generated = acbench_data::detection::is_generated(&run.dataset.name);
        let size = |limit: Option<usize>, n: usize| match limit {
            Some(l) if generated => l,
            Some(l) => l.min(n),
            None => n,
        };
        return Some((
            size(run.dataset.limit_train, train),
            size(run.dataset.limit_test, test),
        ));
    }
    let (train, test) = acbench_data::split_sizes(&run.dataset.name)?;
    Some((
        run.dataset.limit_train.map_or(train, |l| l.min(train)),
        run.dataset.limit_test.map_or(test, |l| l.min(test)),
    ))
}

/// Times `opts.steps` training steps (after a warm-up step) and two
/// evaluation batches (after a warm-up batch) on random inputs.
fn calibrate(
    model: &mut Model,
    run: &RunSpec,
    opts: &EstimateOptions<'_>,
) -> Result<Calibration, acbench_engine::Error> {
    let per_example: Vec<usize> = match model.network().input {
        Shape::Image { c, h, w } => vec![c, h, w],
        Shape::Flat(n) => vec![n],
    };
    // A detector's head is timed with a stand-in dense loss: the forward
    // and backward passes cost the same whatever the loss; the plugin's
    // own loss (small beside them) is left out of the estimate.
    let classes = match model.network().output {
        Shape::Flat(n) => n,
        Shape::Image { .. } if run.model.detector.is_some() => 1,
        Shape::Image { .. } => {
            return Err(acbench_engine::Error::DataMismatch(
                "the network does not end in class scores".into(),
            ));
        }
    };
    // Random inputs from acbench's own generator: timing does not depend on
    // the values, but every draw stays seeded.
    let mut rng = Seed(0).stream(Stream::Augment);
    let mut batch = |n: usize| -> Result<(Tensor, Tensor), acbench_engine::Error> {
        let len: usize = n * per_example.iter().product::<usize>();
        let pixels: Vec<f32> = (0..len).map(|_| rng.random_range(-1.0..1.0)).collect();
        let labels: Vec<u32> = (0..n)
            .map(|_| rng.random_range(0..classes as u32))
            .collect();
        let mut shape = vec![n];
        shape.extend(&per_example);
        let x = Tensor::from_vec(pixels, shape, &opts.device)?;
        let y = Tensor::from_vec(labels, n, &opts.device)?;
        Ok((x, y))
    };
    let (x, y) = batch(run.train.batch_size)?;
    let mut trainer = Trainer::new(model, &run.train)?;
    // A tiny learning rate: the timing must not depend on a divergence.
    let mut times = Vec::with_capacity(opts.steps);
    for i in 0..=opts.steps.max(1) {
        let start = Instant::now();
        if run.model.detector.is_some() {
            trainer.step_on(&x, Objective::Dense(&mut HalfSquare), 1e-6)?;
        } else {
            trainer.step(&x, &y, 1e-6)?;
        }
        if i > 0 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    let (x, _) = batch(run.train.eval_batch_size)?;
    let mut eval = Vec::new();
    for i in 0..3 {
        let start = Instant::now();
        model.forward_eval(&x)?;
        if i > 0 {
            eval.push(start.elapsed().as_secs_f64());
        }
    }
    Ok(Calibration {
        train_batch_s: median(times),
        eval_batch_s: median(eval),
    })
}

/// `sum(x^2) / 2`, whose gradient is the output itself: the stand-in loss
/// a detector's head is timed with.
struct HalfSquare;

impl DenseLoss for HalfSquare {
    fn loss(
        &mut self,
        output: &[f32],
        _dims: &[usize],
        grad: &mut [f32],
    ) -> acbench_engine::Result<f32> {
        grad.copy_from_slice(output);
        Ok(output.iter().map(|v| v * v).sum::<f32>() / 2.0)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Cached timings by key.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Cache {
    timings: BTreeMap<String, Calibration>,
}

impl Cache {
    /// The cache at `path`; empty when missing or unreadable (it is only a
    /// cache).
    fn read(path: &Path) -> Self {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    fn get(&self, key: &str) -> Option<Calibration> {
        self.timings.get(key).copied()
    }

    fn insert(&mut self, key: String, c: Calibration) {
        self.timings.insert(key, c);
    }

    fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(tmp, path)
    }
}

/// `3 d 4 h`, `5 h 12 min`, `42 min`, `35 s`.
pub fn human_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human_duration(35.4), "35 s");
        assert_eq!(human_duration(42.0 * 60.0 + 10.0), "42 min");
        assert_eq!(human_duration(5.0 * 3600.0 + 12.0 * 60.0), "5 h 12 min");
        assert_eq!(
            human_duration(3.0 * 86_400.0 + 4.0 * 3600.0 + 59.0),
            "3 d 4 h"
        );
    }

    #[test]
    fn the_median_of_timings() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![]), 0.0);
    }
}
