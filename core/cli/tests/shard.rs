//! A suite spread over processes as any scheduler would run it: `acbench
//! suite --shard I/N` into shard ledgers, `acbench merge`, the scripts
//! `--slurm --dry-run` writes run by bash as Slurm would run them, and a
//! shard stopped by SIGUSR1 that resumes in its next attempt. Every spread
//! run must equal a local run of the same suite, number for number.

mod common;

use std::path::{Path, PathBuf};

use acbench_ledger::{Ledger, RunStatus};
use common::{acbench, acbench_process, assert_same_ledgers, fashion_dir, spawn_until_held};
use predicates::prelude::*;

fn write_suite(dir: &Path) -> PathBuf {
    common::write_two_by_two_suite(dir, "spread")
}

fn suite(file: &Path, out: &Path, data: &Path) -> assert_cmd::Command {
    let mut cmd = acbench();
    cmd.arg("suite")
        .arg(file)
        .arg("--out")
        .arg(out)
        .arg("--data-dir")
        .arg(data)
        .arg("--no-plots");
    cmd
}

fn local_run(file: &Path, data: &Path) -> PathBuf {
    let out = data.join("local");
    suite(file, &out, data).assert().success();
    out
}

#[test]
fn shards_merged_equal_a_local_run_and_merging_again_changes_nothing() {
    let data = fashion_dir(96, 32);
    let file = write_suite(data.path());
    let local = local_run(&file, data.path());
    let out = data.path().join("spread");
    // Three shards of four runs: 2, 1 and 1.
    for (i, runs) in [(0, 2), (1, 1), (2, 1)] {
        suite(&file, &out, data.path())
            .args(["--shard", &format!("{i}/3")])
            .assert()
            .success()
            .stdout(predicate::str::contains(format!("shard {i}/3 of plan")))
            .stdout(predicate::str::contains(format!(
                "({runs} of its 4 runs), attempt 0"
            )));
    }
    assert!(
        !out.join("ledger.sqlite").exists(),
        "shards write only their own files"
    );
    let merge = || acbench().arg("merge").arg(&out).assert().success();
    merge()
        .stdout(predicate::str::contains("merged 3 shard ledgers into"))
        .stdout(predicate::str::contains(
            "4 runs added, 0 updated, 0 already there",
        ))
        .stdout(predicate::str::contains(
            "the ledger holds 4 runs: 4 finished",
        ));
    merge().stdout(predicate::str::contains(
        "0 runs added, 0 updated, 4 already there",
    ));
    assert_same_ledgers(&local.join("ledger.sqlite"), &out.join("ledger.sqlite"));
    acbench()
        .arg("report")
        .arg(&out)
        .arg("--no-plots")
        .assert()
        .success();
    assert!(out.join("report.md").is_file());

    // A shard run again skips its finished runs, in a new attempt file.
    suite(&file, &out, data.path())
        .args(["--shard", "0/3"])
        .assert()
        .success()
        .stdout(predicate::str::contains("attempt 1"))
        .stdout(predicate::str::contains("0 runs trained, 2 already ended"));
}

