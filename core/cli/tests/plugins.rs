//! Activation plugins end to end: the shipped ones are linked into the
//! binary, pass their check, and are there when the binary is copied alone
//! into an empty folder (as `cargo install` does); a plugin built out of
//! tree from `plugins/template` is checked and trained; broken plugins
//! (built here from `tests/fixtures/bad_plugins`) give clear errors, never a
//! crash.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use common::{acbench, fashion_dir, model, repo_root};
use predicates::prelude::*;

const ACTIVATIONS: [&str; 14] = [
    "asigmoid",
    "atanh",
    "arelu",
    "relu",
    "lrelu",
    "prelu",
    "swish",
    "pelu",
    "frelu",
    "sigmoid",
    "tanh",
    "prelu_channel",
    "arelu_channel",
    "atanh_channel",
];

fn dylib(name: &str) -> String {
    format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// Copies a directory tree, leaving out build output (`target/`).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().expect("file type").is_dir() {
            if entry.file_name() != "target" {
                copy_tree(&src, &dst);
            }
        } else {
            std::fs::copy(&src, &dst).expect("copy");
        }
    }
}

/// Replaces the relative path of the acbench-plugin-api dependency in
/// `manifest` by the repository's, absolute: the crate now lives elsewhere.
fn point_api_at_repo(manifest: &Path, relative: &str) {
    let text = std::fs::read_to_string(manifest).expect("read manifest");
    let api = repo_root()
        .join("plugins/api")
        .canonicalize()
        .expect("plugins/api");
    let from = format!("path = \"{relative}\"");
    assert!(
        text.contains(&from),
        "{} no longer has `{from}`",
        manifest.display()
    );
    let text = text.replace(&from, &format!("path = {:?}", api.display().to_string()));
    std::fs::write(manifest, text).expect("write manifest");
}

/// `cargo build` of the crate or workspace at `dir`, into its own target
/// directory; returns that directory's `debug` folder.
fn cargo_build(dir: &Path) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = dir.join("target");
    let status = Process::new(cargo)
        .args([
            "build",
            "--offline",
            "--quiet",
            "--workspace",
            "--manifest-path",
        ])
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        // The outer build's settings are for the acbench workspace, not this one.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building {} failed", dir.display());
    target.join("debug")
}

#[test]
fn shipped_plugins_are_listed_and_pass_their_check() {
    let out = acbench().args(["plugins", "list"]).assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    for name in ACTIVATIONS {
        let row = text
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("{name} missing from\n{text}"));
        let tier = if name.ends_with("_channel") {
            "formula "
        } else {
            "formula+fused"
        };
        assert!(row.contains(tier), "{row}");
    }
    assert!(text.contains("a=1, b=1, c=0, d=0"), "{text}");
    assert!(text.contains("acbench-adaptive (linked)"), "{text}");
    assert!(
        text.contains("acbench-fcos (linked)") && text.contains("acbench-yolo (linked)"),
        "{text}"
    );
    assert!(
        text.contains("acbench-per-channel, linked into acbench  sha256 "),
        "{text}"
    );
    acbench()
        .args(["plugins", "check"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "all checks passed (14 activations, 2 detectors)",
        ))
        .stdout(predicate::str::contains("finite diff a"))
        .stdout(predicate::str::contains("FAIL").not());
    acbench()
        .args(["plugins", "check", "nope"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("unknown activation `nope`"));
}

/// What `cargo install` leaves: the binary alone, in a folder of its own.
#[test]
fn the_binary_alone_in_an_empty_folder_lists_every_shipped_activation_and_trains() {
    let work = tempfile::tempdir().expect("tempdir");
    let bin = work.path().join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let exe = bin.join(format!("acbench{}", std::env::consts::EXE_SUFFIX));
    std::fs::copy(env!("CARGO_BIN_EXE_acbench"), &exe).expect("copy the binary");
    let run = || {
        let mut cmd = assert_cmd::Command::new(&exe);
        cmd.current_dir(&bin)
            .env_remove("ACBENCH_DATA")
            .env_remove("ACBENCH_PLUGIN_PATH")
            .env("RAYON_NUM_THREADS", "2");
        cmd
    };

    let out = run().args(["plugins", "list"]).assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    for name in ACTIVATIONS {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().nth(1) == Some(name)),
            "{name} missing from\n{text}"
        );
    }
    assert!(!text.contains("no activation plugins found"), "{text}");

    let data = fashion_dir(64, 32);
    let result = work.path().join("r.json");
    run()
        .args(["train", "--model"])
        .arg(model("convnet.acnet"))
        .args(["--act", "arelu", "--act", "fc=prelu_channel"])
        .args(["--dataset", "fashion-mnist", "--data-dir"])
        .arg(data.path())
        .args(["--epochs", "1", "--batch", "32", "--lr", "0.05", "--out"])
        .arg(&result)
        .assert()
        .success()
        .stdout(predicate::str::contains("final test accuracy"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result).expect("result")).expect("json");
    let paths: Vec<&str> = v["plugins"]
        .as_array()
        .expect("plugins in the result")
        .iter()
        .filter_map(|p| p["path"].as_str())
        .collect();
    assert_eq!(
        paths,
        [
            "<linked>/acbench-adaptive",
            "<linked>/acbench-baselines",
            "<linked>/acbench-per-channel",
            "<linked>/acbench-fcos",
            "<linked>/acbench-yolo"
        ]
    );
}

