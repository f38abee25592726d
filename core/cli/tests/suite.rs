//! `acbench suite` and `acbench report` end to end, on tiny generated
//! Fashion-MNIST files: the ledger, resume after a real SIGKILL, reports.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use acbench_ledger::{Ledger, RunStatus};
use common::{acbench, fashion_dir, model};
use predicates::prelude::*;

/// A suite of `runs / 2` activations x 2 seeds on the convnet.
fn write_suite(dir: &Path, activations: &[&str], epochs: usize) -> PathBuf {
    write_suite_on(dir, "fashion-mnist", activations, epochs)
}

fn write_suite_on(dir: &Path, dataset: &str, activations: &[&str], epochs: usize) -> PathBuf {
    let path = dir.join("tiny.yaml");
    let text = format!(
        "name: tiny\npaper_table: table1\ndataset: {{name: {dataset}, limit_train: 192, limit_test: 64}}\n\
         models: [{}]\nactivations: [{}]\nlr: 0.05\nepochs: {epochs}\nbatch_size: 32\nseeds: [0, 1]\n",
        model("convnet.acnet").display(),
        activations.join(", ")
    );
    std::fs::write(&path, text).expect("suite");
    path
}

/// `acbench suite SUITE --out OUT --data-dir DATA [extra...]`.
fn suite_cmd(suite: &Path, out: &Path, data: &Path, extra: &[&str]) -> assert_cmd::Command {
    let mut cmd = acbench();
    cmd.arg("suite")
        .arg(suite)
        .arg("--out")
        .arg(out)
        .arg("--data-dir")
        .arg(data)
        .args(extra);
    cmd
}

fn finished_accuracies(out: &Path) -> Vec<(String, u32, f64)> {
    let ledger = Ledger::open(&out.join("ledger.sqlite")).expect("ledger");
    ledger
        .runs()
        .expect("runs")
        .into_iter()
        .map(|r| {
            assert_eq!(
                r.status,
                RunStatus::Finished,
                "{}: {:?}",
                r.labels.activation,
                r.status
            );
            let acc = r.epochs.last().expect("epochs").test_acc;
            (r.key, r.attempts, acc)
        })
        .collect()
}

