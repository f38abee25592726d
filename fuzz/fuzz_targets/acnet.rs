//! `.acnet` source: parse, then elaborate with no arguments (the checks of
//! shapes, counts and limits run there).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(module) = acbench_dsl::parse(text, "fuzz.acnet") {
            let _ = module.elaborate(None, &[]);
        }
    }
});
