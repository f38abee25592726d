//! `acbench suite --slurm` against a real single-node Slurm cluster,
//! started by `scripts/slurm-local.sh` (Debian's slurm-wlm and munge, no
//! systemd; it needs root) in a temporary folder and stopped, by PID, when
//! the test ends however it ends.
//!
//! A 2x2 suite of two epochs on tiny generated data goes to Slurm as 4
//! array tasks and a merge job. One task is held mid-run and gets SIGUSR1
//! (as Slurm sends before a time limit); it records its run as
//! interrupted, requeues itself, and its next attempt resumes from the
//! checkpoint. The merged ledger must equal a local run's, number for
//! number; a submission while the jobs are queued, and one after they end,
//! submit nothing.
//!
//! Ignored by default; CI runs it:
//! `cargo test -p acbench --test slurm -- --ignored`.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{acbench, assert_same_ledgers, fashion_dir, repo_root};
use predicates::prelude::*;

/// A running cluster, stopped when dropped.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
}

impl Cluster {
    fn start() -> Self {
        // slurmd's socket path must stay short: a folder right under /tmp.
        let dir = PathBuf::from(format!("/tmp/acb-slurm-{}", std::process::id()));
        let out = Command::new(script())
            .arg("start")
            .arg(&dir)
            .output()
            .expect("run scripts/slurm-local.sh");
        let cluster = Cluster {
            conf: dir.join("slurm.conf"),
            dir,
        };
        assert!(
            out.status.success(),
            "slurm-local.sh start failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    /// A Slurm client or acbench with this cluster's configuration.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// Whether any job of these ids (array or plain) is still queued.
    fn queued(&self, ids: &[&str]) -> bool {
        let out = self
            .command("squeue")
            .args(["--noheader", "--format=%F"])
            .output()
            .expect("squeue");
        assert!(out.status.success(), "squeue failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| ids.contains(&l.trim()))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let out = Command::new(script()).arg("stop").arg(&self.dir).output();
        if let Ok(o) = out
            && !o.status.success()
        {
            eprintln!(
                "slurm-local.sh stop failed:\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}

fn script() -> PathBuf {
    repo_root().join("scripts/slurm-local.sh")
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The id after `word` in `text` ("job array 12", "merge job 13").
fn id_after<'t>(text: &'t str, word: &str) -> &'t str {
    let rest = &text[text
        .find(word)
        .unwrap_or_else(|| panic!("no {word:?} in {text}"))
        + word.len()..];
    rest.split_whitespace().next().expect("an id")
}

#[test]
#[ignore = "needs root and Debian's slurm-wlm and munge; CI runs it"]
fn a_suite_runs_on_slurm_survives_a_requeue_and_equals_a_local_run() {
    let cluster = Cluster::start();
    let data = fashion_dir(96, 32);
    let file = common::write_two_by_two_suite(data.path(), "cluster");
    let local = data.path().join("local");
    // One thread on both sides: the last bits of a run can depend on the
    // thread count (how the products are split), not on where it runs.
    acbench()
        .env("RAYON_NUM_THREADS", "1")
        .arg("suite")
        .arg(&file)
        .arg("--out")
        .arg(&local)
        .arg("--data-dir")
        .arg(data.path())
        .arg("--no-plots")
        .assert()
        .success();

    let out = data.path().join("cluster");
    let once = data.path().join("held-once");
    let submit = || {
        let mut cmd = assert_cmd::Command::cargo_bin("acbench").expect("binary");
        cmd.env("SLURM_CONF", &cluster.conf)
            .env("RAYON_NUM_THREADS", "1")
            // Inherited by the jobs (sbatch exports the environment): the
            // first task to reach epoch 2, batch 2 of its first run holds
            // there until a signal, once.
            .env("ACBENCH_TEST_HOLD", "0:1:1")
            .env("ACBENCH_TEST_HOLD_ONCE", &once)
            .arg("suite")
            .arg(&file)
            .arg("--out")
            .arg(&out)
            .arg("--data-dir")
            .arg(data.path())
            .args(["--slurm", "--shards", "4"]);
        cmd
    };
    let first = submit().assert().success();
    let stdout = String::from_utf8_lossy(&first.get_output().stdout).into_owned();
    assert!(
        stdout.contains("4 of 4 runs to do, in 4 shards"),
        "{stdout}"
    );
    let array = id_after(&stdout, "job array ").to_owned();
    let merge = id_after(&stdout, "merge job ").to_owned();

    // Queued or running: a second submission submits nothing.
    submit()
        .assert()
        .success()
        .stdout(predicate::str::contains("still in the queue"))
        .stdout(predicate::str::contains("nothing submitted"));

    // The held task gets SIGUSR1, as before a time limit.
    let logs = out.join("slurm/logs");
    let mut held_task = None;
    wait_for("a task held", Duration::from_secs(120), || {
        held_task = (0..4).find(|t| {
            std::fs::read_to_string(logs.join(format!("shard-{array}_{t}.out")))
                .is_ok_and(|s| s.contains("held for a test"))
        });
        held_task.is_some()
    });
    let task = held_task.expect("held");
    // scancel's own exit status is not the test: when the job requeues
    // itself while scancel still watches it, scancel waits and then exits
    // with Slurm's "already completing" (2021 & 0xff = 229), though the
    // signal was delivered. The task's log says what happened.
    cluster
        .command("scancel")
        .args(["--signal=USR1", "--batch", &format!("{array}_{task}")])
        .output()
        .expect("scancel");
    let log_file = logs.join(format!("shard-{array}_{task}.out"));
    wait_for("the held task requeued", Duration::from_secs(60), || {
        std::fs::read_to_string(&log_file).is_ok_and(|s| s.contains("requeued Slurm job"))
    });
    wait_for("every job ended", Duration::from_secs(240), || {
        !cluster.queued(&[&array, &merge])
    });
    let log = std::fs::read_to_string(&log_file).expect("log");
    for part in [
        "recorded as interrupted",
        "requeued Slurm job",
        "attempt 1",
        "resuming run",
    ] {
        assert!(
            log.contains(part),
            "{part:?} not in the held task's log:\n{log}"
        );
    }
    let merge_log =
        std::fs::read_to_string(logs.join(format!("merge-{merge}.out"))).expect("merge log");
    assert!(merge_log.contains("4 runs added"), "{merge_log}");
    assert_same_ledgers(&local.join("ledger.sqlite"), &out.join("ledger.sqlite"));
    assert!(out.join("report.md").is_file(), "the merge job reports");

    // Every run has a result: nothing is submitted again.
    submit()
        .assert()
        .success()
        .stdout(predicate::str::contains("nothing to submit"));
}
