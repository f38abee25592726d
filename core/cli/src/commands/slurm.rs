//! `acbench suite FILE --slurm`: the suite's unfinished runs as a Slurm
//! job array of shards, and a dependent job that merges their ledgers and
//! writes the report. Slurm schedules; acbench only writes the plan and
//! the scripts, submits them and remembers the job ids.
//!
//! ```text
//! OUT/slurm/
//!   plan-ID.json        the sorted keys to run (acbench_suite::shard::Plan)
//!   shards-ID.sbatch    the job array: `acbench suite ... --shard $SLURM_ARRAY_TASK_ID/N`
//!   merge-ID.sbatch     waits for requeued tasks, then `acbench merge OUT`
//!                       and `acbench report OUT`
//!   jobs.json           the last submission's job ids
//!   logs/               the jobs' output
//! ```

mod script;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use acbench_ledger::Ledger;
use acbench_suite::Suite;
use acbench_suite::output::{self, SuiteMeta};
use acbench_suite::shard::Plan;
use miette::IntoDiagnostic;
use serde::{Deserialize, Serialize};

use self::script::{Common, MergeScript, ShardScript, Word};
use crate::cli::{DeviceName, SuiteArgs};

/// Slurm's default `MaxArraySize`, assumed by `--dry-run` where
/// `scontrol` cannot tell.
const DEFAULT_MAX_ARRAY_SIZE: usize = 1001;

/// What `OUT/slurm/jobs.json` keeps of a submission.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Jobs {
    /// The job array's id.
    array: String,
    /// The merge job's id, if it was submitted.
    merge: Option<String>,
    /// The plan's id.
    plan: String,
    /// Array tasks.
    shards: usize,
}

