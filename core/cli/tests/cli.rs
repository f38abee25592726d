//! End-to-end tests of the `acbench` command on tiny generated data in the
//! real file formats.

mod common;

use common::{acbench, fashion_dir, model, repo_root};
use predicates::prelude::*;

#[test]
fn train_writes_result_with_moving_arelu_parameters() {
    let data = fashion_dir(256, 100);
    let out = data.path().join("r.json");
    acbench()
        .args(["train", "--model"])
        .arg(model("convnet.acnet"))
        .args(["--act", "arelu", "--dataset", "fashion-mnist", "--data-dir"])
        .arg(data.path())
        .args([
            "--epochs",
            "2",
            "--batch",
            "32",
            "--optimizer",
            "sgd",
            "--lr",
            "0.05",
            "--seed",
            "0",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains("epoch   2/2"))
        .stdout(predicate::str::contains(
            "activation parameters after training",
        ));
    let text = std::fs::read_to_string(&out).expect("result file");
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let acc = v["test_accuracy"].as_f64().expect("test accuracy");
    assert!(acc > 0.5, "the banded toy data is easy; got accuracy {acc}");
    let slots = v["outcome"]["act_values"].as_array().expect("act values");
    assert_eq!(slots.len(), 3, "convnet has three act slots");
    for slot in slots {
        let p = |name: &str| -> f64 {
            slot["params"]
                .as_array()
                .expect("params")
                .iter()
                .find(|e| e[0] == name)
                .and_then(|e| e[1][0].as_f64())
                .unwrap_or_else(|| panic!("param {name} in {slot}"))
        };
        assert_ne!(
            p("a"),
            p("b"),
            "a and b must separate from the a=b=1 start: {slot}"
        );
        assert_ne!(p("a"), 1.0, "a must move: {slot}");
    }
}

#[test]
fn same_seed_gives_identical_results() {
    let data = fashion_dir(128, 50);
    let run = |name: &str| {
        let out = data.path().join(name);
        acbench()
            .args(["train", "--model"])
            .arg(model("convnet.acnet"))
            .args(["--act", "swish", "--dataset", "fashion-mnist", "--data-dir"])
            .arg(data.path())
            .args([
                "--epochs", "1", "--batch", "16", "--lr", "0.05", "--seed", "3", "--out",
            ])
            .arg(&out)
            .assert()
            .success();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out).expect("result")).expect("json");
        (
            v["outcome"]["epochs"][0]["train_loss"].clone(),
            v["outcome"]["act_values"].clone(),
        )
    };
    assert_eq!(run("a.json"), run("b.json"));
}

#[test]
fn model_show_prints_layers_and_parameter_count() {
    acbench()
        .args(["model", "show"])
        .arg(model("convnet.acnet"))
        .args(["--arg", "classes=10"])
        .assert()
        .success()
        .stdout(predicate::str::contains("conv0"))
        .stdout(predicate::str::contains("parameters:"));
}

#[test]
fn every_paper_model_is_shown() {
    for entry in std::fs::read_dir(repo_root().join("suites/models")).expect("models dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "acnet") {
            acbench()
                .args(["model", "show"])
                .arg(&path)
                .assert()
                .success()
                .stdout(predicate::str::contains("parameters:"));
        }
    }
}

#[test]
fn malformed_model_is_a_located_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.acnet");
    std::fs::write(
        &file,
        "network bad(classes=10) {\n  input 1x28x28\n  cnv(8)\n  flatten linear(classes)\n}\n",
    )
    .expect("write");
    acbench()
        .args(["model", "show"])
        .arg(&file)
        .assert()
        .failure()
        .stderr(predicate::str::contains("bad.acnet:3:3"))
        .stderr(predicate::str::contains("cnv"))
        .stderr(predicate::str::contains("panicked").not());
}

