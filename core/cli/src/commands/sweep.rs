//! `acbench sweep FILE.rhai`: run a sweep script (acbench-sweep) on the
//! suite runner, with a suite's progress display, then leave a `suite.json`
//! so that `acbench report OUT` renders every run the sweep asked for.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use acbench_engine::activation::Registry;
use acbench_engine::plugin::PluginOptions;
use acbench_engine::train::{EpochMetrics, Observer};
use acbench_suite::runner::{Outcome, RunObserver, Runner};
use acbench_suite::{Catalog, RunSpec};
use acbench_sweep::{Limits, Summary, SweepObserver, SweepOptions};

use super::suite::{SUITE_META, SuiteMeta};
use crate::cli::SweepArgs;
use crate::progress::SuiteProgress;

/// Runs `acbench sweep`.
pub fn run(args: &SweepArgs) -> miette::Result<ExitCode> {
    let mut registry = Registry::discover(&PluginOptions::from_env(args.plugins.plugins.clone()))
        .map_err(miette::Report::msg)?;
    registry.set_fused(!args.no_fused);
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
    };
    let device = super::device(args.device)?;
    let runner = Runner::new(
        Arc::new(registry),
        device,
        args.data_dir.clone(),
        args.rerun,
    );
    println!("sweep {name} into {}", out_dir.display());
    let sweep = acbench_sweep::run(
        &options,
        catalog,
        runner,
        Box::new(SweepProgress::default()),
    );
    let s = &sweep.summary;
    if out_dir.is_dir() {
        let meta = SuiteMeta {
            name: sweep.name.clone(),
            file: args.file.display().to_string(),
            paper_tables: Vec::new(),
            deviations: Vec::new(),
            keys: s.keys.clone(),
        };
        super::write_json(&out_dir.join(SUITE_META), &meta)?;
    }
    println!(
        "sweep {}: {} runs ({} trained, {} replayed from {})",
        sweep.name,
        s.finished(),
        s.trained,
        s.replayed,
        out_dir.join(super::suite::LEDGER_FILE).display()
    );
    if !s.failed.is_empty() {
        eprintln!(
            "{} runs failed (kept in the ledger as failed):",
            s.failed.len()
        );
        for f in &s.failed {
            eprintln!("  {f}");
        }
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
    batch: Option<SuiteProgress>,
}

impl Observer for SweepProgress {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize, lr: f64) {
        if let Some(b) = &mut self.batch {
            b.epoch_start(epoch, epochs, batches, lr);
        }
    }

    fn batch_end(&mut self, epoch: usize, batch: usize, batches: usize, loss: f32) {
        if let Some(b) = &mut self.batch {
            b.batch_end(epoch, batch, batches, loss);
        }
    }

    fn epoch_end(&mut self, m: &EpochMetrics) {
        if let Some(b) = &mut self.batch {
            b.epoch_end(m);
        }
    }
}

impl RunObserver for SweepProgress {
    fn run_start(&mut self, spec: &RunSpec, index: usize, total: usize) {
        if let Some(b) = &mut self.batch {
            b.run_start(spec, index, total);
        }
    }
}

impl SweepObserver for SweepProgress {
    fn batch_start(&mut self, runs: usize) {
        self.batch = Some(SuiteProgress::new(runs));
    }

    fn run_end(&mut self, spec: &RunSpec, outcome: &Outcome, summary: &Summary) {
        // Off a terminal the suite display would print its own line for a
        // replayed run; the line below says it already.
        let trained = matches!(outcome, Outcome::Trained(_));
        if let Some(b) = &mut self.batch
            && (trained || std::io::stderr().is_terminal())
        {
            b.run_end(outcome);
        }
        let how = match outcome {
            Outcome::Replayed(_) => "from the ledger",
            Outcome::Trained(_) => "trained",
        };
        println!(
            "  [{} finished] {} / {} / {} / seed {}: {} ({how})",
            summary.finished(),
            spec.model.label,
            spec.activation.label,
            spec.optimizer,
            spec.train.seed.0,
            status_word(outcome)
        );
    }

    fn batch_done(&mut self) {
        if let Some(mut b) = self.batch.take() {
            b.finish();
        }
    }

    fn print(&mut self, line: &str) {
        println!("{line}");
    }
}

fn status_word(outcome: &Outcome) -> &'static str {
    use acbench_ledger::RunStatus;
    match outcome.status() {
        RunStatus::Finished => "finished",
        RunStatus::Diverged { .. } => "diverged",
        RunStatus::Failed { .. } => "failed",
        RunStatus::Running => "running",
    }
}
