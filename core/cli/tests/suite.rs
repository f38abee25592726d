//! `acbench suite` and `acbench report` end to end, on tiny generated
//! Fashion-MNIST files: the ledger, resume after a real SIGKILL, reports.

mod common;

use std::path::{Path, PathBuf};

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
        "report.html",
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
    // The page to browse shows the same plots inline.
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert_eq!(html.matches("<svg").count(), plots);
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

/// Every epoch of every run, without wall times: what must not change when
/// a suite is interrupted and resumed.
fn epoch_bits(out: &Path) -> Vec<(String, Vec<[u64; 5]>)> {
    let ledger = Ledger::open(&out.join("ledger.sqlite")).expect("ledger");
    let mut runs: Vec<_> = ledger
        .runs()
        .expect("runs")
        .into_iter()
        .map(|r| {
            let epochs = r
                .epochs
                .iter()
                .map(|e| {
                    [
                        e.epoch as u64,
                        e.train_loss.to_bits(),
                        e.train_acc.to_bits(),
                        e.test_loss.to_bits(),
                        e.test_acc.to_bits(),
                    ]
                })
                .collect();
            (r.key, epochs)
        })
        .collect();
    runs.sort();
    runs
}

/// Starts the suite with `ACBENCH_TEST_HOLD=hold` (held deterministically
/// at a chosen batch, not by a timer) and returns once it is held.
fn spawn_held(suite: &Path, out: &Path, data: &Path, hold: &str) -> std::process::Child {
    let mut cmd = common::acbench_process();
    cmd.env("ACBENCH_TEST_HOLD", hold)
        .arg("suite")
        .arg(suite)
        .arg("--out")
        .arg(out)
        .arg("--data-dir")
        .arg(data)
        .arg("--no-plots");
    common::spawn_until_held(cmd)
}

/// [`spawn_held`], then SIGKILL once it is held.
fn run_until_held_then_kill(suite: &Path, out: &Path, data: &Path, hold: &str) {
    let mut child = spawn_held(suite, out, data, hold);
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
}

#[test]
fn killed_suite_continues_without_redoing_finished_runs_or_epochs() {
    let data = fashion_dir(192, 64);
    let suite = write_suite(data.path(), &["relu", "tanh", "arelu"], 3);
    let out = data.path().join("killed");
    // Held in the third run, in its second epoch (192 examples in batches
    // of 32: 6 batches per epoch): two runs finished, one has a checkpoint
    // after its first epoch and is half way through the next.
    run_until_held_then_kill(&suite, &out, data.path(), "2:1:2");

    let ledger = Ledger::open(&out.join("ledger.sqlite")).expect("ledger");
    let runs = ledger.runs().expect("runs");
    let finished_before: Vec<String> = runs
        .iter()
        .filter(|r| r.status == RunStatus::Finished)
        .map(|r| r.key.clone())
        .collect();
    assert_eq!(finished_before.len(), 2);
    let interrupted = runs
        .iter()
        .find(|r| r.status == RunStatus::Running)
        .expect("a run under way");
    assert_eq!(
        interrupted.epochs.len(),
        1,
        "one epoch finished before the kill"
    );
    let interrupted_key = interrupted.key.clone();
    drop(ledger);
    let checkpoint = out.join("checkpoints").join(&interrupted_key);
    assert!(
        checkpoint.join("checkpoint.json").is_file(),
        "no checkpoint"
    );

    let resumed_at = format!(
        "resuming run {} from its checkpoint at epoch 2",
        &interrupted_key[..12]
    );
    suite_cmd(&suite, &out, data.path(), &["--no-plots"])
        .assert()
        .success()
        .stderr(predicate::str::contains(resumed_at));
    let resumed = finished_accuracies(&out);
    assert_eq!(resumed.len(), 6);
    for (key, attempts, _) in &resumed {
        let want = if *key == interrupted_key { 2 } else { 1 };
        assert_eq!(*attempts, want, "attempts of {key}");
    }
    assert!(
        !checkpoint.exists(),
        "a finished run's checkpoint is deleted"
    );

    // The same suite, never interrupted, gives the same numbers, epoch by
    // epoch, and the same table.
    let clean = data.path().join("clean");
    suite_cmd(&suite, &clean, data.path(), &["--no-plots"])
        .assert()
        .success();
    assert_eq!(epoch_bits(&clean), epoch_bits(&out));
    assert_eq!(
        std::fs::read_to_string(clean.join("report.csv")).expect("clean csv"),
        std::fs::read_to_string(out.join("report.csv")).expect("resumed csv"),
        "the final table equals that of an uninterrupted run"
    );
}