/// Submits the suite (or, with `--dry-run`, writes what it would submit).
pub fn submit(args: &SuiteArgs, suite: &Suite) -> miette::Result<ExitCode> {
    std::fs::create_dir_all(&suite.out_dir)
        .into_diagnostic()
        .map_err(|e| e.wrap_err(format!("cannot create {}", suite.out_dir.display())))?;
    // Jobs run elsewhere, from another folder: every path is absolute.
    let out = absolute(&suite.out_dir)?;
    let dir = out.join("slurm");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)
        .into_diagnostic()
        .map_err(|e| e.wrap_err(format!("cannot create {}", logs.display())))?;
    let jobs_file = dir.join("jobs.json");

    if let Some(jobs) = read_jobs(&jobs_file) {
        let queued = queued(&jobs)?;
        if !queued.is_empty() {
            let ids = job_ids(&jobs);
            println!(
                "the jobs of an earlier submission are still in the queue ({}); nothing submitted.\n  watch:  squeue -j {}\n  cancel: scancel {}",
                queued.join(", "),
                ids.join(","),
                ids.join(" ")
            );
            return Ok(ExitCode::SUCCESS);
        }
    }

    SuiteMeta::of_suite(suite).write(&out).into_diagnostic()?;
    let ended = results(&out)?;
    let plan = Plan::new(
        &suite.name,
        suite
            .runs
            .iter()
            .map(|r| r.key())
            .filter(|k| !ended.contains(k)),
    );
    if plan.keys.is_empty() {
        println!(
            "all {} runs of suite {} have results in {}; nothing to submit",
            suite.runs.len(),
            suite.name,
            out.display()
        );
        if !super::merge::shard_files(&out)?.is_empty() {
            println!(
                "(to fold the shards' ledgers in and report: acbench merge {0} && acbench report {0})",
                out.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }

    let max_array = match max_array_size() {
        Ok(n) => n,
        Err(e) if args.dry_run => {
            eprintln!(
                "acbench: {e}; assuming Slurm's default MaxArraySize {DEFAULT_MAX_ARRAY_SIZE}"
            );
            DEFAULT_MAX_ARRAY_SIZE
        }
        Err(e) => return Err(e),
    };
    let asked = args.slurm.shards.unwrap_or(plan.keys.len());
    if asked == 0 {
        miette::bail!("--shards must be at least 1");
    }
    let shards = asked.min(plan.keys.len()).min(max_array);
    if shards < asked {
        println!(
            "{asked} shards asked; {shards} submitted ({} runs, MaxArraySize {max_array})",
            plan.keys.len()
        );
    }

    let id = plan.id();
    let plan_file = dir.join(format!("plan-{id}.json"));
    plan.write(&plan_file).into_diagnostic()?;
    let (shard_script, merge_script) = (
        dir.join(format!("shards-{id}.sbatch")),
        dir.join(format!("merge-{id}.sbatch")),
    );
    let exe = std::env::current_exe()
        .into_diagnostic()
        .map_err(|e| e.wrap_err("cannot locate the acbench executable"))?;
    let name = format!("acbench-{}", suite.name);
    let text = ShardScript {
        common: Common {
            name: name.clone(),
            partition: args.slurm.partition.as_deref(),
            extra: &args.slurm.sbatch_args,
        },
        shards,
        parallel: args.slurm.parallel,
        time: args.slurm.time.as_deref(),
        gres: args.slurm.gres.as_deref(),
        signal_before: args.slurm.signal_before,
        logs: &logs,
        command: shard_command(args, &exe, &out, &plan_file, shards)?,
    }
    .render();
    write(&shard_script, &text)?;
    let at_out = |command: &str| vec![Word::path(&exe), command.into(), Word::path(&out)];
    let mut report = at_out("report");
    if args.no_plots {
        report.push("--no-plots".into());
    }
    let text = MergeScript {
        common: Common {
            name: format!("{name}-merge"),
            partition: args.slurm.partition.as_deref(),
            extra: &args.slurm.sbatch_args,
        },
        logs: &logs,
        merge: at_out("merge"),
        report,
    }
    .render();
    write(&merge_script, &text)?;

    println!(
        "suite {}: {} of {} runs to do, in {shards} shards\n  plan:    {}\n  shards:  {}\n  merge:   {}",
        suite.name,
        plan.keys.len(),
        suite.runs.len(),
        plan_file.display(),
        shard_script.display(),
        merge_script.display()
    );
    if args.dry_run {
        println!(
            "dry run: nothing submitted. To submit by hand:\n  sbatch --parsable {}\n  sbatch --dependency=afterany:ARRAY_ID {} ARRAY_ID",
            shard_script.display(),
            merge_script.display()
        );
        return Ok(ExitCode::SUCCESS);
    }

    let array = sbatch(&[shard_script.as_os_str()])?;
    let mut jobs = Jobs {
        array: array.clone(),
        merge: None,
        plan: id,
        shards,
    };
    let dependency = format!("--dependency=afterany:{array}");
    let merged = sbatch(&[
        dependency.as_ref(),
        merge_script.as_os_str(),
        array.as_ref(),
    ]);
    if let Ok(m) = &merged {
        jobs.merge = Some(m.clone());
    }
    super::write_json(&jobs_file, &jobs)?;
    let merge = merged.map_err(|e| {
        e.wrap_err(format!(
            "job array {array} was submitted, the merge job was not; once the array ends: acbench merge {0} && acbench report {0}",
            out.display()
        ))
    })?;
    let ids = job_ids(&jobs);
    println!(
        "submitted job array {array} ({shards} tasks) and merge job {merge} (after the array ends)\n  watch:  squeue -j {}\n  logs:   {}\n  cancel: scancel {}\n  report: {} once job {merge} ends",
        ids.join(","),
        logs.display(),
        ids.join(" "),
        out.join("report.md").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// What each array task runs: this suite, shard `$SLURM_ARRAY_TASK_ID` of
/// `shards` of the plan, with the options that change what or how it
/// trains.
fn shard_command(
    args: &SuiteArgs,
    exe: &Path,
    out: &Path,
    plan: &Path,
    shards: usize,
) -> miette::Result<Vec<Word>> {
    let mut c = vec![
        Word::path(exe),
        "suite".into(),
        Word::path(&absolute(&args.file)?),
        "--out".into(),
        Word::path(out),
        "--shard".into(),
        Word::Shell(format!("\"${{SLURM_ARRAY_TASK_ID}}/{shards}\"")),
        "--plan".into(),
        Word::path(plan),
        "--requeue".into(),
    ];
    for s in &args.sets {
        c.extend(["--set".into(), Word::Literal(s.clone())]);
    }
    for p in &args.activations.plugins.plugins {
        c.extend(["--plugin".into(), Word::path(&absolute(p)?)]);
    }
    if args.activations.no_fused {
        c.push("--no-fused".into());
    }
    if let Some(d) = &args.env.data_dir {
        c.extend(["--data-dir".into(), Word::path(&absolute(d)?)]);
    }
    if args.env.device == DeviceName::Cuda {
        c.extend(["--device".into(), "cuda".into()]);
    }
    if args.keep_checkpoints {
        c.push("--keep-checkpoints".into());
    }
    if args.allow_plugins {
        c.push("--allow-plugins".into());
    }
    Ok(c)
}

/// Keys with a result (finished or diverged) in the output folder's ledger
/// or in any shard's: read only, so that nothing changes before the jobs
/// run.
fn results(out: &Path) -> miette::Result<HashSet<String>> {
    let mut files = super::merge::shard_files(out)?;
    let main = output::ledger_path(out);
    if main.exists() {
        files.push(main);
    }
    let mut keys = HashSet::new();
    for f in &files {
        let ledger = Ledger::open_read_only(f).map_err(miette::Report::msg)?;
        for r in ledger.runs().map_err(miette::Report::msg)? {
            if r.status.is_result() {
                keys.insert(r.key);
            }
        }
    }
    Ok(keys)
}

fn job_ids(jobs: &Jobs) -> Vec<String> {
    std::iter::once(jobs.array.clone())
        .chain(jobs.merge.clone())
        .collect()
}

fn read_jobs(path: &Path) -> Option<Jobs> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// The jobs of `jobs` still in Slurm's queue, as `ID STATE`.
fn queued(jobs: &Jobs) -> miette::Result<Vec<String>> {
    let ids = job_ids(jobs);
    // All jobs, filtered here: `squeue -j` fails on ids that have left the queue.
    let listing = run_slurm("squeue", &["--noheader", "--format=%F %i %T"])?;
    Ok(listing
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (array, id, state) = (fields.next()?, fields.next()?, fields.next()?);
            ids.iter()
                .any(|j| j == array)
                .then(|| format!("{id} {state}"))
        })
        .collect())
}

/// The cluster's `MaxArraySize` (`scontrol show config`): array indices
/// go up to one less.
fn max_array_size() -> miette::Result<usize> {
    let config = run_slurm("scontrol", &["show", "config"])?;
    config
        .lines()
        .find_map(|l| {
            let (key, value) = l.split_once('=')?;
            (key.trim() == "MaxArraySize").then(|| value.trim().parse().ok())?
        })
        .ok_or_else(|| miette::miette!("scontrol show config does not give MaxArraySize"))
}

/// Submits a script; returns the job id (`sbatch --parsable` prints
/// `ID` or `ID;CLUSTER`).
fn sbatch(args: &[&std::ffi::OsStr]) -> miette::Result<String> {
    let mut all: Vec<&std::ffi::OsStr> = vec!["--parsable".as_ref()];
    all.extend_from_slice(args);
    let out = run_slurm("sbatch", &all)?;
    let id = out.trim().split(';').next().unwrap_or_default().to_owned();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        miette::bail!("sbatch printed {:?}, not a job id", out.trim());
    }
    Ok(id)
}

