//! `acbench detect eval` end to end: ground truths and detections from the
//! pycocotools goldens (`detect/tests/fixtures/coco-goldens.json`, made by
//! `scripts/coco-goldens.py`) written as files, and the command's output
//! checked against what pycocotools printed for them.

mod common;

use std::path::Path;

use common::{acbench, repo_root};
use predicates::prelude::*;
use serde_json::Value;

fn golden(name: &str) -> Value {
    let path = repo_root().join("detect/tests/fixtures/coco-goldens.json");
    let text = std::fs::read_to_string(&path).expect("the goldens");
    let g: Value = serde_json::from_str(&text).expect("JSON");
    g["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no golden case {name:?}"))
        .clone()
}

fn write(dir: &Path, name: &str, v: &Value) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, v.to_string()).expect("write");
    path
}

#[test]
fn prints_pycocotools_summary_and_writes_json() {
    for name in [
        "boxes exactly on the area borders 32^2 and 96^2",
        "ties in score, across and within images",
        "a class without ground truth",
    ] {
        let case = golden(name);
        let dir = tempfile::tempdir().expect("tempdir");
        let gt = write(dir.path(), "instances_val.json", &case["gt"]);
        let dt = write(dir.path(), "results.json", &case["dt"]);
        let json = dir.path().join("stats.json");
        let out = acbench()
            .args(["detect", "eval", "--gt"])
            .arg(&gt)
            .arg("--dt")
            .arg(&dt)
            .arg("--json")
            .arg(&json)
            .args(["--voc07", "--voc12"])
            .output()
            .expect("runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // pycocotools' twelve lines, in order, first thing printed.
        let ours: Vec<&str> = stdout.lines().take(12).collect();
        let theirs: Vec<&str> = case["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .map(|l| l.as_str().expect("line"))
            .collect();
        assert_eq!(ours, theirs, "{name}");
        // The VOC means, to the four places printed.
        for (title, key) in [
            ("VOC2007 AP50 (11-point)", "mean07"),
            ("VOC2010+ AP50 (all points)", "mean12"),
        ] {
            assert!(stdout.contains(title), "{name}: {stdout}");
            let want = format!(
                "with positives: {:.4}",
                case["voc"][key].as_f64().expect("mean")
            );
            assert!(stdout.contains(&want), "{name}: {want} in {stdout}");
        }
        // The JSON: the twelve numbers by key, in pycocotools' order.
        let text = std::fs::read_to_string(&json).expect("the JSON file");
        let v: Value = serde_json::from_str(&text).expect("JSON");
        let keys = [
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
        for (key, want) in keys.iter().zip(case["stats"].as_array().expect("stats")) {
            let got = v[key].as_f64().unwrap_or_else(|| panic!("{key} in {text}"));
            let want = want.as_f64().expect("a number");
            assert!(
                (got - want).abs() <= 1e-12,
                "{name}: {key}: {got} vs {want}"
            );
        }
        let classes = v["voc12"]["classes"].as_array().expect("VOC classes");
        assert_eq!(
            classes.len(),
            case["gt"]["categories"].as_array().expect("cats").len()
        );
    }
}

#[test]
fn a_malformed_file_is_an_error_naming_file_and_element() {
    let case = golden("duplicate detections");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bad_gt = case["gt"].clone();
    bad_gt["annotations"][1]["bbox"] = serde_json::json!([200, 200, 60]);
    let gt = write(dir.path(), "instances_bad.json", &bad_gt);
    let dt = write(dir.path(), "results.json", &case["dt"]);
    acbench()
        .args(["detect", "eval", "--gt"])
        .arg(&gt)
        .arg("--dt")
        .arg(&dt)
        .assert()
        .failure()
        .stderr(predicate::str::contains("instances_bad.json"))
        .stderr(predicate::str::contains(
            "annotations[1].bbox: expected 4 numbers",
        ));

    let gt = write(dir.path(), "instances_ok.json", &case["gt"]);
    let mut bad_dt = case["dt"].clone();
    bad_dt[3]["score"] = Value::String("high".into());
    let dt = write(dir.path(), "results_bad.json", &bad_dt);
    acbench()
        .args(["detect", "eval", "--gt"])
        .arg(&gt)
        .arg("--dt")
        .arg(&dt)
        .assert()
        .failure()
        .stderr(predicate::str::contains("results_bad.json"))
        .stderr(predicate::str::contains(
            "[3].score: expected a number, found \"high\"",
        ));

    std::fs::write(dir.path().join("truncated.json"), "[{\"image_id\": 1,").expect("write");
    acbench()
        .args(["detect", "eval", "--gt"])
        .arg(&gt)
        .arg("--dt")
        .arg(dir.path().join("truncated.json"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("truncated.json: not valid JSON"));

    acbench()
        .args(["detect", "eval", "--gt"])
        .arg(dir.path().join("missing.json"))
        .arg("--dt")
        .arg(&dt)
        .assert()
        .failure()
        .stderr(predicate::str::contains("cannot read"))
        .stderr(predicate::str::contains("missing.json"));
}
