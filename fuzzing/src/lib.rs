//! The fuzzing campaign's targets: what each does with one input, in one
//! place. The cargo-fuzz binaries in `fuzz/` (nightly, libFuzzer) call
//! these, and `tests/replay.rs` replays every committed corpus and crasher
//! (`fuzz/corpus/TARGET`, `fuzz/regressions/TARGET`) through the same
//! functions on stable, so CI checks that no input found so far panics.
//!
//! A target that reads files (the loaders read paths, as users give them)
//! writes its input under `scratch`: the fuzz binaries pass
//! [`scratch`] (a memory file system where there is one: a disk would make
//! each execution far slower), the replay test a temporary folder.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use acbench_engine::activation::Registry;
use acbench_engine::train::{EpochMetrics, Observer};
use acbench_suite::runner::{BatchObserver, Outcome, RunObserver, Runner, Summary};
use acbench_suite::{Catalog, RunSpec};
use acbench_sweep::{Limits, SweepObserver, SweepOptions};

/// One fuzz target: its name (the binary, and its corpus folder) and what
/// it does with an input.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// `acnet`, `cifar`, ...
    pub name: &'static str,
    /// Runs one input; `scratch` is a folder it may write into.
    pub run: fn(&[u8], &Path),
}

/// Every target of the campaign.
pub const TARGETS: &[Target] = &[
    Target {
        name: "acnet",
        run: acnet,
    },
    Target {
        name: "formula",
        run: formula,
    },
    Target {
        name: "suite_yaml",
        run: suite_yaml,
    },
    Target {
        name: "sweep",
        run: sweep,
    },
    Target {
        name: "idx",
        run: idx,
    },
    Target {
        name: "cifar",
        run: cifar,
    },
    Target {
        name: "image_folder",
        run: image_folder,
    },
    Target {
        name: "voc_xml",
        run: voc_xml,
    },
    Target {
        name: "coco_json",
        run: coco_json,
    },
    Target {
        name: "detections_json",
        run: detections_json,
    },
];

/// This process's scratch folder for the fuzz binaries: under `/dev/shm`
/// where it exists, else the temporary folder.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        base.join(format!("acbench-fuzz-{}", std::process::id()))
    })
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// `.acnet` source: parse, then elaborate with no arguments (the checks of
/// shapes, counts and limits run there).
pub fn acnet(data: &[u8], _: &Path) {
    if let Some(m) = text(data).and_then(|t| acbench_dsl::parse(t, "fuzz.acnet").ok()) {
        let _ = m.elaborate(None, &[]);
    }
}

/// An activation formula over the parameters `a`..`d`.
pub fn formula(data: &[u8], _: &Path) {
    if let Some(t) = text(data) {
        let _ = acbench_dsl::formula::parse(t, &["a", "b", "c", "d"]);
    }
}

/// The shipped activations and detectors, as the CLI's catalog holds them.
fn shipped() -> &'static (Arc<Registry>, Catalog) {
    static SHIPPED: OnceLock<(Arc<Registry>, Catalog)> = OnceLock::new();
    SHIPPED.get_or_init(|| {
        let registry = Registry::builtin().expect("the shipped activations load");
        let catalog = Catalog::from_registry(&registry);
        (Arc::new(registry), catalog)
    })
}

/// A suite file with `--set` overrides, read and resolved as `acbench
/// suite` does: the YAML text, then a NUL byte, then one `--set key=value`
/// per line. The file is taken to sit in the repository's `suites/`
/// folder, so `models/*.acnet` resolve and are parsed and elaborated too.
pub fn suite_yaml(data: &[u8], _: &Path) {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    let path =
        PATH.get_or_init(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites/fuzz.yaml"));
    let (yaml, sets) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Some(yaml) = text(yaml) else {
        return;
    };
    let sets: Vec<String> = String::from_utf8_lossy(sets)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let Ok(loaded) = acbench_suite::parse(path, yaml.to_owned(), &sets) else {
        return;
    };
    let _ = loaded.read_paths();
    let _ = loaded.check_plugins_allowed(&[]);
    let _ = loaded.resolve(&shipped().1, Some(Path::new("/nonexistent/out")));
}

/// Drops everything a sweep reports.
struct Quiet;

impl Observer for Quiet {
    fn epoch_end(&mut self, _: &EpochMetrics) {}
}
impl RunObserver for Quiet {
    fn run_start(&mut self, _: &RunSpec, _: usize, _: usize) {}
}
impl BatchObserver for Quiet {
    fn batch_start(&mut self, _: usize) {}
    fn run_end(&mut self, _: &RunSpec, _: &Outcome, _: &Summary) {}
    fn batch_done(&mut self) {}
}
impl SweepObserver for Quiet {
    fn print(&mut self, _: &str) {}
}

/// A sweep script through `acbench sweep`'s sandboxed engine, as a user
/// runs it. The script's folder holds nothing else, and a sweep may read
/// only under its folder, so no spec can name a model file and nothing
/// trains: what is fuzzed is the parser, the sandbox's limits and the
/// script API. The operation limit is lowered (from 20 million) so that an
/// endless loop ends well within libFuzzer's second.
pub fn sweep(data: &[u8], scratch: &Path) {
    let dir = scratch.join("sweep");
    let script = dir.join("script").join("s.rhai");
    if std::fs::create_dir_all(dir.join("script")).is_err()
        || std::fs::write(&script, data).is_err()
    {
        return;
    }
    let options = SweepOptions {
        script,
        out_dir: dir.join("out"),
        sets: vec!["quick=true".to_owned()],
        max_seconds: Some(0.5),
        limits: Limits {
            max_operations: 20_000,
            ..Limits::default()
        },
        allow_read: Vec::new(),
    };
    let (registry, catalog) = shipped();
    let runner = Runner::new(registry.clone(), candle_core::Device::Cpu, None, false);
    let _ = acbench_sweep::run(&options, catalog.clone(), runner, Box::new(Quiet));
}

/// Writes `files` (name, bytes) into `scratch/sub`, which it returns.
fn write_files(scratch: &Path, sub: &str, files: &[(&str, &[u8])]) -> Option<PathBuf> {
    let dir = scratch.join(sub);
    std::fs::create_dir_all(&dir).ok()?;
    for (name, bytes) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).ok()?;
        }
        std::fs::write(path, bytes).ok()?;
    }
    Some(dir)
}

