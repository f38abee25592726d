//! Replays every target's committed corpus (`fuzz/corpus/TARGET`, grown
//! and minimised by `scripts/fuzz.sh`) and its crashers turned regression
//! inputs (`fuzz/regressions/TARGET`) on the stable toolchain: no input may
//! panic. The fuzzer itself holds each input to a second and 1 GiB.

use std::path::{Path, PathBuf};

use acbench_fuzzing::TARGETS;

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
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
fn every_corpus_replays_without_panic() {
    for t in TARGETS {
        let files = inputs(t.name);
        assert!(!files.is_empty(), "no corpus for {}", t.name);
        let scratch = tempfile::tempdir().expect("tempdir");
        for f in &files {
            let bytes = std::fs::read(f).expect("read");
            (t.run)(&bytes, scratch.path());
        }
    }
}

#[test]
fn every_fuzz_binary_is_a_target() {
    let bins =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/fuzz_targets"))
            .expect("fuzz targets")
            .filter_map(|e| e.ok())
            .map(|e| {
                e.path()
                    .file_stem()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect::<std::collections::BTreeSet<_>>();
    let known = TARGETS.iter().map(|t| t.name.to_owned()).collect();
    assert_eq!(
        bins, known,
        "fuzz/fuzz_targets and TARGETS list the same targets"
    );
}
