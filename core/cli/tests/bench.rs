//! `acbench bench` on tiny generated Fashion-MNIST files. CI has no torch:
//! the PyTorch side is a fake python written by each test, which prints the
//! canned JSON line the reference script would.

mod common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use common::{acbench, fashion_dir, model};
use predicates::prelude::*;

/// Trainable parameters of convnet.acnet with ReLU (no activation parameters).
const CONVNET_RELU_PARAMS: usize = 421_642;

/// `acbench bench` with tiny settings on the generated data in `data`.
fn bench(data: &Path) -> Command {
    let mut cmd = acbench();
    cmd.env_remove("ACBENCH_TORCH_PYTHON")
        .args([
            "bench",
            "--batches",
            "2",
            "--warmup",
            "1",
            "--batch-size",
            "8",
            "--data-dir",
        ])
        .arg(data);
    cmd
}

/// An executable standing in for the venv's python: answers the probe, and
/// reports `params` parameters and 1000 img/s for every run.
fn fake_python(dir: &Path, params: usize) -> PathBuf {
    let path = dir.join("fake-python");
    let script = format!(
        "#!/bin/sh\n\
         for a in \"$@\"; do\n\
         \x20 if [ \"$a\" = --probe ]; then echo '{{\"torch\": \"0.0-fake\"}}'; exit 0; fi\n\
         done\n\
         echo 'a line of noise before the result'\n\
         echo '{{\"img_s\": 1000.0, \"peak_rss_mb\": 123.5, \"params\": {params}, \"torch\": \"0.0-fake\"}}'\n"
    );
    std::fs::write(&path, script).expect("write fake python");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    path
}

fn rows(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).expect("JSON written");
    serde_json::from_str::<serde_json::Value>(&text)
        .expect("valid JSON")
        .as_array()
        .expect("a list of rows")
        .clone()
}

#[test]
fn no_pytorch_measures_every_model_and_activation() {
    let data = fashion_dir(64, 10);
    let out = data.path().join("bench.json");
    bench(data.path())
        .args(["--no-pytorch", "--acts", "piecewise"])
        .arg("--json")
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains("acbench/PyTorch"))
        .stdout(predicate::str::contains("PyTorch not run (--no-pytorch)"));
    let rows = rows(&out);
    let got: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["model"].as_str().expect("model").to_owned(),
                r["activation"].as_str().expect("activation").to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = ["convnet", "vgg-small", "resnet20"]
        .iter()
        .flat_map(|m| ["relu", "arelu"].map(|a| ((*m).to_owned(), a.to_owned())))
        .collect();
    assert_eq!(got, want);
    for r in &rows {
        assert!(r["acbench_img_s"].as_f64().is_some_and(|v| v > 0.0), "{r}");
        assert!(
            r["acbench_peak_rss_mb"].as_f64().is_some_and(|v| v > 0.0),
            "{r}"
        );
        for k in ["pytorch_img_s", "ratio", "pytorch_peak_rss_mb"] {
            assert!(r[k].is_null(), "{k} must be null without PyTorch: {r}");
        }
    }
}

#[test]
fn ratio_is_acbench_over_pytorch() {
    let data = fashion_dir(64, 10);
    let out = data.path().join("bench.json");
    let python = fake_python(data.path(), CONVNET_RELU_PARAMS);
    bench(data.path())
        .args(["--model", "convnet", "--act", "relu", "--python"])
        .arg(&python)
        .arg("--json")
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains("PyTorch 0.0-fake"));
    let rows = rows(&out);
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    let ours = r["acbench_img_s"].as_f64().expect("acbench measured");
    assert_eq!(r["pytorch_img_s"].as_f64(), Some(1000.0));
    assert_eq!(r["pytorch_peak_rss_mb"].as_f64(), Some(123.5));
    let ratio = r["ratio"].as_f64().expect("ratio");
    assert!((ratio - ours / 1000.0).abs() <= 1e-12 * ratio.abs(), "{r}");
}

#[test]
fn a_different_parameter_count_fails_the_row() {
    let data = fashion_dir(64, 10);
    let out = data.path().join("bench.json");
    let python = fake_python(data.path(), CONVNET_RELU_PARAMS - 10);
    bench(data.path())
        .args(["--model", "convnet", "--act", "relu", "--python"])
        .arg(&python)
        .arg("--json")
        .arg(&out)
        .assert()
        .failure()
        .stderr(predicate::str::contains(format!(
            "PyTorch's model has {} trainable parameters, acbench's {CONVNET_RELU_PARAMS}",
            CONVNET_RELU_PARAMS - 10
        )))
        .stderr(predicate::str::contains("identical model"));
    let rows = rows(&out);
    assert!(rows[0]["acbench_img_s"].as_f64().is_some());
    assert!(rows[0]["pytorch_img_s"].is_null() && rows[0]["ratio"].is_null());
}

#[test]
fn missing_python_is_explained_and_acbench_rows_are_still_written() {
    let data = fashion_dir(64, 10);
    let out = data.path().join("bench.json");
    let missing = data.path().join("no-such-venv/bin/python");
    bench(data.path())
        .args(["--model", "convnet", "--act", "relu", "--python"])
        .arg(&missing)
        .arg("--json")
        .arg(&out)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no python at"))
        .stderr(predicate::str::contains("bench/setup-pytorch.sh"))
        .stdout(predicate::str::contains("—"));
    let rows = rows(&out);
    assert_eq!(rows.len(), 1);
    assert!(rows[0]["acbench_img_s"].as_f64().is_some_and(|v| v > 0.0));
    assert!(rows[0]["pytorch_img_s"].is_null());
}

