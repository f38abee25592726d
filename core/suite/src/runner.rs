//! Running resolved specs against the ledger: the one `run(spec)` that
//! suites and sweeps share, and [`Runner::run_all`], which runs a batch of
//! specs and tallies them into a [`Summary`].
//!
//! A spec whose key the ledger already has as finished or diverged is not
//! trained again unless forced (a failed one is retried): re-running a suite after a
//! crash continues where it stopped, and a sweep replays finished runs
//! instantly. Every finished epoch is committed before the next starts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use acbench_data::detection::DetectionSet;
use acbench_data::{Dataset, LoadOptions};
use acbench_dsl::ir::Value;
use acbench_engine::activation::{ActBindings, Registry};
use acbench_engine::checkpoint::{CheckpointStore, Loaded};
use acbench_engine::detection::{self, DetectorRun};
use acbench_engine::model::Model;
use acbench_engine::train::{self, EpochMetrics, Observer, RunStatus as TrainStatus};
use acbench_ledger::{Ledger, LedgerError, RunLabels, RunStatus};
use candle_core::Device;
use serde_json::json;

use crate::output;
use crate::record::epoch_record;
use crate::spec::{DatasetSpec, DetectorSpec, RunSpec};

/// Everything a run needs besides its spec.
pub struct Runner {
    /// Activations (the plugins are part of every spec).
    pub registry: Arc<Registry>,
    /// Device to train on.
    pub device: Device,
    /// Extra place to look for datasets.
    pub data_dir: Option<PathBuf>,
    /// Train again even when the ledger has the run.
    pub rerun: bool,
    /// Keep each run's last checkpoint when it ends (deleted by default).
    pub keep_checkpoints: bool,
    /// No run starts training after this ([`Runner::run_all`]).
    pub deadline: Option<Deadline>,
    /// Set (by a signal handler) to stop: the run in training is abandoned
    /// between two batches and recorded as interrupted, its last
    /// checkpoint kept, and no further run starts.
    pub stop: Option<Arc<AtomicBool>>,
    /// Where runs keep their checkpoints; by default the `checkpoints`
    /// folder beside the ledger. Shards of a suite share the output
    /// folder's, so that any attempt of any shard resumes a run.
    pub checkpoint_root: Option<PathBuf>,
    /// Datasets loaded so far, shared by the runs that use them.
    datasets: HashMap<String, Data>,
}

/// What [`Runner::run`] did with a spec.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The ledger already had it ended; nothing was trained.
    Replayed(RunStatus),
    /// It was trained now and ended so.
    Trained(RunStatus),
}

impl Outcome {
    /// The run's final status either way.
    pub fn status(&self) -> &RunStatus {
        match self {
            Outcome::Replayed(s) | Outcome::Trained(s) => s,
        }
    }
}

/// Progress callbacks of a run: the training observer plus the run's start.
pub trait RunObserver: Observer {
    /// A run starts training (`index` of `total` in the current batch of specs).
    fn run_start(&mut self, spec: &RunSpec, index: usize, total: usize);

    /// Something the user should know that is not an error: a run resumes
    /// from its checkpoint, or a checkpoint could not be used.
    fn notice(&mut self, message: &str) {
        tracing::info!("{message}");
    }
}

/// Progress callbacks of [`Runner::run_all`]: each run's, plus the batch
/// around them.
pub trait BatchObserver: RunObserver {
    /// A batch of `runs` specs starts.
    fn batch_start(&mut self, runs: usize);
    /// A run ended (trained now or replayed); `summary` counts it already.
    fn run_end(&mut self, spec: &RunSpec, outcome: &Outcome, summary: &Summary);
    /// The batch is over, or stopped early.
    fn batch_done(&mut self);
}

/// What the runs of one or more batches did: a suite has one batch, a
/// sweep keeps one summary over all of its batches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Runs trained now.
    pub trained: usize,
    /// Runs the ledger had already ended.
    pub replayed: usize,
    /// Runs that failed (`label: error`), trained now or earlier.
    pub failed: Vec<String>,
    /// Keys of every run asked for, first request first.
    pub keys: Vec<String>,
}

impl Summary {
    /// Runs ended, trained or replayed.
    pub fn finished(&self) -> usize {
        self.trained + self.replayed
    }

    /// The failed runs, one per line under a heading; `None` when none failed.
    pub fn failures(&self) -> Option<String> {
        if self.failed.is_empty() {
            return None;
        }
        let mut text = format!(
            "{} runs failed (kept in the ledger as failed):",
            self.failed.len()
        );
        for f in &self.failed {
            text.push_str("\n  ");
            text.push_str(f);
        }
        Some(text)
    }

