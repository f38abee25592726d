//! Replays the fuzzing campaign's corpus of suite files with `--set`
//! overrides (`fuzz/corpus/suite_yaml`, `scripts/fuzz.sh`) and any crashers
//! kept in `fuzz/regressions/suite_yaml` on the stable toolchain, as the
//! fuzz target runs them: read, checked and resolved from the repository's
//! `suites/` folder. None may panic.

use std::path::{Path, PathBuf};

use acbench_engine::activation::Registry;
use acbench_suite::Catalog;

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
fn the_suite_corpus_resolves_without_panic() {
    let files = inputs("suite_yaml");
    assert!(!files.is_empty(), "no corpus for suite_yaml");
    let catalog = Catalog::from_registry(&Registry::builtin().expect("shipped activations"));
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites/fuzz.yaml");
    for f in files {
        let data = std::fs::read(&f).expect("read");
        let (text, sets) = match data.iter().position(|&b| b == 0) {
            Some(i) => (&data[..i], &data[i + 1..]),
            None => (&data[..], &[][..]),
        };
        let Ok(text) = std::str::from_utf8(text) else {
            continue;
        };
        let sets: Vec<String> = String::from_utf8_lossy(sets)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        let Ok(loaded) = acbench_suite::parse(&path, text.to_owned(), &sets) else {
            continue;
        };
        let _ = loaded.read_paths();
        let _ = loaded.check_plugins_allowed(&[]);
        let _ = loaded.resolve(&catalog, Some(Path::new("/nonexistent/out")));
    }
}
