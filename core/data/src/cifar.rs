//! The binary versions of CIFAR-10 and CIFAR-100.
//!
//! CIFAR-10 (`cifar-10-batches-bin/`): `data_batch_1.bin` .. `data_batch_5.bin`
//! and `test_batch.bin`, each a run of 3073-byte records (one label byte, then
//! 1024 red, 1024 green and 1024 blue bytes of a 32x32 image, which is CHW
//! already); class names in `batches.meta.txt`.
//!
//! CIFAR-100 (`cifar-100-binary/`): `train.bin` and `test.bin`, 3074-byte
//! records (coarse label, fine label, then the image); names in
//! `coarse_label_names.txt` and `fine_label_names.txt`.

use std::path::Path;

use crate::{DataError, Dataset, Split};

/// Bytes of one 32x32 RGB image.
const IMAGE_BYTES: usize = 3 * 32 * 32;

/// Which CIFAR-100 label a dataset uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cifar100Labels {
    /// The 100 fine classes.
    Fine,
    /// The 20 superclasses.
    Coarse,
}

/// Whether `dir` looks like `cifar-10-batches-bin`.
pub fn present10(dir: &Path) -> bool {
    dir.join("data_batch_1.bin").is_file()
}

/// Whether `dir` looks like `cifar-100-binary`.
pub fn present100(dir: &Path) -> bool {
    dir.join("train.bin").is_file()
}

/// Loads CIFAR-10 from a `cifar-10-batches-bin` folder.
pub fn load_cifar10(dir: &Path, name: &str) -> Result<Dataset, DataError> {
    let mut train = Split::default();
    for i in 1..=5 {
        read_records(dir, &format!("data_batch_{i}.bin"), &[10], 0, &mut train)?;
    }
    let mut test = Split::default();
    read_records(dir, "test_batch.bin", &[10], 0, &mut test)?;
    Ok(Dataset {
        name: name.to_owned(),
        classes: 10,
        shape: (3, 32, 32),
        class_names: class_names(dir, "batches.meta.txt", 10)?,
        train,
        test,
    })
}

/// Loads CIFAR-100 from a `cifar-100-binary` folder with the chosen labels.
pub fn load_cifar100(dir: &Path, name: &str, labels: Cifar100Labels) -> Result<Dataset, DataError> {
    let (which, classes, names) = match labels {
        Cifar100Labels::Coarse => (0, 20, "coarse_label_names.txt"),
        Cifar100Labels::Fine => (1, 100, "fine_label_names.txt"),
    };
    let mut train = Split::default();
    read_records(dir, "train.bin", &[20, 100], which, &mut train)?;
    let mut test = Split::default();
    read_records(dir, "test.bin", &[20, 100], which, &mut test)?;
    Ok(Dataset {
        name: name.to_owned(),
        classes,
        shape: (3, 32, 32),
        class_names: class_names(dir, names, classes)?,
        train,
        test,
    })
}

/// Appends the records of `dir/file` to `split`. Each record starts with one
/// label byte per entry of `classes` (each checked against its bound); the
/// label at index `keep` is the one stored.
fn read_records(
    dir: &Path,
    file: &str,
    classes: &[usize],
    keep: usize,
    split: &mut Split,
) -> Result<(), DataError> {
    let path = dir.join(file);
    if !path.is_file() {
        return Err(DataError::MissingFile {
            path,
            dir: dir.to_path_buf(),
        });
    }
    let len = std::fs::metadata(&path)
        .map_err(|e| DataError::io(&path, e))?
        .len();
    crate::memory::ensure(&path, "its records", len)?;
    let bytes = std::fs::read(&path).map_err(|e| DataError::io(&path, e))?;
    let record = classes.len() + IMAGE_BYTES;
    let whole = bytes.len() / record * record;
    if bytes.is_empty() {
        return Err(DataError::Malformed {
            path,
            offset: 0,
            message: "file is empty, expected records".to_owned(),
        });
    }
    if whole != bytes.len() {
        return Err(DataError::Truncated {
            path,
            what: "record",
            offset: whole as u64,
            detail: format!("file is {} bytes, records are {record} bytes", bytes.len()),
        });
    }
    let n = bytes.len() / record;
    split.labels.reserve(n);
    split.images.reserve(n * IMAGE_BYTES);
    for (r, rec) in bytes.chunks_exact(record).enumerate() {
        for (j, (&label, &bound)) in rec.iter().zip(classes).enumerate() {
            if usize::from(label) >= bound {
                return Err(DataError::BadLabel {
                    path,
                    offset: (r * record + j) as u64,
                    label: u32::from(label),
                    classes: bound,
                });
            }
        }
        split.labels.push(u32::from(rec[keep]));
        split.images.extend_from_slice(&rec[classes.len()..]);
    }
    Ok(())
}

