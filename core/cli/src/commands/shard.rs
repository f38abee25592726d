//! `acbench suite FILE --shard I/N`: one shard of a suite, into a ledger of
//! its own (see `acbench_suite::shard`).

use std::collections::HashMap;
use std::process::ExitCode;

use acbench_engine::activation::Registry;
use acbench_suite::output::{self, SuiteMeta};
use acbench_suite::runner::Summary;
use acbench_suite::shard::{Plan, Shard, ShardLedgers};
use acbench_suite::{RunSpec, Suite};
use miette::IntoDiagnostic;

use super::suite::{interrupted, runner};
use crate::cli::SuiteArgs;
use crate::progress::BatchProgress;
use crate::signals::Stop;

/// Runs shard `shard` (`I/N`) of the suite.
pub fn run(
    args: &SuiteArgs,
    shard: &str,
    suite: &Suite,
    registry: Registry,
) -> miette::Result<ExitCode> {
    let shard: Shard = shard.parse().map_err(miette::Report::msg)?;
    let by_key: HashMap<String, &RunSpec> = suite.runs.iter().map(|r| (r.key(), r)).collect();
    let plan = match &args.plan {
        Some(path) => {
            let plan = Plan::read(path).map_err(miette::Report::msg)?;
            if let Some(stray) = plan.keys.iter().find(|k| !by_key.contains_key(*k)) {
                miette::bail!(
                    "{}: run {stray} is not a run of {} as resolved now (its file, models or --set changed since the plan was written); submit the suite again",
                    path.display(),
                    args.file.display()
                );
            }
            plan
        }
        None => Plan::new(&suite.name, by_key.keys().cloned()),
    };
    let keys = plan.slice(shard);
    let specs: Vec<RunSpec> = keys.iter().map(|k| by_key[*k].clone()).collect();

    let out = &suite.out_dir;
    std::fs::create_dir_all(out)
        .into_diagnostic()
        .map_err(|e| e.wrap_err(format!("cannot create {}", out.display())))?;
    SuiteMeta::of_suite(suite).write(out).into_diagnostic()?;
    let files = ShardLedgers::new(out, &plan, shard);
    let mut attempt = files
        .open_attempt(out, &keys)
        .map_err(miette::Report::msg)?;
    println!(
        "suite {}: shard {shard} of plan {} ({} of its {} runs), attempt {} into {}",
        suite.name,
        plan.id(),
        specs.len(),
        plan.keys.len(),
        attempt.number,
        attempt.ledger.path().display()
    );

    let stop = Stop::install().into_diagnostic()?;
    let mut runner = runner(args, registry, &stop)?;
    runner.checkpoint_root = Some(output::checkpoint_root(out));
    let mut summary = Summary::default();
    let ran = runner.run_all(
        &mut attempt.ledger,
        &specs,
        &mut BatchProgress::default(),
        &mut summary,
    );
    if let Some(code) = interrupted(ran)? {
        if args.requeue && stop.by_usr1() {
            requeue();
        }
        return Ok(code);
    }
    println!(
        "{} runs trained, {} already ended",
        summary.trained, summary.replayed
    );
    match summary.failures() {
        None => Ok(ExitCode::SUCCESS),
        Some(failures) => {
            eprintln!("{failures}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `scontrol requeue $SLURM_JOB_ID`: the job goes back to the queue and
/// its next start resumes the interrupted run. Said on stderr either way.
fn requeue() {
    let Ok(job) = std::env::var("SLURM_JOB_ID") else {
        eprintln!("acbench: --requeue: not in a Slurm job (no SLURM_JOB_ID); not requeued");
        return;
    };
    match std::process::Command::new("scontrol")
        .args(["requeue", &job])
        .output()
    {
        Ok(o) if o.status.success() => eprintln!("acbench: requeued Slurm job {job}"),
        Ok(o) => eprintln!(
            "acbench: scontrol requeue {job} failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => eprintln!("acbench: cannot run scontrol requeue {job}: {e}"),
    }
}
