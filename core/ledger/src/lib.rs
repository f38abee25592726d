//! The results ledger: an embedded SQLite database (WAL mode) that keeps
//! every run of a suite or sweep, keyed by the hash of its fully resolved
//! spec.
//!
//! Each finished epoch is committed in its own transaction, so killing
//! acbench (SIGINT or SIGKILL) loses at most the epoch in flight. A run's
//! status moves `running` → `finished` | `diverged` | `failed` |
//! `interrupted`. A run stopped by a signal is `interrupted`; a run found
//! `running` when the ledger is opened again was killed. Either is trained
//! again, from its checkpoint when it has one (training is deterministic,
//! so it gives the same numbers), its partial epochs replaced.
//!
//! The ledger knows nothing of candle or of the engine: it stores numbers
//! under names. Reports and exports read it back with [`Ledger::runs`].
//!
//! Runs spread over a cluster write one ledger file per shard and attempt
//! (SQLite's WAL needs shared memory, which network file systems do not
//! give), opened with [`Journal::Rollback`]; [`Ledger::merge_from`] folds
//! them into one (see [`merge`]).

use std::fmt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

pub mod integrity;
pub mod merge;
mod schema;

pub use integrity::CheckReport;
pub use merge::MergeReport;
use schema::SCHEMA_VERSION;

/// Everything that can go wrong with the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// SQLite failed (disk full, locked, corrupt file, ...).
    #[error("ledger {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The file could not be written: the disk is full, a quota or file
    /// size limit was reached, or the device failed. What was committed
    /// before stays.
    #[error(
        "ledger {}: cannot write: {source} (is the disk full, or a quota or file size limit \
         reached?); every epoch committed before is kept",
        path.display()
    )]
    Write {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The file is damaged (truncated, overwritten, not a database). It is
    /// never taken for an empty ledger, which would train everything again.
    #[error(
        "ledger {} is damaged: {detail}. Nothing was changed; `acbench ledger check` lists the \
         problems. Restore a copy, or move the file away to start a new ledger",
        path.display()
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The file was written by a newer acbench.
    #[error(
        "ledger {path}: schema version {found} is newer than this acbench understands ({SCHEMA_VERSION})"
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Version in the file.
        found: i64,
    },
    /// A run key that is not in the ledger.
    #[error("ledger {path}: no run with key {key}")]
    UnknownRun {
        /// The database file.
        path: PathBuf,
        /// The key asked for.
        key: String,
    },
    /// Two ledger files hold different results for one run.
    #[error(
        "run {key} has different results in {} and in {}: {what}; training is deterministic for one build, data and thread count, so one of those differed",
        first.display(),
        second.display()
    )]
    Conflict {
        /// The run's key.
        key: String,
        /// The file its first result came from.
        first: PathBuf,
        /// The file with the other result.
        second: PathBuf,
        /// What differs.
        what: String,
    },
    /// A stored JSON column does not parse.
    #[error("ledger {path}: run {key}: stored {column} is not valid JSON: {message}")]
    BadJson {
        /// The database file.
        path: PathBuf,
        /// The run.
        key: String,
        /// Which column.
        column: &'static str,
        /// The parser's message.
        message: String,
    },
}

/// The schema version of an open file, refused when newer than this
/// acbench's.
fn schema_version(conn: &Connection, path: &Path) -> Result<i64> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|source| integrity::classify(path, source))?;
    if version > SCHEMA_VERSION {
        return Err(LedgerError::NewerSchema {
            path: path.to_owned(),
            found: version,
        });
    }
    Ok(version)
}

/// How SQLite keeps a ledger's transactions durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Journal {
    /// Write-ahead log: fast, readers and one writer at once; needs the
    /// shared memory of one machine. The output folder's ledger.
    Wal,
    /// Rollback journal with full syncs: what works on a network file
    /// system for a file that one process writes. Shard ledgers.
    Rollback,
}

