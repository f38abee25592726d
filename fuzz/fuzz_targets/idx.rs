//! IDX image and label files (Fashion-MNIST's format), read from a file as
//! the loader reads them; the first byte picks the kind.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    // A memory file system where there is one: the loader reads a file,
    // and a disk would make each execution a thousand times slower.
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("acbench-fuzz-idx-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("f-idx-ubyte");
    let Ok(mut f) = std::fs::File::create(&path) else {
        return;
    };
    if f.write_all(body).is_err() {
        return;
    }
    drop(f);
    if kind % 2 == 0 {
        let _ = acbench_data::idx::read_images(&path);
    } else {
        let _ = acbench_data::idx::read_labels(&path, 10);
    }
});