#[test]
fn a_python_without_torch_is_explained() {
    let data = fashion_dir(64, 10);
    let python = data.path().join("python-without-torch");
    std::fs::write(
        &python,
        "#!/bin/sh\necho 'pytorch_reference: torch could not be imported' >&2\nexit 3\n",
    )
    .expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    bench(data.path())
        .args(["--model", "convnet", "--act", "relu", "--python"])
        .arg(&python)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot import torch"))
        .stderr(predicate::str::contains("bench/setup-pytorch.sh"));
}

#[test]
fn bad_models_are_reported_before_anything_runs() {
    let data = fashion_dir(64, 10);
    bench(data.path())
        .args(["--no-pytorch", "--model", "resnet21"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "unknown benchmark model `resnet21`",
        ))
        .stderr(predicate::str::contains("convnet, vgg-small, resnet20"));
    let bad = data.path().join("bad.acnet");
    std::fs::write(
        &bad,
        "network n(classes=10, channels=1, size=28) {\n  input(channels, size, size)\n  cnv(8)\n}\n",
    )
    .expect("write");
    bench(data.path())
        .arg("--no-pytorch")
        .arg("--model")
        .arg(&bad)
        .assert()
        .failure()
        .stderr(predicate::str::contains("bad.acnet:3:3"));
    // A model smaller than the images cannot take them.
    let small = data.path().join("small.acnet");
    std::fs::write(
        &small,
        "# too small\nnetwork small(classes=10, channels=1, size=16) {\n  \
         input(channels, size, size)\n  flatten linear(32) act linear(classes)\n}\n",
    )
    .expect("write");
    bench(data.path())
        .arg("--no-pytorch")
        .arg("--model")
        .arg(&small)
        .assert()
        .failure()
        .stderr(predicate::str::contains("takes 1x16x16 inputs"))
        .stderr(predicate::str::contains("never cropped"));
    acbench()
        .args(["bench", "--no-pytorch", "--batches", "0", "--model"])
        .arg(model("convnet.acnet"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("--batches must be at least 1"));
}

#[test]
fn paper_models_by_name_take_padded_three_channel_images() {
    let data = fashion_dir(16, 4);
    let out = data.path().join("bench.json");
    acbench()
        .env_remove("ACBENCH_TORCH_PYTHON")
        .args([
            "bench",
            "--no-pytorch",
            "--model",
            "alexnet",
            "--act",
            "relu",
            "--batches",
            "1",
            "--warmup",
            "0",
            "--batch-size",
            "4",
            "--json",
        ])
        .arg(&out)
        .arg("--data-dir")
        .arg(data.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("grey replicated to its channels"));
    let rows = rows(&out);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["model"], "alexnet");
    assert!(rows[0]["acbench_img_s"].as_f64().is_some_and(|v| v > 0.0));
}

#[test]
fn quick_says_what_it_runs_and_act_sets_expand() {
    let data = fashion_dir(16, 4);
    let out = data.path().join("bench.json");
    acbench()
        .env_remove("ACBENCH_TORCH_PYTHON")
        .args([
            "bench",
            "--quick",
            "--no-pytorch",
            "--model",
            "convnet",
            "--acts",
            "smooth",
            "--batches",
            "1",
            "--batch-size",
            "4",
            "--json",
        ])
        .arg(&out)
        .arg("--data-dir")
        .arg(data.path())
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "quick run: 1 timed batch after 1 warm-up, 1 run per side, models convnet",
        ))
        .stdout(predicate::str::contains("1 timed batches after 1 warm-up"));
    let acts: Vec<String> = rows(&out)
        .iter()
        .map(|r| r["activation"].as_str().expect("activation").to_owned())
        .collect();
    assert_eq!(acts, ["tanh", "sigmoid", "swish", "atanh", "asigmoid"]);
}

/// Fills and touches `mib` MiB, so that this process's peak RSS is at least that.
fn touch(mib: usize) -> Vec<u8> {
    let mut block = vec![0u8; mib << 20];
    for page in block.chunks_mut(4096) {
        page[0] = 1;
    }
    std::hint::black_box(block)
}

#[cfg(target_os = "linux")]
#[test]
fn a_worker_reports_its_own_peak_rss_not_its_parents() {
    // A parent whose peak is far above what the worker needs: a child's
    // ru_maxrss starts at its parent's peak, its own VmHWM does not.
    let parent_mib = 768;
    let block = touch(parent_mib);
    let data = fashion_dir(16, 4);
    let out = acbench()
        .args([
            "--threads",
            "1",
            "bench-worker",
            "--model",
            "convnet",
            "--act",
            "relu",
            "--batches",
            "1",
            "--warmup",
            "0",
            "--batch-size",
            "4",
            "--lr",
            "0.05",
            "--seed",
            "0",
            "--data-dir",
        ])
        .arg(data.path().join("fashion-mnist"))
        .output()
        .expect("runs");
    drop(block);
    assert!(out.status.success(), "{out:?}");
    let line = String::from_utf8_lossy(&out.stdout);
    let m: serde_json::Value = serde_json::from_str(line.trim()).expect("one JSON line");
    let peak = m["peak_rss_mb"].as_f64().expect("peak RSS reported");
    assert!(
        peak > 1.0 && peak < (parent_mib / 2) as f64,
        "the worker reports {peak} MiB after its parent touched {parent_mib} MiB"
    );
}
