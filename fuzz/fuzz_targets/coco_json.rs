//! COCO instances JSON as the dataset reader reads it, and as the
//! evaluator reads a ground truth.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ =
            acbench_data::detection::coco::parse_instances(std::path::Path::new("fuzz.json"), text);
        let _ = acbench_detect::json::parse_ground_truth(text);
    }
});