    fn asked(&mut self, key: &str) {
        if !self.keys.iter().any(|k| k == key) {
            self.keys.push(key.to_owned());
        }
    }

    fn record(&mut self, spec: &RunSpec, outcome: &Outcome) {
        match outcome {
            Outcome::Replayed(_) => self.replayed += 1,
            Outcome::Trained(_) => self.trained += 1,
        }
        if let RunStatus::Failed { error } = outcome.status() {
            self.failed.push(format!("{}: {error}", spec.label()));
        }
    }
}

/// A wall-clock limit on training: once `seconds` have passed since
/// `start`, [`Runner::run_all`] starts no run that would train (ended runs
/// are still replayed from the ledger).
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    /// When the clock started.
    pub start: Instant,
    /// Seconds allowed.
    pub seconds: f64,
}

impl Deadline {
    fn passed(&self) -> bool {
        self.start.elapsed().as_secs_f64() > self.seconds
    }
}

/// Why [`Runner::run_all`] stopped before its last spec.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The ledger failed: nothing more can be kept.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The [`Runner::deadline`] passed before a run that would train.
    #[error("the wall-clock limit of {seconds} s passed")]
    Deadline {
        /// The limit.
        seconds: f64,
    },
    /// [`Runner::stop`] was set: the run named was recorded as
    /// interrupted (or none was training).
    #[error("stopped by a signal{}", run.as_ref().map(|r| format!(": run {r} is recorded as interrupted and resumes from its last checkpoint")).unwrap_or_default())]
    Interrupted {
        /// The run that was training, as `label (short key)`.
        run: Option<String>,
    },
}

impl Runner {
    /// A runner over `registry` on `device`.
    pub fn new(
        registry: Arc<Registry>,
        device: Device,
        data_dir: Option<PathBuf>,
        rerun: bool,
    ) -> Self {
        Self {
            registry,
            device,
            data_dir,
            rerun,
            keep_checkpoints: false,
            deadline: None,
            stop: None,
            checkpoint_root: None,
            datasets: HashMap::new(),
        }
    }

