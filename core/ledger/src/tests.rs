use super::*;

pub(crate) fn labels(seed: u64) -> RunLabels {
    RunLabels {
        suite: "quick".into(),
        model: "convnet".into(),
        activation: "arelu".into(),
        optimizer: "sgd".into(),
        dataset: "fashion-mnist".into(),
        seed,
    }
}

pub(crate) fn epoch(i: usize) -> EpochRecord {
    EpochRecord {
        epoch: i,
        lr: 0.05,
        train_loss: 1.0 / (i + 1) as f64,
        train_acc: 0.5,
        test_loss: 0.9,
        test_acc: 0.6 + i as f64 / 100.0,
        wall_s: 1.5,
        act_params: vec![
            ActParam {
                slot: "act0".into(),
                activation: "arelu".into(),
                param: "a".into(),
                values: vec![1.0 + i as f64],
            },
            ActParam {
                slot: "act0".into(),
                activation: "arelu".into(),
                param: "b".into(),
                values: vec![1.0],
            },
            ActParam {
                slot: "act1".into(),
                activation: "prelu".into(),
                param: "p".into(),
                values: vec![0.1, 0.2, 0.3],
            },
        ],
        weight_increments: vec![("conv0".into(), 0.5), ("linear0".into(), 0.25)],
        step_losses: vec![
            (i * 10 + 5, 1.2 - i as f64 / 10.0),
            (i * 10 + 10, 1.1 - i as f64 / 10.0),
        ],
        detection: vec![
            ("coco.ap".into(), 0.25 + i as f64 / 8.0),
            ("voc07.map".into(), 0.5),
            ("voc07.class.bag".into(), 0.75),
        ],
        pr_curve: vec![1.0, 0.5 + i as f64 / 4.0, 0.0],
    }
}

#[test]
fn epochs_round_trip_and_status_moves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.sqlite");
    let mut l = Ledger::open(&path).expect("open");
    assert_eq!(l.status("k1").expect("status"), None);
    let spec = serde_json::json!({"lr": 0.05});
    l.begin_run("k1", &labels(0), &spec, &serde_json::json!({}), 0)
        .expect("begin");
    assert_eq!(l.status("k1").expect("status"), Some(RunStatus::Running));
    l.record_epoch("k1", &epoch(0)).expect("epoch 0");
    l.record_epoch("k1", &epoch(1)).expect("epoch 1");
    l.end_run("k1", &RunStatus::Finished).expect("end");
    drop(l);

    let l = Ledger::open(&path).expect("reopen");
    let runs = l.runs().expect("runs");
    assert_eq!(runs.len(), 1);
    let r = &runs[0];
    assert_eq!(r.status, RunStatus::Finished);
    assert_eq!(r.labels, labels(0));
    assert_eq!(r.spec, spec);
    assert_eq!(r.epochs, vec![epoch(0), epoch(1)]);
}

#[test]
fn restarting_a_run_replaces_its_epochs_and_counts_attempts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut l = Ledger::open(&dir.path().join("l.sqlite")).expect("open");
    let none = serde_json::json!(null);
    l.begin_run("k", &labels(1), &none, &none, 0)
        .expect("begin");
    l.record_epoch("k", &epoch(0)).expect("epoch");
    l.record_epoch("k", &epoch(1)).expect("epoch");
    l.record_epoch("k", &epoch(2)).expect("epoch");
    // Resumed from a checkpoint at epoch 2: epochs 0 and 1 stay.
    l.begin_run("k", &labels(1), &none, &none, 2)
        .expect("resume");
    let runs = l.runs().expect("runs");
    assert_eq!(runs[0].epochs, vec![epoch(0), epoch(1)]);
    assert_eq!(runs[0].attempts, 2);
    // Started again from scratch: every old epoch goes.
    l.begin_run("k", &labels(1), &none, &none, 0)
        .expect("begin again");
    let runs = l.runs().expect("runs");
    assert!(runs[0].epochs.is_empty(), "old epochs must go");
    assert_eq!(runs[0].attempts, 3);
    assert_eq!(runs[0].status, RunStatus::Running);
}

#[test]
fn diverged_and_failed_keep_their_details() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut l = Ledger::open(&dir.path().join("l.sqlite")).expect("open");
    let none = serde_json::json!(null);
    l.begin_run("d", &labels(1), &none, &none, 0)
        .expect("begin");
    l.end_run(
        "d",
        &RunStatus::Diverged {
            epoch: 3,
            cause: None,
        },
    )
    .expect("end");
    l.begin_run("f", &labels(2), &none, &none, 0)
        .expect("begin");
    l.end_run(
        "f",
        &RunStatus::Failed {
            error: "plugin `x` panicked".into(),
        },
    )
    .expect("end");
    assert_eq!(
        l.status("d").expect("s"),
        Some(RunStatus::Diverged {
            epoch: 3,
            cause: None
        })
    );
    assert_eq!(
        l.status("f").expect("s"),
        Some(RunStatus::Failed {
            error: "plugin `x` panicked".into()
        })
    );
    assert!(RunStatus::Finished.is_done() && !RunStatus::Running.is_done());
}

#[test]
fn unknown_runs_are_errors_not_silent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut l = Ledger::open(&dir.path().join("l.sqlite")).expect("open");
    assert!(matches!(
        l.record_epoch("nope", &epoch(0)),
        Err(LedgerError::UnknownRun { .. })
    ));
    assert!(matches!(
        l.end_run("nope", &RunStatus::Finished),
        Err(LedgerError::UnknownRun { .. })
    ));
}

#[test]
fn every_status_reads_back_from_its_word() {
    for status in [
        RunStatus::Running,
        RunStatus::Finished,
        RunStatus::Diverged {
            epoch: 3,
            cause: Some("no data".into()),
        },
        RunStatus::Failed {
            error: "no data".into(),
        },
    ] {
        let back = RunStatus::from_stored(&status.to_string(), Some("no data".into()), Some(3));
        assert_eq!(back, status);
    }
    assert_eq!(
        RunStatus::from_stored("bogus", None, None),
        RunStatus::Running
    );
}

#[test]
fn a_file_from_a_newer_acbench_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("l.sqlite");
    drop(Ledger::open(&path).expect("open"));
    let conn = Connection::open(&path).expect("raw open");
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .expect("bump");
    drop(conn);
    let err = Ledger::open(&path).expect_err("newer schema");
    assert!(err.to_string().contains("newer"), "{err}");
}

#[test]
fn a_file_that_is_not_a_database_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("junk.sqlite");
    std::fs::write(&path, vec![7u8; 4096]).expect("write junk");
    let err = Ledger::open(&path).expect_err("not a database");
    assert!(err.to_string().contains("junk.sqlite"), "{err}");
}
