use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use acbench_engine::activation::Registry;
use acbench_engine::train::{EpochMetrics, Observer};
use acbench_suite::runner::{BatchObserver, RunObserver};

use super::*;

/// Keeps what the script printed.
struct Lines(Rc<RefCell<Vec<String>>>);

impl Observer for Lines {
    fn epoch_end(&mut self, _: &EpochMetrics) {}
}
impl RunObserver for Lines {
    fn run_start(&mut self, _: &RunSpec, _: usize, _: usize) {}
}
impl BatchObserver for Lines {
    fn batch_start(&mut self, _: usize) {}
    fn run_end(&mut self, _: &RunSpec, _: &Outcome, _: &Summary) {}
    fn batch_done(&mut self) {}
}
impl SweepObserver for Lines {
    fn print(&mut self, line: &str) {
        self.0.borrow_mut().push(line.to_owned());
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `script` with no plugins loaded: enough for everything that
/// fails or finishes before training.
fn sweep(
    script: &str,
    sets: &[&str],
    limits: Limits,
    max_seconds: Option<f64>,
) -> (SweepRun, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.rhai");
    std::fs::write(&path, script).expect("script");
    let mut catalog = Catalog::default();
    catalog.activations.insert("relu".into(), Vec::new());
    catalog.activations.insert(
        "arelu".into(),
        ["a", "b", "c", "d"].map(String::from).to_vec(),
    );
    let lines = Rc::new(RefCell::new(Vec::new()));
    let options = SweepOptions {
        script: path,
        out_dir: dir.path().join("out"),
        sets: sets.iter().map(|s| (*s).to_owned()).collect(),
        max_seconds,
        limits,
        allow_read: vec![repo().join("suites")],
    };
    let runner = Runner::new(
        Arc::new(Registry::new()),
        candle_core::Device::Cpu,
        None,
        false,
    );
    let out = run(&options, catalog, runner, Box::new(Lines(lines.clone())));
    let printed = lines.borrow().clone();
    (out, printed)
}

fn error(script: &str) -> String {
    let (out, _) = sweep(script, &[], Limits::default(), None);
    match out.result {
        Err(e) => e.headline(),
        Ok(()) => panic!("expected an error"),
    }
}

fn spec_text() -> String {
    format!(
        "#{{ dataset: \"fashion-mnist\", model: \"{}\", activation: \"relu\", epochs: 1 }}",
        repo().join("suites/models/convnet.acnet").display()
    )
}

#[test]
fn syntax_errors_are_located() {
    let e = error("let a = 1;\nlet b = (a + ;\n");
    assert!(e.contains("t.rhai:2:"), "{e}");
    assert!(e.contains("syntax error"), "{e}");
}

#[test]
fn eval_and_import_are_disabled() {
    let e = error("let a = 1;\n  eval(\"a\");\n");
    assert!(e.contains("t.rhai:2:3") && e.contains("eval"), "{e}");
    let e = error("import \"other\" as o;\n");
    assert!(e.contains("t.rhai:1:1") && e.contains("import"), "{e}");
}

#[test]
fn endless_loops_hit_the_operation_limit() {
    let limits = Limits {
        max_operations: 10_000,
        ..Limits::default()
    };
    let (out, _) = sweep(
        "let x = 0;\nwhile true {\n    x += 1;\n}\n",
        &[],
        limits,
        None,
    );
    let e = out.result.expect_err("limit").headline();
    assert!(
        e.contains("t.rhai:3:") && e.contains("10000 operations"),
        "{e}"
    );
}

#[test]
fn wall_clock_limit_stops_the_script() {
    let (out, _) = sweep("loop { }\n", &[], Limits::default(), Some(0.05));
    let e = out.result.expect_err("limit").headline();
    assert!(e.contains("wall-clock limit"), "{e}");
}

#[test]
fn unknown_spec_keys_name_the_key_and_the_call() {
    let e = error(&format!(
        "let s = {};\ns.epoch = 2;\nlet r =  run(s);\n",
        spec_text()
    ));
    assert!(e.contains("t.rhai:3:10: run(): "), "{e}");
    assert!(e.contains("unknown field `epoch`"), "{e}");
    let e = error(&format!(
        "let s = {};\ns.out = \"x\";\nrun(s);\n",
        spec_text()
    ));
    assert!(e.contains("`out`: not allowed"), "{e}");
    let e = error(&format!(
        "let s = {};\ns.activations = [\"relu\"];\nrun(s);\n",
        spec_text()
    ));
    assert!(
        e.contains("`activation` and `activations` both given"),
        "{e}"
    );
    let e = error(&format!(
        "let s = {};\ns.activation = \"nope\";\nrun(s);\n",
        spec_text()
    ));
    assert!(e.contains("unknown activation `nope`"), "{e}");
}

#[test]
fn a_run_spec_describes_one_run() {
    let e = error(&format!(
        "let s = {};\ns.seeds = [0, 1];\ns.remove(\"seed\");\nrun(s);\n",
        spec_text()
    ));
    assert!(e.contains("describes 2 runs"), "{e}");
    let e = error(&format!("let s = {};\nruns([s, 3]);\n", spec_text()));
    assert!(e.contains("element 1 is a i64"), "{e}");
}

#[test]
fn sets_are_constants_and_settings() {
    let (out, printed) = sweep(
        "print(`${quick} ${n + 1} ${setting(\"quick\", false)} ${setting(\"other\", 7)}`);\n",
        &["quick=true", "n=41"],
        Limits::default(),
        None,
    );
    out.result.expect("runs");
    assert_eq!(printed, ["true 42 true 7"]);
    for bad in ["quick", "1x=2", "a.b=1"] {
        let (out, _) = sweep("", &[bad], Limits::default(), None);
        assert!(matches!(out.result, Err(SweepError::Set { .. })), "{bad}");
    }
}

#[test]
fn suite_maps_have_paths_from_the_script_folder() {
    let quickstart = repo().join("suites/quickstart.yaml");
    let (out, printed) = sweep(
        &format!(
            "let s = suite(\"{}\");\nprint(s.models[0]);\nprint(`${{\"name\" in s}} ${{s.activations.len()}}`);\n",
            quickstart.display()
        ),
        &[],
        Limits::default(),
        None,
    );
    out.result.expect("runs");
    assert_eq!(
        printed,
        [
            repo()
                .join("suites/models/convnet-bn.acnet")
                .display()
                .to_string(),
            "false 6".to_owned()
        ]
    );
}

#[test]
fn reads_outside_the_allowed_folders_are_refused_at_the_call() {
    let dir = tempfile::tempdir().expect("tmp");
    let secret = dir.path().join("secret.yaml");
    std::fs::write(&secret, "dataset: fashion-mnist\nmodels: [x.acnet]\n").expect("file");
    let e = error(&format!("let s = suite(\"{}\");\n", secret.display()));
    assert!(
        e.contains("t.rhai:1:9") && e.contains("`suite`: the sweep may not read"),
        "{e}"
    );
    let e = error(&format!(
        "run(#{{ dataset: \"fashion-mnist\", model: \"{}\", activation: \"relu\" }});\n",
        dir.path().join("m.acnet").display()
    ));
    assert!(e.contains("`models[0]`: the sweep may not read"), "{e}");
    let e = error(&format!(
        "run(#{{ dataset: \"folder:{}\", model: \"{}\", activation: \"relu\" }});\n",
        dir.path().display(),
        repo().join("suites/models/convnet.acnet").display()
    ));
    assert!(e.contains("`dataset`: the sweep may not read"), "{e}");
}

#[test]
fn helpers_rank_and_average() {
    let (out, printed) = sweep(
        "print(rank([0.2, (), 0.9]));\nprint(argmax([1, 5, 3]));\nprint(mean([1, 2, 3]));\n",
        &[],
        Limits::default(),
        None,
    );
    out.result.expect("runs");
    assert_eq!(printed, ["[2, 0, 1]", "1", "2.0"]);
    let e = error("let m = mean([]);\n");
    assert!(e.contains("t.rhai:1:9") && e.contains("empty"), "{e}");
}
