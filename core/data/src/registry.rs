//! Dataset names, where each is looked for, and loading by name.
//!
//! Search order for a registered dataset: the `--data-dir` option, then
//! `$ACBENCH_DATA`, then the user cache (`dirs::cache_dir()/acbench`, where
//! `acbench data fetch` puts things), then, for Fashion-MNIST only, Debian's
//! `/usr/share/datasets/fashion-mnist`. Inside each root the dataset's usual
//! folder names are tried; `--data-dir` may also point at the dataset folder
//! itself.

use std::path::{Path, PathBuf};

use crate::cifar::{self, Cifar100Labels};
use crate::folder::{self, FolderOptions};
use crate::{DataError, Dataset, idx};

/// Environment variable naming an extra data root.
pub const DATA_ENV: &str = "ACBENCH_DATA";

/// Where Debian's `dataset-fashion-mnist` package installs the files.
pub const DEBIAN_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// Prefix of ad-hoc image-folder datasets: `folder:PATH`.
pub const FOLDER_PREFIX: &str = "folder:";

/// How to find and trim a dataset.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// A data root searched before all others (the `--data-dir` option).
    pub data_dir: Option<PathBuf>,
    /// Height and width to resize image-folder datasets to (default 84x84
    /// for `mini-imagenet`, the first image's size for `folder:PATH`). For
    /// fixed-size formats it must match the native size.
    pub image_size: Option<(usize, usize)>,
    /// Keep only the first N training examples.
    pub limit_train: Option<usize>,
    /// Keep only the first N test examples.
    pub limit_test: Option<usize>,
}

/// One registry entry as `acbench data list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetStatus {
    /// Registry name.
    pub name: &'static str,
    /// One line about it.
    pub description: &'static str,
    /// The folder it would be loaded from, if found.
    pub found_at: Option<PathBuf>,
    /// Whether `acbench data fetch` can download it.
    pub fetchable: bool,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Idx { names: &'static [&'static str] },
    Cifar10,
    Cifar100(Cifar100Labels),
    Folder { default_size: (usize, usize) },
}

impl Kind {
    fn present(self, dir: &Path) -> bool {
        match self {
            Self::Idx { .. } => idx::present(dir),
            Self::Cifar10 => cifar::present10(dir),
            Self::Cifar100(_) => cifar::present100(dir),
            Self::Folder { .. } => folder::present(dir),
        }
    }
}

struct Entry {
    name: &'static str,
    description: &'static str,
    kind: Kind,
    /// Folder names tried inside each root, in order.
    subdirs: &'static [&'static str],
    fetchable: bool,
}

