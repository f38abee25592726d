//! What the process holds, for soak tests and for users watching a long
//! suite: with `$ACBENCH_RESOURCE_LOG=FILE`, each run's end appends one line
//! `runs=N rss_kb=K fds=F threads=T` (resident memory, open file
//! descriptors and threads of this process, from `/proc/self`). Nothing is
//! written when the variable is unset.

use std::io::Write;

use acbench_suite::runner::Summary;

/// The variable naming the log file.
pub const RESOURCE_LOG_ENV: &str = "ACBENCH_RESOURCE_LOG";

/// This process's resident memory in KiB and its thread count, from
/// `/proc/self/status` (`None` where there is no procfs).
fn status() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("Threads:")?))
}

/// Appends a line for the run that just ended (module docs).
pub fn log_run_end(summary: &Summary) {
    let Some(path) = std::env::var_os(RESOURCE_LOG_ENV) else {
        return;
    };
    let Some((rss, threads)) = status() else {
        return;
    };
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    let line = format!(
        "runs={} rss_kb={rss} fds={fds} threads={threads}\n",
        summary.finished() + summary.failed.len()
    );
    // A log that cannot be written must not stop the suite.
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}