/// Result alias for the ledger.
pub type Result<T> = std::result::Result<T, LedgerError>;

/// How a run stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RunStatus {
    /// Started and not (yet) ended; found on open, its process was killed.
    Running,
    /// Every epoch ran.
    Finished,
    /// A loss became NaN or infinite in this epoch.
    Diverged {
        /// 0-based epoch.
        epoch: usize,
        /// What made it, where a diagnosis found it (an activation or a
        /// detector plugin that turned finite values into NaN).
        cause: Option<String>,
    },
    /// An error (not divergence) stopped it.
    Failed {
        /// The error, as shown to the user.
        error: String,
    },
    /// A signal (SIGINT, SIGTERM, Slurm's warning before its time limit)
    /// stopped it between two batches; its last checkpoint is kept and the
    /// next attempt resumes it. Not a failure and not a result.
    Interrupted,
}

impl RunStatus {
    /// Whether the run ended: a result, or failed. Running and
    /// interrupted runs have not ended.
    pub fn is_done(&self) -> bool {
        !matches!(self, RunStatus::Running | RunStatus::Interrupted)
    }

    /// Whether the run is a result: finished or diverged. A failed run (a
    /// missing dataset, a broken plugin) is tried again, an interrupted
    /// one resumed.
    pub fn is_result(&self) -> bool {
        matches!(self, RunStatus::Finished | RunStatus::Diverged { .. })
    }

    /// The status from its word (as [`fmt::Display`] writes it) and the
    /// details the ledger keeps beside it: the error of a failed run, the
    /// epoch of a diverged one. An unknown word reads as `Running`, so that
    /// the run is trained again.
    fn from_stored(word: &str, error: Option<String>, diverged_epoch: Option<i64>) -> Self {
        match word {
            "finished" => RunStatus::Finished,
            "diverged" => RunStatus::Diverged {
                epoch: diverged_epoch.unwrap_or(0).max(0) as usize,
                cause: error,
            },
            "failed" => RunStatus::Failed {
                error: error.unwrap_or_default(),
            },
            "interrupted" => RunStatus::Interrupted,
            _ => RunStatus::Running,
        }
    }
}

/// The status's word, as stored in the ledger and shown to users:
/// `running`, `finished`, `diverged`, `failed` or `interrupted`.
impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RunStatus::Running => "running",
            RunStatus::Finished => "finished",
            RunStatus::Diverged { .. } => "diverged",
            RunStatus::Failed { .. } => "failed",
            RunStatus::Interrupted => "interrupted",
        })
    }
}

/// What a run is, for grouping in reports; the full spec is kept as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLabels {
    /// Suite (or sweep) name.
    pub suite: String,
    /// Model name (the `.acnet` file stem).
    pub model: String,
    /// Activation binding as written (`arelu`, `arelu fc=relu`).
    pub activation: String,
    /// Optimiser name.
    pub optimizer: String,
    /// Dataset name.
    pub dataset: String,
    /// Seed.
    pub seed: u64,
}

/// Values of one activation parameter in one slot (1 value per layer, or
/// one per channel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActParam {
    /// Slot path (`stage2.basic0.act1`).
    pub slot: String,
    /// Activation bound there.
    pub activation: String,
    /// Parameter name.
    pub param: String,
    /// Its values.
    pub values: Vec<f64>,
}

/// One finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 0-based epoch.
    pub epoch: usize,
    /// Learning rate at the epoch's start.
    pub lr: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy.
    pub train_acc: f64,
    /// Mean test loss over the whole test split.
    pub test_loss: f64,
    /// Test accuracy over the whole test split.
    pub test_acc: f64,
    /// Wall time of the epoch, evaluation included.
    pub wall_s: f64,
    /// Every activation parameter after the epoch.
    pub act_params: Vec<ActParam>,
    /// Per layer: norm of the change of its weights over the epoch (Fig. 4).
    pub weight_increments: Vec<(String, f64)>,
    /// The loss curve per step within the epoch: `(steps done in the run,
    /// mean training loss since the previous point)`.
    pub step_losses: Vec<(usize, f64)>,
    /// A detector's scores on the test split, `(metric, value)` in the
    /// order written (`coco.ap`, ..., `coco.ar_large`, `voc07.map`,
    /// `voc12.map`, `voc07.class.NAME`, ...); empty for a classifier.
    #[serde(default)]
    pub detection: Vec<(String, f64)>,
    /// A detector's precision at COCO's 101 recall points at IoU 0.5;
    /// empty for a classifier.
    #[serde(default)]
    pub pr_curve: Vec<f64>,
}

