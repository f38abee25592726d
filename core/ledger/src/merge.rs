//! Folding ledgers into one: the shard files of a suite spread over a
//! cluster into the output folder's ledger ([`Ledger::merge_from`]).
//!
//! A run is kept once, by its key. A result (finished or diverged) wins
//! over a run that has not ended well (running, interrupted, failed); of
//! two such runs the one with more epochs wins, the later file on a tie.
//! Two results for one key must be the same results (every number but the
//! wall times, which differ from machine to machine): training is
//! deterministic, so anything else means two different programs or data
//! wrote them, and the merge stops with an error naming both files. The
//! merge is idempotent: merging the same files again changes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{Transaction, params};

use crate::{EpochRecord, Ledger, LedgerError, Result, RunStatus, StoredRun, write_epoch};

/// What [`Ledger::merge_from`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Files read.
    pub files: usize,
    /// Runs the ledger did not have.
    pub added: usize,
    /// Runs the ledger had without a result (or with fewer epochs) that a
    /// file had ended or taken further.
    pub updated: usize,
    /// Runs read from the files that the ledger already had as they are,
    /// or further.
    pub unchanged: usize,
}

/// Which of two runs with one key to keep.
enum Keep {
    Current,
    New,
    /// Both are results and they differ: what differs.
    Conflict(String),
}

impl Ledger {
    /// Folds the runs of the ledger files `files` (read only, in the order
    /// given) into this ledger, in one transaction. See the [module
    /// docs](self) for which run is kept.
    pub fn merge_from(&mut self, files: &[PathBuf]) -> Result<MergeReport> {
        self.merge_only(files, &|_| true)
    }

    /// [`Ledger::merge_from`] for the runs whose key `wanted` takes only.
    pub fn merge_only(
        &mut self,
        files: &[PathBuf],
        wanted: &dyn Fn(&str) -> bool,
    ) -> Result<MergeReport> {
        let mut kept: BTreeMap<String, (StoredRun, PathBuf, bool)> = self
            .runs()?
            .into_iter()
            .map(|r| (r.key.clone(), (r, self.path.clone(), false)))
            .collect();
        let had: Vec<String> = kept.keys().cloned().collect();
        let mut report = MergeReport {
            files: files.len(),
            ..MergeReport::default()
        };
        for file in files {
            for run in Ledger::open_read_only(file)?.runs()? {
                if !wanted(&run.key) {
                    continue;
                }
                let Some((current, current_file, changed)) = kept.get_mut(&run.key) else {
                    kept.insert(run.key.clone(), (run, file.clone(), true));
                    continue;
                };
                match keep(current, &run) {
                    Keep::Current => report.unchanged += 1,
                    Keep::New => {
                        *current = run;
                        *current_file = file.clone();
                        *changed = true;
                    }
                    Keep::Conflict(what) => {
                        return Err(LedgerError::Conflict {
                            key: run.key,
                            first: current_file.clone(),
                            second: file.clone(),
                            what,
                        });
                    }
                }
            }
        }
        let path = self.path.clone();
        let err = |source| LedgerError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        for (key, (run, _, changed)) in &kept {
            if !changed {
                continue;
            }
            put_run(&tx, run).map_err(err)?;
            if had.binary_search(key).is_ok() {
                report.updated += 1;
            } else {
                report.added += 1;
            }
        }
        tx.commit().map_err(err)?;
        Ok(report)
    }
}

fn keep(current: &StoredRun, new: &StoredRun) -> Keep {
    let difference = differs(current, new);
    match (current.status.is_result(), new.status.is_result()) {
        (true, true) => difference.map_or(Keep::Current, Keep::Conflict),
        (true, false) => Keep::Current,
        (false, true) => Keep::New,
        (false, false) if difference.is_some() && new.epochs.len() >= current.epochs.len() => {
            Keep::New
        }
        (false, false) => Keep::Current,
    }
}

