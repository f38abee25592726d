//! `acbench suite FILE`: run a declared study into its ledger and report it
//! beside the paper; `--shard I/N` runs one shard of it ([`super::shard`]),
//! `--slurm` submits it to a cluster ([`super::slurm`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use acbench_engine::activation::Registry;
use acbench_ledger::{Ledger, RunStatus};
use acbench_suite::output::{self, LEDGER_FILE, SuiteMeta};
use acbench_suite::runner::{BatchError, Runner, Summary};
use acbench_suite::{Catalog, Suite};
use miette::IntoDiagnostic;
use tabled::settings::Style;
use tabled::{Table, Tabled};

use super::report;
use crate::cli::SuiteArgs;
use crate::progress::BatchProgress;
use crate::signals::Stop;

/// The exit status of a suite or shard stopped by a signal: its run is
/// recorded as interrupted and resumes when the command runs again
/// (EX_TEMPFAIL: try again later).
pub const EXIT_INTERRUPTED: u8 = 75;

/// Runs `acbench suite`.
pub fn run(args: &SuiteArgs) -> miette::Result<ExitCode> {
    let loaded = acbench_suite::read(&args.file, &args.sets).map_err(miette::Report::new)?;
    if !args.allow_plugins {
        let trusted = super::plugins::on_plugin_path()?;
        loaded
            .check_plugins_allowed(&trusted)
            .map_err(miette::Report::new)?;
    }
    let registry = super::plugins::training_registry(&args.activations, loaded.plugin_paths())?;
    let catalog = Catalog::from_registry(&registry);
    let suite = loaded
        .resolve(&catalog, args.out.as_deref())
        .map_err(miette::Report::new)?;

    if args.slurm.slurm {
        return super::slurm::submit(args, &suite);
    }
    if let Some(shard) = &args.shard {
        return super::shard::run(args, shard, &suite, registry);
    }
    if args.dry_run {
        print_matrix(&suite);
        if !args.no_estimate {
            print_estimate(&suite, &registry, args)?;
        }
        return Ok(ExitCode::SUCCESS);
    }

    std::fs::create_dir_all(&suite.out_dir)
        .into_diagnostic()
        .map_err(|e| e.wrap_err(format!("cannot create {}", suite.out_dir.display())))?;
    let _lock = acbench_suite::lock::OutputLock::acquire(
        &suite.out_dir,
        &format!("acbench suite {}", args.file.display()),
    )
    .map_err(miette::Report::msg)?;
    let meta = SuiteMeta::of_suite(&suite);
    meta.write(&suite.out_dir).into_diagnostic()?;
    let mut ledger =
        Ledger::open(&output::ledger_path(&suite.out_dir)).map_err(miette::Report::msg)?;

    println!(
        "suite {}: {} runs into {}",
        suite.name,
        suite.runs.len(),
        suite.out_dir.display()
    );
    let stop = Stop::install().into_diagnostic()?;
    let mut runner = runner(args, registry, &stop)?;
    let mut summary = Summary::default();
    let ran = runner.run_all(
        &mut ledger,
        &suite.runs,
        &mut BatchProgress::default(),
        &mut summary,
    );
    if let Some(code) = interrupted(ran)? {
        return Ok(code);
    }
    println!(
        "{} runs trained, {} already in the ledger",
        summary.trained, summary.replayed
    );

    report::render(&suite.out_dir, &meta, &ledger, args.no_plots)?;
    match summary.failures() {
        None => Ok(ExitCode::SUCCESS),
        Some(failures) => {
            eprintln!("{failures}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The runner of `acbench suite`, stopped by `stop`.
pub fn runner(args: &SuiteArgs, registry: Registry, stop: &Stop) -> miette::Result<Runner> {
    let mut runner = Runner::new(
        Arc::new(registry),
        super::device(args.env.device)?,
        args.env.data_dir.clone(),
        args.rerun,
    );
    runner.keep_checkpoints = args.keep_checkpoints;
    runner.stop = Some(Arc::clone(&stop.any));
    Ok(runner)
}

/// `None` when the batch ran through; the exit status when a signal
/// stopped it (said on stderr); the error otherwise.
pub fn interrupted<T>(ran: Result<T, BatchError>) -> miette::Result<Option<ExitCode>> {
    match ran {
        Ok(_) => Ok(None),
        Err(e @ BatchError::Interrupted { .. }) => {
            eprintln!("acbench: {e}; run the same command again to continue");
            Ok(Some(ExitCode::from(EXIT_INTERRUPTED)))
        }
        Err(e) => Err(miette::Report::msg(e)),
    }
}

fn print_matrix(suite: &Suite) {
    #[derive(Tabled)]
    struct Row {
        #[tabled(rename = "#")]
        index: usize,
        model: String,
        activation: String,
        optimizer: String,
        lr: String,
        seed: u64,
        epochs: usize,
        batch: usize,
        key: String,
    }
    let status = ledger_status(&output::ledger_path(&suite.out_dir));
    let rows: Vec<Row> = suite
        .runs
        .iter()
        .enumerate()
        .map(|(i, r)| Row {
            index: i + 1,
            model: r.model.label.clone(),
            activation: r.activation.label.clone(),
            optimizer: r.optimizer.clone(),
            lr: format!("{:e}", r.train.schedule.initial_lr()),
            seed: r.train.seed.0,
            epochs: r.train.epochs,
            batch: r.train.batch_size,
            key: match status.get(&r.key()) {
                Some(s) => format!("{} ({s})", r.short_key()),
                None => r.short_key(),
            },
        })
        .collect();
    println!(
        "suite {} ({} preset) on {}",
        suite.name,
        suite.preset,
        suite.runs.first().map_or("-", |r| r.dataset.name.as_str())
    );
    if let Some(d) = &suite.description {
        println!("{}", d.trim());
    }
    if !suite.paper_tables.is_empty() {
        println!(
            "reproduces the paper's {}",
            suite.paper_tables.join(" and ")
        );
    }
    let mut table = Table::new(rows);
    table.with(Style::psql());
    println!("{table}");
    let done = suite
        .runs
        .iter()
        .filter(|r| status.contains_key(&r.key()))
        .count();
    println!(
        "{} runs ({} already in {}); output: {}",
        suite.runs.len(),
        done,
        LEDGER_FILE,
        suite.out_dir.display()
    );
}

/// The estimated wall time per network and in all, and the disk the
/// ledger and checkpoints take.
fn print_estimate(suite: &Suite, registry: &Registry, args: &SuiteArgs) -> miette::Result<()> {
    use acbench_engine::memory::human as human_bytes;
    use acbench_suite::estimate::{self, EstimateOptions, human_duration};
    let ended: std::collections::HashSet<String> =
        ledger_status(&output::ledger_path(&suite.out_dir))
            .into_iter()
            .filter(|(_, s)| !matches!(s, RunStatus::Failed { .. }))
            .map(|(k, _)| k)
            .collect();
    let opts = EstimateOptions {
        registry,
        device: super::device(args.env.device)?,
        steps: 3,
        cache: estimate::default_cache(),
        recalibrate: args.recalibrate,
    };
    let est = estimate::estimate(&suite.runs, &ended, &opts, &mut |msg| eprintln!("{msg}"))
        .into_diagnostic()?;

    #[derive(Tabled)]
    struct Row {
        model: String,
        #[tabled(rename = "timed with")]
        activation: String,
        #[tabled(rename = "runs left")]
        runs: String,
        #[tabled(rename = "train batch")]
        train: String,
        #[tabled(rename = "eval batch")]
        eval: String,
        #[tabled(rename = "time left")]
        left: String,
        checkpoint: String,
        memory: String,
    }
    let rows: Vec<Row> = est
        .models
        .iter()
        .map(|m| Row {
            model: m.model.clone(),
            activation: m.activation.clone(),
            runs: format!("{}/{}", m.runs_left, m.runs),
            train: format!(
                "{:.3} s{}",
                m.calibration.train_batch_s,
                if m.cached { " (cached)" } else { "" }
            ),
            eval: format!("{:.3} s", m.calibration.eval_batch_s),
            left: m
                .seconds_left
                .map_or_else(|| "unknown dataset size".to_owned(), human_duration),
            checkpoint: human_bytes(m.checkpoint_bytes),
            memory: human_bytes(m.memory_bytes),
        })
        .collect();
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .unwrap_or_else(|| rayon::current_num_threads().to_string());
    println!(
        "\nestimate on this machine ({threads} threads, {}):",
        format!("{:?}", args.env.device).to_lowercase()
    );
    let mut table = Table::new(rows);
    table.with(Style::psql());
    println!("{table}");
    println!(
        "total: {} for {} runs left (one after another)",
        human_duration(est.seconds_left),
        est.models.iter().map(|m| m.runs_left).sum::<usize>()
    );
    println!(
        "disk: ledger about {}; checkpoints up to {} at a time ({} with --keep-checkpoints)",
        human_bytes(est.ledger_bytes),
        human_bytes(est.checkpoint_peak_bytes),
        human_bytes(est.checkpoint_kept_bytes)
    );
    let most = est.models.iter().map(|m| m.memory_bytes).max().unwrap_or(0);
    match acbench_engine::memory::available() {
        Some(a) => println!(
            "memory: up to {} per run to train (at least), {} available ({})",
            human_bytes(most),
            human_bytes(a.bytes),
            a.source
        ),
        None => println!(
            "memory: up to {} per run to train (at least)",
            human_bytes(most)
        ),
    }
    Ok(())
}

/// Ended runs already in a ledger (empty when there is none yet).
fn ledger_status(path: &Path) -> BTreeMap<String, RunStatus> {
    if !path.exists() {
        return BTreeMap::new();
    }
    let Ok(ledger) = Ledger::open(path) else {
        return BTreeMap::new();
    };
    ledger
        .runs()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.status.is_done())
        .map(|r| (r.key, r.status))
        .collect()
}