impl EpochRecord {
    /// The detection metric named `name` (`coco.ap50`), if recorded.
    pub fn detection_metric(&self, name: &str) -> Option<f64> {
        self.detection
            .iter()
            .find(|(m, _)| m == name)
            .map(|&(_, v)| v)
    }
}

/// A run read back from the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRun {
    /// Spec hash.
    pub key: String,
    /// Grouping labels.
    pub labels: RunLabels,
    /// The fully resolved spec.
    pub spec: serde_json::Value,
    /// Plugins and environment of the run.
    pub manifest: serde_json::Value,
    /// Current status.
    pub status: RunStatus,
    /// How many times it was started.
    pub attempts: u32,
    /// When its last attempt started (seconds since the Unix epoch).
    pub started_at: f64,
    /// When it ended, if it did.
    pub finished_at: Option<f64>,
    /// Finished epochs, in order.
    pub epochs: Vec<EpochRecord>,
}

/// An open ledger file.
pub struct Ledger {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("path", &self.path).finish()
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Ledger {
    /// Opens (creating if needed) the ledger at `path`, in WAL mode.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, Journal::Wal)
    }

    /// Opens (creating if needed) the ledger at `path` with the given
    /// journal.
    pub fn open_with(path: &Path, journal: Journal) -> Result<Self> {
        let err = |source| integrity::classify(path, source);
        // A shard's attempt file is reserved empty (create_new) before it is
        // opened; the output folder's ledger is never empty once written.
        let existed = match journal {
            Journal::Wal => integrity::refuse_empty(path)?,
            Journal::Rollback => std::fs::metadata(path).is_ok_and(|m| m.len() > 0),
        };
        let mut conn = Connection::open(path).map_err(err)?;
        if existed {
            integrity::quick_check(&conn, path)?;
        }
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        let (mode, sync) = match journal {
            // NORMAL is durable across a killed process in WAL mode (only
            // an OS crash can lose the last transaction), and much faster
            // than FULL.
            Journal::Wal => ("WAL", "NORMAL"),
            Journal::Rollback => ("DELETE", "FULL"),
        };
        conn.pragma_update(None, "journal_mode", mode)
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", sync).map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err)?;
        let version = schema_version(&conn, path)?;
        schema::create_or_upgrade(&mut conn, version).map_err(err)?;
        Ok(Self {
            conn,
            path: path.to_owned(),
        })
    }