const FASHION_NAMES: &[&str] = &[
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
const DIGITS: &[&str] = &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

const REGISTRY: &[Entry] = &[
    Entry {
        name: "fashion-mnist",
        description: "Fashion-MNIST, 10 classes, 28x28 grey (IDX)",
        kind: Kind::Idx {
            names: FASHION_NAMES,
        },
        subdirs: &["fashion-mnist", "FashionMNIST/raw", "fashion_mnist"],
        fetchable: true,
    },
    Entry {
        name: "mnist",
        description: "MNIST digits, 10 classes, 28x28 grey (IDX)",
        kind: Kind::Idx { names: DIGITS },
        subdirs: &["mnist", "MNIST/raw"],
        fetchable: true,
    },
    Entry {
        name: "cifar10",
        description: "CIFAR-10, 10 classes, 32x32 RGB (binary version)",
        kind: Kind::Cifar10,
        subdirs: &["cifar-10-batches-bin", "cifar10/cifar-10-batches-bin"],
        fetchable: true,
    },
    Entry {
        name: "cifar100",
        description: "CIFAR-100, 100 fine classes, 32x32 RGB (binary version)",
        kind: Kind::Cifar100(Cifar100Labels::Fine),
        subdirs: &["cifar-100-binary", "cifar100/cifar-100-binary"],
        fetchable: true,
    },
    Entry {
        name: "cifar100-coarse",
        description: "CIFAR-100 with its 20 coarse classes",
        kind: Kind::Cifar100(Cifar100Labels::Coarse),
        subdirs: &["cifar-100-binary", "cifar100/cifar-100-binary"],
        fetchable: true,
    },
    Entry {
        name: "mini-imagenet",
        description: "miniImageNet as an image folder (train/<class>/, test/<class>/), 84x84 RGB",
        kind: Kind::Folder {
            default_size: (84, 84),
        },
        subdirs: &["mini-imagenet", "miniImageNet", "mini_imagenet"],
        fetchable: false,
    },
];

/// What a registered dataset looks like without loading it: class count
/// and image shape (channels, height, width). Lets a suite be checked, and
/// its networks elaborated, before any data is read. `None` for unknown
/// names and for `folder:` datasets, whose classes are their sub-folders.
pub fn geometry(
    name: &str,
    image_size: Option<(usize, usize)>,
) -> Option<(usize, (usize, usize, usize))> {
    let entry = REGISTRY.iter().find(|e| e.name == name)?;
    Some(match entry.kind {
        Kind::Idx { names } => (names.len(), (1, 28, 28)),
        Kind::Cifar10 => (10, (3, 32, 32)),
        Kind::Cifar100(Cifar100Labels::Fine) => (100, (3, 32, 32)),
        Kind::Cifar100(Cifar100Labels::Coarse) => (20, (3, 32, 32)),
        // miniImageNet is 100 classes by definition (Vinyals et al. 2016).
        Kind::Folder { default_size } => {
            let (h, w) = image_size.unwrap_or(default_size);
            (100, (3, h, w))
        }
    })
}

/// Examples in the (training, test) splits of a registered dataset, as it
/// is distributed, for estimating a suite's cost before any data is read.
/// miniImageNet has 600 images in each of its 100 classes; as an image
/// folder its train/test split is the user's, so 500/100 per class is
/// assumed. `None` for unknown names and `folder:` datasets.
pub fn split_sizes(name: &str) -> Option<(usize, usize)> {
    let entry = REGISTRY.iter().find(|e| e.name == name)?;
    Some(match entry.kind {
        Kind::Idx { .. } => (60_000, 10_000),
        Kind::Cifar10 | Kind::Cifar100(_) => (50_000, 10_000),
        Kind::Folder { .. } => (50_000, 10_000),
    })
}

/// Registered dataset names, in display order.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|e| e.name).collect()
}

/// The default download root: `dirs::cache_dir()/acbench`.
pub fn default_root() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("acbench"))
}

fn entry(name: &str) -> Result<&'static Entry, DataError> {
    REGISTRY
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| DataError::UnknownDataset {
            name: name.to_owned(),
            known: names().join(", "),
        })
}

/// The roots searched, in order; kept apart from the process environment so
/// the order can be tested without touching environment variables.
#[derive(Debug, Clone, Default)]
struct Roots {
    data_dir: Option<PathBuf>,
    env: Option<PathBuf>,
    cache: Option<PathBuf>,
    debian: Option<PathBuf>,
}

impl Roots {
    fn from_process(opts: &LoadOptions) -> Self {
        Self {
            data_dir: opts.data_dir.clone(),
            env: std::env::var_os(DATA_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            cache: default_root(),
            debian: Some(PathBuf::from(DEBIAN_FASHION_MNIST)),
        }
    }

    /// Every folder to try for `e`, in order.
    fn candidates(&self, e: &Entry) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Some(d) = &self.data_dir {
            out.extend(e.subdirs.iter().map(|s| d.join(s)));
            out.push(d.clone());
        }
        for root in [&self.env, &self.cache].into_iter().flatten() {
            out.extend(e.subdirs.iter().map(|s| root.join(s)));
        }
        if e.name == "fashion-mnist" {
            out.extend(self.debian.clone());
        }
        out
    }

