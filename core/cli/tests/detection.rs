//! Detectors end to end on tiny generated data: `acbench train --detector`
//! and a detection suite with both shipped detectors, its ledger (every
//! COCO stat and the VOC APs per epoch), its Table 7 report and plots, and
//! the same numbers from the same seed.

mod common;

use std::path::{Path, PathBuf};

use acbench_ledger::{Ledger, RunStatus};
use common::{acbench, assert_same_ledgers, fashion_dir, model};
use predicates::prelude::*;

const COCO_KEYS: [&str; 12] = [
    "ap",
    "ap50",
    "ap75",
    "ap_small",
    "ap_medium",
    "ap_large",
    "ar1",
    "ar10",
    "ar100",
    "ar_small",
    "ar_medium",
    "ar_large",
];

#[test]
fn train_with_each_shipped_detector_prints_the_coco_stats() {
    let data = fashion_dir(64, 32);
    for (file, detector) in [
        ("fcos-tiny.acnet", "fcos"),
        ("yolo-tiny.acnet", "yolo:noobj=0.5"),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("run.json");
        acbench()
            .arg("train")
            .arg("--model")
            .arg(model(file))
            .args(["--act", "relu", "--dataset", "fashion-mnist-boxes"])
            .args(["--detector", detector, "--data-seed", "3"])
            .args(["--limit-train", "24", "--limit-test", "8", "--batch", "8"])
            .args(["--arg", "filters=4", "--optimizer", "adam", "--lr", "0.002"])
            .arg("--data-dir")
            .arg(data.path())
            .arg("--out")
            .arg(&out)
            .assert()
            .success()
            .stdout(predicate::str::contains(
                "Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ]",
            ))
            .stdout(predicate::str::contains("VOC AP50"));
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out).expect("record")).expect("json");
        assert_eq!(record["dataset"], "fashion-mnist-boxes", "{record}");
    }
}

#[test]
fn a_detector_on_a_classification_set_or_the_reverse_is_refused() {
    let data = fashion_dir(16, 8);
    acbench()
        .arg("train")
        .arg("--model")
        .arg(model("fcos-tiny.acnet"))
        .args(["--act", "relu", "--dataset", "fashion-mnist-boxes"])
        .arg("--data-dir")
        .arg(data.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains("--detector fcos"));
    acbench()
        .arg("train")
        .arg("--model")
        .arg(model("fcos-tiny.acnet"))
        .args(["--act", "relu", "--dataset", "fashion-mnist-boxes"])
        .args(["--detector", "nosuch"])
        .arg("--data-dir")
        .arg(data.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains("unknown detector `nosuch`"))
        .stderr(predicate::str::contains("fcos, yolo"));
}

fn write_detection_suite(dir: &Path) -> PathBuf {
    let path = dir.join("det.yaml");
    let text = format!(
        "name: det\npaper_table: table7\n\
         dataset: {{name: fashion-mnist-boxes, limit_train: 24, limit_test: 8, seed: 1}}\n\
         models:\n  - {{file: {}, detector: fcos, args: {{filters: 4}}}}\n\
         \x20 - {{file: {}, detector: {{name: yolo, settings: {{anchors: 3}}}}, \
         args: {{filters: 4, anchors: 3}}}}\n\
         activations: [relu, arelu]\noptimizers: [adam]\nlr: 0.002\nepochs: 2\n\
         batch_size: 8\nseeds: [0]\n",
        model("fcos-tiny.acnet").display(),
        model("yolo-tiny.acnet").display(),
    );
    std::fs::write(&path, text).expect("suite");
    path
}

fn run_suite(suite: &Path, out: &Path, data: &Path) -> assert_cmd::assert::Assert {
    acbench()
        .arg("suite")
        .arg(suite)
        .arg("--out")
        .arg(out)
        .arg("--data-dir")
        .arg(data)
        .assert()
}

