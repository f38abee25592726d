//! PASCAL VOC annotation XML.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ =
            acbench_data::detection::voc::parse_annotation(std::path::Path::new("fuzz.xml"), text);
    }
});
