//! `acbench sweep` end to end on tiny generated Fashion-MNIST files: a
//! sweep ranks its runs, a second invocation replays them from the ledger,
//! and located script errors lose no finished run.

mod common;

use std::path::Path;

use acbench_ledger::{Ledger, RunStatus};
use common::{acbench, fashion_dir, model, repo_root};
use predicates::prelude::*;

/// Two activations on the convnet, ranked; `tail` is appended.
fn write_sweep(dir: &Path, name: &str, tail: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    let text = format!(
        "let base = #{{ dataset: #{{ name: \"fashion-mnist\", limit_train: 128, limit_test: 64 }},\n\
         name: \"tiny\", model: \"{}\", lr: 0.05, epochs: 1, batch_size: 32, seed: 0 }};\n\
         let specs = [];\n\
         for act in [\"relu\", \"arelu\"] {{ let s = base; s.activation = act; specs.push(s); }}\n\
         let results = runs(specs);\n\
         let order = rank(results.map(|r| r.final_acc));\n\
         for (i, place) in order {{ print(`rank ${{place + 1}}: ${{results[i].activation}}`); }}\n\
         print(table(results));\n{tail}",
        model("convnet.acnet").display()
    );
    std::fs::write(&path, text).expect("sweep");
    path
}

fn ledger_runs(out: &Path) -> Vec<(String, RunStatus, u32)> {
    let ledger = Ledger::open(&out.join("ledger.sqlite")).expect("ledger");
    ledger
        .runs()
        .expect("runs")
        .into_iter()
        .map(|r| (r.labels.activation, r.status, r.attempts))
        .collect()
}

#[test]
fn sweep_ranks_replays_and_keeps_runs_through_errors() {
    let data = fashion_dir(128, 64);
    let out = data.path().join("out");
    let sweep = |script: &Path| {
        let mut cmd = acbench();
        cmd.arg("sweep")
            .arg(script)
            .arg("--out")
            .arg(&out)
            .arg("--data-dir")
            .arg(data.path())
            .arg("--allow-read")
            .arg(repo_root().join("suites/models"));
        cmd
    };
    let good = write_sweep(data.path(), "tiny.rhai", "");
    sweep(&good)
        .assert()
        .success()
        .stdout(predicate::str::contains("rank 1: "))
        .stdout(predicate::str::contains("rank 2: "))
        .stdout(predicate::str::contains("2 runs (2 trained, 0 replayed"));
    let first = ledger_runs(&out);
    assert_eq!(first.len(), 2);
    assert!(
        first
            .iter()
            .all(|(_, s, a)| *s == RunStatus::Finished && *a == 1),
        "{first:?}"
    );
    assert!(out.join("report.md").exists() || out.join("suite.json").exists());

    sweep(&good)
        .assert()
        .success()
        .stdout(predicate::str::contains("2 runs (0 trained, 2 replayed"))
        .stdout(predicate::str::contains("rank 1: "));
    assert_eq!(ledger_runs(&out), first, "a replay trains nothing");

    // Each failing script first asks for the two finished runs again (the
    // same `name`, so the same keys): they replay, and stay.
    let cases = [
        ("syntax.rhai", "let x = (1 +;\n", ":9:13", "syntax error"),
        (
            "key.rhai",
            "let s = base;\ns.activation = \"relu\";\ns.epoch = 3;\nrun(s);\n",
            ":12:1",
            "unknown field `epoch`",
        ),
        (
            "loop.rhai",
            "let n = 0;\nloop { n += 1; }\n",
            ":10:",
            "operations",
        ),
        ("eval.rhai", "let y = eval(\"1\");\n", ":9:9", "eval"),
    ];
    for (name, tail, place, what) in cases {
        let script = write_sweep(data.path(), name, tail);
        let mut cmd = sweep(&script);
        cmd.arg("--max-operations").arg("100000");
        cmd.assert()
            .failure()
            .stderr(predicate::str::contains(format!("{name}{place}")))
            .stderr(predicate::str::contains(what));
        assert_eq!(ledger_runs(&out), first, "{name} lost or retrained a run");
    }
}

#[test]
fn a_sweep_trains_detectors_and_reads_their_scores() {
    let data = fashion_dir(32, 16);
    let out = data.path().join("out");
    let script = data.path().join("det.rhai");
    let text = format!(
        "let base = #{{ dataset: #{{ name: \"fashion-mnist-boxes\", limit_train: 16, limit_test: 8 }},\n\
         name: \"det\", model: #{{ file: \"{}\", detector: \"fcos\", args: #{{ filters: 4 }} }},\n\
         optimizer: \"adam\", lr: 0.002, epochs: 1, batch_size: 8, seed: 0 }};\n\
         let specs = [];\n\
         for act in [\"relu\", \"arelu\"] {{ let s = base; s.activation = act; specs.push(s); }}\n\
         for r in runs(specs) {{\n\
           if r.final_acc != r.detection[\"coco.ap50\"] {{ throw \"final_acc is not AP50\"; }}\n\
           print(`${{r.activation}} ap50=${{r.detection[\"coco.ap50\"]}} voc07=${{r.detection[\"voc07.map\"]}}`);\n\
         }}\n",
        model("fcos-tiny.acnet").display()
    );
    std::fs::write(&script, text).expect("sweep");
    acbench()
        .arg("sweep")
        .arg(&script)
        .arg("--out")
        .arg(&out)
        .arg("--data-dir")
        .arg(data.path())
        .arg("--allow-read")
        .arg(repo_root().join("suites/models"))
        .assert()
        .success()
        .stdout(predicate::str::contains("relu ap50="))
        .stdout(predicate::str::contains("arelu ap50="))
        .stdout(predicate::str::contains("voc07="));
    assert_eq!(ledger_runs(&out).len(), 2);
}

#[test]
fn a_sweep_reads_only_its_folder_and_allow_read() {
    let data = fashion_dir(64, 32);
    let out = data.path().join("out");
    let script = write_sweep(data.path(), "outside.rhai", "");
    acbench()
        .arg("sweep")
        .arg(&script)
        .arg("--out")
        .arg(&out)
        .arg("--data-dir")
        .arg(data.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains("outside.rhai:5:"))
        .stderr(predicate::str::contains("the sweep may not read"))
        .stderr(predicate::str::contains("convnet.acnet"))
        .stderr(predicate::str::contains("--allow-read"));
    assert!(ledger_runs(&out).is_empty(), "nothing trained");
    acbench()
        .arg("sweep")
        .arg(&script)
        .arg("--out")
        .arg(&out)
        .arg("--allow-read")
        .arg(data.path().join("missing"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("--allow-read"))
        .stderr(predicate::str::contains("missing"));
}

/// The shipped sweeps sit next to the suites and read `models/` and the
/// suite files from their own folder, with no `--allow-read`.
#[test]
fn shipped_sweeps_run_from_their_folder() {
    let data = fashion_dir(64, 32);
    for (script, runs) in [("arelu-init.rhai", 6), ("optimizers.rhai", 25)] {
        let out = data.path().join(script);
        acbench()
            .arg("sweep")
            .arg(repo_root().join("suites").join(script))
            .args(["--set", "quick=true", "--out"])
            .arg(&out)
            .arg("--data-dir")
            .arg(data.path())
            .assert()
            .success()
            .stdout(predicate::str::contains(format!(
                "{runs} runs ({runs} trained"
            )));
    }
}
