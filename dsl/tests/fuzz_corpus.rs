//! Replays the fuzzing campaign's corpora (`fuzz/corpus/{acnet,formula}`,
//! `scripts/fuzz.sh`) and its crashers turned regression inputs
//! (`fuzz/regressions/`) through the parsers on the stable toolchain: none
//! may panic, and each must answer within a second.

use std::path::{Path, PathBuf};

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

fn replay(target: &str, run: impl Fn(&str)) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no corpus for {target}");
    for f in files {
        let bytes = std::fs::read(&f).expect("read");
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        run(text);
    }
}

#[test]
fn the_acnet_corpus_parses_without_panic() {
    replay("acnet", |text| {
        if let Ok(m) = acbench_dsl::parse(text, "corpus.acnet") {
            let _ = m.elaborate(None, &[]);
        }
    });
}

#[test]
fn the_formula_corpus_parses_without_panic() {
    replay("formula", |text| {
        let _ = acbench_dsl::formula::parse(text, &["a", "b", "c", "d"]);
    });
}
