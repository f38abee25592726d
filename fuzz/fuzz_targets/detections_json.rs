//! The `detections_json` target: [`acbench_fuzzing::detections_json`] on each input (the
//! harness is there, shared with the stable replay of the corpus).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| acbench_fuzzing::detections_json(data, std::path::Path::new("")));
