//! Activation formulas, with the adaptive activations' parameter names.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = acbench_dsl::formula::parse(text, &["a", "b", "c", "d"]);
    }
});
