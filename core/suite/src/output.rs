//! The output folder of a suite or sweep: what it holds, under which names,
//! and the record of what wrote it.
//!
//! ```text
//! OUT/
//!   ledger.sqlite       every run and its epochs (acbench-ledger)
//!   suite.json          what wrote the ledger (SuiteMeta), for `acbench report OUT`
//!   checkpoints/KEY/    the last checkpoint of each run not yet ended
//!   shards/             one ledger per shard and attempt of a spread suite
//!   slurm/              plans, sbatch scripts, job ids and logs of `--slurm`
//!   report.*, plots/    the report's exports and SVG plots (acbench-reports)
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::resolve::Suite;

/// Ledger file name in the output folder.
pub const LEDGER_FILE: &str = "ledger.sqlite";

/// File in the output folder that says which suite wrote the ledger and
/// which paper table it reproduces.
pub const SUITE_META: &str = "suite.json";

/// Folder in the output folder that holds the runs' checkpoints, one
/// folder per run key.
pub const CHECKPOINTS_DIR: &str = "checkpoints";

/// Folder in the output folder that holds the ledgers of a suite's shards
/// ([`crate::shard`]).
pub const SHARDS_DIR: &str = "shards";

/// Where the output folder `dir` keeps its shards' ledgers.
pub fn shards_dir(dir: &Path) -> PathBuf {
    dir.join(SHARDS_DIR)
}

/// The ledger of the output folder `dir`.
pub fn ledger_path(dir: &Path) -> PathBuf {
    dir.join(LEDGER_FILE)
}

/// Where the output folder `dir` keeps its runs' checkpoints.
pub fn checkpoint_root(dir: &Path) -> PathBuf {
    dir.join(CHECKPOINTS_DIR)
}

/// The ledger of the output folder `dir`, which must exist already.
pub fn existing_ledger(dir: &Path) -> Result<PathBuf, OutputError> {
    let path = ledger_path(dir);
    if path.exists() {
        Ok(path)
    } else {
        Err(OutputError::NoLedger {
            dir: dir.to_owned(),
        })
    }
}

/// What `suite.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteMeta {
    /// Suite (or sweep) name.
    pub name: String,
    /// The suite file (or sweep script).
    pub file: String,
    /// Paper tables it reproduces.
    pub paper_tables: Vec<String>,
    /// How the settings differ from the paper's (said in the report).
    pub deviations: Vec<String>,
    /// Keys of the suite's runs, in matrix order.
    pub keys: Vec<String>,
}

impl SuiteMeta {
    /// The record of a resolved suite.
    pub fn of_suite(suite: &Suite) -> Self {
        Self {
            name: suite.name.clone(),
            file: suite.file.display().to_string(),
            paper_tables: suite.paper_tables.clone(),
            deviations: suite.deviations.clone(),
            keys: suite.runs.iter().map(crate::RunSpec::key).collect(),
        }
    }

    /// The record of a sweep: its script and the keys of every run it asked for.
    pub fn of_sweep(name: &str, script: &Path, keys: Vec<String>) -> Self {
        Self {
            name: name.to_owned(),
            file: script.display().to_string(),
            paper_tables: Vec::new(),
            deviations: Vec::new(),
            keys,
        }
    }

    /// Reads `suite.json` from the output folder `dir`.
    pub fn read(dir: &Path) -> Result<Self, OutputError> {
        let path = dir.join(SUITE_META);
        let text = std::fs::read_to_string(&path).map_err(|source| OutputError::NotOutput {
            dir: dir.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| OutputError::BadMeta { path, source })
    }

    /// Writes `suite.json` into the output folder `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), OutputError> {
        write_json(&dir.join(SUITE_META), self)
    }
}

/// Writes `value` as pretty JSON through a temporary file and a rename, so
/// that an interrupted write never leaves a truncated file behind. The
/// temporary file has a name of its own (made by `tempfile` in the same
/// folder), so processes that write the same file at once (the shards of a
/// suite, on several machines of a shared file system) never rename one
/// another's half-written file.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), OutputError> {
    let text = serde_json::to_string_pretty(value).map_err(|source| OutputError::Encode {
        path: path.to_owned(),
        source,
    })?;
    let write_error = |source| OutputError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".acbench-")
        .suffix(".json.tmp")
        .tempfile_in(dir)
        .map_err(write_error)?;
    std::io::Write::write_all(&mut tmp, (text + "\n").as_bytes()).map_err(write_error)?;
    tmp.persist(path).map_err(|e| write_error(e.error))?;
    Ok(())
}

/// Something wrong with an output folder.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The folder has no readable `suite.json`.
    #[error("{} is not a suite output folder (no {SUITE_META})", dir.display())]
    NotOutput {
        /// The folder.
        dir: PathBuf,
        /// Why the file cannot be read.
        #[source]
        source: std::io::Error,
    },
    /// `suite.json` is not what acbench writes.
    #[error("{}: not valid", path.display())]
    BadMeta {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        #[source]
        source: serde_json::Error,
    },
    /// The folder has no ledger.
    #[error("{}: no ledger ({LEDGER_FILE}) in this folder", dir.display())]
    NoLedger {
        /// The folder.
        dir: PathBuf,
    },
    /// A file cannot be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A value cannot be written as JSON.
    #[error("cannot write {} as JSON", path.display())]
    Encode {
        /// The file it was meant for.
        path: PathBuf,
        /// What the encoder said.
        #[source]
        source: serde_json::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips_through_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = SuiteMeta::of_sweep("s", Path::new("s.rhai"), vec!["k1".into()]);
        meta.write(dir.path()).expect("writes");
        let text = std::fs::read_to_string(dir.path().join(SUITE_META)).expect("file");
        assert!(text.ends_with("}\n"), "{text}");
        assert_eq!(SuiteMeta::read(dir.path()).expect("reads"), meta);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            left,
            [std::ffi::OsString::from(SUITE_META)],
            "no temporary file left"
        );
    }

    #[test]
    fn writers_racing_on_one_file_never_fail_or_leave_it_torn() {
        // As the shards of a suite all write suite.json when they start.
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = SuiteMeta::of_sweep("s", Path::new("s.rhai"), vec!["k".repeat(4000)]);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..25 {
                        meta.write(dir.path()).expect("every write succeeds");
                    }
                });
            }
        });
        assert_eq!(SuiteMeta::read(dir.path()).expect("reads"), meta);
    }

    #[test]
    fn a_folder_without_meta_or_ledger_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = SuiteMeta::read(dir.path()).expect_err("no meta");
        assert!(
            e.to_string()
                .ends_with("is not a suite output folder (no suite.json)"),
            "{e}"
        );
        std::fs::write(dir.path().join(SUITE_META), "{").expect("write");
        assert!(matches!(
            SuiteMeta::read(dir.path()),
            Err(OutputError::BadMeta { .. })
        ));
        let e = existing_ledger(dir.path()).expect_err("no ledger");
        assert!(
            e.to_string()
                .ends_with("no ledger (ledger.sqlite) in this folder")
        );
    }
}