    /// Runs (or replays) every spec in order, as [`Runner::run`] does, and
    /// counts each into `summary`. Stops at a ledger error, or before a run
    /// that would train once the [`Runner::deadline`] has passed; the runs
    /// ended before are in the ledger either way.
    pub fn run_all(
        &mut self,
        ledger: &mut Ledger,
        specs: &[RunSpec],
        obs: &mut dyn BatchObserver,
        summary: &mut Summary,
    ) -> Result<Vec<Outcome>, BatchError> {
        obs.batch_start(specs.len());
        // Collecting into a `Result` stops at the first error.
        let outcomes = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| self.run_counted(ledger, spec, obs, i, specs.len(), summary))
            .collect();
        obs.batch_done();
        outcomes
    }

    /// [`Runner::run`] for spec `index` of `total`, counted into `summary`.
    fn run_counted(
        &mut self,
        ledger: &mut Ledger,
        spec: &RunSpec,
        obs: &mut dyn BatchObserver,
        index: usize,
        total: usize,
        summary: &mut Summary,
    ) -> Result<Outcome, BatchError> {
        let key = spec.key();
        summary.asked(&key);
        if self.stop_requested() && self.replay(ledger, &key)?.is_none() {
            return Err(BatchError::Interrupted { run: None });
        }
        if let Some(deadline) = self.deadline
            && deadline.passed()
            && self.replay(ledger, &key)?.is_none()
        {
            return Err(BatchError::Deadline {
                seconds: deadline.seconds,
            });
        }
        let outcome = self.run(ledger, spec, obs, index, total)?;
        if outcome.status() == &RunStatus::Interrupted {
            return Err(BatchError::Interrupted {
                run: Some(format!("{} ({})", spec.label(), spec.short_key())),
            });
        }
        summary.record(spec, &outcome);
        obs.run_end(spec, &outcome, summary);
        Ok(outcome)
    }

    fn stop_requested(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }

    /// The status the run with `key` is replayed with instead of training:
    /// its result in the ledger, unless forced to train again.
    fn replay(&self, ledger: &Ledger, key: &str) -> Result<Option<RunStatus>, LedgerError> {
        if self.rerun {
            return Ok(None);
        }
        Ok(ledger.status(key)?.filter(RunStatus::is_result))
    }

    /// Runs (or replays) one spec. Errors of the run itself (a plugin kernel
    /// failing, a dataset missing) are recorded as a failed run and returned
    /// as `Trained(Failed)`; only ledger errors are returned as `Err`, since
    /// without the ledger nothing can be kept.
    ///
    /// A run with a checkpoint (see [`acbench_engine::checkpoint`]) from an
    /// interrupted attempt continues from its last finished epoch; the
    /// checkpoint is written after every epoch into the output folder's
    /// [`output::CHECKPOINTS_DIR`] and deleted when the run ends, unless
    /// [`Runner::keep_checkpoints`].
    pub fn run(
        &mut self,
        ledger: &mut Ledger,
        spec: &RunSpec,
        obs: &mut dyn RunObserver,
        index: usize,
        total: usize,
    ) -> Result<Outcome, LedgerError> {
        let key = spec.key();
        if let Some(status) = self.replay(ledger, &key)? {
            return Ok(Outcome::Replayed(status));
        }
        obs.run_start(spec, index, total);
        let root = self.checkpoint_root.clone().unwrap_or_else(|| {
            output::checkpoint_root(ledger.path().parent().unwrap_or_else(|| Path::new(".")))
        });
        let store = CheckpointStore::new(&root, &key, self.keep_checkpoints);
        if self.rerun
            && let Err(e) = store.remove()
        {
            obs.notice(&format!(
                "could not delete the old checkpoint {}: {e}",
                store.dir().display()
            ));
        }
        let mut prepared = self.prepare(spec);
        let mut resume = None;
        if let Ok(p) = &mut prepared {
            match store.load(&mut p.model) {
                Loaded::None => {}
                Loaded::Refused(why) => {
                    obs.notice(&format!(
                        "checkpoint not used, the run starts from epoch 0: {why}"
                    ));
                }
                Loaded::Resume(r) => {
                    if ledger_has_epochs(ledger, &key, r.next_epoch)? {
                        obs.notice(&format!(
                            "resuming run {} from its checkpoint at epoch {}",
                            &key[..key.len().min(12)],
                            r.next_epoch + 1
                        ));
                        resume = Some(r);
                    } else {
                        obs.notice(&format!(
                            "checkpoint not used, the run starts from epoch 0: the ledger lacks epochs before epoch {}",
                            r.next_epoch + 1
                        ));
                        // The checkpoint was already loaded into the model.
                        prepared = self.prepare(spec);
                    }
                }
            }
        }
        let labels = RunLabels {
            suite: spec.suite.clone(),
            model: spec.model.label.clone(),
            activation: spec.activation.label.clone(),
            optimizer: spec.optimizer.clone(),
            dataset: spec.dataset.name.clone(),
            seed: spec.train.seed.0,
        };
        let spec_json = serde_json::to_value(spec).unwrap_or(serde_json::Value::Null);
        let from_epoch = resume.as_ref().map_or(0, |r| r.next_epoch);
        ledger.begin_run(&key, &labels, &spec_json, &self.manifest(spec), from_epoch)?;
        let mut recorder = Recorder {
            ledger,
            key: &key,
            error: None,
            hold: TestHold::from_env(index),
            stop: self.stop.clone(),
            inner: obs,
        };
        let trained = prepared.and_then(|mut p| {
            match (&p.data, &p.detector) {
                (Data::Detection(data), Some(run)) => detection::train_detector(
                    &mut p.model,
                    data,
                    run,
                    &spec.train,
                    &self.device,
                    &mut recorder,
                    Some((&store, resume)),
                ),
                (Data::Classes(data), None) => train::train_with_checkpoints(
                    &mut p.model,
                    data,
                    &spec.train,
                    &self.device,
                    &mut recorder,
                    &store,
                    resume,
                ),
                _ => Err(acbench_engine::Error::Config(
                    "a detection set needs a detector, and a detector a detection set".into(),
                )),
            }
            .map_err(RunFailure::from)
        });
        let status = match trained {
            Ok(outcome) => match outcome.status {
                TrainStatus::Completed => RunStatus::Finished,
                TrainStatus::Diverged { epoch, cause, .. } => RunStatus::Diverged { epoch, cause },
                TrainStatus::Interrupted { .. } => RunStatus::Interrupted,
            },
            Err(error) => RunStatus::Failed {
                error: error.to_string(),
            },
        };
        if let Some(e) = recorder.error.take() {
            return Err(e);
        }
        ledger.end_run(&key, &status)?;
        // A failed or interrupted run keeps its checkpoint: the next
        // attempt continues from it.
        if status.is_result()
            && let Err(e) = store.finish()
        {
            obs.notice(&format!(
                "could not delete the checkpoint {}: {e}",
                store.dir().display()
            ));
        }
        Ok(Outcome::Trained(status))
    }

    /// What the ledger keeps beside the spec: the plugin files and the
    /// formulas of the activations the run binds (reports draw their shapes).
    fn manifest(&self, spec: &RunSpec) -> serde_json::Value {
        let mut formulas = serde_json::Map::new();
        if let Ok(bindings) = ActBindings::parse(&spec.activation.bindings) {
            for act in bindings.default.iter().chain(bindings.slots.values()) {
                if let Ok(def) = self.registry.get(&act.activation) {
                    formulas.insert(act.activation.clone(), json!(def.def.formula));
                }
            }
        }
        json!({
            "acbench_version": env!("CARGO_PKG_VERSION"),
            "plugins": self.registry.plugins(),
            "formulas": formulas,
            "device": format!("{:?}", self.device),
            "threads": std::env::var("RAYON_NUM_THREADS").ok(),
            "fused": self.registry.fused(),
        })
    }

    fn dataset(&mut self, d: &DatasetSpec) -> Result<Data, RunFailure> {
        let key = format!(
            "{}|{:?}|{:?}|{:?}|{:?}",
            d.name, d.limit_train, d.limit_test, d.image_size, d.seed
        );
        if let Some(data) = self.datasets.get(&key) {
            return Ok(data.clone());
        }
        let opts = LoadOptions {
            data_dir: self.data_dir.clone(),
            image_size: d.image_size,
            limit_train: d.limit_train,
            limit_test: d.limit_test,
        };
        let data = if acbench_data::detection::is_detection(&d.name) {
            Data::Detection(Arc::new(acbench_data::detection::load(
                &d.name,
                &opts,
                d.seed.unwrap_or(0),
            )?))
        } else {
            Data::Classes(Arc::new(acbench_data::load(&d.name, &opts)?))
        };
        self.datasets.insert(key, data.clone());
        Ok(data)
    }

    /// The run's data and freshly built model (with its detector's head
    /// initialised, for a detector).
    fn prepare(&mut self, spec: &RunSpec) -> Result<Prepared, RunFailure> {
        let data = self.dataset(&spec.dataset)?;
        let mut model = build_model(spec, &self.registry, &self.device)?;
        let detector = match (&spec.model.detector, &data) {
            (Some(d), Data::Detection(set)) => {
                let run = detector_run(d, set.classes, &self.registry)?;
                detection::init_head(&mut model, &run)?;
                Some(run)
            }
            _ => None,
        };
        Ok(Prepared {
            data,
            model,
            detector,
        })
    }
}

