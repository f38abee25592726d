//! `acbench merge OUT`: fold the ledgers of a suite's shards into the
//! output folder's ledger.

use std::path::Path;
use std::process::ExitCode;

use acbench_ledger::{Ledger, MergeReport};
use acbench_suite::output::{self, SuiteMeta};
use miette::IntoDiagnostic;

use crate::cli::MergeArgs;

/// Runs `acbench merge`.
pub fn run(args: &MergeArgs) -> miette::Result<ExitCode> {
    // Only an output folder is merged into, never a folder mistyped.
    SuiteMeta::read(&args.dir).into_diagnostic()?;
    let _lock = acbench_suite::lock::OutputLock::acquire(&args.dir, "acbench merge")
        .map_err(miette::Report::msg)?;
    let files = shard_files(&args.dir)?;
    if files.is_empty() {
        println!(
            "no shard ledgers in {}: nothing to merge",
            output::shards_dir(&args.dir).display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let path = output::ledger_path(&args.dir);
    let mut ledger = Ledger::open(&path).map_err(miette::Report::msg)?;
    let report = ledger.merge_from(&files).map_err(miette::Report::msg)?;
    let MergeReport {
        files,
        added,
        updated,
        unchanged,
    } = report;
    println!(
        "merged {files} shard ledgers into {}: {added} runs added, {updated} updated, {unchanged} already there",
        path.display()
    );
    let runs = ledger.runs().map_err(miette::Report::msg)?;
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for r in &runs {
        *counts.entry(r.status.to_string()).or_default() += 1;
    }
    let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    println!(
        "the ledger holds {} runs: {}",
        runs.len(),
        counts.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// The shard ledgers of the output folder `out`, in name order (none when
/// it has no shards folder).
pub fn shard_files(out: &Path) -> miette::Result<Vec<std::path::PathBuf>> {
    let dir = output::shards_dir(out);
    if !dir.exists() {
        return Ok(Vec::new());
    }
    acbench_ledger::merge::ledger_files(&dir)
        .into_diagnostic()
        .map_err(|e| e.wrap_err(format!("cannot list {}", dir.display())))
}
