//! Replays the fuzzing campaign's corpus of sweep scripts
//! (`fuzz/corpus/sweep`, `scripts/fuzz.sh`) and any crashers kept in
//! `fuzz/regressions/sweep` on the stable toolchain, as the fuzz target
//! runs them: each script alone in its folder (so no spec can name a model
//! and nothing trains), with the operation limit lowered. None may panic.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use acbench_engine::activation::Registry;
use acbench_engine::train::{EpochMetrics, Observer};
use acbench_suite::runner::{BatchObserver, Outcome, RunObserver, Runner, Summary};
use acbench_suite::{Catalog, RunSpec};
use acbench_sweep::{Limits, SweepObserver, SweepOptions};

struct Quiet;

impl Observer for Quiet {
    fn epoch_end(&mut self, _: &EpochMetrics) {}
}
impl RunObserver for Quiet {
    fn run_start(&mut self, _: &RunSpec, _: usize, _: usize) {}
}
impl BatchObserver for Quiet {
    fn batch_start(&mut self, _: usize) {}
    fn run_end(&mut self, _: &RunSpec, _: &Outcome, _: &Summary) {}
    fn batch_done(&mut self) {}
}
impl SweepObserver for Quiet {
    fn print(&mut self, _: &str) {}
}

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut out = Vec::new();
    for dir in [
        root.join("corpus").join(target),
        root.join("regressions").join(target),
    ] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            out.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
        }
    }
    out.sort();
    out
}

#[test]
fn the_sweep_corpus_runs_without_panic() {
    let files = inputs("sweep");
    assert!(!files.is_empty(), "no corpus for sweep");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("script");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let script = dir.join("s.rhai");
    let registry = Arc::new(Registry::builtin().expect("shipped activations"));
    let catalog = Catalog::from_registry(&registry);
    for f in files {
        std::fs::copy(&f, &script).expect("script");
        let options = SweepOptions {
            script: script.clone(),
            out_dir: tmp.path().join("out"),
            sets: vec!["quick=true".to_owned()],
            max_seconds: Some(2.0),
            limits: Limits {
                max_operations: 20_000,
                ..Limits::default()
            },
            allow_read: Vec::new(),
        };
        let runner = Runner::new(registry.clone(), candle_core::Device::Cpu, None, false);
        let _ = acbench_sweep::run(&options, catalog.clone(), runner, Box::new(Quiet));
    }
}