/// How long a Slurm client may take: with an unreachable controller they
/// retry for about a minute before failing.
const CLIENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Runs a Slurm client; its stdout, or an error with its stderr. A client
/// that has not answered within [`CLIENT_TIMEOUT`] is killed.
fn run_slurm<S: AsRef<std::ffi::OsStr>>(program: &str, args: &[S]) -> miette::Result<String> {
    use std::io::Read;
    let mut child = Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            miette::miette!(
                "cannot run {program}: {e} (is this a Slurm login node, with the Slurm clients on PATH?)"
            )
        })?;
    // Read on threads, so that a long listing never fills a pipe while
    // this thread waits.
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let start = std::time::Instant::now();
    let status = loop {
        match child.try_wait().into_diagnostic()? {
            Some(status) => break status,
            None if start.elapsed() > CLIENT_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                miette::bail!(
                    "{program} did not answer within {} s (is the Slurm controller up? SLURM_CONF={})",
                    CLIENT_TIMEOUT.as_secs(),
                    std::env::var("SLURM_CONF").unwrap_or_else(|_| "not set".into())
                );
            }
            None => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    };
    let (stdout, stderr) = (
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    );
    if !status.success() {
        miette::bail!("{program} failed ({status}): {}", stderr.trim());
    }
    Ok(stdout)
}

fn absolute(p: &Path) -> miette::Result<PathBuf> {
    std::path::absolute(p)
        .into_diagnostic()
        .map_err(|e| e.wrap_err(format!("cannot make {} absolute", p.display())))
}

fn write(path: &Path, text: &str) -> miette::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .into_diagnostic()
        .map_err(|e| e.wrap_err(format!("cannot write {}", path.display())))
}
