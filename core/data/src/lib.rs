//! Datasets for acbench, in their real on-disk formats.
//!
//! Images are kept as `u8` in CHW order (what every source format stores);
//! a [`Batcher`] turns chosen examples into a normalised, optionally
//! augmented `f32` batch, drawing every random number from the caller's
//! seeded generator.
//!
//! - [`idx`]: MNIST and Fashion-MNIST (IDX, raw or gzip);
//! - [`cifar`]: CIFAR-10 and CIFAR-100 binary versions;
//! - [`folder`]: class-per-folder PNG/JPEG datasets such as miniImageNet;
//! - [`registry`]: names, the search path, [`load`] and [`list`];
//! - [`fetch`]: downloads of the official archives, checksum-verified;
//! - [`batch`]: normalisation, augmentation and batching;
//! - [`fit`]: padding and channel replication to a network's input shape.

pub mod batch;
pub mod cifar;
pub mod detection;
mod error;
pub mod fetch;
pub mod fit;
pub mod folder;
pub mod idx;
pub mod memory;
pub mod registry;

pub use batch::{Augment, Batcher, Normalization, channel_stats, image_stats};
pub use error::DataError;
pub use registry::{
    DatasetStatus, LoadOptions, default_root, geometry, given_path, list, load, locate, split_sizes,
};

/// A loaded dataset: train and test splits of equally shaped images.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Registry name (`fashion-mnist`, `cifar10`, ...).
    pub name: String,
    /// Number of classes.
    pub classes: usize,
    /// Image shape: channels, height, width.
    pub shape: (usize, usize, usize),
    /// Class names when the format provides them.
    pub class_names: Vec<String>,
    /// Training split.
    pub train: Split,
    /// Test split.
    pub test: Split,
}

impl Dataset {
    /// Bytes (values) per image: `c*h*w`.
    pub fn image_len(&self) -> usize {
        self.shape.0 * self.shape.1 * self.shape.2
    }

    /// Keeps only the first `limit_train` training and `limit_test` test
    /// examples (`None` keeps a split whole).
    pub fn truncate(&mut self, limit_train: Option<usize>, limit_test: Option<usize>) {
        let chw = self.image_len();
        if let Some(n) = limit_train {
            self.train.truncate(n, chw);
        }
        if let Some(n) = limit_test {
            self.test.truncate(n, chw);
        }
    }
}

/// One split: `labels.len()` images of `c*h*w` bytes each, CHW order.
#[derive(Debug, Clone, Default)]
pub struct Split {
    /// Pixel values, image after image.
    pub images: Vec<u8>,
    /// Class index of each image.
    pub labels: Vec<u32>,
}

impl Split {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Keeps the first `n` examples of `chw` bytes each.
    pub fn truncate(&mut self, n: usize, chw: usize) {
        self.labels.truncate(n);
        self.images.truncate(self.labels.len().saturating_mul(chw));
        self.labels.shrink_to_fit();
        self.images.shrink_to_fit();
    }

    /// The `i`th image, if there is one.
    pub fn image(&self, i: usize, chw: usize) -> Option<&[u8]> {
        self.images
            .get(i.checked_mul(chw)?..i.checked_add(1)?.checked_mul(chw)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::Path;

    #[test]
    fn truncate_keeps_prefix() {
        let mut d = Dataset {
            name: "t".into(),
            classes: 2,
            shape: (1, 1, 2),
            class_names: vec![],
            train: Split {
                images: vec![1, 2, 3, 4, 5, 6],
                labels: vec![0, 1, 0],
            },
            test: Split {
                images: vec![7, 8],
                labels: vec![1],
            },
        };
        d.truncate(Some(2), Some(5));
        assert_eq!(
            (d.train.images.as_slice(), d.train.labels.as_slice()),
            (&[1, 2, 3, 4][..], &[0, 1][..])
        );
        assert_eq!(d.test.len(), 1);
        assert_eq!(d.train.image(1, 2), Some(&[3, 4][..]));
        assert_eq!(d.train.image(2, 2), None);
    }

    /// Writes `bytes` as `name` in a fresh folder and runs every reader on it.
    fn read_everything(bytes: &[u8]) {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path();
        for name in [
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "data_batch_1.bin",
            "train.bin",
        ] {
            std::fs::write(p.join(name), bytes).expect("write");
        }
        let _ = idx::read_images(&p.join("train-images-idx3-ubyte"));
        let _ = idx::read_labels(&p.join("train-labels-idx1-ubyte"), 10);
        let _ = cifar::load_cifar10(p, "c");
        let _ = cifar::load_cifar100(p, "c", cifar::Cifar100Labels::Fine);
        std::fs::create_dir_all(p.join("train/a")).expect("mkdir");
        std::fs::create_dir_all(p.join("test/a")).expect("mkdir");
        std::fs::write(p.join("train/a/x.png"), bytes).expect("write");
        std::fs::write(p.join("test/a/y.jpg"), bytes).expect("write");
        let _ = folder::load_folder(p, "f", &folder::FolderOptions::default());
    }

    /// An IDX header followed by arbitrary bytes, to get past the magic check.
    fn idx_like() -> impl Strategy<Value = Vec<u8>> {
        (
            0u32..5,
            0u32..5,
            0u32..5,
            proptest::collection::vec(any::<u8>(), 0..80),
        )
            .prop_map(|(n, r, c, tail)| {
                let mut v = idx::tests::images_bytes(n, r, c, &tail);
                v.truncate(16 + tail.len() / 2);
                v
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..7000)) {
            read_everything(&bytes);
            read_everything(&idx::tests::gz(&bytes));
        }

        #[test]
        fn near_valid_idx_never_panics(bytes in idx_like()) {
            read_everything(&bytes);
        }
    }

    /// The real Fashion-MNIST of Debian's `dataset-fashion-mnist` package.
    #[test]
    #[ignore = "needs /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist)"]
    fn debian_fashion_mnist() {
        let dir = Path::new(registry::DEBIAN_FASHION_MNIST);
        let d = idx::load_dir(dir, "fashion-mnist", 10, &[]).expect("loads");
        assert_eq!(
            (d.train.len(), d.test.len(), d.shape),
            (60000, 10000, (1, 28, 28))
        );
        assert_eq!(d.train.labels[..2], [9, 0]);
        assert_eq!(d.test.labels[..2], [9, 2]);
        let by_name = load("fashion-mnist", &LoadOptions::default()).expect("resolves");
        assert_eq!(by_name.train.len(), 60000);
    }
}
