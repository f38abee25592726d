//! One writer per output folder: `OUT/.lock`, held with an exclusive
//! `flock` (std's [`File::try_lock`]) for as long as a suite, a sweep or a
//! merge writes `OUT/ledger.sqlite`. A second process on the same folder is
//! told which process holds it, and exits; the kernel releases the lock
//! when its holder exits, however it ends (a crash, `kill -9`), so a stale
//! lock file never blocks anyone. Shards (`--shard`) do not take it: each
//! writes its own ledger file under `OUT/shards/`.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock file in an output folder.
pub const LOCK_FILE: &str = ".lock";

/// Why the folder cannot be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "{} is in use by another acbench process{}; wait for it to finish or stop it, or give \
         another --out",
        dir.display(),
        holder.as_ref().map_or_else(String::new, |h| format!(" ({h})"))
    )]
    Held {
        /// The output folder.
        dir: PathBuf,
        /// What the holder wrote into the lock file (`pid 1234: acbench
        /// suite ...`), when it could be read.
        holder: Option<String>,
    },
    /// The lock file cannot be opened or locked.
    #[error("{}: cannot lock: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The held lock of an output folder; released when dropped (or when the
/// process ends).
#[derive(Debug)]
pub struct OutputLock {
    file: File,
    path: PathBuf,
}

impl OutputLock {
    /// Locks `dir` (created if needed) for `what` (`acbench suite
    /// suites/x.yaml`), or says who holds it.
    pub fn acquire(dir: &Path, what: &str) -> Result<Self, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let holder = file
                    .read_to_string(&mut text)
                    .ok()
                    .map(|_| text.trim().to_owned())
                    .filter(|t| !t.is_empty());
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    holder,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // Who holds it, for the next one to read.
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "pid {}: {what}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Self { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first makes it
        // immediate even if a descriptor leaked into a child.
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_told_who_has_the_folder_until_it_is_released() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let first = OutputLock::acquire(&out, "acbench suite a.yaml").expect("first");
        assert_eq!(first.path(), out.join(LOCK_FILE));
        let e = OutputLock::acquire(&out, "acbench suite b.yaml")
            .expect_err("held")
            .to_string();
        assert!(e.contains("is in use by another acbench process"), "{e}");
        assert!(
            e.contains(&format!(
                "(pid {}: acbench suite a.yaml)",
                std::process::id()
            )),
            "{e}"
        );
        drop(first);
        let again = OutputLock::acquire(&out, "acbench suite b.yaml").expect("released");
        let text = std::fs::read_to_string(again.path()).expect("read");
        assert!(text.ends_with("acbench suite b.yaml\n"), "{text}");
    }
}
