//! A damaged ledger is an error, never an empty ledger: an existing file of
//! zero bytes (except a shard's attempt file, which is reserved empty
//! before it is opened with [`crate::Journal::Rollback`]), a file SQLite
//! calls corrupt or not a database, and a file whose `PRAGMA quick_check`
//! finds problems are refused on open
//! ([`LedgerError::Corrupt`]), so that a suite does not train everything
//! again over the remains of its results. [`check`] is `acbench ledger
//! check`: the full `PRAGMA integrity_check` and what the file holds.

use std::path::Path;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::{LedgerError, Result, RunStatus};

/// SQLite's error, as [`LedgerError::Corrupt`] when it says the file is
/// damaged.
pub(crate) fn classify(path: &Path, source: rusqlite::Error) -> LedgerError {
    match source.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => LedgerError::Corrupt {
            path: path.to_owned(),
            detail: source.to_string(),
        },
        Some(ErrorCode::DiskFull | ErrorCode::SystemIoFailure) => LedgerError::Write {
            path: path.to_owned(),
            source,
        },
        _ => LedgerError::Sqlite {
            path: path.to_owned(),
            source,
        },
    }
}

/// Whether `path` exists; an existing empty file is refused (SQLite would
/// take it for a new, empty database).
pub(crate) fn refuse_empty(path: &Path) -> Result<bool> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() == 0 => Err(LedgerError::Corrupt {
            path: path.to_owned(),
            detail: "the file is empty (truncated?)".into(),
        }),
        Ok(_) => Ok(true),
        Err(_) => Ok(false),
    }
}

/// The problems `PRAGMA pragma` reports (`["ok"]` when none), at most
/// `limit`.
fn pragma_check(conn: &Connection, path: &Path, pragma: &str, limit: usize) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare(&format!("PRAGMA {pragma}({limit})"))
        .map_err(|e| classify(path, e))?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(|e| classify(path, e))?;
    rows.collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| classify(path, e))
}

/// `PRAGMA quick_check` on open: refuses a damaged file.
pub(crate) fn quick_check(conn: &Connection, path: &Path) -> Result<()> {
    let problems = pragma_check(conn, path, "quick_check", 5)?;
    if problems == ["ok"] {
        return Ok(());
    }
    Err(LedgerError::Corrupt {
        path: path.to_owned(),
        detail: problems.join("; "),
    })
}

/// What `acbench ledger check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// `PRAGMA integrity_check`'s problems (empty when none).
    pub problems: Vec<String>,
    /// Runs by status word (`finished`, `failed`, ...), sorted.
    pub runs: Vec<(String, usize)>,
    /// Epochs recorded.
    pub epochs: usize,
}

impl CheckReport {
    /// Whether the file passed.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks the ledger at `path` without changing it: the full integrity
/// check, then (when it passes) its runs and epochs.
pub fn check(path: &Path) -> Result<CheckReport> {
    if !path.is_file() {
        return Err(LedgerError::Corrupt {
            path: path.to_owned(),
            detail: "there is no such file".into(),
        });
    }
    refuse_empty(path)?;
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| classify(path, e))?;
    let problems = match pragma_check(&conn, path, "integrity_check", 100) {
        Ok(p) if p == ["ok"] => Vec::new(),
        Ok(p) => p,
        Err(LedgerError::Corrupt { detail, .. }) => vec![detail],
        Err(e) => return Err(e),
    };
    if !problems.is_empty() {
        return Ok(CheckReport {
            problems,
            runs: Vec::new(),
            epochs: 0,
        });
    }
    let ledger = crate::Ledger::open_read_only(path)?;
    let runs = ledger.runs()?;
    let mut by_status: Vec<(String, usize)> = Vec::new();
    let mut epochs = 0;
    for r in &runs {
        epochs += r.epochs.len();
        let word = status_word(&r.status);
        match by_status.iter_mut().find(|(w, _)| *w == word) {
            Some((_, n)) => *n += 1,
            None => by_status.push((word, 1)),
        }
    }
    by_status.sort();
    Ok(CheckReport {
        problems,
        runs: by_status,
        epochs,
    })
}

fn status_word(s: &RunStatus) -> String {
    s.to_string()
        .split(':')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ledger;

    fn ledger_with_a_table(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("ledger.sqlite");
        let ledger = Ledger::open(&path).expect("new");
        drop(ledger);
        path
    }

    #[test]
    fn an_empty_file_is_damaged_not_a_new_ledger() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.sqlite");
        std::fs::write(&path, b"").expect("empty");
        let e = Ledger::open(&path)
            .map(|_| ())
            .expect_err("refused")
            .to_string();
        assert!(
            e.contains("is damaged: the file is empty (truncated?)"),
            "{e}"
        );
        assert_eq!(std::fs::metadata(&path).expect("still there").len(), 0);
    }

    #[test]
    fn an_overwritten_file_is_refused_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = ledger_with_a_table(dir.path());
        let good = check(&path).expect("check");
        assert!(
            good.ok() && good.runs.is_empty() && good.epochs == 0,
            "{good:?}"
        );
        let mut bytes = std::fs::read(&path).expect("read");
        for b in bytes.iter_mut().skip(200).take(3000) {
            *b = 0xa5;
        }
        std::fs::write(&path, &bytes).expect("write");
        let e = Ledger::open(&path)
            .map(|_| ())
            .expect_err("refused")
            .to_string();
        assert!(e.contains("is damaged"), "{e}");
        assert!(e.contains("acbench ledger check"), "{e}");
        let report = check(&path);
        match report {
            Ok(r) => assert!(!r.ok(), "{r:?}"),
            Err(e) => assert!(e.to_string().contains("is damaged"), "{e}"),
        }
        // Not a database at all.
        std::fs::write(&path, vec![b'x'; 8192]).expect("write");
        let e = Ledger::open(&path)
            .map(|_| ())
            .expect_err("refused")
            .to_string();
        assert!(e.contains("is damaged: file is not a database"), "{e}");
    }
}
