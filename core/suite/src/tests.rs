//! Suite parsing and resolution on small files in a temp dir.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;

const NET: &str = "network tiny(classes=10, channels=1, size=28) {\n  input(channels, size, size)\n  conv(4, 3, pad=same) act maxpool(2)\n  flatten linear(16) act@fc linear(classes)\n}\n";

fn catalog() -> Catalog {
    let mut activations = BTreeMap::new();
    for (name, params) in [
        ("relu", vec![]),
        ("arelu", vec!["a", "b", "c", "d"]),
        ("lrelu", vec!["s"]),
        ("prelu", vec!["p"]),
    ] {
        activations.insert(
            name.to_owned(),
            params.into_iter().map(str::to_owned).collect(),
        );
    }
    Catalog {
        activations,
        plugins: vec![PluginRef {
            path: "/x/libp.so".into(),
            sha256: "ab".repeat(32),
        }],
        detectors: Vec::new(),
        detector_plugins: Vec::new(),
    }
}

fn setup(suite: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("tiny.acnet"), NET).expect("model");
    std::fs::write(
        dir.path().join("fixed.acnet"),
        "network fixed(classes=10) {\n  input 1x28x28\n  flatten linear(classes)\n}\n",
    )
    .expect("model");
    let path = dir.path().join("s.yaml");
    std::fs::write(&path, suite).expect("suite");
    (dir, path)
}

fn resolve_err(suite: &str, sets: &[&str]) -> String {
    let (_d, path) = setup(suite);
    let sets: Vec<String> = sets.iter().map(|s| (*s).to_owned()).collect();
    match read(&path, &sets).and_then(|l| l.resolve(&catalog(), None)) {
        Ok(_) => panic!("expected an error for:\n{suite}"),
        Err(e) => e.headline().replace(&*path.to_string_lossy(), "s.yaml"),
    }
}

const GOOD: &str = "name: quick\npreset: paper-code\npaper_table: table1\ndataset: {name: fashion-mnist, limit_train: 100}\nmodels: [tiny.acnet]\nactivations: [relu, lrelu, \"arelu fc=relu\"]\noptimizers: [sgd, {name: adam, lr: 0.0001}]\nepochs: 2\nrepeats: 2\n";

#[test]
fn matrix_is_expanded_with_preset_defaults() {
    let (_d, path) = setup(GOOD);
    let suite = read(&path, &[])
        .expect("reads")
        .resolve(&catalog(), None)
        .expect("resolves");
    assert_eq!(suite.name, "quick");
    assert_eq!(suite.paper_tables, vec!["table1".to_owned()]);
    assert_eq!(
        suite.deviations,
        [
            "2 epochs instead of the paper's 80",
            "only the first 100 training images"
        ],
        "beside table1's settings (80 epochs, batch 64)"
    );
    assert_eq!(
        suite.runs.len(),
        3 * 2 * 2,
        "activations x optimizers x seeds"
    );
    let r = &suite.runs[0];
    assert_eq!(r.model.label, "tiny");
    assert_eq!(r.model.args.get("classes"), Some(&file::ArgValue::Int(10)));
    assert_eq!(r.train.batch_size, 64, "paper-code batch");
    assert_eq!(r.train.schedule.initial_lr(), 1e-3, "paper-code lr");
    assert_eq!(r.dataset.limit_train, Some(100));
    let lrelu = suite
        .runs
        .iter()
        .find(|r| r.activation.label == "lrelu")
        .expect("lrelu run");
    assert_eq!(
        lrelu.activation.bindings,
        vec!["lrelu:s=0.2".to_owned()],
        "paper-code slope"
    );
    let adam = suite
        .runs
        .iter()
        .find(|r| r.optimizer == "adam")
        .expect("adam run");
    assert_eq!(adam.train.schedule.initial_lr(), 1e-4, "per-optimizer lr");
    let mixed = suite
        .runs
        .iter()
        .find(|r| r.activation.label == "arelu fc=relu")
        .expect("mixed");
    assert_eq!(
        mixed.activation.bindings,
        vec!["arelu".to_owned(), "fc=relu".to_owned()]
    );
    let keys: std::collections::HashSet<String> = suite.runs.iter().map(RunSpec::key).collect();
    assert_eq!(keys.len(), suite.runs.len(), "every run has its own key");
}

