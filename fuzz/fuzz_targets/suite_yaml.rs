//! Suite files with `--set` overrides, read and resolved as `acbench suite`
//! does: the input is the YAML text, then a NUL byte, then one `--set
//! key=value` per line. The file sits in the repository's `suites/` folder,
//! so `models/*.acnet` resolve and are parsed and elaborated too; the
//! catalog is the shipped activations' and detectors'.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use acbench_engine::activation::Registry;
use acbench_suite::Catalog;
use libfuzzer_sys::fuzz_target;

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let registry = Registry::builtin().expect("the shipped activations load");
        Catalog::from_registry(&registry)
    })
}

fn suite_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites/fuzz.yaml"))
}

fuzz_target!(|data: &[u8]| {
    let (text, sets) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let sets: Vec<String> = String::from_utf8_lossy(sets)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let Ok(loaded) = acbench_suite::parse(suite_path(), text.to_owned(), &sets) else {
        return;
    };
    let _ = loaded.read_paths();
    let _ = loaded.check_plugins_allowed(&[]);
    let _ = loaded.resolve(catalog(), Some(Path::new("/nonexistent/out")));
});