/// The spec's detector from `registry`, with its settings, for `classes`.
pub fn detector_run(
    d: &DetectorSpec,
    classes: usize,
    registry: &Registry,
) -> Result<DetectorRun, RunFailure> {
    let detector = registry.detector(&d.name)?.clone();
    let config = detector
        .config(classes, &d.settings)
        .map_err(acbench_engine::Error::from)?;
    Ok(DetectorRun::new(detector, config, &d.post)?)
}

/// The spec's network, compiled from its model file with its arguments.
pub fn compile_network(spec: &RunSpec) -> Result<acbench_dsl::ir::Network, RunFailure> {
    let args: Vec<(String, Value)> = spec
        .model
        .args
        .iter()
        .map(|(k, v)| (k.clone(), v.to_value()))
        .collect();
    let options = acbench_dsl::CompileOptions {
        bn_momentum: spec.model.bn_momentum,
    };
    acbench_dsl::compile_file_with(
        &spec.model.file,
        spec.model.network.as_deref(),
        &args,
        &options,
    )
    .map_err(|d| RunFailure::Model {
        file: spec.model.file.clone(),
        diagnostics: d.to_plain_string(),
    })
}

/// The spec's network, compiled from its model file with its arguments,
/// built with its activation bindings and initialised from its seed: what
/// a run trains. A network whose training would not fit in memory is
/// refused first ([`acbench_engine::memory`]).
pub fn build_model(
    spec: &RunSpec,
    registry: &Registry,
    device: &Device,
) -> Result<Model, RunFailure> {
    build_compiled(&compile_network(spec)?, spec, registry, device)
}