#[test]
fn keys_ignore_locations_but_not_contents() {
    let (_d, path) = setup(GOOD);
    let a = read(&path, &[])
        .expect("reads")
        .resolve(&catalog(), None)
        .expect("resolves");
    let (_d2, path2) = setup(GOOD);
    let b = read(&path2, &[])
        .expect("reads")
        .resolve(&catalog(), None)
        .expect("resolves");
    assert_ne!(a.runs[0].model.file, b.runs[0].model.file);
    assert_eq!(
        a.runs[0].key(),
        b.runs[0].key(),
        "moving the checkout keeps keys"
    );
    std::fs::write(
        path2.parent().expect("dir").join("tiny.acnet"),
        NET.replace("linear(16)", "linear(17)"),
    )
    .expect("edit");
    let c = read(&path2, &[])
        .expect("reads")
        .resolve(&catalog(), None)
        .expect("resolves");
    assert_ne!(
        a.runs[0].key(),
        c.runs[0].key(),
        "editing the model changes the key"
    );
}

#[test]
fn set_overrides_any_field() {
    let (_d, path) = setup(GOOD);
    let sets = vec![
        "epochs=1".to_owned(),
        "seeds=[7]".to_owned(),
        "repeats=".to_owned(),
        "dataset.limit_test=50".to_owned(),
    ];
    let suite = read(&path, &sets)
        .expect("reads")
        .resolve(&catalog(), None)
        .expect("resolves");
    assert!(
        suite
            .runs
            .iter()
            .all(|r| r.train.epochs == 1 && r.train.seed.0 == 7)
    );
    assert_eq!(suite.runs[0].dataset.limit_test, Some(50));
    assert_eq!(suite.runs.len(), 3 * 2);
}

#[test]
fn unknown_key_and_wrong_type_are_located() {
    let e = resolve_err(
        "dataset: fashion-mnist\nmodels: [tiny.acnet]\nactivations: [relu]\nepochs: 1\nbogus: 3\n",
        &[],
    );
    assert!(
        e.starts_with("s.yaml:5:1:") && e.contains("unknown field `bogus`"),
        "{e}"
    );
    let e = resolve_err(
        "dataset: fashion-mnist\nmodels: [tiny.acnet]\nactivations: [relu]\nepochs: many\n",
        &[],
    );
    assert!(e.starts_with("s.yaml:4:9:"), "{e}");
    let e = resolve_err(
        "dataset: fashion-mnist\nmodels:\n  - {file: tiny.acnet, nmae: x}\nactivations: [relu]\nepochs: 1\n",
        &[],
    );
    assert!(e.starts_with("s.yaml:3:") && e.contains("nmae"), "{e}");
}