#[test]
fn a_detection_suite_records_every_stat_reports_table7_and_is_reproducible() {
    let data = fashion_dir(64, 32);
    let dir = tempfile::tempdir().expect("tempdir");
    let suite = write_detection_suite(dir.path());
    let out = dir.path().join("out");
    run_suite(&suite, &out, data.path())
        .success()
        .stdout(predicate::str::contains("4 runs trained"))
        .stdout(predicate::str::contains("fcos/coco/ap50"))
        .stdout(predicate::str::contains("yolov2/voc/ap50"))
        .stdout(predicate::str::contains("paper 0.4974"));

    let ledger = Ledger::open(&out.join("ledger.sqlite")).expect("ledger");
    let runs = ledger.runs().expect("runs");
    assert_eq!(runs.len(), 4);
    for r in &runs {
        assert_eq!(r.status, RunStatus::Finished, "{}", r.key);
        assert_eq!(r.epochs.len(), 2);
        for e in &r.epochs {
            for key in COCO_KEYS {
                let v = e.detection_metric(&format!("coco.{key}"));
                assert!(
                    v.is_some_and(|v| (-1.0..=1.0).contains(&v)),
                    "coco.{key}: {v:?}"
                );
            }
            for key in ["voc07.map", "voc12.map"] {
                assert!(e.detection_metric(key).is_some(), "{key}");
            }
            assert_eq!(e.pr_curve.len(), 101);
            let ap50 = e.detection_metric("coco.ap50").unwrap_or(f64::NAN);
            assert_eq!(e.test_acc.to_bits(), ap50.to_bits(), "test_acc is AP50");
        }
    }
    let report = std::fs::read_to_string(out.join("report.md")).expect("report");
    assert!(report.contains("analogue"), "{report}");
    assert!(report.contains("does not say how its VOC mAP"), "{report}");
    let plots: Vec<String> = std::fs::read_dir(out.join("plots"))
        .expect("plots")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        plots.iter().any(|p| p.starts_with("pr-")),
        "precision-recall plots: {plots:?}"
    );

    // Nothing to do the second time; the same numbers from a fresh folder.
    run_suite(&suite, &out, data.path())
        .success()
        .stdout(predicate::str::contains(
            "0 runs trained, 4 already in the ledger",
        ));
    let again = dir.path().join("again");
    run_suite(&suite, &again, data.path()).success();
    assert_same_ledgers(&out.join("ledger.sqlite"), &again.join("ledger.sqlite"));
}

/// Real photos: the deepforest wheel's aerial tree crowns as a VOC folder
/// (`scripts/deepforest-voc.sh`, which downloads the wheel from PyPI), read
/// with the VOC reader and trained on for a few epochs. Three training
/// photos teach the detector little; this checks the pipeline on real
/// files (decoding, letterboxing, custom classes, scoring), not accuracy.
#[test]
#[ignore = "downloads the deepforest wheel from PyPI"]
fn deepforest_photos_train_through_the_voc_reader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let voc = dir.path().join("deepforest");
    let status = std::process::Command::new("bash")
        .arg(common::repo_root().join("scripts/deepforest-voc.sh"))
        .arg(&voc)
        .status()
        .expect("script runs");
    assert!(status.success(), "scripts/deepforest-voc.sh failed");
    let out = dir.path().join("run.json");
    acbench()
        .arg("train")
        .arg("--model")
        .arg(model("fcos-tiny.acnet"))
        .args([
            "--act",
            "relu",
            "--detector",
            "fcos",
            "--image-size",
            "384x384",
        ])
        .arg("--dataset")
        .arg(format!("voc:{}", voc.display()))
        .args([
            "--epochs",
            "3",
            "--batch",
            "3",
            "--optimizer",
            "adam",
            "--lr",
            "0.003",
        ])
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "(3 train / 1 test images, 914 / 37 boxes, 3 classes)",
        ))
        .stdout(predicate::str::contains("VOC AP50"));
}