/// The first difference between the results of two runs with one key, or
/// `None` when they hold the same results: labels, spec, status and every
/// number of every epoch, all but the wall times (and the manifest, which
/// names the machine).
pub fn differs(a: &StoredRun, b: &StoredRun) -> Option<String> {
    if a.labels != b.labels {
        return Some("their labels differ".to_owned());
    }
    if a.spec != b.spec {
        return Some("their specs differ".to_owned());
    }
    if a.status != b.status {
        return Some(format!("one is {} and the other {}", a.status, b.status));
    }
    if a.epochs.len() != b.epochs.len() {
        return Some(format!(
            "one has {} epochs and the other {}",
            a.epochs.len(),
            b.epochs.len()
        ));
    }
    a.epochs
        .iter()
        .zip(&b.epochs)
        .find_map(|(x, y)| epoch_differs(x, y))
}

fn epoch_differs(a: &EpochRecord, b: &EpochRecord) -> Option<String> {
    let same = |x: f64, y: f64| x.to_bits() == y.to_bits();
    let numbers = [
        ("lr", a.lr, b.lr),
        ("train_loss", a.train_loss, b.train_loss),
        ("train_acc", a.train_acc, b.train_acc),
        ("test_loss", a.test_loss, b.test_loss),
        ("test_acc", a.test_acc, b.test_acc),
    ];
    let at = |what: &str| format!("epoch {} {what}", a.epoch + 1);
    if let Some((name, x, y)) = numbers.into_iter().find(|&(_, x, y)| !same(x, y)) {
        return Some(at(&format!("{name} is {x} in one and {y} in the other")));
    }
    let params = |e: &EpochRecord| {
        e.act_params
            .iter()
            .flat_map(|p| p.values.iter().map(|v| v.to_bits()))
            .collect::<Vec<_>>()
    };
    if a.act_params.len() != b.act_params.len() || params(a) != params(b) {
        return Some(at("activation parameters differ"));
    }
    let increments = |e: &EpochRecord| {
        e.weight_increments
            .iter()
            .map(|(l, n)| (l.clone(), n.to_bits()))
            .collect::<Vec<_>>()
    };
    if increments(a) != increments(b) {
        return Some(at("weight increments differ"));
    }
    let steps = |e: &EpochRecord| {
        e.step_losses
            .iter()
            .map(|&(s, l)| (s, l.to_bits()))
            .collect::<Vec<_>>()
    };
    if steps(a) != steps(b) {
        return Some(at("loss curves differ"));
    }
    let detection = |e: &EpochRecord| {
        let metrics = e.detection.iter().map(|(m, v)| (m.clone(), v.to_bits()));
        let curve = e.pr_curve.iter().map(|p| (String::new(), p.to_bits()));
        metrics.chain(curve).collect::<Vec<_>>()
    };
    (detection(a) != detection(b)).then(|| at("detection scores differ"))
}

/// Writes `run` as it is, epochs and all, in place of any run with its key.
fn put_run(tx: &Transaction<'_>, run: &StoredRun) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM runs WHERE key = ?1", params![run.key])?;
    let (error, diverged) = match &run.status {
        RunStatus::Failed { error } => (Some(error.as_str()), None),
        RunStatus::Diverged { epoch, cause } => (cause.as_deref(), Some(*epoch as i64)),
        _ => (None, None),
    };
    let l = &run.labels;
    tx.execute(
        "INSERT INTO runs (key, suite, model, activation, optimizer, dataset, seed, spec, manifest,
                           status, error, diverged_epoch, attempts, started_at, finished_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        params![
            run.key,
            l.suite,
            l.model,
            l.activation,
            l.optimizer,
            l.dataset,
            l.seed as i64,
            run.spec.to_string(),
            run.manifest.to_string(),
            run.status.to_string(),
            error,
            diverged,
            i64::from(run.attempts),
            run.started_at,
            run.finished_at,
        ],
    )?;
    for e in &run.epochs {
        write_epoch(tx, &run.key, e)?;
    }
    Ok(())
}

/// The ledger files in `dir` (`*.sqlite`), sorted by name.
pub fn ledger_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "sqlite") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests;
