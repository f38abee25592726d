//! The memory this process may use, and a check that a dataset fits in it
//! before its buffer is allocated: a file or folder too big for memory is
//! an error with the figures, not an allocation failure (an abort) or the
//! kernel's OOM killer. The training side (`acbench_engine::memory`) uses
//! the same probe.
//!
//! The memory available is the smallest of the cgroup's limit less its
//! usage (v2 `memory.max`, v1 `memory.limit_in_bytes`), `MemAvailable` of
//! `/proc/meminfo`, and `$ACBENCH_MEMORY_LIMIT` (bytes, for tests and for
//! users who want a tighter cap).

use std::path::Path;

use crate::DataError;

/// The variable that caps the memory acbench plans for, in bytes.
pub const LIMIT_ENV: &str = "ACBENCH_MEMORY_LIMIT";

/// Bytes as people read them: `46.7 GiB`, `12.0 MiB`, `512 B`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// The memory this process may use, and what said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Available {
    /// Bytes.
    pub bytes: u64,
    /// `MemAvailable`, `cgroup memory.max`, `$ACBENCH_MEMORY_LIMIT`.
    pub source: &'static str,
}

/// The memory available now (module docs), or `None` where nothing tells.
pub fn available() -> Option<Available> {
    let mut found: Vec<Available> = Vec::new();
    if let Some(b) = std::env::var(LIMIT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        found.push(Available {
            bytes: b,
            source: "$ACBENCH_MEMORY_LIMIT",
        });
    }
    if let Ok(text) = std::fs::read_to_string("/proc/meminfo")
        && let Some(kib) = meminfo_available(&text)
    {
        found.push(Available {
            bytes: kib.saturating_mul(1024),
            source: "MemAvailable",
        });
    }
    let read = |p: &str| std::fs::read_to_string(p).ok();
    if let Some(limit) =
        read("/sys/fs/cgroup/memory.max").and_then(|t| t.trim().parse::<u64>().ok())
    {
        let used = read("/sys/fs/cgroup/memory.current")
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0);
        found.push(Available {
            bytes: limit.saturating_sub(used),
            source: "the cgroup's memory.max",
        });
    } else if let Some(limit) = read("/sys/fs/cgroup/memory/memory.limit_in_bytes")
        .and_then(|t| t.trim().parse::<u64>().ok())
        .filter(|&l| l < (1 << 60))
    {
        let used = read("/sys/fs/cgroup/memory/memory.usage_in_bytes")
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0);
        found.push(Available {
            bytes: limit.saturating_sub(used),
            source: "the cgroup's memory.limit_in_bytes",
        });
    }
    found.into_iter().min_by_key(|a| a.bytes)
}

/// `MemAvailable` of `/proc/meminfo` text, in KiB.
fn meminfo_available(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Refuses to hold `bytes` of `what` (read from `path`) in memory when
/// more than the memory [`available`] now is asked for.
pub fn ensure(path: &Path, what: &str, bytes: u64) -> Result<(), DataError> {
    ensure_against(path, what, bytes, available().as_ref())
}

/// [`ensure`] against a given figure (`None`: nothing is known, so nothing
/// is refused).
pub fn ensure_against(
    path: &Path,
    what: &str,
    bytes: u64,
    available: Option<&Available>,
) -> Result<(), DataError> {
    match available {
        Some(avail) if bytes > avail.bytes => Err(DataError::TooBig {
            path: path.to_path_buf(),
            message: format!(
                "{what} need {} of memory, but {} is available ({})",
                human(bytes),
                human(avail.bytes),
                avail.source
            ),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_and_human_sizes() {
        let text = "MemTotal:       24000000 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(meminfo_available(text), Some(20_000_000));
        assert_eq!(human(512), "512 B");
        assert_eq!(human(50_176_000_000), "46.7 GiB");
    }

    #[test]
    fn a_buffer_over_the_limit_is_refused_with_figures() {
        let avail = Available {
            bytes: 1 << 30,
            source: "MemAvailable",
        };
        let e = ensure_against(Path::new("/data/x"), "3 images", 3 << 30, Some(&avail))
            .expect_err("refused")
            .to_string();
        assert_eq!(
            e,
            "/data/x: 3 images need 3.0 GiB of memory, but 1.0 GiB is available (MemAvailable)"
        );
        assert!(ensure_against(Path::new("/x"), "a byte", 1, Some(&avail)).is_ok());
        assert!(ensure_against(Path::new("/x"), "a lot", u64::MAX, None).is_ok());
    }
}