#[test]
fn checkpoints_are_kept_on_request_and_refused_when_foreign() {
    let data = fashion_dir(64, 32);
    let suite = write_suite(data.path(), &["relu"], 2);
    let clean = data.path().join("clean");
    suite_cmd(
        &suite,
        &clean,
        data.path(),
        &["--no-plots", "--keep-checkpoints"],
    )
    .assert()
    .success();
    let kept = std::fs::read_dir(clean.join("checkpoints"))
        .expect("checkpoints kept")
        .count();
    assert_eq!(kept, 2, "one per run");

    // Killed in the first run's second epoch; its checkpoint then claims
    // another acbench version: it is refused with the reason, and the run
    // trains from epoch 0 to the same numbers.
    let out = data.path().join("foreign");
    run_until_held_then_kill(&suite, &out, data.path(), "0:1:0");
    let dir = std::fs::read_dir(out.join("checkpoints"))
        .expect("checkpoints")
        .next()
        .expect("one checkpoint")
        .expect("entry")
        .path();
    let json = dir.join("checkpoint.json");
    let text = std::fs::read_to_string(&json).expect("json");
    std::fs::write(&json, text.replace(env!("CARGO_PKG_VERSION"), "0.0.1-old")).expect("write");
    suite_cmd(&suite, &out, data.path(), &["--no-plots"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "checkpoint not used, the run starts from epoch 0",
        ))
        .stderr(predicate::str::contains("written by acbench 0.0.1-old"));
    assert_eq!(epoch_bits(&clean), epoch_bits(&out));
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
        .arg("--no-estimate")
        .assert()
        .success()
        .stdout(predicate::str::contains("99 runs"))
        .stdout(predicate::str::contains("vgg-v"))
        .stdout(predicate::str::contains("table3 and table4"));
}

#[test]
fn dry_run_estimates_time_and_disk_without_training_and_caches_timings() {
    let data = fashion_dir(96, 32);
    let suite = write_suite(data.path(), &["relu", "arelu"], 2);
    let out = data.path().join("estimate");
    let cache = data.path().join("cache");
    let dry = || {
        let mut cmd = suite_cmd(&suite, &out, data.path(), &["--dry-run"]);
        cmd.env("XDG_CACHE_HOME", &cache)
            .env("ACBENCH_MEMORY_LIMIT", "8053063680");
        cmd.assert().success()
    };
    let first = dry()
        .stdout(predicate::str::contains("estimate on this machine"))
        .stdout(predicate::str::is_match(r"\| memory\s*\n").expect("regex"))
        .stdout(predicate::str::contains(
            "per run to train (at least), 7.5 GiB available ($ACBENCH_MEMORY_LIMIT)",
        ))
        .stdout(predicate::str::contains("4/4"))
        .stdout(predicate::str::contains("total: "))
        .stdout(predicate::str::contains("disk: ledger about"))
        .stderr(predicate::str::contains("timing convnet with relu"));
    let text = String::from_utf8_lossy(&first.get_output().stdout).into_owned();
    assert!(!text.contains("(cached)"), "{text}");
    assert!(
        !out.join("ledger.sqlite").exists(),
        "a dry run trains nothing"
    );
    assert!(cache.join("acbench/calibration.json").is_file());
    // The second dry run uses the cached timing.
    dry()
        .stdout(predicate::str::contains("(cached)"))
        .stderr(predicate::str::contains("timing").not());
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

#[test]
fn a_suite_stopped_by_sigint_records_the_run_as_interrupted_and_continues() {
    let data = fashion_dir(192, 64);
    let suite = write_suite(data.path(), &["relu"], 2);
    let out = data.path().join("stopped");
    let mut child = spawn_held(&suite, &out, data.path(), "1:1:2");
    let code = common::signal_and_wait(&mut child, "INT");
    assert_eq!(code, Some(75), "interrupted, not failed");
    let ledger = Ledger::open(&out.join("ledger.sqlite")).expect("ledger");
    let statuses: Vec<(RunStatus, usize)> = ledger
        .runs()
        .expect("runs")
        .into_iter()
        .map(|r| (r.status, r.epochs.len()))
        .collect();
    assert!(statuses.contains(&(RunStatus::Finished, 2)), "{statuses:?}");
    assert!(
        statuses.contains(&(RunStatus::Interrupted, 1)),
        "{statuses:?}"
    );
    drop(ledger);
    suite_cmd(&suite, &out, data.path(), &["--no-plots"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "1 runs trained, 1 already in the ledger",
        ))
        .stderr(predicate::str::contains("from its checkpoint at epoch 2"));
}

#[test]
fn a_second_suite_on_the_same_folder_says_who_holds_it_and_the_lock_dies_with_its_holder() {
    let data = fashion_dir(64, 32);
    let suite = write_suite(data.path(), &["relu"], 1);
    let out = data.path().join("locked");
    let mut holder = spawn_held(&suite, &out, data.path(), "0:0:0");
    let pid = holder.id();
    suite_cmd(&suite, &out, data.path(), &["--no-plots"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "is in use by another acbench process",
        ))
        .stderr(predicate::str::contains(format!(
            "(pid {pid}: acbench suite"
        )));
    acbench()
        .arg("merge")
        .arg(&out)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "(pid {pid}: acbench suite"
        )));
    // Killed outright: the kernel drops the lock, and the next one runs.
    holder.kill().expect("SIGKILL");
    holder.wait().expect("reap");
    suite_cmd(&suite, &out, data.path(), &["--no-plots"])
        .assert()
        .success();
}