#[test]
fn out_of_tree_plugin_from_the_template_is_checked_and_trained() {
    let work = tempfile::tempdir().expect("tempdir");
    let krate = work.path().join("softsign");
    copy_tree(&repo_root().join("plugins/template"), &krate);
    point_api_at_repo(&krate.join("Cargo.toml"), "../api");
    let lib = cargo_build(&krate).join(dylib("softsign_a"));
    assert!(lib.is_file(), "{} was not built", lib.display());

    acbench()
        .args(["plugins", "check", "softsign_a", "--plugin"])
        .arg(&lib)
        .assert()
        .success()
        .stdout(predicate::str::contains("softsign_a"))
        .stdout(predicate::str::contains("all checks passed (1 activation)"));

    // Found through $ACBENCH_PLUGIN_PATH as well (a folder of plugins).
    let dir = work.path().join("plugins");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(&lib, dir.join(dylib("softsign_a"))).expect("copy");
    acbench()
        .env("ACBENCH_PLUGIN_PATH", &dir)
        .args(["plugins", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("softsign_a"))
        .stdout(predicate::str::contains("a=1 (>= 0.001)"));

    let data = fashion_dir(64, 32);
    let out = work.path().join("r.json");
    acbench()
        .args(["train", "--model"])
        .arg(model("convnet.acnet"))
        .args([
            "--act",
            "softsign_a",
            "--dataset",
            "fashion-mnist",
            "--data-dir",
        ])
        .arg(data.path())
        .args(["--epochs", "1", "--batch", "32", "--lr", "0.05", "--plugin"])
        .arg(&lib)
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains("final test accuracy"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("result")).expect("json");
    let plugins = v["plugins"].as_array().expect("plugins in the result");
    let ours = plugins
        .iter()
        .find(|p| p["activations"] == serde_json::json!(["softsign_a"]))
        .expect("the template plugin in the manifest");
    assert_eq!(
        ours["path"].as_str().map(PathBuf::from),
        Some(lib.canonicalize().expect("lib path"))
    );
    assert_eq!(ours["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(plugins.len(), 6, "five shipped plugins and the template");
    assert_eq!(plugins[0]["path"], "<linked>/acbench-adaptive");
    assert_eq!(v["fused"], true);
    let slots = v["outcome"]["act_values"].as_array().expect("act values");
    assert!(slots.iter().all(|s| s["activation"] == "softsign_a"));

    // A suite file that names the library loads it only when allowed.
    let suite = work.path().join("shared.yaml");
    std::fs::write(
        &suite,
        format!(
            "name: shared\ndataset: {{name: fashion-mnist, limit_train: 32, limit_test: 16}}\n\
             models: [{}]\nactivations: [softsign_a]\nepochs: 1\nbatch_size: 32\nseeds: [0]\n\
             plugins:\n  - {}\n",
            model("convnet.acnet").display(),
            lib.display()
        ),
    )
    .expect("suite");
    let suite_cmd = |out: &str| {
        let mut cmd = acbench();
        cmd.arg("suite")
            .arg(&suite)
            .arg("--out")
            .arg(work.path().join(out))
            .arg("--data-dir")
            .arg(data.path())
            .arg("--no-plots");
        cmd
    };
    suite_cmd("refused")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("shared.yaml:9:5: `plugins[0]`"))
        .stderr(predicate::str::contains("which would run its native code"))
        .stderr(predicate::str::contains("--allow-plugins"));
    assert!(!work.path().join("refused").exists(), "nothing ran");
    suite_cmd("allowed")
        .arg("--allow-plugins")
        .assert()
        .success()
        .stdout(predicate::str::contains("1 runs trained"));
    suite_cmd("on-path")
        .env("ACBENCH_PLUGIN_PATH", &lib)
        .assert()
        .success();
}

#[test]
fn broken_plugins_give_clear_errors_and_never_crash() {
    let work = tempfile::tempdir().expect("tempdir");
    let fixtures = work.path().join("bad_plugins");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad_plugins"),
        &fixtures,
    );
    point_api_at_repo(&fixtures.join("Cargo.toml"), "../../../../../plugins/api");
    let built = cargo_build(&fixtures);
    let lib = |name: &str| built.join(dylib(name));

    let missing = work.path().join(dylib("nothing_here"));
    let load_errors = [
        (
            missing.clone(),
            format!("plugin {}: no such file", missing.display()),
        ),
        (
            lib("no_entry"),
            "not an acbench plugin: it exports neither `acbench_plugin_entry` nor \
             `acbench_detector_entry`"
                .into(),
        ),
        (
            lib("wrong_abi"),
            "built for plugin ABI version 999, but this acbench speaks version 1".into(),
        ),
        (
            lib("bad_formula"),
            "activation `bad_formula`: formula error at column 11".into(),
        ),
        (lib("dup_relu"), "activation `relu` is defined twice".into()),
        (
            lib("wrong_detector_abi"),
            "built for plugin ABI version 999, but this acbench speaks version 1".into(),
        ),
    ];
    for (path, expect) in &load_errors {
        acbench()
            .args(["plugins", "list", "--plugin"])
            .arg(path)
            .assert()
            .code(1)
            .stderr(predicate::str::contains(expect.as_str()))
            .stderr(predicate::str::contains("panicked").not());
    }
    // A non-library file on the search path.
    let junk = work.path().join("junk");
    std::fs::create_dir_all(&junk).expect("mkdir");
    std::fs::write(junk.join(dylib("junk")), "not a library").expect("write");
    acbench()
        .env("ACBENCH_PLUGIN_PATH", &junk)
        .args(["plugins", "list"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot load the library"));

    // Kernels that fail or panic: the run stops with the plugin's message
    // and exit code 1 (an abort would have no exit code).
    let data = fashion_dir(32, 16);
    for (act, expect) in [
        (
            "bad_fails",
            "activation `bad_fails`: the forward kernel failed (status 1): fails on purpose",
        ),
        (
            "bad_panics",
            "activation `bad_panics`: the forward kernel panicked",
        ),
    ] {
        acbench()
            .env("RUST_BACKTRACE", "0")
            .args(["train", "--model"])
            .arg(model("convnet.acnet"))
            .args(["--act", act, "--dataset", "fashion-mnist", "--data-dir"])
            .arg(data.path())
            .args(["--epochs", "1", "--batch", "16", "--plugin"])
            .arg(lib("bad_kernels"))
            .assert()
            .code(1)
            .stderr(predicate::str::contains(expect))
            .stderr(predicate::str::contains(
                lib("bad_kernels")
                    .canonicalize()
                    .expect("lib")
                    .display()
                    .to_string(),
            ));
        // The formula path does not touch the kernels.
        acbench()
            .args(["train", "--model"])
            .arg(model("convnet.acnet"))
            .args(["--act", act, "--dataset", "fashion-mnist", "--data-dir"])
            .arg(data.path())
            .args(["--epochs", "1", "--batch", "16", "--no-fused", "--plugin"])
            .arg(lib("bad_kernels"))
            .assert()
            .success();
    }
    // A kernel that writes NaN: the run diverges, and says which plugin did it.
    let shown = lib("bad_kernels")
        .canonicalize()
        .expect("lib")
        .display()
        .to_string();
    acbench()
        .args(["train", "--model"])
        .arg(model("convnet.acnet"))
        .args([
            "--act",
            "relu",
            "--act",
            "fc=bad_nan",
            "--dataset",
            "fashion-mnist",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .args(["--epochs", "1", "--batch", "16", "--plugin"])
        .arg(lib("bad_kernels"))
        .assert()
        .stdout(predicate::str::contains(
            "diverged: non-finite training loss at epoch 1 batch 1: act slot",
        ))
        .stdout(predicate::str::contains(format!(
            "activation `bad_nan` from plugin {shown} turned finite inputs into NaN"
        )));
    let suite = work.path().join("nan.yaml");
    std::fs::write(
        &suite,
        format!(
            "name: nan\ndataset: {{name: fashion-mnist, limit_train: 32, limit_test: 16}}\n\
             models: [{}]\nactivations: [bad_nan]\nepochs: 1\nbatch_size: 16\nseeds: [0]\n",
            model("convnet.acnet").display()
        ),
    )
    .expect("suite");
    let out = work.path().join("nan-out");
    acbench()
        .arg("suite")
        .arg(&suite)
        .arg("--out")
        .arg(&out)
        .arg("--data-dir")
        .arg(data.path())
        .args(["--no-plots", "--plugin"])
        .arg(lib("bad_kernels"))
        .assert()
        .success();
    let runs = acbench_ledger::Ledger::open(&out.join("ledger.sqlite"))
        .expect("ledger")
        .runs()
        .expect("runs");
    match &runs[0].status {
        acbench_ledger::RunStatus::Diverged { cause: Some(c), .. } => {
            assert!(c.contains("activation `bad_nan` from plugin"), "{c}");
            assert!(c.contains(&shown), "{c}");
        }
        other => panic!("recorded as {other:?}"),
    }
    acbench()
        .env("RUST_BACKTRACE", "0")
        .args(["plugins", "check", "--plugin"])
        .arg(lib("bad_kernels"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("PLUGIN CHECK FAILED: "))
        .stderr(predicate::str::contains("FAIL bad_fails"))
        .stderr(predicate::str::contains("FAIL bad_panics"));
}

/// A network for detectors whose head has `classes + extra` channels per
/// cell of a 12x12 grid (96x96 input), small enough for tests.
fn write_head_model(dir: &Path, extra: usize) -> PathBuf {
    let path = dir.join(format!("head{extra}.acnet"));
    let text = format!(
        "network head(classes=10, channels=1, size=96) {{\n\
         input(channels, size, size)\n\
         conv(4, 3, stride=2, pad=same) bn act\n\
         conv(4, 3, stride=2, pad=same) bn act\n\
         conv(4, 3, stride=2, pad=same) bn act\n\
         conv(classes + {extra}, 1)\n}}\n"
    );
    std::fs::write(&path, text).expect("model");
    path
}

fn train_detector(model: &Path, detector: &str, lib: &Path, data: &Path) -> assert_cmd::Command {
    let mut cmd = acbench();
    cmd.env("RUST_BACKTRACE", "0")
        .args(["train", "--model"])
        .arg(model)
        .args([
            "--act",
            "relu",
            "--dataset",
            "fashion-mnist-boxes",
            "--detector",
            detector,
        ])
        .args([
            "--limit-train",
            "16",
            "--limit-test",
            "8",
            "--batch",
            "8",
            "--data-dir",
        ])
        .arg(data)
        .arg("--plugin")
        .arg(lib);
    cmd
}

#[test]
fn broken_detector_plugins_give_clear_errors_and_never_crash() {
    let work = tempfile::tempdir().expect("tempdir");
    let fixtures = work.path().join("bad_plugins");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad_plugins"),
        &fixtures,
    );
    point_api_at_repo(&fixtures.join("Cargo.toml"), "../../../../../plugins/api");
    let lib = cargo_build(&fixtures).join(dylib("bad_detectors"));
    let shown = lib.canonicalize().expect("lib").display().to_string();
    let data = fashion_dir(32, 16);
    let model = write_head_model(work.path(), 0);
    for (detector, expect) in [
        (
            "det_panics",
            "detector `det_panics`: `loss` panicked: kernel `loss` panicked: the loss panics on purpose",
        ),
        (
            "det_fails",
            "detector `det_fails`: `loss` failed (status 1): the loss fails on purpose",
        ),
        ("det_huge", "detector `det_huge`: its layout asks for"),
    ] {
        train_detector(&model, detector, &lib, data.path())
            .assert()
            .code(1)
            .stderr(predicate::str::contains(expect))
            .stderr(predicate::str::contains(shown.as_str()));
    }
    train_detector(&model, "det_nan", &lib, data.path())
        .assert()
        .stdout(predicate::str::contains("diverged"))
        .stdout(predicate::str::contains(format!(
            "detector `det_nan` from plugin {shown}: its loss is not finite on a finite head output"
        )));
    acbench()
        .env("RUST_BACKTRACE", "0")
        .args(["plugins", "check", "--plugin"])
        .arg(&lib)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("FAIL det_panics"))
        .stderr(predicate::str::contains("FAIL det_fails"));
}

#[test]
fn out_of_tree_detector_from_the_template_is_checked_and_trained() {
    let work = tempfile::tempdir().expect("tempdir");
    let krate = work.path().join("centers");
    copy_tree(&repo_root().join("plugins/detector-template"), &krate);
    point_api_at_repo(&krate.join("Cargo.toml"), "../api");
    let lib = cargo_build(&krate).join(dylib("centers"));
    assert!(lib.is_file(), "{} was not built", lib.display());

    acbench()
        .args(["plugins", "check", "centers", "--plugin"])
        .arg(&lib)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "all checks passed (0 activations, 1 detector)",
        ));
    // Found on $ACBENCH_PLUGIN_PATH, listed beside the shipped detectors.
    let dir = work.path().join("plugins");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(&lib, dir.join(dylib("centers"))).expect("copy");
    acbench()
        .env("ACBENCH_PLUGIN_PATH", &dir)
        .args(["plugins", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("centers"))
        .stdout(predicate::str::contains("size_weight=1"));

    let data = fashion_dir(32, 16);
    let model = write_head_model(work.path(), 4);
    train_detector(&model, "centers:size_weight=2", &lib, data.path())
        .args(["--epochs", "2", "--optimizer", "adam", "--lr", "0.01"])
        .assert()
        .success()
        .stdout(predicate::str::contains("with detector centers"))
        .stdout(predicate::str::contains("VOC AP50"));
}