    fn locate(&self, e: &Entry) -> Result<PathBuf, DataError> {
        let looked = self.candidates(e);
        if let Some(found) = looked.iter().find(|d| e.kind.present(d)) {
            return Ok(found.clone());
        }
        let hint = if e.fetchable {
            let debian = if e.name == "fashion-mnist" {
                " or `apt-get install dataset-fashion-mnist`"
            } else {
                ""
            };
            format!(
                "get it with `acbench data fetch {}`{debian}, or pass --data-dir DIR",
                e.name
            )
        } else {
            format!(
                "place it as DIR/{}/train/<class>/*.jpg and DIR/{}/test/<class>/*.jpg and pass --data-dir DIR",
                e.subdirs[0], e.subdirs[0]
            )
        };
        let hint = if self.env.is_none() {
            format!("{hint} (${DATA_ENV} is not set; it may name one more data root)")
        } else {
            hint
        };
        Err(DataError::NotFound {
            name: e.name.to_owned(),
            looked,
            hint,
        })
    }
}

/// The data roots searched for a dataset, in order: `--data-dir`,
/// `$ACBENCH_DATA`, the cache (`~/.cache/acbench`).
pub(crate) fn search_roots(opts: &LoadOptions) -> Vec<PathBuf> {
    let r = Roots::from_process(opts);
    [r.data_dir, r.env, r.cache].into_iter().flatten().collect()
}

/// Finds the folder a registered dataset would be loaded from.
pub fn locate(name: &str, opts: &LoadOptions) -> Result<PathBuf, DataError> {
    Roots::from_process(opts).locate(entry(name)?)
}

/// Every registered dataset, detection sets on disk included, with where
/// (whether) it was found.
pub fn list(opts: &LoadOptions) -> Vec<DatasetStatus> {
    let roots = Roots::from_process(opts);
    REGISTRY
        .iter()
        .map(|e| DatasetStatus {
            name: e.name,
            description: e.description,
            found_at: roots.locate(e).ok(),
            fetchable: e.fetchable,
        })
        .chain(crate::detection::list(opts))
        .collect()
}

/// The folder a dataset name gives by path (`folder:PATH`, `voc:PATH`,
/// `coco:PATH`), as written (relative paths start from the working
/// directory); `None` for a registered name, which is found under the data
/// roots.
pub fn given_path(name: &str) -> Option<&Path> {
    [
        FOLDER_PREFIX,
        crate::detection::VOC_PREFIX,
        crate::detection::COCO_PREFIX,
    ]
    .iter()
    .find_map(|prefix| name.strip_prefix(prefix))
    .map(Path::new)
}

/// Loads a dataset by registry name or as `folder:PATH`, applying the limits.
pub fn load(name: &str, opts: &LoadOptions) -> Result<Dataset, DataError> {
    load_with(name, opts, &Roots::from_process(opts))
}