#[test]
fn bad_shards_and_plans_are_refused_with_the_reason() {
    let data = fashion_dir(96, 32);
    let file = write_suite(data.path());
    let out = data.path().join("out");
    suite(&file, &out, data.path())
        .args(["--shard", "3/3"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--shard \"3/3\": I counts from 0"));
    let plan = data.path().join("plan.json");
    std::fs::write(&plan, r#"{"suite": "spread", "keys": ["0000"]}"#).expect("plan");
    suite(&file, &out, data.path())
        .args(["--shard", "0/1", "--plan"])
        .arg(&plan)
        .assert()
        .failure()
        .stderr(predicate::str::contains("run 0000 is not a run of"));
    acbench()
        .arg("merge")
        .arg(data.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains("is not a suite output folder"));
}

#[test]
fn the_dry_run_scripts_run_under_bash_as_slurm_would_run_them() {
    let data = fashion_dir(96, 32);
    let file = write_suite(data.path());
    let local = local_run(&file, data.path());
    let out = data.path().join("cluster");
    // A cluster whose MaxArraySize is 2 and whose queue is empty (stand-in
    // clients: the real ones are the Slurm test's).
    let bin = data.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    for (client, text) in [
        ("scontrol", "echo 'MaxArraySize            = 2'"),
        ("squeue", "true"),
    ] {
        let path = bin.join(client);
        std::fs::write(&path, format!("#!/bin/sh\n{text}\n")).expect("client");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let dry = suite(&file, &out, data.path())
        .args(["--slurm", "--dry-run", "--shards", "3", "--time", "1:00:00"])
        .args(["--sbatch-arg=--mem=1G"])
        .env("PATH", &path)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "3 shards asked; 2 submitted (4 runs, MaxArraySize 2)",
        ))
        .stdout(predicate::str::contains("4 of 4 runs to do, in 2 shards"))
        .stdout(predicate::str::contains("dry run: nothing submitted"));
    let stdout = String::from_utf8_lossy(&dry.get_output().stdout).into_owned();
    let path_after = |label: &str| {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no {label} in {stdout}"));
        PathBuf::from(line.trim_start()[label.len()..].trim())
    };
    let (shards, merge) = (path_after("shards:"), path_after("merge:"));
    let text = std::fs::read_to_string(&shards).expect("script");
    for part in [
        "#SBATCH --array=0-1\n",
        "#SBATCH --signal=B:USR1@300\n",
        "#SBATCH --time=1:00:00\n",
        "#SBATCH --mem=1G\n",
        "--shard \"${SLURM_ARRAY_TASK_ID}/2\" --plan ",
        " --requeue --data-dir ",
    ] {
        assert!(text.contains(part), "{part:?} not in\n{text}");
    }
    assert!(!out.join("slurm/jobs.json").exists(), "nothing submitted");
    for task in 0..2 {
        let status = std::process::Command::new("bash")
            .arg(&shards)
            .env("SLURM_ARRAY_TASK_ID", task.to_string())
            .env("RAYON_NUM_THREADS", "2")
            .env_remove("ACBENCH_DATA")
            .stdout(std::process::Stdio::null())
            .status()
            .expect("bash");
        assert!(status.success(), "task {task}");
    }
    let status = std::process::Command::new("bash")
        .arg(&merge)
        .arg("999999")
        .env("PATH", &path)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("bash");
    assert!(status.success(), "merge script");
    assert_same_ledgers(&local.join("ledger.sqlite"), &out.join("ledger.sqlite"));
    assert!(out.join("report.md").is_file(), "the merge job reports");
    // Everything has a result now: a new submission has nothing to do.
    suite(&file, &out, data.path())
        .args(["--slurm", "--dry-run"])
        .env("PATH", &path)
        .assert()
        .success()
        .stdout(predicate::str::contains("nothing to submit"));
}

#[test]
fn a_shard_stopped_by_usr1_is_interrupted_and_its_next_attempt_resumes_it() {
    let data = fashion_dir(96, 32);
    let file = write_suite(data.path());
    let local = local_run(&file, data.path());
    let out = data.path().join("stopped");
    // Shard 0/2 holds runs 0 and 1 of the plan; the first is held in its
    // second epoch (after the checkpoint of the first), then gets SIGUSR1.
    let mut cmd = acbench_process();
    cmd.env("ACBENCH_TEST_HOLD", "0:1:1")
        .arg("suite")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .arg("--data-dir")
        .arg(data.path())
        .args(["--no-plots", "--shard", "0/2", "--requeue"])
        .env_remove("SLURM_JOB_ID");
    let mut child = spawn_until_held(cmd);
    let code = common::signal_and_wait(&mut child, "USR1");
    assert_eq!(code, Some(75), "interrupted: try again later");

    let shards = out.join("shards");
    let first = acbench_ledger::merge::ledger_files(&shards).expect("files");
    assert_eq!(first.len(), 1);
    let runs = Ledger::open_read_only(&first[0])
        .expect("ledger")
        .runs()
        .expect("runs");
    assert_eq!(runs.len(), 1, "the second run never started");
    assert_eq!(runs[0].status, RunStatus::Interrupted);
    assert_eq!(runs[0].epochs.len(), 1);
    let key = runs[0].key.clone();
    assert!(
        out.join("checkpoints")
            .join(&key)
            .join("checkpoint.json")
            .is_file()
    );

    let resumed = suite(&file, &out, data.path())
        .args(["--shard", "0/2"])
        .assert()
        .success()
        .stdout(predicate::str::contains("attempt 1"));
    let text = String::from_utf8_lossy(&resumed.get_output().stdout).into_owned()
        + &String::from_utf8_lossy(&resumed.get_output().stderr);
    assert!(
        text.contains(&format!(
            "resuming run {} from its checkpoint at epoch 2",
            &key[..12]
        )),
        "{text}"
    );
    suite(&file, &out, data.path())
        .args(["--shard", "1/2"])
        .assert()
        .success();
    acbench().arg("merge").arg(&out).assert().success();
    assert_same_ledgers(&local.join("ledger.sqlite"), &out.join("ledger.sqlite"));
    assert!(
        !out.join("checkpoints").join(&key).exists(),
        "deleted once finished"
    );
}
