//! CIFAR-10 and CIFAR-100 binary batches, read from files as the loader
//! reads them: the first byte picks the set (even: CIFAR-10, odd:
//! CIFAR-100 with fine or coarse labels), the rest is every batch file and
//! the class-name file.
#![no_main]

use acbench_data::cifar::{self, Cifar100Labels};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    // A memory file system where there is one (see idx).
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("acbench-fuzz-cifar-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    // The names file is the body's text up to the first record's worth.
    let names = &body[..body.len().min(4096)];
    let cifar10 = kind % 2 == 0;
    let files: &[&str] = if cifar10 {
        &[
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin",
            "test_batch.bin",
        ]
    } else {
        &["train.bin", "test.bin"]
    };
    for f in files {
        if std::fs::write(dir.join(f), body).is_err() {
            return;
        }
    }
    for f in [
        "batches.meta.txt",
        "fine_label_names.txt",
        "coarse_label_names.txt",
    ] {
        let _ = std::fs::write(dir.join(f), names);
    }
    if cifar10 {
        let _ = cifar::load_cifar10(&dir, "cifar10");
    } else {
        let labels = if kind & 2 == 0 {
            Cifar100Labels::Fine
        } else {
            Cifar100Labels::Coarse
        };
        let _ = cifar::load_cifar100(&dir, "cifar100", labels);
    }
});