#[test]
fn a_damaged_ledger_is_an_error_never_an_empty_one_and_ledger_check_says_so() {
    let data = fashion_dir(64, 32);
    let suite = write_suite(data.path(), &["relu"], 1);
    let out = data.path().join("out");
    suite_cmd(&suite, &out, data.path(), &["--no-plots"])
        .assert()
        .success();
    acbench()
        .args(["ledger", "check"])
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "ok, 2 runs (2 finished), 2 epochs",
        ));
    let ledger = out.join("ledger.sqlite");
    let mut bytes = std::fs::read(&ledger).expect("read");
    let keep = bytes.clone();
    for b in bytes.iter_mut().skip(4096).take(8192) {
        *b = 0x5a;
    }
    std::fs::write(&ledger, &bytes).expect("damage");
    suite_cmd(&suite, &out, data.path(), &["--no-plots"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is damaged"))
        .stdout(predicate::str::contains("runs trained").not());
    acbench()
        .args(["ledger", "check"])
        .arg(&out)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("DAMAGED").or(predicate::str::contains("is damaged")));
    assert_eq!(
        std::fs::read(&ledger).expect("read").len(),
        bytes.len(),
        "the damaged file is left as it was"
    );
    // Truncated to nothing: still not an empty ledger.
    std::fs::write(&ledger, b"").expect("truncate");
    suite_cmd(&suite, &out, data.path(), &["--no-plots"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("the file is empty (truncated?)"));
    std::fs::write(&ledger, keep).expect("restore");
    suite_cmd(&suite, &out, data.path(), &["--no-plots"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "0 runs trained, 2 already in the ledger",
        ));
}

#[test]
fn a_second_sigint_exits_at_once_without_damaging_the_ledger() {
    let data = fashion_dir(192, 64);
    let suite = write_suite(data.path(), &["relu"], 2);
    let out = data.path().join("twice");
    let mut child = spawn_held(&suite, &out, data.path(), "1:1:2");
    // Two signals in one `kill` call: the second arrives before the first
    // is acted on, as a user pressing Ctrl-C twice.
    let pid = child.id().to_string();
    let sent = std::process::Command::new("sh")
        .args(["-c", &format!("kill -INT {pid}; kill -INT {pid}")])
        .status()
        .expect("kill");
    assert!(sent.success());
    let code = child.wait().expect("wait").code();
    assert!(
        code == Some(130) || code == Some(75),
        "exits at once (130) or, had the first been handled already, as interrupted: {code:?}"
    );
    acbench()
        .args(["ledger", "check"])
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains("1 finished"));
    suite_cmd(&suite, &out, data.path(), &["--no-plots"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "1 runs trained, 1 already in the ledger",
        ));
}

/// `cmd` run under a file size limit of `bytes` (RLIMIT_FSIZE): a write past
/// it fails as on a full disk (acbench ignores SIGXFSZ).
fn with_file_size_limit(cmd: &mut std::process::Command, bytes: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child
    // between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

#[test]
fn a_full_disk_is_a_clear_error_and_keeps_every_earlier_epoch() {
    let data = fashion_dir(64, 32);
    let suite = write_suite(data.path(), &["relu"], 2);
    let out = data.path().join("full");
    suite_cmd(&suite, &out, data.path(), &["--no-plots"])
        .assert()
        .success();
    let before = Ledger::open(&out.join("ledger.sqlite"))
        .expect("ledger")
        .runs()
        .expect("runs");
    assert_eq!(before.len(), 2);
    // Two more runs, with room for little more than the ledger as it is:
    // their checkpoints, the ledger's growth or the report cannot be written.
    let bigger = write_suite(data.path(), &["relu", "arelu"], 2);
    let mut cmd = common::acbench_process();
    cmd.arg("suite")
        .arg(&bigger)
        .arg("--out")
        .arg(&out)
        .arg("--data-dir")
        .arg(data.path())
        .arg("--no-plots");
    with_file_size_limit(&mut cmd, 64 * 1024);
    let run = cmd.output().expect("runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(
        run.status.code(),
        Some(1),
        "an error, not a signal: {stderr}"
    );
    assert!(
        stderr.contains("File too large") || stderr.contains("disk I/O error"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    acbench()
        .args(["ledger", "check"])
        .arg(&out)
        .assert()
        .success();
    let after = Ledger::open(&out.join("ledger.sqlite"))
        .expect("ledger")
        .runs()
        .expect("runs");
    for r in &before {
        let now = after.iter().find(|a| a.key == r.key).expect("still there");
        assert_eq!(now.status, RunStatus::Finished);
        assert_eq!(now.epochs, r.epochs, "every earlier epoch kept");
    }
    // With room again, the missing runs are trained and nothing is lost.
    suite_cmd(&bigger, &out, data.path(), &["--no-plots"])
        .assert()
        .success();
    let done = Ledger::open(&out.join("ledger.sqlite"))
        .expect("ledger")
        .runs()
        .expect("runs");
    assert_eq!(done.len(), 4);
    assert!(done.iter().all(|r| r.status == RunStatus::Finished));
}
