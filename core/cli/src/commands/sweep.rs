//! `acbench sweep FILE.rhai`: run a sweep script (acbench-sweep) on the
//! suite runner, with a suite's progress display, then leave a `suite.json`
//! so that `acbench report OUT` renders every run the sweep asked for.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use acbench_engine::train::{EpochMetrics, Observer};
use acbench_suite::output::{self, SuiteMeta};
use acbench_suite::runner::{BatchObserver, Outcome, RunObserver, Runner, Summary};
use acbench_suite::{Catalog, RunSpec};
use acbench_sweep::{Limits, SweepObserver, SweepOptions};
use miette::IntoDiagnostic;

use crate::cli::SweepArgs;
use crate::progress::BatchProgress;

/// Runs `acbench sweep`.
pub fn run(args: &SweepArgs) -> miette::Result<ExitCode> {
    let registry = super::plugins::training_registry(&args.activations, Vec::new())?;
    let catalog = Catalog::from_registry(&registry);
    let name = args
        .file
        .file_stem()
        .map_or_else(|| "sweep".to_owned(), |s| s.to_string_lossy().into_owned());
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("results/sweeps").join(&name));
    let mut limits = Limits::default();
    if let Some(n) = args.max_operations {
        limits.max_operations = n;
    }
    let options = SweepOptions {
        script: args.file.clone(),
        out_dir: out_dir.clone(),
        sets: args.sets.clone(),
        max_seconds: args.max_seconds,
        limits,
        allow_read: args.allow_read.clone(),
    };
    let device = super::device(args.env.device)?;
    let runner = Runner::new(
        Arc::new(registry),
        device,
        args.env.data_dir.clone(),
        args.rerun,
    );
    let _lock = acbench_suite::lock::OutputLock::acquire(
        &out_dir,
        &format!("acbench sweep {}", args.file.display()),
    )
    .map_err(miette::Report::msg)?;
    println!("sweep {name} into {}", out_dir.display());
    let sweep = acbench_sweep::run(
        &options,
        catalog,
        runner,
        Box::new(SweepProgress::default()),
    );
    let s = &sweep.summary;
    if out_dir.is_dir() {
        SuiteMeta::of_sweep(&sweep.name, &args.file, s.keys.clone())
            .write(&out_dir)
            .into_diagnostic()?;
    }
    println!(
        "sweep {}: {} runs ({} trained, {} replayed from {})",
        sweep.name,
        s.finished(),
        s.trained,
        s.replayed,
        output::ledger_path(&out_dir).display()
    );
    if let Some(failures) = s.failures() {
        eprintln!("{failures}");
    }
    sweep.result.map_err(miette::Report::new)?;
    Ok(if s.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A suite's progress display per `run`/`runs` batch, plus a line per
/// ended run with how many the sweep has finished so far.
#[derive(Default)]
struct SweepProgress {
    batch: BatchProgress,
}

impl Observer for SweepProgress {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize, lr: f64) {
        self.batch.epoch_start(epoch, epochs, batches, lr);
    }

    fn batch_end(&mut self, epoch: usize, batch: usize, batches: usize, loss: f32) {
        self.batch.batch_end(epoch, batch, batches, loss);
    }

    fn epoch_end(&mut self, m: &EpochMetrics) {
        self.batch.epoch_end(m);
    }
}

impl RunObserver for SweepProgress {
    fn run_start(&mut self, spec: &RunSpec, index: usize, total: usize) {
        self.batch.run_start(spec, index, total);
    }
}

impl BatchObserver for SweepProgress {
    fn batch_start(&mut self, runs: usize) {
        self.batch.batch_start(runs);
    }

    fn run_end(&mut self, spec: &RunSpec, outcome: &Outcome, summary: &Summary) {
        // Off a terminal the suite display would print its own line for a
        // replayed run; the line below says it already.
        let trained = matches!(outcome, Outcome::Trained(_));
        if trained || std::io::stderr().is_terminal() {
            self.batch.run_end(spec, outcome, summary);
        }
        let how = match outcome {
            Outcome::Replayed(_) => "from the ledger",
            Outcome::Trained(_) => "trained",
        };
        println!(
            "  [{} finished] {}: {} ({how})",
            summary.finished(),
            spec.label(),
            outcome.status()
        );
    }

    fn batch_done(&mut self) {
        self.batch.batch_done();
    }
}

impl SweepObserver for SweepProgress {
    fn print(&mut self, line: &str) {
        println!("{line}");
    }
}
