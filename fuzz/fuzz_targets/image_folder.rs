//! Image folders (miniImageNet's layout), loaded as `folder:PATH` is: the
//! first byte picks the extension (PNG or JPEG; the decoder guesses the
//! format from the bytes either way), the channels and whether the size
//! comes from the first image or is fixed; the rest is one image, written
//! as a training and a test image of one class. Images may declare up to
//! one megapixel (`max_pixels`): decoding costs what the header declares,
//! and under ASAN a legitimate six-megapixel decode takes over the 1 s
//! limit; the loader's own default is 64 megapixels.
#![no_main]

use acbench_data::folder::{self, Channels, FolderOptions};
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
    let root = base.join(format!("acbench-fuzz-folder-{}", std::process::id()));
    let ext = if kind & 1 == 0 { "png" } else { "jpg" };
    for split in ["train", "test"] {
        let dir = root.join(split).join("cls");
        let _ = std::fs::create_dir_all(&dir);
        if std::fs::write(dir.join(format!("0.{ext}")), body).is_err() {
            return;
        }
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
    let _ = folder::load_folder(&root, "folder", &opts);
});
