//! A suite spread over many processes: the plan of runs, its shards, and
//! one ledger file per shard and attempt.
//!
//! The plan is the sorted list of the keys to run. Shard `I/N` takes the
//! keys at positions `I`, `I + N`, `I + 2N`, ... of the plan: a slice that
//! depends on the plan alone, so every scheduler (a Slurm job array, a
//! Kubernetes Indexed Job, a shell loop) gets the same split. Keys are
//! hashes, so consecutive keys are unrelated runs and the slices are
//! balanced in expectation.
//!
//! No two processes write one SQLite file: each attempt of each shard
//! writes its own ledger, `OUT/shards/PLAN.I-of-N.attempt-AAA.sqlite`,
//! with a rollback journal (WAL needs the shared memory of one machine and
//! does not work over a network file system). An attempt starts from what
//! the output folder's ledger and the shard's earlier attempts hold for its
//! runs, so it skips finished runs and resumes an interrupted one from its
//! checkpoint (`OUT/checkpoints/KEY/`, shared by every shard).
//! `acbench merge OUT` folds the shard files into `OUT/ledger.sqlite`
//! ([`acbench_ledger::merge`]).

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use acbench_ledger::{Journal, Ledger, LedgerError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::output::{self, OutputError};

/// Shard `index` of `count` (`I/N`, `0 <= I < N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// From 0.
    pub index: usize,
    /// How many shards the plan is cut into.
    pub count: usize,
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<Self, ShardError> {
        let bad = |why: &str| ShardError::BadShard {
            text: text.to_owned(),
            why: why.to_owned(),
        };
        let (i, n) = text
            .split_once('/')
            .ok_or_else(|| bad("expected I/N, e.g. 0/4"))?;
        let index: usize = i
            .trim()
            .parse()
            .map_err(|_| bad("I is not a whole number"))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| bad("N is not a whole number"))?;
        if count == 0 {
            return Err(bad("N must be at least 1"));
        }
        if index >= count {
            return Err(bad("I counts from 0 and must be less than N"));
        }
        Ok(Self { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The runs to spread over shards: their keys, sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The suite's name.
    pub suite: String,
    /// Run keys, sorted, each once.
    pub keys: Vec<String>,
}

impl Plan {
    /// The plan of `keys` (sorted and made unique here).
    pub fn new(suite: &str, keys: impl IntoIterator<Item = String>) -> Self {
        let mut keys: Vec<String> = keys.into_iter().collect();
        keys.sort();
        keys.dedup();
        Self {
            suite: suite.to_owned(),
            keys,
        }
    }

    /// A short name for the plan: the first 12 hex digits of the SHA-256
    /// of its keys. Shard files carry it, so that the shards of two plans
    /// never share a file.
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        for k in &self.keys {
            h.update(k.as_bytes());
            h.update(b"\n");
        }
        hex::encode(h.finalize())[..12].to_owned()
    }

    /// The keys of `shard`: positions `index`, `index + count`, ...
    pub fn slice(&self, shard: Shard) -> Vec<&str> {
        self.keys
            .iter()
            .skip(shard.index)
            .step_by(shard.count)
            .map(String::as_str)
            .collect()
    }

    /// Reads a plan file.
    pub fn read(path: &Path) -> Result<Self, ShardError> {
        let text = std::fs::read_to_string(path).map_err(|source| ShardError::Io {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ShardError::BadPlan {
            path: path.to_owned(),
            source,
        })
    }

    /// Writes the plan file (atomically).
    pub fn write(&self, path: &Path) -> Result<(), OutputError> {
        output::write_json(path, self)
    }
}

/// The ledger files of one shard of one plan, one per attempt.
#[derive(Debug, Clone)]
pub struct ShardLedgers {
    dir: PathBuf,
    prefix: String,
}

impl ShardLedgers {
    /// Shard `shard` of `plan` in the output folder `out`.
    pub fn new(out: &Path, plan: &Plan, shard: Shard) -> Self {
        Self {
            dir: output::shards_dir(out),
            prefix: format!("{}.{}-of-{}.attempt-", plan.id(), shard.index, shard.count),
        }
    }

    /// The files of earlier attempts, in order.
    pub fn attempts(&self) -> Result<Vec<PathBuf>, ShardError> {
        let mut files: Vec<PathBuf> = acbench_ledger::merge::ledger_files(&self.dir)
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(Vec::new()),
                _ => Err(e),
            })
            .map_err(|source| ShardError::Io {
                path: self.dir.clone(),
                source,
            })?;
        files.retain(|f| {
            f.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&self.prefix))
        });
        Ok(files)
    }

    /// Claims the next attempt's file (created empty, so that no other
    /// process takes the same number) and returns its number and path.
    pub fn claim(&self) -> Result<(usize, PathBuf), ShardError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| ShardError::Io { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let mut attempt = self.attempts()?.len();
        loop {
            let path = self.dir.join(format!("{}{attempt:03}.sqlite", self.prefix));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(_) => return Ok((attempt, path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => attempt += 1,
                Err(e) => return Err(io(&path)(e)),
            }
        }
    }

    /// Opens a new attempt's ledger for the runs `keys`, holding what the
    /// output folder's ledger and the earlier attempts hold of them.
    pub fn open_attempt(&self, out: &Path, keys: &[&str]) -> Result<Attempt, ShardError> {
        let mut sources = Vec::new();
        let main = output::ledger_path(out);
        if main.exists() {
            sources.push(main);
        }
        sources.extend(self.attempts()?);
        let (number, path) = self.claim()?;
        let mut ledger = Ledger::open_with(&path, Journal::Rollback)?;
        let wanted: HashSet<&str> = keys.iter().copied().collect();
        ledger.merge_only(&sources, &|k| wanted.contains(k))?;
        Ok(Attempt { number, ledger })
    }
}

/// One attempt of a shard: its number (from 0) and its ledger.
#[derive(Debug)]
pub struct Attempt {
    /// 0 for the first attempt.
    pub number: usize,
    /// The attempt's own ledger file.
    pub ledger: Ledger,
}

/// What can go wrong with shards and plans.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// `--shard` is not `I/N`.
    #[error("--shard {text:?}: {why}")]
    BadShard {
        /// As given.
        text: String,
        /// What is wrong.
        why: String,
    },
    /// A plan file that is not one.
    #[error("{}: not a plan file", path.display())]
    BadPlan {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        #[source]
        source: serde_json::Error,
    },
    /// A file or folder cannot be read or written.
    #[error("{}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

#[cfg(test)]
mod tests;