/// [`build_model`] from the network already compiled from `spec`
/// ([`compile_network`]), as `--dry-run` has it.
pub fn build_compiled(
    net: &acbench_dsl::ir::Network,
    spec: &RunSpec,
    registry: &Registry,
    device: &Device,
) -> Result<Model, RunFailure> {
    acbench_engine::memory::check(net, spec.train.batch_size, &spec.train.optimizer)?;
    let bindings = ActBindings::parse(&spec.activation.bindings)?;
    Ok(Model::build(
        net,
        registry,
        &bindings,
        device,
        spec.train.seed,
    )?)
}

/// Why a run failed: kept in the ledger, as text, as the run's error.
#[derive(Debug, thiserror::Error)]
pub enum RunFailure {
    /// Its dataset cannot be loaded.
    #[error(transparent)]
    Data(#[from] acbench_data::DataError),
    /// Its model file no longer compiles.
    #[error("{}: {diagnostics}", file.display())]
    Model {
        /// The model file.
        file: PathBuf,
        /// The compiler's diagnostics.
        diagnostics: String,
    },
    /// Building or training the model failed.
    #[error(transparent)]
    Engine(#[from] acbench_engine::Error),
}

/// A run ready to train.
struct Prepared {
    data: Data,
    model: Model,
    detector: Option<DetectorRun>,
}

/// A loaded dataset, shared by the runs that use it.
#[derive(Debug, Clone)]
enum Data {
    Classes(Arc<Dataset>),
    Detection(Arc<DetectionSet>),
}

/// Whether the ledger holds the run's epochs `0..n` (what a checkpoint at
/// epoch `n` continues).
fn ledger_has_epochs(ledger: &Ledger, key: &str, n: usize) -> Result<bool, LedgerError> {
    let epochs = ledger.epochs(key)?;
    Ok(epochs.len() >= n && epochs.iter().take(n).enumerate().all(|(i, e)| e.epoch == i))
}

/// For tests of interrupted suites: `ACBENCH_TEST_HOLD=RUN:EPOCH:BATCH`
/// stops the process after that training batch of the run with that index
/// (as the suite numbers its runs, from 0), printing a line to stderr and
/// sleeping until it is killed or a stop signal arrives
/// ([`Runner::stop`]). A test can then interrupt a suite mid-epoch at a
/// known place instead of racing a timer. With
/// `ACBENCH_TEST_HOLD_ONCE=FILE` only the first process to get there holds
/// (it creates FILE), so that a requeued job runs through.
struct TestHold(Option<(usize, usize, usize)>);

impl TestHold {
    const VAR: &'static str = "ACBENCH_TEST_HOLD";
    const ONCE: &'static str = "ACBENCH_TEST_HOLD_ONCE";

    fn from_env(run: usize) -> Self {
        let Ok(text) = std::env::var(Self::VAR) else {
            return Self(None);
        };
        let parts: Vec<Option<usize>> = text.split(':').map(|p| p.trim().parse().ok()).collect();
        match parts[..] {
            [Some(r), Some(e), Some(b)] => Self((r == run).then_some((r, e, b))),
            _ => {
                eprintln!(
                    "acbench: ignoring {}={text:?}: expected RUN:EPOCH:BATCH",
                    Self::VAR
                );
                Self(None)
            }
        }
    }

    fn check(&self, epoch: usize, batch: usize, stop: Option<&AtomicBool>) {
        let Some((run, e, b)) = self.0 else { return };
        if (e, b) != (epoch, batch) {
            return;
        }
        if let Ok(once) = std::env::var(Self::ONCE)
            && std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(once)
                .is_err()
        {
            return;
        }
        eprintln!("acbench: held for a test at run {run}, epoch {e}, batch {b}");
        while !stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// Writes every finished epoch to the ledger, then passes it on.
struct Recorder<'l, 'o> {
    ledger: &'l mut Ledger,
    key: &'l str,
    error: Option<LedgerError>,
    hold: TestHold,
    stop: Option<Arc<AtomicBool>>,
    inner: &'o mut dyn RunObserver,
}

impl Observer for Recorder<'_, '_> {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize, lr: f64) {
        self.inner.epoch_start(epoch, epochs, batches, lr);
    }

    fn batch_end(&mut self, epoch: usize, batch: usize, batches: usize, loss: f32) {
        self.inner.batch_end(epoch, batch, batches, loss);
        self.hold.check(epoch, batch, self.stop.as_deref());
    }

    fn stop_requested(&mut self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }

    fn epoch_end(&mut self, m: &EpochMetrics) {
        if self.error.is_none()
            && let Err(e) = self.ledger.record_epoch(self.key, &epoch_record(m))
        {
            self.error = Some(e);
        }
        self.inner.epoch_end(m);
    }
}
