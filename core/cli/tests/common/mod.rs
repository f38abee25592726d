//! Helpers shared by the CLI test binaries: the command, model paths, and
//! tiny generated datasets in the real file formats.

// Each test binary uses a different subset of the helpers.
#![allow(dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

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

/// Spawns `cmd` (acbench with `ACBENCH_TEST_HOLD` set) with its stderr
/// piped, and returns once it prints that it is held: at a chosen batch,
/// deterministically, not by a timer. Panics (killing it) if it is not
/// held within five minutes.
pub fn spawn_until_held(mut cmd: std::process::Command) -> Child {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn acbench");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(300)) {
            Ok(line) if line.contains("held for a test") => break,
            Ok(line) => seen.push(line),
            Err(e) => {
                let _ = child.kill();
                panic!("acbench was not held ({e}); stderr: {seen:#?}");
            }
        }
    }
    // The rest of stderr goes on being read (and dropped), so the child
    // never blocks on a full pipe.
    std::thread::spawn(move || while rx.recv().is_ok() {});
    child
}

/// The command line of acbench itself (not assert_cmd's wrapper), for
/// spawning.
pub fn acbench_process() -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("acbench"));
    cmd.env_remove("ACBENCH_DATA")
        .env_remove("ACBENCH_PLUGIN_PATH")
        .env("RAYON_NUM_THREADS", "2");
    cmd
}

/// The runs of two ledgers hold the same results (every number but the
/// wall times), key by key; panics saying what differs.
pub fn assert_same_ledgers(a: &Path, b: &Path) {
    use acbench_ledger::Ledger;
    let runs = |p: &Path| {
        Ledger::open_read_only(p)
            .expect("ledger")
            .runs()
            .expect("runs")
    };
    let (x, y) = (runs(a), runs(b));
    let keys =
        |r: &[acbench_ledger::StoredRun]| r.iter().map(|r| r.key.clone()).collect::<Vec<_>>();
    let (mut kx, mut ky) = (keys(&x), keys(&y));
    kx.sort();
    ky.sort();
    assert_eq!(kx, ky, "the two ledgers hold different runs");
    for r in &x {
        let other = y.iter().find(|o| o.key == r.key).expect("same keys");
        assert_eq!(
            acbench_ledger::merge::differs(r, other),
            None,
            "run {} ({})",
            r.key,
            r.labels.activation
        );
    }
}

/// Sends `signal` (`INT`, `TERM`, `USR1`) to `child` and returns its exit
/// code once it has exited.
pub fn signal_and_wait(child: &mut Child, signal: &str) -> Option<i32> {
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill -{signal}");
    child.wait().expect("wait").code()
}

/// Writes `NAME.yaml` in `dir`: 2 activations (relu, arelu) x 2 seeds of
/// the convnet, 2 epochs of 3 batches on 96 generated training images.
pub fn write_two_by_two_suite(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let text = format!(
        "name: {name}\ndataset: {{name: fashion-mnist, limit_train: 96, limit_test: 32}}\n\
         models: [{}]\nactivations: [relu, arelu]\nlr: 0.05\nepochs: 2\nbatch_size: 32\nseeds: [0, 1]\n",
        model("convnet.acnet").display()
    );
    std::fs::write(&path, text).expect("suite");
    path
}