/// An IDX image or label file (Fashion-MNIST's format), read from a file
/// as the loader reads it; the first byte picks the kind.
pub fn idx(data: &[u8], scratch: &Path) {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let Some(dir) = write_files(scratch, "idx", &[("f-idx-ubyte", body)]) else {
        return;
    };
    let path = dir.join("f-idx-ubyte");
    if kind % 2 == 0 {
        let _ = acbench_data::idx::read_images(&path);
    } else {
        let _ = acbench_data::idx::read_labels(&path, 10);
    }
}

/// CIFAR-10 and CIFAR-100 binary batches, read as the loader reads them:
/// the first byte picks the set (even: CIFAR-10; odd: CIFAR-100 with fine
/// or coarse labels), the rest is every batch file, and its first 4 KiB
/// the class-name files.
pub fn cifar(data: &[u8], scratch: &Path) {
    use acbench_data::cifar::{self, Cifar100Labels};
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let names = &body[..body.len().min(4096)];
    let batches: &[&str] = if kind % 2 == 0 {
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
    let mut files: Vec<(&str, &[u8])> = batches.iter().map(|b| (*b, body)).collect();
    for f in [
        "batches.meta.txt",
        "fine_label_names.txt",
        "coarse_label_names.txt",
    ] {
        files.push((f, names));
    }
    let Some(dir) = write_files(scratch, "cifar", &files) else {
        return;
    };
    if kind % 2 == 0 {
        let _ = cifar::load_cifar10(&dir, "cifar10");
    } else {
        let labels = if kind & 2 == 0 {
            Cifar100Labels::Fine
        } else {
            Cifar100Labels::Coarse
        };
        let _ = cifar::load_cifar100(&dir, "cifar100", labels);
    }
}

/// An image folder (miniImageNet's layout), loaded as `folder:PATH` is:
/// the first byte picks the extension (PNG or JPEG; the decoder guesses
/// the format from the bytes either way), the channels and whether the
/// size comes from the first image or is fixed; the rest is one image,
/// written as a training and a test image of one class. Images may
/// declare up to one megapixel (`max_pixels`): decoding costs what the
/// header declares, and under ASAN a legitimate six-megapixel decode takes
/// longer than libFuzzer's second (the loader's own default is 64
/// megapixels).
pub fn image_folder(data: &[u8], scratch: &Path) {
    use acbench_data::folder::{self, Channels, FolderOptions};
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let ext = if kind & 1 == 0 { "png" } else { "jpg" };
    let (train, test) = (format!("train/cls/0.{ext}"), format!("test/cls/0.{ext}"));
    // A new folder each time: an earlier input's other extension must not
    // linger as a second image.
    let _ = std::fs::remove_dir_all(scratch.join("image_folder"));
    let Some(root) = write_files(scratch, "image_folder", &[(&train, body), (&test, body)]) else {
        return;
    };
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
}

/// A PASCAL VOC annotation file.
pub fn voc_xml(data: &[u8], _: &Path) {
    if let Some(t) = text(data) {
        let _ = acbench_data::detection::voc::parse_annotation(Path::new("fuzz.xml"), t);
    }
}

/// A COCO instances file, through the dataset reader and the evaluator's.
pub fn coco_json(data: &[u8], _: &Path) {
    if let Some(t) = text(data) {
        let _ = acbench_data::detection::coco::parse_instances(Path::new("fuzz.json"), t);
        let _ = acbench_detect::json::parse_ground_truth(t);
    }
}

/// The small fixed ground truth detections are scored against.
const GT: &str = r#"{"images": [{"id": 1, "width": 64, "height": 64}, {"id": 2, "width": 32, "height": 48}],
 "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 12], "area": 120, "iscrowd": 0},
                 {"id": 2, "image_id": 2, "category_id": 2, "bbox": [0, 0, 30, 40], "area": 1200, "iscrowd": 1}],
 "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}"#;

/// A COCO results file against [`GT`], then scored.
pub fn detections_json(data: &[u8], _: &Path) {
    let Some(t) = text(data) else {
        return;
    };
    let gt = acbench_detect::json::parse_ground_truth(GT).expect("the fixed ground truth parses");
    if let Ok(dt) = acbench_detect::json::parse_detections(t, &gt) {
        let _ = acbench_detect::coco::evaluate(&gt, &dt);
    }
}