#[test]
fn suite_writes_ledger_exports_and_plots_and_resumes() {
    let data = fashion_dir(192, 64);
    let suite = write_suite(data.path(), &["relu", "arelu"], 2);
    let out = data.path().join("out");
    let run = || suite_cmd(&suite, &out, data.path(), &[]).assert().success();
    run()
        .stdout(predicate::str::contains(
            "4 runs trained, 0 already in the ledger",
        ))
        .stdout(predicate::str::contains("table1"))
        .stdout(predicate::str::contains("arelu"));
    for file in [
        "ledger.sqlite",
        "suite.json",
        "report.md",
        "report.csv",
        "report.json",
        "report.tex",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let plots = std::fs::read_dir(out.join("plots"))
        .expect("plots dir")
        .count();
    assert!(
        plots >= 3,
        "loss, convergence-area and shape plots, found {plots}"
    );
    let first = finished_accuracies(&out);
    assert_eq!(first.len(), 4);

    // Running again replays every run from the ledger.
    run().stdout(predicate::str::contains(
        "0 runs trained, 4 already in the ledger",
    ));
    assert_eq!(finished_accuracies(&out), first);

    // `acbench report DIR` renders the same tables from the folder alone.
    acbench()
        .arg("report")
        .arg(&out)
        .arg("--no-plots")
        .assert()
        .success()
        .stdout(predicate::str::contains("relu"));
}

#[test]
fn killed_suite_continues_without_redoing_finished_runs() {
    let data = fashion_dir(192, 64);
    let suite = write_suite(data.path(), &["relu", "tanh", "arelu"], 3);
    let out = data.path().join("killed");
    let ledger_path = out.join("ledger.sqlite");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("acbench"))
        .env("RAYON_NUM_THREADS", "2")
        .arg("suite")
        .arg(&suite)
        .arg("--out")
        .arg(&out)
        .arg("--data-dir")
        .arg(data.path())
        .arg("--no-plots")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn acbench");
    // Wait until some runs have finished and another is under way, then SIGKILL.
    let start = Instant::now();
    let finished_before = loop {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "suite made no progress"
        );
        assert!(
            child.try_wait().expect("poll").is_none(),
            "suite ended before it could be killed"
        );
        let finished = Ledger::open(&ledger_path)
            .ok()
            .and_then(|l| l.runs().ok())
            .map(|runs| {
                let done: Vec<String> = runs
                    .iter()
                    .filter(|r| r.status == RunStatus::Finished)
                    .map(|r| r.key.clone())
                    .collect();
                let running = runs.iter().any(|r| r.status == RunStatus::Running);
                (done, running)
            });
        if let Some((done, true)) = finished
            && done.len() >= 2
        {
            break done;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");

    suite_cmd(&suite, &out, data.path(), &["--no-plots"])
        .assert()
        .success();
    let resumed = finished_accuracies(&out);
    assert_eq!(resumed.len(), 6);
    for (key, attempts, _) in &resumed {
        if finished_before.contains(key) {
            assert_eq!(
                *attempts, 1,
                "a run finished before the kill was trained again"
            );
        }
    }
    assert!(
        resumed.iter().any(|(_, attempts, _)| *attempts == 2),
        "the interrupted run was restarted"
    );

    // The same suite, never interrupted, gives the same numbers.
    let clean = data.path().join("clean");
    suite_cmd(&suite, &clean, data.path(), &["--no-plots"])
        .assert()
        .success();
    let strip = |v: Vec<(String, u32, f64)>| {
        v.into_iter()
            .map(|(k, _, acc)| (k, acc))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(finished_accuracies(&clean)), strip(resumed));
    assert_eq!(
        std::fs::read_to_string(clean.join("report.csv")).expect("clean csv"),
        std::fs::read_to_string(out.join("report.csv")).expect("resumed csv"),
        "the final table equals that of an uninterrupted run"
    );
}

#[test]
fn bad_suites_fail_before_training_with_file_line_and_key() {
    let data = fashion_dir(32, 16);
    let cases = [
        (
            "dataset: fashion-mnist\nmodels: [MODEL]\nactivations: [relu]\nepochs: 1\nepoch: 2\n",
            "bad.yaml:5:1",
            "unknown field `epoch`",
        ),
        (
            "dataset: fashion-mnist\nmodels: [MODEL]\nactivations: [relu]\nepochs: [1]\n",
            "bad.yaml:4:9",
            "",
        ),
        (
            "dataset: fashion-mnist\nmodels:\n  - missing.acnet\nactivations: [relu]\nepochs: 1\n",
            "bad.yaml:3:5",
            "`models[0]`",
        ),
        (
            "dataset: fashion-mnist\nmodels: [MODEL]\nactivations:\n  - relu\n  - relux\nepochs: 1\n",
            "bad.yaml:5:5",
            "unknown activation `relux`",
        ),
    ];
    for (text, location, what) in cases {
        let path = data.path().join("bad.yaml");
        std::fs::write(
            &path,
            text.replace("MODEL", &model("convnet.acnet").display().to_string()),
        )
        .expect("write");
        let out = data.path().join("never");
        suite_cmd(&path, &out, data.path(), &[])
            .assert()
            .failure()
            .stderr(predicate::str::contains(location))
            .stderr(predicate::str::contains(what))
            .stderr(predicate::str::contains("panicked").not());
        assert!(!out.exists(), "nothing may be written for a bad suite");
    }
}

#[test]
fn dry_run_lists_the_matrix() {
    acbench()
        .arg("suite")
        .arg(common::repo_root().join("suites/cifar100.yaml"))
        .arg("--dry-run")
        .assert()
        .success()
        .stdout(predicate::str::contains("99 runs"))
        .stdout(predicate::str::contains("vgg-v"))
        .stdout(predicate::str::contains("table3 and table4"));
}

#[test]
fn failed_runs_are_kept_and_retried() {
    // MNIST (unlike Fashion-MNIST) has no Debian location that the machine
    // may have, so an empty data dir really lacks it.
    let data = fashion_dir(64, 32);
    let suite = write_suite_on(data.path(), "mnist", &["relu"], 1);
    let out = data.path().join("out");
    let empty = tempfile::tempdir().expect("tempdir");
    // No dataset where it is looked for: every run fails, the suite goes on,
    // records the failures and exits non-zero.
    suite_cmd(&suite, &out, empty.path(), &["--no-plots"])
        .env("XDG_CACHE_HOME", empty.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains("2 runs failed"))
        .stderr(predicate::str::contains("panicked").not());
    let ledger = Ledger::open(&out.join("ledger.sqlite")).expect("ledger");
    let runs = ledger.runs().expect("runs");
    assert_eq!(runs.len(), 2);
    assert!(
        runs.iter()
            .all(|r| matches!(&r.status, RunStatus::Failed { error } if error.contains("mnist")))
    );
    drop(ledger);
    std::fs::rename(data.path().join("fashion-mnist"), data.path().join("mnist"))
        .expect("place mnist");
    // With the data there, the failed runs are tried again.
    suite_cmd(&suite, &out, data.path(), &["--no-plots"])
        .assert()
        .success()
        .stdout(predicate::str::contains("2 runs trained"));
    assert!(
        finished_accuracies(&out)
            .iter()
            .all(|(_, attempts, _)| *attempts == 2)
    );
}