#[test]
fn semantic_errors_name_file_line_and_key() {
    let e = resolve_err(
        "dataset: fashion-mnist\nmodels:\n  - nope.acnet\nactivations: [relu]\nepochs: 1\n",
        &[],
    );
    assert!(
        e.starts_with("s.yaml:3:5: `models[0]`: cannot read model file"),
        "{e}"
    );
    let e = resolve_err(
        "dataset: fashion-mnist\nmodels: [tiny.acnet]\nactivations:\n  - relu\n  - swishy\nepochs: 1\n",
        &[],
    );
    assert!(
        e.starts_with(
            "s.yaml:5:5: `activations[1]`: unknown activation `swishy` (known: arelu, lrelu, prelu, relu)"
        ),
        "{e}"
    );
    let e = resolve_err(
        "dataset: fashion-mnist\nmodels: [tiny.acnet]\nactivations: [\"lrelu:q=1\"]\nepochs: 1\n",
        &[],
    );
    assert!(
        e.ends_with("`activations[0]`: `lrelu` has no parameter `q`; valid: s"),
        "{e}"
    );
    let e = resolve_err(
        "dataset: fashion-mnist\nmodels: [tiny.acnet]\nactivations: [\"relu:q=1\"]\nepochs: 1\n",
        &[],
    );
    assert!(
        e.ends_with("`activations[0]`: `relu` has no parameter `q`; it has no parameters"),
        "{e}"
    );
    let e = resolve_err(
        "dataset: fashion-mnist\nmodels: [tiny.acnet]\nactivations: [\"relu conv=relu\"]\nepochs: 1\n",
        &[],
    );
    assert!(e.contains("no act slot `conv`"), "{e}");
    let e = resolve_err(
        "dataset: cifar10\nmodels: [tiny.acnet, fixed.acnet]\nactivations: [relu]\nepochs: 1\n",
        &[],
    );
    assert!(e.starts_with("s.yaml:2:22: `models[1]`"), "{e}");
    assert!(e.contains("takes 1x28x28"), "model does not fit cifar: {e}");
    let e = resolve_err(
        "dataset: fashion-mnist\nmodels: [tiny.acnet]\nactivations: [relu]\n",
        &[],
    );
    assert!(e.contains("`epochs`: missing"), "{e}");
    let e = resolve_err(
        "dataset: imagenet\nmodels: [tiny.acnet]\nactivations: [relu]\nepochs: 1\n",
        &[],
    );
    assert!(
        e.starts_with("s.yaml:1:10: `dataset`: unknown dataset"),
        "{e}"
    );
    let e = resolve_err(
        "dataset: fashion-mnist\nmodels: [tiny.acnet]\nactivations: [relu]\noptimizers: [rmsprop]\nepochs: 1\n",
        &[],
    );
    assert!(e.contains("`optimizers[0]`"), "{e}");
    let e = resolve_err(
        "dataset: fashion-mnist\nmodels: [tiny.acnet]\nactivations: [relu]\nepochs: 1\npaper_table: [table1, table9]\n",
        &[],
    );
    assert!(
        e.starts_with("s.yaml:5:14: `paper_table`: unknown table `table9`"),
        "{e}"
    );
    let e = resolve_err(GOOD, &["epochs=0"]);
    assert!(e.contains("`epochs`: must be at least 1"), "{e}");
    let e = resolve_err(GOOD, &["epochs.x=1"]);
    assert!(e.contains("--set"), "{e}");
}

#[test]
fn schedules_and_normalizations_are_typed() {
    use acbench_engine::schedule::Schedule;
    use acbench_engine::train::InputNorm;

    let first = |extra: &str| {
        let (_d, path) = setup(&format!(
            "dataset: fashion-mnist\nmodels: [tiny.acnet]\nactivations: [relu]\nepochs: 1\nlr: 0.5\n{extra}"
        ));
        let suite = read(&path, &[])
            .and_then(|l| l.resolve(&catalog(), None))
            .unwrap_or_else(|e| panic!("{}", e.headline()));
        suite.runs[0].train.clone()
    };
    let t = first("schedule: {kind: step, milestones: [3]}\nnormalization: unit\n");
    assert_eq!(
        t.schedule,
        Schedule::Step {
            lr: 0.5,
            milestones: vec![3],
            factor: 10.0
        }
    );
    assert_eq!(t.normalization, InputNorm::Unit);
    let t = first("schedule: cosine\n");
    assert_eq!(
        t.schedule,
        Schedule::Cosine {
            lr: 0.5,
            min_lr: 0.0,
            per_step: false
        }
    );
    assert_eq!(t.normalization, InputNorm::PerChannel, "standard preset");

    let base = "dataset: fashion-mnist\nmodels: [tiny.acnet]\nactivations: [relu]\nepochs: 1\n";
    let e = resolve_err(
        &format!("{base}schedule: {{kind: constant, milestones: [3]}}\n"),
        &[],
    );
    assert_eq!(
        e,
        "s.yaml: `schedule`: `milestones` belongs to step schedules, not `constant`"
    );
    let e = resolve_err(&format!("{base}schedule: linear\n"), &[]);
    assert!(e.contains("unknown kind `linear`"), "{e}");
    let e = resolve_err(&format!("{base}normalization: per_pixel\n"), &[]);
    assert!(
        e.contains("`normalization`") && e.contains("per_pixel"),
        "{e}"
    );
}

