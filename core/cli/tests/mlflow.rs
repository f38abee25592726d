//! `acbench export mlflow` against a real MLflow tracking server, started
//! by `scripts/mlflow-local.sh` in a temporary folder, on a ledger written
//! here through the ledger's API: parameters, per-epoch metrics, tags,
//! artifacts and statuses read back through the REST API, and exports
//! repeated without duplicates.
//!
//! The server test is ignored by default: it needs python3 and mlflow from
//! PyPI. The venv is `$ACBENCH_MLFLOW_VENV`, else
//! `~/.cache/acbench/mlflow-venv`; the script creates it there (pip install
//! mlflow, a few minutes) if it is missing. Run it with
//! `cargo test -p acbench --test mlflow -- --ignored`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use acbench_ledger::{ActParam, EpochRecord, Ledger, RunLabels, RunStatus};
use common::{acbench, repo_root};
use predicates::prelude::*;
use serde_json::{Value, json};

const SUITE: &str = "mlflow-test";

/// A local MLflow server, stopped (its whole process group) when dropped,
/// however the test ends.
struct Server {
    dir: tempfile::TempDir,
    url: String,
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let venv = std::env::var_os("ACBENCH_MLFLOW_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let home = std::env::var_os("HOME").expect("HOME");
                Path::new(&home).join(".cache/acbench/mlflow-venv")
            });
        let out = Command::new(script())
            .arg("start")
            .arg(dir.path())
            .env("MLFLOW_VENV", &venv)
            .output()
            .expect("run scripts/mlflow-local.sh");
        // Built before checking, so that Drop stops a half-started server.
        let server = Server {
            url: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            dir,
        };
        assert!(
            out.status.success() && server.url.starts_with("http://"),
            "mlflow-local.sh start failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        server
    }

    fn api(&self, endpoint: &str) -> String {
        format!("{}/api/2.0/mlflow/{endpoint}", self.url)
    }

    fn get(&self, endpoint: &str, query: &[(&str, &str)]) -> Value {
        let mut request = ureq::get(self.api(endpoint));
        for (k, v) in query {
            request = request.query(*k, *v);
        }
        let text = request
            .call()
            .expect("GET")
            .body_mut()
            .read_to_string()
            .expect("body");
        serde_json::from_str(&text).expect("json")
    }

    fn post(&self, endpoint: &str, body: &Value) -> Value {
        let text = ureq::post(self.api(endpoint))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .expect("POST")
            .body_mut()
            .read_to_string()
            .expect("body");
        serde_json::from_str(&text).expect("json")
    }

    fn experiment_id(&self, name: &str) -> String {
        let e = self.get("experiments/get-by-name", &[("experiment_name", name)]);
        e["experiment"]["experiment_id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    /// The experiment's active runs.
    fn runs(&self, experiment_id: &str) -> Vec<Value> {
        let r = self.post(
            "runs/search",
            &json!({"experiment_ids": [experiment_id], "max_results": 1000}),
        );
        r["runs"].as_array().cloned().unwrap_or_default()
    }

    /// (step, value) of every logged value of `key`.
    fn history(&self, run_id: &str, key: &str) -> Vec<(i64, f64)> {
        let h = self.get(
            "metrics/get-history",
            &[("run_id", run_id), ("metric_key", key)],
        );
        let mut points: Vec<_> = h["metrics"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| {
                let value = match &m["value"] {
                    Value::String(s) => s.parse().expect("NaN or infinity"),
                    v => v.as_f64().expect("number"),
                };
                (m["step"].as_i64().unwrap_or(0), value)
            })
            .collect();
        points.sort_by_key(|p| p.0);
        points
    }

    fn artifacts(&self, run_id: &str) -> Vec<String> {
        let a = self.get("artifacts/list", &[("run_id", run_id)]);
        let mut names: Vec<_> = a["files"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|f| f["path"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        names
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let stopped = Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
        if !matches!(stopped, Ok(s) if s.success()) {
            eprintln!("mlflow-local.sh stop {} failed", self.dir.path().display());
        }
    }
}

fn script() -> PathBuf {
    repo_root().join("scripts/mlflow-local.sh")
}

/// A tag's value in a run as the REST API returns it.
fn tag<'a>(run: &'a Value, key: &str) -> Option<&'a str> {
    run["data"]["tags"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)?["value"]
        .as_str()
}

fn param<'a>(run: &'a Value, key: &str) -> Option<&'a str> {
    run["data"]["params"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)?["value"]
        .as_str()
}

