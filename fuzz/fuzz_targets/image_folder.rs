//! The `image_folder` target: [`acbench_fuzzing::image_folder`] on each input (the
//! harness is there, shared with the stable replay of the corpus).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| acbench_fuzzing::image_folder(data, acbench_fuzzing::scratch()));