#[test]
fn run_all_tallies_failures_and_stops_at_the_deadline() {
    use acbench_engine::activation::Registry;
    use acbench_engine::train::{EpochMetrics, Observer};
    use runner::{BatchError, BatchObserver, Deadline, Outcome, Runner, Summary};

    #[derive(Default)]
    struct Ends(Vec<usize>);
    impl Observer for Ends {
        fn epoch_end(&mut self, _: &EpochMetrics) {}
    }
    impl runner::RunObserver for Ends {
        fn run_start(&mut self, _: &RunSpec, _: usize, _: usize) {}
    }
    impl BatchObserver for Ends {
        fn batch_start(&mut self, _: usize) {}
        fn run_end(&mut self, _: &RunSpec, _: &Outcome, summary: &Summary) {
            self.0.push(summary.finished());
        }
        fn batch_done(&mut self) {}
    }

    let (dir, path) = setup(GOOD);
    let suite = read(&path, &[])
        .and_then(|l| l.resolve(&catalog(), None))
        .unwrap_or_else(|e| panic!("{}", e.headline()));
    let specs = &suite.runs[..2];
    let mut ledger =
        acbench_ledger::Ledger::open(&output::ledger_path(dir.path())).expect("ledger");
    // No activations: every run fails when its model is built.
    let registry = Registry::new();
    let mut runner = Runner::new(
        std::sync::Arc::new(registry),
        candle_core::Device::Cpu,
        None,
        false,
    );
    let mut summary = Summary::default();
    let mut ends = Ends::default();
    let outcomes = runner
        .run_all(&mut ledger, specs, &mut ends, &mut summary)
        .expect("the ledger works");
    assert_eq!(outcomes.len(), 2);
    assert_eq!((summary.trained, summary.replayed), (2, 0));
    assert_eq!(ends.0, [1, 2], "each run ends counted");
    assert!(summary.failed[0].starts_with("tiny / relu / sgd / seed 0: "));
    let failures = summary.failures().expect("both failed");
    assert!(
        failures.starts_with("2 runs failed (kept in the ledger as failed):\n  tiny / relu"),
        "{failures}"
    );

    // Failed runs are retried, so past the deadline they do not start.
    runner.deadline = Some(Deadline {
        start: std::time::Instant::now(),
        seconds: -1.0,
    });
    let stopped = runner.run_all(&mut ledger, specs, &mut ends, &mut summary);
    assert!(matches!(stopped, Err(BatchError::Deadline { .. })));
    assert_eq!(summary.trained, 2, "nothing more trained");
    assert_eq!(summary.keys.len(), 2, "keys are kept once");
}

#[test]
fn plugin_paths_are_relative_to_the_suite() {
    let (_d, path) = setup(
        "dataset: fashion-mnist\nmodels: [tiny.acnet]\nactivations: [relu]\nepochs: 1\nplugins: [lib/libx.so]\n",
    );
    let loaded = read(&path, &[]).expect("reads");
    assert_eq!(
        loaded.plugin_paths(),
        vec![path.parent().expect("dir").join("lib/libx.so")]
    );
    assert!(Path::new(&loaded.plugin_paths()[0]).is_absolute());
}

#[test]
fn shipped_suites_resolve() {
    let registry = acbench_engine::activation::Registry::builtin().expect("shipped plugins");
    let catalog = Catalog::from_registry(&registry);
    let fcos = catalog
        .detector_plugins
        .iter()
        .find(|(d, _)| d == "fcos")
        .map(|(_, p)| p.sha256.clone())
        .expect("fcos is shipped");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("suites dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let suite = read(&path, &[])
            .and_then(|l| l.resolve(&catalog, None))
            .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.headline()));
        assert!(!suite.runs.is_empty(), "{}", path.display());
        seen += 1;
        for r in &suite.runs {
            let with_fcos = r.plugins.iter().any(|p| p.sha256 == fcos);
            let uses_fcos = r.model.detector.as_ref().is_some_and(|d| d.name == "fcos");
            assert_eq!(
                with_fcos,
                uses_fcos,
                "{}: only fcos runs key on its plugin",
                r.label()
            );
        }
        if suite.name == "detection" {
            assert_eq!(
                suite.runs.len(),
                2 * 5 * 3,
                "Table 7's rows, two detectors, three seeds"
            );
        }
        if suite.name == "cifar100" {
            assert_eq!(suite.runs.len(), 3 * 11 * 3, "the paper's CIFAR-100 matrix");
            assert!(
                suite
                    .runs
                    .iter()
                    .all(|r| r.train.batch_size == 250 && r.train.epochs == 150)
            );
        }
    }
    assert!(seen >= 6, "six shipped suites, found {seen}");
}
