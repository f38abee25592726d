//! Sweep scripts through `acbench sweep`'s sandboxed engine, as a user runs
//! them: the input is the script. The script's folder holds nothing else,
//! and a sweep may read only under its folder, so no spec can name a model
//! file and nothing trains: what is fuzzed is the parser, the sandbox's
//! limits and the script API. The operation limit is lowered (from 20
//! million) so that an endless loop ends well within libFuzzer's 1 s.
#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use acbench_engine::activation::Registry;
use acbench_engine::train::{EpochMetrics, Observer};
use acbench_suite::runner::{BatchObserver, Outcome, RunObserver, Runner, Summary};
use acbench_suite::{Catalog, RunSpec};
use acbench_sweep::{Limits, SweepObserver, SweepOptions};
use libfuzzer_sys::fuzz_target;

/// Drops everything the sweep reports.
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

struct Setup {
    script: PathBuf,
    out: PathBuf,
    catalog: Catalog,
    registry: Arc<Registry>,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        // A memory file system where there is one: every execution writes
        // the script and opens the ledger.
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let root = base.join(format!("acbench-fuzz-sweep-{}", std::process::id()));
        let dir = root.join("script");
        std::fs::create_dir_all(&dir).expect("script folder");
        let registry = Registry::builtin().expect("the shipped activations load");
        Setup {
            script: dir.join("s.rhai"),
            out: root.join("out"),
            catalog: Catalog::from_registry(&registry),
            registry: Arc::new(registry),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    if std::fs::write(&s.script, data).is_err() {
        return;
    }
    let options = SweepOptions {
        script: s.script.clone(),
        out_dir: s.out.clone(),
        sets: vec!["quick=true".to_owned()],
        max_seconds: Some(0.5),
        limits: Limits {
            max_operations: 20_000,
            ..Limits::default()
        },
        allow_read: Vec::new(),
    };
    let runner = Runner::new(s.registry.clone(), candle_core::Device::Cpu, None, false);
    let _ = acbench_sweep::run(&options, s.catalog.clone(), runner, Box::new(Quiet));
});