fn by_name<'a>(runs: &'a [Value], name: &str) -> &'a Value {
    runs.iter()
        .find(|r| r["info"]["run_name"] == name)
        .unwrap_or_else(|| panic!("no run {name} in {runs:#?}"))
}

fn labels(activation: &str, seed: u64) -> RunLabels {
    RunLabels {
        suite: SUITE.into(),
        model: "convnet".into(),
        activation: activation.into(),
        optimizer: "sgd".into(),
        dataset: "fashion-mnist".into(),
        seed,
    }
}

fn spec(activation: &str, seed: u64) -> Value {
    json!({
        "suite": SUITE,
        "preset": "paper-code",
        "model": {"label": "convnet", "sha256": "ab12", "network": null, "args": {"classes": 10}},
        "activation": {"label": activation, "bindings": [activation]},
        "optimizer": "sgd",
        "dataset": {"name": "fashion-mnist", "limit_train": 192},
        "train": {"lr": 0.05, "epochs": 3, "seed": seed, "schedule": {"milestones": [70, 100]}},
        "plugins": [{"path": "<linked>/acbench-baselines", "sha256": "cd34"}],
        // Longer than MLflow takes: cut, and said so in a tag.
        "note": "n".repeat(7000),
    })
}

fn epoch(i: usize) -> EpochRecord {
    EpochRecord {
        epoch: i,
        lr: 0.05,
        train_loss: 2.0 - 0.5 * i as f64,
        train_acc: 0.3 + 0.1 * i as f64,
        test_loss: 2.1 - 0.5 * i as f64,
        test_acc: 0.25 + 0.1 * i as f64,
        wall_s: 1.5,
        act_params: vec![
            ActParam {
                slot: "fc".into(),
                activation: "arelu".into(),
                param: "a".into(),
                values: vec![1.0 + 0.01 * i as f64],
            },
            ActParam {
                slot: "conv1".into(),
                activation: "prelu_channel".into(),
                param: "a".into(),
                values: vec![0.1, 0.2 + i as f64, 0.3],
            },
        ],
        weight_increments: vec![("conv1".into(), 0.5 / (i + 1) as f64)],
        step_losses: vec![
            (i * 4 + 2, 2.1 - 0.5 * i as f64),
            (i * 4 + 4, 1.9 - 0.5 * i as f64),
        ],
        detection: Vec::new(),
        pr_curve: Vec::new(),
    }
}

/// The ledger key of a run (any distinct hex strings will do here).
fn key(activation: &str, seed: u64) -> String {
    let hex: String = activation.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{hex}{seed:04x}")
}

/// OUT/ledger.sqlite with a finished run (3 epochs), a diverged one (1), a
/// failed one (none) and one still running (1); report.md and report.csv.
fn write_out(out: &Path) {
    let mut ledger = Ledger::open(&out.join("ledger.sqlite")).expect("ledger");
    let runs: [(&str, u64, usize, Option<RunStatus>); 4] = [
        ("arelu", 0, 3, Some(RunStatus::Finished)),
        (
            "relu",
            0,
            1,
            Some(RunStatus::Diverged {
                epoch: 1,
                cause: None,
            }),
        ),
        (
            "tanh",
            0,
            0,
            Some(RunStatus::Failed {
                error: "out of memory".into(),
            }),
        ),
        ("swish", 1, 1, None),
    ];
    for (act, seed, epochs, status) in runs {
        let k = key(act, seed);
        ledger
            .begin_run(&k, &labels(act, seed), &spec(act, seed), &json!({}), 0)
            .expect("begin");
        for i in 0..epochs {
            ledger.record_epoch(&k, &epoch(i)).expect("epoch");
        }
        if let Some(s) = status {
            ledger.end_run(&k, &s).expect("end");
        }
    }
    std::fs::write(out.join("report.md"), "# report\n").expect("report.md");
    std::fs::write(out.join("report.csv"), "a,b\n1,2\n").expect("report.csv");
}

