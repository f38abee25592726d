//! Replays the fuzzing campaign's corpora for the data readers
//! (`fuzz/corpus/{voc_xml,coco_json,detections_json,idx,cifar,image_folder}`,
//! `scripts/fuzz.sh`)
//! and any crashers kept in `fuzz/regressions/` on the stable toolchain:
//! none may panic (the fuzzer itself holds each input to a second).

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut out = Vec::new();
    for dir in [
        root.join("corpus").join(target),
        root.join("regressions").join(target),
    ] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            out.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
        }
    }
    out.sort();
    out
}

fn replay(target: &str, run: impl Fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no corpus for {target}");
    for f in files {
        let bytes = std::fs::read(&f).expect("read");
        run(&bytes);
    }
}

#[test]
fn the_voc_corpus_parses_without_panic() {
    replay("voc_xml", |b| {
        if let Ok(t) = std::str::from_utf8(b) {
            let _ = acbench_data::detection::voc::parse_annotation(Path::new("c.xml"), t);
        }
    });
}

#[test]
fn the_coco_corpus_parses_without_panic() {
    replay("coco_json", |b| {
        if let Ok(t) = std::str::from_utf8(b) {
            let _ = acbench_data::detection::coco::parse_instances(Path::new("c.json"), t);
            let _ = acbench_detect::json::parse_ground_truth(t);
        }
    });
}

#[test]
fn the_idx_corpus_reads_without_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f-idx-ubyte");
    replay("idx", |b| {
        let Some((&kind, body)) = b.split_first() else {
            return;
        };
        std::fs::write(&path, body).expect("write");
        if kind % 2 == 0 {
            let _ = acbench_data::idx::read_images(&path);
        } else {
            let _ = acbench_data::idx::read_labels(&path, 10);
        }
    });
}

#[test]
fn the_cifar_corpus_reads_without_panic() {
    use acbench_data::cifar::{self, Cifar100Labels};
    let dir = tempfile::tempdir().expect("tempdir");
    replay("cifar", |b| {
        let Some((&kind, body)) = b.split_first() else {
            return;
        };
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
            std::fs::write(dir.path().join(f), body).expect("write");
        }
        for f in [
            "batches.meta.txt",
            "fine_label_names.txt",
            "coarse_label_names.txt",
        ] {
            std::fs::write(dir.path().join(f), names).expect("write");
        }
        if cifar10 {
            let _ = cifar::load_cifar10(dir.path(), "cifar10");
        } else {
            let labels = if kind & 2 == 0 {
                Cifar100Labels::Fine
            } else {
                Cifar100Labels::Coarse
            };
            let _ = cifar::load_cifar100(dir.path(), "cifar100", labels);
        }
    });
}

#[test]
fn the_image_folder_corpus_loads_without_panic() {
    use acbench_data::folder::{self, Channels, FolderOptions};
    replay("image_folder", |b| {
        let Some((&kind, body)) = b.split_first() else {
            return;
        };
        let root = tempfile::tempdir().expect("tempdir");
        let ext = if kind & 1 == 0 { "png" } else { "jpg" };
        for split in ["train", "test"] {
            let dir = root.path().join(split).join("cls");
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(dir.join(format!("0.{ext}")), body).expect("write");
        }
        let opts = FolderOptions {
            size: (kind & 2 != 0).then_some((16, 16)),
            channels: if kind & 4 == 0 {
                Channels::Rgb
            } else {
                Channels::Gray
            },
            max_pixels: Some(1 << 20),
            ..FolderOptions::default()
        };
        let _ = folder::load_folder(root.path(), "folder", &opts);
    });
}
