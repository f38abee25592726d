//! A COCO results file against a small fixed ground truth, then scored.
#![no_main]

use libfuzzer_sys::fuzz_target;

const GT: &str = r#"{"images": [{"id": 1, "width": 64, "height": 64}, {"id": 2, "width": 32, "height": 48}],
 "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 12], "area": 120, "iscrowd": 0},
                 {"id": 2, "image_id": 2, "category_id": 2, "bbox": [0, 0, 30, 40], "area": 1200, "iscrowd": 1}],
 "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(gt) = acbench_detect::json::parse_ground_truth(GT) else {
        return;
    };
    if let Ok(dt) = acbench_detect::json::parse_detections(text, &gt) {
        let _ = acbench_detect::coco::evaluate(&gt, &dt);
    }
});
