//! The folders a sweep may read: the script's own folder and those the user
//! adds with `--allow-read`. A sweep is code from someone else; it cannot
//! open files itself (rhai has no file access), but every path it hands to
//! acbench (a suite file, a model file, a dataset given by path) is read,
//! hashed and parsed, and parse errors quote lines. So each such path must
//! lie under one of these folders, after `..` and symbolic links are
//! resolved.

use std::path::{Component, Path, PathBuf};

use crate::SweepError;
use crate::error::CallError;

/// Canonical folders a sweep may read from.
#[derive(Debug, Clone)]
pub(crate) struct ReadRoots {
    roots: Vec<PathBuf>,
}

impl ReadRoots {
    /// The script's folder and every `--allow-read` folder, each of which
    /// must exist.
    pub(crate) fn new(script: &Path, allowed: &[PathBuf]) -> Result<Self, SweepError> {
        let dir = match script.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut roots = Vec::with_capacity(allowed.len() + 1);
        let canonical = |p: &Path, what: &str| {
            p.canonicalize().map_err(|source| SweepError::Read {
                what: what.to_owned(),
                path: p.to_path_buf(),
                source,
            })
        };
        roots.push(canonical(dir, "the sweep's folder")?);
        for a in allowed {
            roots.push(canonical(a, "--allow-read")?);
        }
        Ok(Self { roots })
    }

    /// Refuses `path` (named by the script's `key`) unless it lies under a
    /// root. A path that does not exist yet is judged by its nearest
    /// existing ancestor, so `missing/../../x` cannot step out either.
    pub(crate) fn check(&self, key: &str, path: &Path) -> Result<(), CallError> {
        let real = resolve(path);
        if self.roots.iter().any(|r| real.starts_with(r)) {
            return Ok(());
        }
        let roots = self
            .roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        Err(CallError::Script(format!(
            "`{key}`: the sweep may not read {}: a sweep reads only files under its own folder \
             and the folders given with --allow-read ({roots}); pass --allow-read {} if you \
             trust this script with that folder",
            path.display(),
            real.parent().unwrap_or(&real).display(),
        )))
    }
}

/// `path` made absolute with `..` and symbolic links resolved: the
/// canonical form of its longest existing ancestor, followed by the rest
/// with `.` and `..` applied by hand (nothing in the rest exists, so no
/// link can hide in it). By hand because `std::fs::canonicalize` needs the
/// whole path to exist, and the path-cleaning crates (`path-clean`,
/// `normpath`) work on the text alone, which a link defeats.
fn resolve(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            for c in rest.iter().rev() {
                match c {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::Normal(n) => out.push(n),
                    _ => {}
                }
            }
            return out;
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                existing = parent;
            }
            // Nothing of it exists, not even the root: judge it as written.
            _ => return absolute,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(dir: &Path) -> ReadRoots {
        ReadRoots::new(&dir.join("s.rhai"), &[]).expect("roots")
    }

    #[test]
    fn files_under_the_scripts_folder_are_allowed() {
        let tmp = tempfile::tempdir().expect("tmp");
        std::fs::create_dir(tmp.path().join("models")).expect("dir");
        std::fs::write(tmp.path().join("models/m.acnet"), "").expect("file");
        let r = roots(tmp.path());
        r.check("model", &tmp.path().join("models/m.acnet"))
            .expect("inside");
        r.check("model", &tmp.path().join("models/not-yet.acnet"))
            .expect("inside, missing");
        r.check("model", &tmp.path().join("models/../models/./m.acnet"))
            .expect("inside after ..");
    }

    #[test]
    fn escapes_are_refused_with_the_key_and_the_way_out() {
        let tmp = tempfile::tempdir().expect("tmp");
        let sweeps = tmp.path().join("sweeps");
        std::fs::create_dir(&sweeps).expect("dir");
        std::fs::write(tmp.path().join("secret"), "").expect("file");
        let r = roots(&sweeps);
        for path in [
            tmp.path().join("secret"),
            sweeps.join("../secret"),
            sweeps.join("missing/../../secret"),
            sweeps.join("missing/../../../etc/passwd"),
            PathBuf::from("/etc/passwd"),
        ] {
            let e = r
                .check("models[0]", &path)
                .expect_err("outside")
                .to_string();
            assert!(e.starts_with("`models[0]`: the sweep may not read"), "{e}");
            assert!(e.contains("--allow-read"), "{e}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(tmp.path().join("secret"), sweeps.join("link"))
                .expect("link");
            r.check("model", &sweeps.join("link"))
                .expect_err("a link pointing out");
        }
        let wider =
            ReadRoots::new(&sweeps.join("s.rhai"), &[tmp.path().to_path_buf()]).expect("roots");
        wider
            .check("model", &tmp.path().join("secret"))
            .expect("allowed with --allow-read");
    }

    #[test]
    fn a_missing_allow_read_folder_is_an_error() {
        let tmp = tempfile::tempdir().expect("tmp");
        let e = ReadRoots::new(&tmp.path().join("s.rhai"), &[tmp.path().join("nope")])
            .expect_err("missing")
            .to_string();
        assert!(e.contains("--allow-read") && e.contains("nope"), "{e}");
    }
}
