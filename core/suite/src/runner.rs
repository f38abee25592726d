//! Running resolved specs against the ledger: the one `run(spec)` that
//! suites and sweeps share.
//!
//! A spec whose key the ledger already has as finished or diverged is not
//! trained again unless forced (a failed one is retried): re-running a suite after a
//! crash continues where it stopped, and a sweep replays finished runs
//! instantly. Every finished epoch is committed before the next starts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use acbench_data::{Dataset, LoadOptions};
use acbench_dsl::ir::Value;
use acbench_engine::activation::{ActBindings, Registry};
use acbench_engine::checkpoint::{CheckpointStore, Loaded};
use acbench_engine::model::Model;
use acbench_engine::train::{self, EpochMetrics, Observer, RunStatus as TrainStatus};
use acbench_ledger::{ActParam, EpochRecord, Ledger, RunLabels, RunStatus, StoredRun};
use candle_core::Device;
use serde_json::json;

use crate::spec::{DatasetSpec, RunSpec};

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
    /// Datasets loaded so far, shared by the runs that use them.
    datasets: HashMap<String, Arc<Dataset>>,
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
            datasets: HashMap::new(),
        }
    }

    /// Runs (or replays) one spec. Errors of the run itself (a plugin kernel
    /// failing, a dataset missing) are recorded as a failed run and returned
    /// as `Trained(Failed)`; only ledger errors are returned as `Err`, since
    /// without the ledger nothing can be kept.
    ///
    /// A run with a checkpoint (see [`acbench_engine::checkpoint`]) from an
    /// interrupted attempt continues from its last finished epoch; the
    /// checkpoint is written after every epoch into [`checkpoint_root`] and
    /// deleted when the run ends, unless [`Runner::keep_checkpoints`].
    pub fn run(
        &mut self,
        ledger: &mut Ledger,
        spec: &RunSpec,
        obs: &mut dyn RunObserver,
        index: usize,
        total: usize,
    ) -> Result<Outcome, acbench_ledger::LedgerError> {
        let key = spec.key();
        // Finished and diverged runs are results; a failed run (a missing
        // dataset, a broken plugin) is tried again.
        if !self.rerun
            && let Some(status) = ledger
                .status(&key)?
                .filter(|s| matches!(s, RunStatus::Finished | RunStatus::Diverged { .. }))
        {
            return Ok(Outcome::Replayed(status));
        }
        obs.run_start(spec, index, total);
        let store =
            CheckpointStore::new(&checkpoint_root(ledger.path()), &key, self.keep_checkpoints);
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
            inner: obs,
        };
        let trained = prepared.and_then(|mut p| {
            train::train_with_checkpoints(
                &mut p.model,
                &p.data,
                &spec.train,
                &self.device,
                &mut recorder,
                &store,
                resume,
            )
            .map_err(|e| e.to_string())
        });
        let status = match trained {
            Ok(outcome) => match outcome.status {
                TrainStatus::Completed => RunStatus::Finished,
                TrainStatus::Diverged { epoch, .. } => RunStatus::Diverged { epoch },
            },
            Err(error) => RunStatus::Failed { error },
        };
        if let Some(e) = recorder.error.take() {
            return Err(e);
        }
        ledger.end_run(&key, &status)?;
        // A failed run keeps its checkpoint: the retry continues from it.
        if matches!(status, RunStatus::Finished | RunStatus::Diverged { .. })
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

    fn dataset(&mut self, d: &DatasetSpec) -> Result<Arc<Dataset>, String> {
        let key = format!(
            "{}|{:?}|{:?}|{:?}",
            d.name, d.limit_train, d.limit_test, d.image_size
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
        let data = Arc::new(acbench_data::load(&d.name, &opts).map_err(|e| e.to_string())?);
        self.datasets.insert(key, data.clone());
        Ok(data)
    }

    /// The run's data and freshly built model.
    fn prepare(&mut self, spec: &RunSpec) -> Result<Prepared, String> {
        let data = self.dataset(&spec.dataset)?;
        let args: Vec<(String, Value)> = spec
            .model
            .args
            .iter()
            .map(|(k, v)| (k.clone(), v.to_value()))
            .collect();
        let net = acbench_dsl::compile_file(&spec.model.file, spec.model.network.as_deref(), &args)
            .map_err(|d| format!("{}: {}", spec.model.file.display(), d.to_plain_string()))?;
        let bindings = ActBindings::parse(&spec.activation.bindings).map_err(|e| e.to_string())?;
        let model = Model::build(
            &net,
            &self.registry,
            &bindings,
            &self.device,
            spec.train.seed,
        )
        .map_err(|e| e.to_string())?;
        Ok(Prepared { data, model })
    }
}

/// A run ready to train.
struct Prepared {
    data: Arc<Dataset>,
    model: Model,
}

/// Where a suite keeps its runs' checkpoints: `checkpoints/` beside the
/// ledger, one folder per run key.
pub fn checkpoint_root(ledger: &Path) -> PathBuf {
    ledger
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("checkpoints")
}