#[test]
fn truncated_idx_file_names_file_and_offset() {
    let data = fashion_dir(64, 20);
    let images = data.path().join("fashion-mnist/train-images-idx3-ubyte");
    let bytes = std::fs::read(&images).expect("read");
    std::fs::write(&images, &bytes[..bytes.len() - 100]).expect("truncate");
    acbench()
        .args(["train", "--model"])
        .arg(model("convnet.acnet"))
        .args(["--act", "relu", "--dataset", "fashion-mnist", "--data-dir"])
        .arg(data.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains("train-images-idx3-ubyte"))
        .stderr(predicate::str::contains("byte"))
        .stderr(predicate::str::contains("panicked").not());
}

#[test]
fn bad_cli_values_fail_cleanly() {
    let data = fashion_dir(32, 10);
    let base = |extra: &[&str]| {
        let mut cmd = acbench();
        cmd.args(["train", "--model"])
            .arg(model("convnet.acnet"))
            .args(["--dataset", "fashion-mnist", "--data-dir"])
            .arg(data.path())
            .args(extra);
        cmd
    };
    for (extra, expect) in [
        (&["--act", "nope"][..], "unknown activation"),
        (&["--act", "relu", "--lr=-1"][..], "--lr"),
        (&["--act", "relu", "--epochs", "0"][..], "--epochs"),
        (
            &["--act", "relu", "--schedule", "step:ten"][..],
            "--schedule",
        ),
        (&["--act", "lrelu:q=3"][..], "q"),
        (&["--act", "relu", "--arg", "classes"][..], "KEY=VALUE"),
        (&["--act", "relu", "--optimizer", "rmsprop"][..], "rmsprop"),
    ] {
        base(extra)
            .assert()
            .failure()
            .stderr(predicate::str::contains(expect))
            .stderr(predicate::str::contains("panicked").not());
    }
}

#[test]
fn missing_dataset_says_where_it_looked() {
    let empty = tempfile::tempdir().expect("tempdir");
    acbench()
        .env("ACBENCH_DATA", empty.path())
        .env("XDG_CACHE_HOME", empty.path())
        .args(["train", "--model"])
        .arg(model("convnet.acnet"))
        .args(["--act", "relu", "--dataset", "cifar10", "--data-dir"])
        .arg(empty.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains("acbench data fetch"));
}

/// The model of the report: 12.7e9 parameters (`linear(16000000)` after
/// 784 inputs). Building it used to abort ("memory allocation of
/// 50176000000 bytes failed", signal 6) or wake the OOM killer.
#[test]
fn a_model_too_big_for_memory_is_an_error_with_figures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("huge.acnet");
    std::fs::write(
        &model,
        "network huge(classes=10, channels=1, size=28) {\n input(channels, size, size)\n \
         flatten\n linear(16000000)\n act\n linear(classes)\n}\n",
    )
    .expect("model");
    let data = fashion_dir(16, 8);
    acbench()
        .env("ACBENCH_MEMORY_LIMIT", "8000000000")
        .args([
            "train",
            "--act",
            "relu",
            "--dataset",
            "fashion-mnist",
            "--model",
        ])
        .arg(&model)
        .arg("--data-dir")
        .arg(data.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "network `huge` needs at least 110.0 GiB (parameters 47.4 GiB",
        ))
        .stderr(predicate::str::contains(
            "but 7.5 GiB is available ($ACBENCH_MEMORY_LIMIT)",
        ))
        .stderr(predicate::str::contains(
            "largest layers: linear0 (46.8 GiB)",
        ));
}

/// A dataset that does not fit is refused the same way, before its
/// buffer is allocated, naming the file.
#[test]
fn a_dataset_too_big_for_memory_is_an_error_with_figures() {
    let data = fashion_dir(128, 8);
    acbench()
        .env("ACBENCH_MEMORY_LIMIT", "50000")
        .args([
            "train",
            "--act",
            "relu",
            "--dataset",
            "fashion-mnist",
            "--model",
        ])
        .arg(model("convnet.acnet"))
        .arg("--data-dir")
        .arg(data.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "train-images-idx3-ubyte: 128 images of 28x28 need 98.0 KiB of memory, but 48.8 KiB \
             is available ($ACBENCH_MEMORY_LIMIT)",
        ));
}
