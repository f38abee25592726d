//! Replays the fuzzing campaign's corpus of COCO results files
//! (`fuzz/corpus/detections_json`, `scripts/fuzz.sh`) and any crashers in
//! `fuzz/regressions/` against a small ground truth, scoring what parses,
//! on the stable toolchain: none may panic (the fuzzer itself holds each
//! input to a second).

use std::path::Path;

const GT: &str = r#"{"images": [{"id": 1, "width": 64, "height": 64}, {"id": 2, "width": 32, "height": 48}],
 "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 12], "area": 120, "iscrowd": 0},
                 {"id": 2, "image_id": 2, "category_id": 2, "bbox": [0, 0, 30, 40], "area": 1200, "iscrowd": 1}],
 "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}"#;

#[test]
fn the_detections_corpus_is_scored_without_panic() {
    let gt = acbench_detect::json::parse_ground_truth(GT).expect("ground truth");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for dir in [
        root.join("corpus/detections_json"),
        root.join("regressions/detections_json"),
    ] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            files.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
        }
    }
    assert!(!files.is_empty(), "no corpus");
    for f in files {
        let bytes = std::fs::read(&f).expect("read");
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        if let Ok(dt) = acbench_detect::json::parse_detections(text, &gt) {
            let _ = acbench_detect::coco::evaluate(&gt, &dt);
        }
    }
}
