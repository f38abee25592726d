//! Helpers shared by the CLI test binaries: the command, model paths, and
//! tiny generated datasets in the real file formats.

// Each test binary uses a different subset of the helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub fn acbench() -> Command {
    let mut cmd = Command::cargo_bin("acbench").expect("binary built");
    cmd.env_remove("ACBENCH_DATA")
        .env_remove("ACBENCH_PLUGIN_PATH")
        .env("RAYON_NUM_THREADS", "2");
    cmd
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn model(name: &str) -> PathBuf {
    repo_root().join("suites/models").join(name)
}

/// Writes an IDX image file (magic 0x00000803) and label file (0x00000801)
/// for `n` 28x28 images in Fashion-MNIST's file names. The images are
/// learnable: class k has a bright horizontal band at rows 2k..2k+3.
pub fn write_idx(dir: &Path, prefix: &str, n: usize, classes: u8) {
    let mut images = vec![0, 0, 8, 3];
    images.extend_from_slice(&(n as u32).to_be_bytes());
    images.extend_from_slice(&28u32.to_be_bytes());
    images.extend_from_slice(&28u32.to_be_bytes());
    let mut labels = vec![0, 0, 8, 1];
    labels.extend_from_slice(&(n as u32).to_be_bytes());
    for i in 0..n {
        let label = (i % classes as usize) as u8;
        labels.push(label);
        for r in 0..28 {
            for c in 0..28 {
                let band = r >= 2 * label as usize && r < 2 * label as usize + 3;
                let noise = ((i * 31 + r * 7 + c * 13) % 17) as u8;
                images.push(if band { 200 + noise } else { noise });
            }
        }
    }
    std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).expect("write images");
    std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels).expect("write labels");
}

pub fn fashion_dir(n_train: usize, n_test: usize) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("fashion-mnist");
    std::fs::create_dir_all(&dir).expect("mkdir");
    write_idx(&dir, "train", n_train, 10);
    write_idx(&dir, "t10k", n_test, 10);
    root
}