fn load_with(name: &str, opts: &LoadOptions, roots: &Roots) -> Result<Dataset, DataError> {
    for (what, limit) in [
        ("--limit-train", opts.limit_train),
        ("--limit-test", opts.limit_test),
    ] {
        if limit == Some(0) {
            return Err(DataError::InvalidOption(format!(
                "{what} must be at least 1"
            )));
        }
    }
    let folder_opts = |default_size| FolderOptions {
        size: opts.image_size.or(default_size),
        limit_train: opts.limit_train,
        limit_test: opts.limit_test,
        ..Default::default()
    };
    if let Some(path) = name.strip_prefix(FOLDER_PREFIX) {
        if path.is_empty() {
            return Err(DataError::InvalidOption(
                "`folder:` needs a path, as folder:PATH".into(),
            ));
        }
        return folder::load_folder(Path::new(path), name, &folder_opts(None));
    }
    let e = entry(name)?;
    let dir = roots.locate(e)?;
    tracing::info!("loading {} from {}", e.name, dir.display());
    let mut data = match e.kind {
        Kind::Idx { names } => idx::load_dir(&dir, e.name, 10, names)?,
        Kind::Cifar10 => cifar::load_cifar10(&dir, e.name)?,
        Kind::Cifar100(labels) => cifar::load_cifar100(&dir, e.name, labels)?,
        Kind::Folder { default_size } => {
            return folder::load_folder(&dir, e.name, &folder_opts(Some(default_size)));
        }
    };
    let native = (data.shape.1, data.shape.2);
    if let Some((h, w)) = opts.image_size.filter(|&s| s != native) {
        return Err(DataError::InvalidOption(format!(
            "{} images are {}x{}; resizing to {h}x{w} is only offered for image folders",
            e.name, native.0, native.1
        )));
    }
    data.truncate(opts.limit_train, opts.limit_test);
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_path_only_for_datasets_named_by_path() {
        assert_eq!(given_path("folder:data/pets"), Some(Path::new("data/pets")));
        assert_eq!(
            given_path("voc:/srv/VOC2007"),
            Some(Path::new("/srv/VOC2007"))
        );
        assert_eq!(given_path("coco:c"), Some(Path::new("c")));
        assert_eq!(given_path("fashion-mnist"), None);
        assert_eq!(given_path("voc2007"), None);
    }

    #[test]
    fn geometry_is_known_without_loading() {
        assert_eq!(geometry("fashion-mnist", None), Some((10, (1, 28, 28))));
        assert_eq!(geometry("cifar100", None), Some((100, (3, 32, 32))));
        assert_eq!(geometry("cifar100-coarse", None), Some((20, (3, 32, 32))));
        assert_eq!(
            geometry("mini-imagenet", Some((64, 64))),
            Some((100, (3, 64, 64)))
        );
        assert_eq!(geometry("folder:/x", None), None);
        assert_eq!(geometry("nope", None), None);
    }

    fn roots(base: &Path) -> Roots {
        Roots {
            data_dir: Some(base.join("opt")),
            env: Some(base.join("env")),
            cache: Some(base.join("cache")),
            debian: Some(base.join("debian")),
        }
    }

    #[test]
    fn resolver_order() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let r = roots(tmp.path());
        let e = entry("fashion-mnist").expect("registered");
        let places = [
            tmp.path().join("debian"),
            tmp.path().join("cache/fashion-mnist"),
            tmp.path().join("env/FashionMNIST/raw"),
            tmp.path().join("opt/fashion-mnist"),
        ];
        // Each place added wins over the ones added before it.
        for p in &places {
            std::fs::create_dir_all(p).expect("mkdir");
            idx::tests::write_dataset(p, true);
            assert_eq!(&r.locate(e).expect("found"), p);
        }
        // The data dir itself may be the dataset folder; its sub-folders come first.
        let r2 = Roots {
            data_dir: Some(tmp.path().join("debian")),
            ..Roots::default()
        };
        assert_eq!(r2.locate(e).expect("found"), tmp.path().join("debian"));
        // Debian's folder is only for fashion-mnist.
        let r3 = Roots {
            debian: Some(tmp.path().join("debian")),
            ..Roots::default()
        };
        assert!(r3.locate(entry("mnist").expect("registered")).is_err());
        let d = load_with("fashion-mnist", &LoadOptions::default(), &r).expect("loads");
        assert_eq!(
            (d.name.as_str(), d.classes, d.shape),
            ("fashion-mnist", 10, (1, 2, 3))
        );
        assert_eq!(d.class_names[9], "Ankle boot");
    }

    #[test]
    fn not_found_lists_every_place() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let r = roots(tmp.path());
        let m = load_with("fashion-mnist", &LoadOptions::default(), &r)
            .map(|_| ())
            .expect_err("nothing there")
            .to_string();
        for p in [
            "opt/fashion-mnist",
            "env/FashionMNIST/raw",
            "cache/fashion_mnist",
            "debian",
        ] {
            assert!(
                m.contains(&tmp.path().join(p).display().to_string()),
                "{p}: {m}"
            );
        }
        assert!(m.contains("acbench data fetch fashion-mnist"), "{m}");
        assert!(m.contains("apt-get install dataset-fashion-mnist"), "{m}");
        let m = load_with("mini-imagenet", &LoadOptions::default(), &r)
            .map(|_| ())
            .expect_err("nothing there")
            .to_string();
        assert!(m.contains("mini-imagenet/train/<class>"), "{m}");
        let m = load_with("imagenet", &LoadOptions::default(), &r)
            .map(|_| ())
            .expect_err("unknown");
        assert!(
            m.to_string()
                .contains("known: fashion-mnist, mnist, cifar10"),
            "{m}"
        );
    }

    #[test]
    fn loads_each_kind_with_limits() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let r = roots(tmp.path());
        let c10 = tmp.path().join("env/cifar-10-batches-bin");
        let c100 = tmp.path().join("cache/cifar-100-binary");
        let mini = tmp.path().join("opt/mini-imagenet");
        for d in [&c10, &c100, &mini] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        cifar::tests::write_cifar10(&c10);
        cifar::tests::write_cifar100(&c100);
        folder::tests::write_folder(&mini, "test");

        let opts = LoadOptions {
            limit_train: Some(3),
            ..Default::default()
        };
        let d = load_with("cifar10", &opts, &r).expect("cifar10");
        assert_eq!((d.train.len(), d.test.len(), d.shape), (3, 1, (3, 32, 32)));
        assert_eq!(d.train.images.len(), 3 * 3072);
        let d = load_with("cifar100-coarse", &LoadOptions::default(), &r).expect("coarse");
        assert_eq!((d.name.as_str(), d.classes), ("cifar100-coarse", 20));
        let d = load_with("mini-imagenet", &LoadOptions::default(), &r).expect("mini");
        assert_eq!((d.shape, d.train.len()), ((3, 84, 84), 5));
        let spec = format!("folder:{}", mini.display());
        let opts = LoadOptions {
            image_size: Some((5, 7)),
            limit_test: Some(1),
            ..Default::default()
        };
        let d = load_with(&spec, &opts, &r).expect("folder");
        assert_eq!((d.shape, d.test.len(), d.name), ((3, 5, 7), 1, spec));

        let bad = LoadOptions {
            image_size: Some((28, 28)),
            ..Default::default()
        };
        let m = load_with("cifar10", &bad, &r)
            .map(|_| ())
            .expect_err("resize");
        assert!(
            m.to_string().contains("only offered for image folders"),
            "{m}"
        );
        let zero = LoadOptions {
            limit_test: Some(0),
            ..Default::default()
        };
        assert!(load_with("cifar10", &zero, &r).is_err());
    }

    #[test]
    fn list_reports_found_and_fetchable() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let c10 = tmp.path().join("cifar-10-batches-bin");
        std::fs::create_dir_all(&c10).expect("mkdir");
        cifar::tests::write_cifar10(&c10);
        let opts = LoadOptions {
            data_dir: Some(tmp.path().to_path_buf()),
            ..Default::default()
        };
        std::fs::create_dir_all(tmp.path().join("coco/annotations")).expect("mkdir");
        let all = list(&opts);
        assert_eq!(
            all.len(),
            REGISTRY.len() + 3,
            "and voc2007, voc2012, coco2017"
        );
        let coco = all.iter().find(|s| s.name == "coco2017").expect("listed");
        assert_eq!(coco.found_at, Some(tmp.path().join("coco")));
        assert!(coco.fetchable);
        let c = all.iter().find(|s| s.name == "cifar10").expect("listed");
        assert_eq!(c.found_at.as_deref(), Some(c10.as_path()));
        assert!(c.fetchable);
        let m = all
            .iter()
            .find(|s| s.name == "mini-imagenet")
            .expect("listed");
        assert!(!m.fetchable);
    }
}