/// Whether the ledger holds the run's epochs `0..n` (what a checkpoint at
/// epoch `n` continues).
fn ledger_has_epochs(
    ledger: &Ledger,
    key: &str,
    n: usize,
) -> Result<bool, acbench_ledger::LedgerError> {
    let epochs = ledger.epochs(key)?;
    Ok(epochs.len() >= n && epochs.iter().take(n).enumerate().all(|(i, e)| e.epoch == i))
}

/// For tests of interrupted suites: `ACBENCH_TEST_HOLD=RUN:EPOCH:BATCH`
/// stops the process after that training batch of the run with that index
/// (as the suite numbers its runs, from 0), printing a line to stderr and
/// sleeping until it is killed. A test can then kill a suite mid-epoch at a
/// known place instead of racing a timer.
struct TestHold(Option<(usize, usize, usize)>);

impl TestHold {
    const VAR: &'static str = "ACBENCH_TEST_HOLD";

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

    fn check(&self, epoch: usize, batch: usize) {
        if let Some((run, e, b)) = self.0
            && (e, b) == (epoch, batch)
        {
            eprintln!("acbench: held for a test at run {run}, epoch {e}, batch {b}");
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
    }
}

/// Writes every finished epoch to the ledger, then passes it on.
struct Recorder<'l, 'o> {
    ledger: &'l mut Ledger,
    key: &'l str,
    error: Option<acbench_ledger::LedgerError>,
    hold: TestHold,
    inner: &'o mut dyn RunObserver,
}

impl Observer for Recorder<'_, '_> {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize, lr: f64) {
        self.inner.epoch_start(epoch, epochs, batches, lr);
    }

    fn batch_end(&mut self, epoch: usize, batch: usize, batches: usize, loss: f32) {
        self.inner.batch_end(epoch, batch, batches, loss);
        self.hold.check(epoch, batch);
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

/// The ledger's form of an epoch.
pub fn epoch_record(m: &EpochMetrics) -> EpochRecord {
    let act_params = m
        .act_values
        .iter()
        .flat_map(|slot| {
            slot.params.iter().map(move |(param, values)| ActParam {
                slot: slot.path.clone(),
                activation: slot.activation.clone(),
                param: param.clone(),
                values: values.iter().map(|&v| f64::from(v)).collect(),
            })
        })
        .collect();
    EpochRecord {
        epoch: m.epoch,
        lr: m.lr,
        train_loss: m.train_loss,
        train_acc: m.train_acc,
        test_loss: m.test_loss,
        test_acc: m.test_acc,
        wall_s: m.wall_s,
        act_params,
        weight_increments: m.weight_increments.clone(),
    }
}

/// A ledger run in the form the report engine reads.
pub fn to_report(run: &StoredRun) -> acbench_reports::RunResult {
    use acbench_reports::result::{EpochPoint, LayerIncrements, RunStatus as R, SlotParams};
    let status = match run.status {
        RunStatus::Finished => R::Finished,
        RunStatus::Diverged { .. } => R::Diverged,
        RunStatus::Failed { .. } | RunStatus::Running => R::Failed,
    };
    let formulas = run.manifest.get("formulas").and_then(|f| f.as_object());
    let mut final_act_params: Vec<SlotParams> = Vec::new();
    if let Some(last) = run.epochs.last() {
        for p in &last.act_params {
            match final_act_params.last_mut() {
                Some(s) if s.path == p.slot => s.params.push((p.param.clone(), p.values.clone())),
                _ => final_act_params.push(SlotParams {
                    path: p.slot.clone(),
                    activation: p.activation.clone(),
                    formula: formulas
                        .and_then(|f| f.get(&p.activation))
                        .and_then(|v| v.as_str())
                        .map(str::to_owned),
                    params: vec![(p.param.clone(), p.values.clone())],
                }),
            }
        }
    }
    let mut weight_increments: Vec<LayerIncrements> = Vec::new();
    for e in &run.epochs {
        for (layer, norm) in &e.weight_increments {
            match weight_increments.iter_mut().find(|l| &l.layer == layer) {
                Some(l) => l.per_epoch.push(*norm),
                None => weight_increments.push(LayerIncrements {
                    layer: layer.clone(),
                    per_epoch: vec![*norm],
                }),
            }
        }
    }
    acbench_reports::RunResult {
        model: run.labels.model.clone(),
        activation: run.labels.activation.clone(),
        optimizer: run.labels.optimizer.clone(),
        dataset: run.labels.dataset.clone(),
        seed: run.labels.seed,
        status,
        epochs: run
            .epochs
            .iter()
            .map(|e| EpochPoint {
                epoch: e.epoch,
                train_loss: e.train_loss,
                test_loss: e.test_loss,
                test_acc: e.test_acc,
                wall_s: e.wall_s,
            })
            .collect(),
        final_act_params,
        weight_increments,
    }
}