    /// Opens an existing ledger to read it only: nothing in the file
    /// changes (not even its journal mode), so this is how another
    /// process's file (a shard's) is read. A file of an older version is
    /// read as it is; its columns are the same.
    pub fn open_read_only(path: &Path) -> Result<Self> {
        let err = |source| integrity::classify(path, source);
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        schema_version(&conn, path)?;
        Ok(Self {
            conn,
            path: path.to_owned(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> LedgerError + '_ {
        |source| integrity::classify(&self.path, source)
    }

    /// Status of the run with this key, if the ledger has it.
    pub fn status(&self, key: &str) -> Result<Option<RunStatus>> {
        self.conn
            .query_row(
                "SELECT status, error, diverged_epoch FROM runs WHERE key = ?1",
                params![key],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(self.sql())
            .map(|row| row.map(|(s, e, d)| RunStatus::from_stored(&s, e, d)))
    }

    /// Records that a run starts at epoch `from_epoch` (0, or the epoch a
    /// checkpoint resumes at). A run already in the ledger (interrupted, or
    /// forced again with `--rerun`) keeps its epochs before `from_epoch`,
    /// loses the rest and counts one more attempt.
    pub fn begin_run(
        &mut self,
        key: &str,
        labels: &RunLabels,
        spec: &serde_json::Value,
        manifest: &serde_json::Value,
        from_epoch: usize,
    ) -> Result<()> {
        let path = self.path.clone();
        let err = |source| LedgerError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        delete_epochs(&tx, key, from_epoch).map_err(err)?;
        tx.execute(
            "INSERT INTO runs (key, suite, model, activation, optimizer, dataset, seed, spec, manifest,
                               status, attempts, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'running', 1, ?10)
             ON CONFLICT(key) DO UPDATE SET
                 suite = excluded.suite, model = excluded.model, activation = excluded.activation,
                 optimizer = excluded.optimizer, dataset = excluded.dataset, seed = excluded.seed,
                 spec = excluded.spec, manifest = excluded.manifest, status = 'running', error = NULL,
                 diverged_epoch = NULL, attempts = runs.attempts + 1,
                 started_at = excluded.started_at, finished_at = NULL",
            params![
                key,
                labels.suite,
                labels.model,
                labels.activation,
                labels.optimizer,
                labels.dataset,
                labels.seed as i64,
                spec.to_string(),
                manifest.to_string(),
                now(),
            ],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// Commits one finished epoch of a running run, all of it or nothing.
    pub fn record_epoch(&mut self, key: &str, e: &EpochRecord) -> Result<()> {
        let path = self.path.clone();
        let err = |source| LedgerError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let known: Option<i64> = tx
            .query_row("SELECT 1 FROM runs WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(err)?;
        if known.is_none() {
            return Err(LedgerError::UnknownRun {
                path,
                key: key.to_owned(),
            });
        }
        write_epoch(&tx, key, e).map_err(err)?;
        tx.commit().map_err(err)
    }

    /// Ends a run with its final status.
    pub fn end_run(&mut self, key: &str, status: &RunStatus) -> Result<()> {
        let (error, diverged) = match status {
            RunStatus::Failed { error } => (Some(error.as_str()), None),
            RunStatus::Diverged { epoch, cause } => (cause.as_deref(), Some(*epoch as i64)),
            RunStatus::Running | RunStatus::Finished | RunStatus::Interrupted => (None, None),
        };
        let changed = self
            .conn
            .execute(
                "UPDATE runs SET status = ?2, error = ?3, diverged_epoch = ?4, finished_at = ?5 WHERE key = ?1",
                params![key, status.to_string(), error, diverged, now()],
            )
            .map_err(self.sql())?;
        if changed == 0 {
            return Err(LedgerError::UnknownRun {
                path: self.path.clone(),
                key: key.to_owned(),
            });
        }
        Ok(())
    }

    /// Every run, with its epochs, ordered by suite, model, activation,
    /// optimiser and seed.
    pub fn runs(&self) -> Result<Vec<StoredRun>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT key, suite, model, activation, optimizer, dataset, seed, spec, manifest,
                        status, error, diverged_epoch, attempts, started_at, finished_at
                 FROM runs ORDER BY suite, model, activation, optimizer, seed, key",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([], |r| {
                let run = StoredRun {
                    key: r.get(0)?,
                    labels: RunLabels {
                        suite: r.get(1)?,
                        model: r.get(2)?,
                        activation: r.get(3)?,
                        optimizer: r.get(4)?,
                        dataset: r.get(5)?,
                        seed: r.get::<_, i64>(6)? as u64,
                    },
                    spec: serde_json::Value::Null,
                    manifest: serde_json::Value::Null,
                    status: RunStatus::from_stored(&r.get::<_, String>(9)?, r.get(10)?, r.get(11)?),
                    attempts: u32::try_from(r.get::<_, i64>(12)?).unwrap_or(u32::MAX),
                    started_at: r.get(13)?,
                    finished_at: r.get(14)?,
                    epochs: Vec::new(),
                };
                Ok((run, r.get::<_, String>(7)?, r.get::<_, String>(8)?))
            })
            .map_err(self.sql())?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql())?;
        rows.into_iter()
            .map(|(mut run, spec, manifest)| {
                let json = |column: &'static str, text: &str| {
                    serde_json::from_str(text).map_err(|e| LedgerError::BadJson {
                        path: self.path.clone(),
                        key: run.key.clone(),
                        column,
                        message: e.to_string(),
                    })
                };
                run.spec = json("spec", &spec)?;
                run.manifest = json("manifest", &manifest)?;
                run.epochs = self.epochs(&run.key)?;
                Ok(run)
            })
            .collect()
    }

    /// The finished epochs of one run.
    pub fn epochs(&self, key: &str) -> Result<Vec<EpochRecord>> {
        let mut epochs = self.rows_of(
            "SELECT epoch, lr, train_loss, train_acc, test_loss, test_acc, wall_s
             FROM epochs WHERE run_key = ?1 ORDER BY epoch",
            key,
            |r| {
                Ok(EpochRecord {
                    epoch: r.get::<_, i64>(0)? as usize,
                    lr: r.get(1)?,
                    train_loss: r.get(2)?,
                    train_acc: r.get(3)?,
                    test_loss: r.get(4)?,
                    test_acc: r.get(5)?,
                    wall_s: r.get(6)?,
                    act_params: Vec::new(),
                    weight_increments: Vec::new(),
                    step_losses: Vec::new(),
                    detection: Vec::new(),
                    pr_curve: Vec::new(),
                })
            },
        )?;
        let params = self.rows_of(
            "SELECT epoch, slot, activation, param, value FROM act_params
             WHERE run_key = ?1 ORDER BY epoch, slot, param, idx",
            key,
            |r| {
                Ok((
                    r.get::<_, i64>(0)? as usize,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                ))
            },
        )?;
        for (epoch, slot, activation, param, value) in params {
            let Some(e) = epochs.iter_mut().find(|e| e.epoch == epoch) else {
                continue;
            };
            match e.act_params.last_mut() {
                Some(p) if p.slot == slot && p.param == param => p.values.push(value),
                _ => e.act_params.push(ActParam {
                    slot,
                    activation,
                    param,
                    values: vec![value],
                }),
            }
        }
        let increments = self.rows_of(
            "SELECT epoch, layer, norm FROM weight_increments WHERE run_key = ?1 ORDER BY epoch, layer",
            key,
            |r| Ok((r.get::<_, i64>(0)? as usize, r.get(1)?, r.get(2)?)),
        )?;
        for (epoch, layer, norm) in increments {
            if let Some(e) = epochs.iter_mut().find(|e| e.epoch == epoch) {
                e.weight_increments.push((layer, norm));
            }
        }
        let steps = self.rows_of(
            "SELECT epoch, step, loss FROM step_losses WHERE run_key = ?1 ORDER BY step",
            key,
            |r| {
                Ok((
                    r.get::<_, i64>(0)? as usize,
                    r.get::<_, i64>(1)? as usize,
                    r.get(2)?,
                ))
            },
        )?;
        for (epoch, step, loss) in steps {
            if let Some(e) = epochs.iter_mut().find(|e| e.epoch == epoch) {
                e.step_losses.push((step, loss));
            }
        }
        // `rowid` keeps the order the metrics were written in.
        let metrics = self.rows_of(
            "SELECT epoch, metric, value FROM detection_metrics WHERE run_key = ?1
             ORDER BY epoch, rowid",
            key,
            |r| Ok((r.get::<_, i64>(0)? as usize, r.get(1)?, r.get(2)?)),
        )?;
        for (epoch, metric, value) in metrics {
            if let Some(e) = epochs.iter_mut().find(|e| e.epoch == epoch) {
                e.detection.push((metric, value));
            }
        }
        let curve = self.rows_of(
            "SELECT epoch, precision FROM pr_curves WHERE run_key = ?1 ORDER BY epoch, idx",
            key,
            |r| Ok((r.get::<_, i64>(0)? as usize, r.get(1)?)),
        )?;
        for (epoch, precision) in curve {
            if let Some(e) = epochs.iter_mut().find(|e| e.epoch == epoch) {
                e.pr_curve.push(precision);
            }
        }
        Ok(epochs)
    }

    /// The rows of `sql`, whose one parameter `?1` is the run `key`, each
    /// read by `row`.
    fn rows_of<T>(
        &self,
        sql: &str,
        key: &str,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(self.sql())?;
        let rows = stmt.query_map(params![key], row).map_err(self.sql())?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql())
    }
}

