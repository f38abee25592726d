use super::*;
use crate::tests::{epoch, labels};

/// A ledger file at `dir/name` with run `key` of `epochs` epochs, ended
/// with `status` (left running when `None`); `tweak` changes its epochs.
fn file_with(
    dir: &Path,
    name: &str,
    key: &str,
    epochs: usize,
    status: Option<RunStatus>,
    tweak: impl Fn(&mut EpochRecord),
) -> PathBuf {
    let path = dir.join(name);
    let mut l = Ledger::open_with(&path, crate::Journal::Rollback).expect("open");
    let spec = serde_json::json!({"key": key});
    l.begin_run(key, &labels(0), &spec, &serde_json::json!({}), 0)
        .expect("begin");
    for i in 0..epochs {
        let mut e = epoch(i);
        tweak(&mut e);
        l.record_epoch(key, &e).expect("epoch");
    }
    if let Some(s) = status {
        l.end_run(key, &s).expect("end");
    }
    path
}

fn summary(l: &Ledger) -> Vec<(String, RunStatus, usize)> {
    l.runs()
        .expect("runs")
        .into_iter()
        .map(|r| (r.key, r.status, r.epochs.len()))
        .collect()
}

#[test]
fn shards_fold_in_and_a_second_merge_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = file_with(
        dir.path(),
        "a.sqlite",
        "k1",
        2,
        Some(RunStatus::Finished),
        |_| {},
    );
    let b = file_with(
        dir.path(),
        "b.sqlite",
        "k2",
        1,
        Some(RunStatus::Diverged {
            epoch: 1,
            cause: None,
        }),
        |_| {},
    );
    let mut main = Ledger::open(&dir.path().join("main.sqlite")).expect("main");
    let report = main.merge_from(&[a.clone(), b.clone()]).expect("merge");
    assert_eq!(
        (report.files, report.added, report.updated, report.unchanged),
        (2, 2, 0, 0)
    );
    let first = main.runs().expect("runs");
    assert_eq!(first.len(), 2);
    assert_eq!(
        first[0].epochs,
        vec![epoch(0), epoch(1)],
        "epochs copied whole"
    );
    let again = main.merge_from(&[a, b]).expect("merge again");
    assert_eq!((again.added, again.updated, again.unchanged), (0, 0, 2));
    assert_eq!(main.runs().expect("runs"), first, "idempotent");
}

#[test]
fn a_result_wins_over_an_interrupted_attempt_in_either_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let interrupted = file_with(
        dir.path(),
        "attempt-0.sqlite",
        "k",
        1,
        Some(RunStatus::Interrupted),
        |_| {},
    );
    let finished = file_with(
        dir.path(),
        "attempt-1.sqlite",
        "k",
        2,
        Some(RunStatus::Finished),
        |_| {},
    );
    for (name, order) in [
        ("m1.sqlite", vec![interrupted.clone(), finished.clone()]),
        ("m2.sqlite", vec![finished.clone(), interrupted.clone()]),
    ] {
        let mut main = Ledger::open(&dir.path().join(name)).expect("main");
        main.merge_from(&order).expect("merge");
        assert_eq!(summary(&main), vec![("k".into(), RunStatus::Finished, 2)]);
    }
    // A ledger that had the run interrupted takes the result.
    let mut main = Ledger::open(&dir.path().join("m3.sqlite")).expect("main");
    main.merge_from(std::slice::from_ref(&interrupted))
        .expect("merge");
    assert_eq!(
        summary(&main),
        vec![("k".into(), RunStatus::Interrupted, 1)]
    );
    let report = main.merge_from(&[finished]).expect("merge");
    assert_eq!((report.added, report.updated), (0, 1));
    assert_eq!(summary(&main), vec![("k".into(), RunStatus::Finished, 2)]);
}

#[test]
fn wall_times_may_differ_but_results_may_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = file_with(
        dir.path(),
        "a.sqlite",
        "k",
        2,
        Some(RunStatus::Finished),
        |_| {},
    );
    let slower = file_with(
        dir.path(),
        "b.sqlite",
        "k",
        2,
        Some(RunStatus::Finished),
        |e| {
            e.wall_s *= 3.0;
        },
    );
    let other = file_with(
        dir.path(),
        "c.sqlite",
        "k",
        2,
        Some(RunStatus::Finished),
        |e| {
            if e.epoch == 1 {
                e.test_acc += 1e-9;
            }
        },
    );
    let mut main = Ledger::open(&dir.path().join("main.sqlite")).expect("main");
    main.merge_from(&[a.clone(), slower]).expect("same results");
    let e = main
        .merge_from(std::slice::from_ref(&other))
        .expect_err("conflict");
    let text = e.to_string();
    for part in [
        "run k has different results in",
        &main.path().display().to_string(),
        &other.display().to_string(),
        "epoch 2 test_acc",
    ] {
        assert!(text.contains(part), "{text}");
    }
    // Between two files, both are named.
    let mut fresh = Ledger::open(&dir.path().join("fresh.sqlite")).expect("main");
    let text = fresh
        .merge_from(&[a.clone(), other.clone()])
        .expect_err("conflict")
        .to_string();
    assert!(
        text.contains(&a.display().to_string()) && text.contains(&other.display().to_string()),
        "{text}"
    );
    assert!(summary(&fresh).is_empty(), "nothing written on a conflict");
}

#[test]
fn ledger_files_lists_sqlite_files_in_name_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["b.sqlite", "a.sqlite", "notes.txt", "a.sqlite-journal"] {
        std::fs::write(dir.path().join(name), "").expect("write");
    }
    let names: Vec<String> = ledger_files(dir.path())
        .expect("list")
        .iter()
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(names, ["a.sqlite", "b.sqlite"]);
}
