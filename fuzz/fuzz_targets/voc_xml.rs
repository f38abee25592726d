//! The `voc_xml` target: [`acbench_fuzzing::voc_xml`] on each input (the
//! harness is there, shared with the stable replay of the corpus).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| acbench_fuzzing::voc_xml(data, std::path::Path::new("")));