/// Writes one epoch of the run `key` (its metrics, activation parameters,
/// weight increments and loss curve) inside `tx`.
fn write_epoch(tx: &Transaction<'_>, key: &str, e: &EpochRecord) -> rusqlite::Result<()> {
    let epoch = e.epoch as i64;
    tx.execute(
            "INSERT OR REPLACE INTO epochs (run_key, epoch, lr, train_loss, train_acc, test_loss, test_acc, wall_s)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![key, epoch, e.lr, e.train_loss, e.train_acc, e.test_loss, e.test_acc, e.wall_s],
        )
        ?;
    let act_params = e.act_params.iter().flat_map(|p| {
        p.values.iter().enumerate().map(move |(i, &v)| {
            (
                key,
                epoch,
                p.slot.as_str(),
                p.activation.as_str(),
                p.param.as_str(),
                i as i64,
                v,
            )
        })
    });
    insert_each(
        tx,
        "INSERT OR REPLACE INTO act_params (run_key, epoch, slot, activation, param, idx, value)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        act_params,
    )?;
    insert_each(
        tx,
        "INSERT OR REPLACE INTO weight_increments (run_key, epoch, layer, norm)
             VALUES (?1, ?2, ?3, ?4)",
        e.weight_increments
            .iter()
            .map(|(layer, norm)| (key, epoch, layer.as_str(), *norm)),
    )?;
    insert_each(
        tx,
        "INSERT OR REPLACE INTO step_losses (run_key, epoch, step, loss)
             VALUES (?1, ?2, ?3, ?4)",
        e.step_losses
            .iter()
            .map(|&(step, loss)| (key, epoch, step as i64, loss)),
    )?;
    insert_each(
        tx,
        "INSERT OR REPLACE INTO detection_metrics (run_key, epoch, metric, value)
             VALUES (?1, ?2, ?3, ?4)",
        e.detection
            .iter()
            .map(|(metric, value)| (key, epoch, metric.as_str(), *value)),
    )?;
    insert_each(
        tx,
        "INSERT OR REPLACE INTO pr_curves (run_key, epoch, idx, precision)
             VALUES (?1, ?2, ?3, ?4)",
        e.pr_curve
            .iter()
            .enumerate()
            .map(|(i, &p)| (key, epoch, i as i64, p)),
    )?;
    Ok(())
}

/// Runs the statement `sql` once per row of `rows`.
fn insert_each<P: rusqlite::Params>(
    tx: &Transaction<'_>,
    sql: &str,
    rows: impl IntoIterator<Item = P>,
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(sql)?;
    for row in rows {
        stmt.execute(row)?;
    }
    Ok(())
}

/// Deletes the run's epochs from `from_epoch` on.
fn delete_epochs(tx: &Transaction<'_>, key: &str, from_epoch: usize) -> rusqlite::Result<()> {
    for table in [
        "epochs",
        "act_params",
        "weight_increments",
        "step_losses",
        "detection_metrics",
        "pr_curves",
    ] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE run_key = ?1 AND epoch >= ?2"),
            params![key, from_epoch as i64],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