/// Reads a one-name-per-line file; a missing file gives no names, since the
/// names are only used for display.
fn class_names(dir: &Path, file: &str, classes: usize) -> Result<Vec<String>, DataError> {
    let path = dir.join(file);
    if !path.is_file() {
        tracing::warn!(
            "{}: missing, classes will be shown by number",
            path.display()
        );
        return Ok(Vec::new());
    }
    let bytes = std::fs::read(&path).map_err(|e| DataError::io(&path, e))?;
    let text = String::from_utf8_lossy(&bytes);
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if names.len() != classes {
        return Err(DataError::Layout {
            path,
            message: format!("holds {} class names, expected {classes}", names.len()),
        });
    }
    Ok(names)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One CIFAR record: label bytes, then an image whose bytes are `seed+i`.
    pub(crate) fn record(labels: &[u8], seed: u8) -> Vec<u8> {
        let mut v = labels.to_vec();
        v.extend((0..IMAGE_BYTES).map(|i| seed.wrapping_add(i as u8)));
        v
    }

    /// Writes a tiny CIFAR-10 folder: two records per batch.
    pub(crate) fn write_cifar10(dir: &Path) {
        for i in 1..=5u8 {
            let mut b = record(&[i], i);
            b.extend(record(&[9], i + 100));
            std::fs::write(dir.join(format!("data_batch_{i}.bin")), b).expect("write");
        }
        std::fs::write(dir.join("test_batch.bin"), record(&[3], 7)).expect("write");
        let names = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
        std::fs::write(dir.join("batches.meta.txt"), names).expect("write");
    }

    pub(crate) fn write_cifar100(dir: &Path) {
        let mut b = record(&[19, 99], 1);
        b.extend(record(&[0, 5], 2));
        std::fs::write(dir.join("train.bin"), b).expect("write");
        std::fs::write(dir.join("test.bin"), record(&[4, 42], 3)).expect("write");
        let fine: String = (0..100).map(|i| format!("f{i}\n")).collect();
        std::fs::write(dir.join("fine_label_names.txt"), fine).expect("write");
    }

    #[test]
    fn cifar10_round_trip() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_cifar10(dir.path());
        let d = load_cifar10(dir.path(), "cifar10").expect("loads");
        assert_eq!(d.train.len(), 10);
        assert_eq!(d.train.labels[..4], [1, 9, 2, 9]);
        assert_eq!(d.test.labels, [3]);
        assert_eq!(d.train.images.len(), 10 * IMAGE_BYTES);
        assert_eq!(d.train.images[IMAGE_BYTES..IMAGE_BYTES + 2], [101, 102]);
        assert_eq!(d.class_names[9], "truck");
    }

    #[test]
    fn cifar100_fine_and_coarse() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_cifar100(dir.path());
        let fine = load_cifar100(dir.path(), "cifar100", Cifar100Labels::Fine).expect("loads");
        assert_eq!(
            (fine.classes, fine.train.labels.clone()),
            (100, vec![99, 5])
        );
        assert_eq!(fine.class_names[42], "f42");
        let coarse = load_cifar100(dir.path(), "c", Cifar100Labels::Coarse).expect("loads");
        assert_eq!((coarse.classes, coarse.test.labels.clone()), (20, vec![4]));
        // No coarse names file was written: names are simply absent.
        assert!(coarse.class_names.is_empty());
        assert_eq!(coarse.train.images, fine.train.images);
    }

    #[test]
    fn truncated_record_names_offset() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_cifar10(dir.path());
        let mut b = record(&[1], 0).repeat(10);
        b.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        std::fs::write(dir.path().join("data_batch_3.bin"), b).expect("write");
        let m = load_cifar10(dir.path(), "c")
            .map(|_| ())
            .expect_err("truncated")
            .to_string();
        assert!(
            m.contains("data_batch_3.bin: truncated record at byte 30730: file is 30740 bytes, records are 3073 bytes"),
            "{m}"
        );
    }

    #[test]
    fn bad_labels_name_offset() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_cifar10(dir.path());
        let mut b = record(&[1], 0);
        b.extend(record(&[10], 0));
        std::fs::write(dir.path().join("test_batch.bin"), b).expect("write");
        let m = load_cifar10(dir.path(), "c")
            .map(|_| ())
            .expect_err("bad label")
            .to_string();
        assert!(
            m.contains("test_batch.bin: label 10 at byte 3073 is out of range"),
            "{m}"
        );

        let dir = tempfile::tempdir().expect("temp dir");
        write_cifar100(dir.path());
        std::fs::write(dir.path().join("test.bin"), record(&[3, 100], 0)).expect("write");
        let m = load_cifar100(dir.path(), "c", Cifar100Labels::Coarse)
            .map(|_| ())
            .expect_err("bad fine label")
            .to_string();
        assert!(
            m.contains(
                "test.bin: label 100 at byte 1 is out of range: the dataset has 100 classes"
            ),
            "{m}"
        );
    }

    #[test]
    fn missing_batch_and_wrong_names() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_cifar10(dir.path());
        std::fs::write(dir.path().join("batches.meta.txt"), "a\nb\n").expect("write");
        let m = load_cifar10(dir.path(), "c")
            .map(|_| ())
            .expect_err("names")
            .to_string();
        assert!(
            m.contains("batches.meta.txt: holds 2 class names, expected 10"),
            "{m}"
        );
        std::fs::remove_file(dir.path().join("data_batch_4.bin")).expect("rm");
        let m = load_cifar10(dir.path(), "c")
            .map(|_| ())
            .expect_err("missing")
            .to_string();
        assert!(m.contains("data_batch_4.bin: missing"), "{m}");
        std::fs::write(dir.path().join("data_batch_4.bin"), b"").expect("write");
        let m = load_cifar10(dir.path(), "c")
            .map(|_| ())
            .expect_err("empty")
            .to_string();
        assert!(m.contains("data_batch_4.bin: file is empty"), "{m}");
    }
}
