//! Replays the fuzzing campaign's corpora for the data readers
//! (`fuzz/corpus/{voc_xml,coco_json,detections_json,idx}`, `scripts/fuzz.sh`)
//! and any crashers kept in `fuzz/regressions/` on the stable toolchain:
//! none may panic (the fuzzer itself holds each input to a second).

use std::path::{Path, PathBuf};

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

fn replay(target: &str, run: impl Fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no corpus for {target}");
    for f in files {
        let bytes = std::fs::read(&f).expect("read");
        run(&bytes);
    }
}

#[test]
fn the_voc_corpus_parses_without_panic() {
    replay("voc_xml", |b| {
        if let Ok(t) = std::str::from_utf8(b) {
            let _ = acbench_data::detection::voc::parse_annotation(Path::new("c.xml"), t);
        }
    });
}

#[test]
fn the_coco_corpus_parses_without_panic() {
    replay("coco_json", |b| {
        if let Ok(t) = std::str::from_utf8(b) {
            let _ = acbench_data::detection::coco::parse_instances(Path::new("c.json"), t);
            let _ = acbench_detect::json::parse_ground_truth(t);
        }
    });
}

#[test]
fn the_idx_corpus_reads_without_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f-idx-ubyte");
    replay("idx", |b| {
        let Some((&kind, body)) = b.split_first() else {
            return;
        };
        std::fs::write(&path, body).expect("write");
        if kind % 2 == 0 {
            let _ = acbench_data::idx::read_images(&path);
        } else {
            let _ = acbench_data::idx::read_labels(&path, 10);
        }
    });
}