fn export(out: &Path, url: &str) -> String {
    let assert = acbench()
        .args(["export", "mlflow"])
        .arg(out)
        .args(["--uri", url])
        .assert()
        .success();
    String::from_utf8_lossy(&assert.get_output().stdout).into_owned()
}

#[test]
#[ignore = "needs python3 and mlflow from PyPI (scripts/mlflow-local.sh starts a server); \
            run with `cargo test -p acbench --test mlflow -- --ignored`"]
fn export_to_a_real_mlflow_server() {
    let server = Server::start();
    let out = tempfile::tempdir().expect("tempdir");
    write_out(out.path());

    // First export: everything created, reports attached to every run.
    let stdout = export(out.path(), &server.url);
    assert!(
        stdout.contains("created 4, skipped 0 (already there)"),
        "{stdout}"
    );
    assert!(stdout.contains("artifacts uploaded: 8"), "{stdout}");
    assert!(!stdout.contains("not uploaded"), "{stdout}");
    let exp = server.experiment_id(SUITE);
    let runs = server.runs(&exp);
    assert_eq!(runs.len(), 4, "{runs:#?}");

    let arelu = by_name(&runs, "convnet/arelu/sgd/fashion-mnist/0");
    let id = arelu["info"]["run_id"].as_str().expect("run id");
    assert_eq!(arelu["info"]["status"], "FINISHED");
    assert!(arelu["info"]["end_time"].as_i64().is_some());
    assert_eq!(
        tag(arelu, "acbench.spec_hash"),
        Some(key("arelu", 0).as_str())
    );
    assert_eq!(tag(arelu, "acbench.status"), Some("finished"));
    assert_eq!(tag(arelu, "acbench.export"), Some("complete"));
    assert_eq!(
        tag(arelu, "mlflow.runName"),
        Some("convnet/arelu/sgd/fashion-mnist/0")
    );
    for (k, v) in [
        ("model", "convnet"),
        ("activation", "arelu"),
        ("optimizer", "sgd"),
        ("dataset", "fashion-mnist"),
        ("seed", "0"),
    ] {
        assert_eq!(tag(arelu, k), Some(v), "tag {k}");
    }
    // The spec, flattened; the long value cut and said so.
    assert_eq!(param(arelu, "train.lr"), Some("0.05"));
    assert_eq!(param(arelu, "train.schedule.milestones"), Some("[70,100]"));
    assert_eq!(param(arelu, "model.args.classes"), Some("10"));
    assert_eq!(param(arelu, "model.network"), Some("null"));
    assert_eq!(param(arelu, "plugins.0.sha256"), Some("cd34"));
    assert_eq!(param(arelu, "note").map(str::len), Some(6000));
    assert!(
        tag(arelu, "acbench.truncated_params")
            .is_some_and(|t| t.starts_with("note: value of 7000")),
        "{arelu:#?}"
    );
    // Every epoch's metrics, at step = epoch.
    assert_eq!(
        server.history(id, "train_loss"),
        [(0, 2.0), (1, 1.5), (2, 1.0)]
    );
    assert_eq!(server.history(id, "test_acc").len(), 3);
    assert_eq!(server.history(id, "lr"), [(0, 0.05), (1, 0.05), (2, 0.05)]);
    assert_eq!(server.history(id, "wall_s").len(), 3);
    assert_eq!(
        server.history(id, "act.fc.a"),
        [(0, 1.0), (1, 1.01), (2, 1.02)]
    );
    assert_eq!(
        server.history(id, "act.conv1.a.1"),
        [(0, 0.2), (1, 1.2), (2, 2.2)]
    );
    assert_eq!(server.history(id, "dw.conv1")[1], (1, 0.25));
    assert_eq!(server.artifacts(id), ["report.csv", "report.md"]);

    let relu = by_name(&runs, "convnet/relu/sgd/fashion-mnist/0");
    assert_eq!(relu["info"]["status"], "FAILED");
    assert_eq!(tag(relu, "acbench.status"), Some("diverged"));
    assert_eq!(tag(relu, "acbench.diverged_epoch"), Some("1"));
    let tanh = by_name(&runs, "convnet/tanh/sgd/fashion-mnist/0");
    assert_eq!(tanh["info"]["status"], "FAILED");
    assert_eq!(tag(tanh, "acbench.error"), Some("out of memory"));
    let swish = by_name(&runs, "convnet/swish/sgd/fashion-mnist/1");
    assert_eq!(swish["info"]["status"], "RUNNING");
    assert_eq!(tag(swish, "acbench.status"), Some("running"));

    // Again: nothing new, no metric logged twice.
    let stdout = export(out.path(), &server.url);
    assert!(
        stdout.contains("created 0, skipped 4 (already there)"),
        "{stdout}"
    );
    let again = server.runs(&exp);
    assert_eq!(again.len(), 4);
    assert_eq!(server.history(id, "train_loss").len(), 3);

    // The running run ends with another epoch: its export is replaced,
    // the others skipped.
    {
        let mut ledger = Ledger::open(&out.path().join("ledger.sqlite")).expect("ledger");
        let k = key("swish", 1);
        ledger.record_epoch(&k, &epoch(1)).expect("epoch");
        ledger.end_run(&k, &RunStatus::Finished).expect("end");
    }
    let stdout = export(out.path(), &server.url);
    assert!(
        stdout.contains("created 1, skipped 3 (already there)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("replacing an incomplete export"),
        "{stdout}"
    );
    let last = server.runs(&exp);
    assert_eq!(last.len(), 4, "the old export is deleted");
    let swish = by_name(&last, "convnet/swish/sgd/fashion-mnist/1");
    assert_eq!(swish["info"]["status"], "FINISHED");
    let swish_id = swish["info"]["run_id"].as_str().expect("id");
    assert_eq!(server.history(swish_id, "train_loss").len(), 2);

    // --experiment picks another one; it starts empty.
    let assert = acbench()
        .args(["export", "mlflow"])
        .arg(out.path())
        .args(["--uri", &server.url, "--experiment", "other"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    assert!(stdout.contains("new experiment 'other'"), "{stdout}");
    assert!(stdout.contains("created 4, skipped 0"), "{stdout}");
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    let out = tempfile::tempdir().expect("tempdir");
    write_out(out.path());
    // Port 1 on the loopback: nothing listens there.
    acbench()
        .args(["export", "mlflow"])
        .arg(out.path())
        .args(["--uri", "http://127.0.0.1:1"])
        .assert()
        .failure()
        .stderr(
            predicate::str::contains(
                "cannot reach the MLflow tracking server at http://127.0.0.1:1/api/2.0/mlflow/",
            )
            .and(predicate::str::contains("experiment 'mlflow-test'"))
            .and(predicate::str::contains("panicked").not()),
        );
}

#[test]
fn a_folder_without_a_ledger_is_a_clear_error() {
    let out = tempfile::tempdir().expect("tempdir");
    acbench()
        .args(["export", "mlflow"])
        .arg(out.path())
        .args(["--uri", "http://127.0.0.1:1"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no ledger"));
    acbench()
        .args(["export", "mlflow", "."])
        .args(["--uri", "127.0.0.1:5000"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("not an http:// or https:// URL"));
}
