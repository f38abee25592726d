//! The IDX format of MNIST and Fashion-MNIST, raw or gzip-compressed.
//!
//! An image file is a big-endian header (magic `0x00000803`, count, rows,
//! columns) followed by one byte per pixel; a label file is magic
//! `0x00000801`, a count, and one byte per label. Compression is recognised
//! by the gzip magic bytes rather than the file name, so a renamed file still
//! loads.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::{DataError, Dataset, Split};

/// Magic number of an IDX file of unsigned bytes with three dimensions.
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with one dimension.
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Spellings of the four files: the canonical names, and the dotted ones
/// that the original MNIST page used.
const STEMS: [[&str; 2]; 4] = [
    ["train-images-idx3-ubyte", "train-images.idx3-ubyte"],
    ["train-labels-idx1-ubyte", "train-labels.idx1-ubyte"],
    ["t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"],
    ["t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"],
];

/// Finds an IDX file in `dir` under any accepted spelling of `stem`, raw or
/// with `.gz`.
fn find(dir: &Path, stems: &[&str]) -> Option<PathBuf> {
    stems
        .iter()
        .flat_map(|s| [dir.join(s), dir.join(format!("{s}.gz"))])
        .find(|p| p.is_file())
}

/// Whether `dir` holds an IDX training image file (the resolver's test).
pub fn present(dir: &Path) -> bool {
    find(dir, &STEMS[0]).is_some()
}

/// Loads the four IDX files of `dir` as a dataset of `classes` classes.
pub fn load_dir(
    dir: &Path,
    name: &str,
    classes: usize,
    class_names: &[&str],
) -> Result<Dataset, DataError> {
    let path = |i: usize| {
        find(dir, &STEMS[i]).ok_or_else(|| DataError::MissingFile {
            path: dir.join(format!("{}[.gz]", STEMS[i][0])),
            dir: dir.to_path_buf(),
        })
    };
    let (train_images, train_labels) = (path(0)?, path(1)?);
    let (test_images, test_labels) = (path(2)?, path(3)?);
    let (train, train_hw) = load_pair(&train_images, &train_labels, classes)?;
    let (test, test_hw) = load_pair(&test_images, &test_labels, classes)?;
    if train_hw != test_hw {
        return Err(DataError::ShapeMismatch {
            path: test_images,
            found: (1, test_hw.0, test_hw.1),
            other: train_images,
            expected: (1, train_hw.0, train_hw.1),
        });
    }
    Ok(Dataset {
        name: name.to_owned(),
        classes,
        shape: (1, train_hw.0, train_hw.1),
        class_names: class_names.iter().map(|s| (*s).to_owned()).collect(),
        train,
        test,
    })
}

/// Loads an image file and its label file; returns the split and the image
/// height and width.
pub fn load_pair(
    images: &Path,
    labels: &Path,
    classes: usize,
) -> Result<(Split, (usize, usize)), DataError> {
    let (pixels, count, rows, cols) = read_images(images)?;
    let labels_vec = read_labels(labels, classes)?;
    if labels_vec.len() != count {
        return Err(DataError::CountMismatch {
            images_path: images.to_path_buf(),
            images: count,
            labels_path: labels.to_path_buf(),
            labels: labels_vec.len(),
        });
    }
    Ok((
        Split {
            images: pixels,
            labels: labels_vec,
        },
        (rows, cols),
    ))
}

/// Reads an IDX image file: pixels, count, rows, columns.
pub fn read_images(path: &Path) -> Result<(Vec<u8>, usize, usize, usize), DataError> {
    let mut r = open(path)?;
    let header = r.header::<4>("image")?;
    r.check_magic(header[0], IMAGES_MAGIC)?;
    let [_, count, rows, cols] = header.map(|v| v as usize);
    if count == 0 || rows == 0 || cols == 0 {
        return Err(r.malformed(
            4,
            format!("header declares {count} images of {rows}x{cols}"),
        ));
    }
    let size = rows
        .checked_mul(cols)
        .and_then(|p| p.checked_mul(count))
        .ok_or_else(|| {
            r.malformed(
                4,
                format!("header declares {count} images of {rows}x{cols}, too many bytes"),
            )
        })?;
    crate::memory::ensure(
        path,
        &format!("{count} images of {rows}x{cols}"),
        size as u64,
    )?;
    let data = r.body(size, 16, |len| {
        format!(
            "header promises {count} images of {rows}x{cols} ({size} bytes after the 16-byte header), \
             data has {len}"
        )
    }, rows * cols)?;
    Ok((data, count, rows, cols))
}

/// Reads an IDX label file, checking every label is below `classes`.
pub fn read_labels(path: &Path, classes: usize) -> Result<Vec<u32>, DataError> {
    let mut r = open(path)?;
    let header = r.header::<2>("label")?;
    r.check_magic(header[0], LABELS_MAGIC)?;
    let count = header[1] as usize;
    if count == 0 {
        return Err(r.malformed(4, "header declares 0 labels".to_owned()));
    }
    let data = r.body(
        count,
        8,
        |len| format!("header promises {count} labels (after the 8-byte header), data has {len}"),
        1,
    )?;
    data.iter()
        .enumerate()
        .map(|(i, &b)| {
            if usize::from(b) < classes {
                Ok(u32::from(b))
            } else {
                Err(DataError::BadLabel {
                    path: path.to_path_buf(),
                    offset: 8 + i as u64,
                    label: u32::from(b),
                    classes,
                })
            }
        })
        .collect()
}

/// A reader over a (possibly decompressed) IDX file that knows its path and
/// how many bytes it has delivered, for error messages.
struct IdxReader<'a> {
    path: &'a Path,
    inner: Box<dyn Read + 'a>,
    offset: u64,
}

fn open(path: &Path) -> Result<IdxReader<'_>, DataError> {
    let io = |e| DataError::io(path, e);
    let mut file = File::open(path).map_err(io)?;
    let mut magic = [0u8; 2];
    let n = read_full(&mut file, &mut magic).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let buffered = BufReader::new(file);
    let inner: Box<dyn Read> = if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    Ok(IdxReader {
        path,
        inner,
        offset: 0,
    })
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl IdxReader<'_> {
    fn malformed(&self, offset: u64, message: String) -> DataError {
        DataError::Malformed {
            path: self.path.to_path_buf(),
            offset,
            message,
        }
    }

    fn read_err(&self, e: std::io::Error) -> DataError {
        DataError::Read {
            path: self.path.to_path_buf(),
            offset: self.offset,
            source: e,
        }
    }

    /// Reads `N` big-endian u32 header fields.
    fn header<const N: usize>(&mut self, kind: &str) -> Result<[u32; N], DataError> {
        let mut out = [0u32; N];
        for (i, v) in out.iter_mut().enumerate() {
            let mut b = [0u8; 4];
            let n = read_full(&mut self.inner, &mut b).map_err(|e| self.read_err(e))?;
            self.offset += n as u64;
            if n < 4 {
                return Err(DataError::Truncated {
                    path: self.path.to_path_buf(),
                    what: "header",
                    offset: (i * 4) as u64,
                    detail: format!(
                        "data ends after {} bytes, an IDX {kind} header needs {}",
                        self.offset,
                        N * 4
                    ),
                });
            }
            *v = u32::from_be_bytes(b);
        }
        Ok(out)
    }

    fn check_magic(&self, found: u32, expected: u32) -> Result<(), DataError> {
        if found == expected {
            Ok(())
        } else {
            Err(DataError::BadMagic {
                path: self.path.to_path_buf(),
                offset: 0,
                found,
                expected,
            })
        }
    }

    /// Reads exactly `size` bytes of payload starting at `start` and checks
    /// nothing follows. A short payload is reported at the start of the
    /// first incomplete item of `item` bytes.
    fn body(
        &mut self,
        size: usize,
        start: u64,
        detail: impl Fn(usize) -> String,
        item: usize,
    ) -> Result<Vec<u8>, DataError> {
        // Reserve at most 256 MiB up front: the size comes from an untrusted
        // header and must not trigger a huge allocation by itself.
        let mut data = Vec::with_capacity(size.min(256 << 20));
        let limit = (size as u64).saturating_add(1);
        let mut chunk = [0u8; 64 * 1024];
        let mut taken = (&mut self.inner).take(limit);
        loop {
            match taken.read(&mut chunk) {
                Ok(0) => break,
                Ok(k) => {
                    data.extend_from_slice(&chunk[..k]);
                    self.offset += k as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(DataError::Read {
                        path: self.path.to_path_buf(),
                        offset: self.offset,
                        source: e,
                    });
                }
            }
        }
        let len = data.len();
        if len < size {
            return Err(DataError::Truncated {
                path: self.path.to_path_buf(),
                what: "data",
                offset: start + (len / item * item) as u64,
                detail: detail(len),
            });
        }
        if len > size {
            return Err(self.malformed(
                start + size as u64,
                "unexpected bytes after the last item the header declares".to_owned(),
            ));
        }
        Ok(data)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// Serialises an IDX image file.
    pub(crate) fn images_bytes(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [IMAGES_MAGIC, count, rows, cols] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.extend_from_slice(pixels);
        v
    }

    /// Serialises an IDX label file.
    pub(crate) fn labels_bytes(labels: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [LABELS_MAGIC, labels.len() as u32] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.extend_from_slice(labels);
        v
    }

    pub(crate) fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).expect("in-memory write");
        e.finish().expect("in-memory write")
    }

    /// Writes a tiny 4-file IDX dataset (3 train, 2 test images of 2x3).
    pub(crate) fn write_dataset(dir: &Path, compress: bool) {
        let train_px: Vec<u8> = (0..18).collect();
        let test_px: Vec<u8> = (100..112).collect();
        let files = [
            ("train-images-idx3-ubyte", images_bytes(3, 2, 3, &train_px)),
            ("train-labels-idx1-ubyte", labels_bytes(&[9, 0, 5])),
            ("t10k-images-idx3-ubyte", images_bytes(2, 2, 3, &test_px)),
            ("t10k-labels-idx1-ubyte", labels_bytes(&[9, 2])),
        ];
        for (name, bytes) in files {
            let (name, bytes) = if compress {
                (format!("{name}.gz"), gz(&bytes))
            } else {
                (name.to_owned(), bytes)
            };
            std::fs::write(dir.join(name), bytes).expect("temp dir is writable");
        }
    }

    #[test]
    fn round_trip_raw_and_gz() {
        for compress in [false, true] {
            let dir = tempfile::tempdir().expect("temp dir");
            write_dataset(dir.path(), compress);
            let d = load_dir(dir.path(), "t", 10, &[]).expect("loads");
            assert_eq!(d.shape, (1, 2, 3));
            assert_eq!(d.train.labels, [9, 0, 5]);
            assert_eq!(d.train.images, (0..18).collect::<Vec<u8>>());
            assert_eq!(d.test.labels, [9, 2]);
            assert_eq!(d.test.images, (100..112).collect::<Vec<u8>>());
        }
    }

    fn err_of(bytes: &[u8], name: &str, labels: bool) -> String {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).expect("write");
        let e = if labels {
            read_labels(&p, 10).map(|_| ()).expect_err("must fail")
        } else {
            read_images(&p).map(|_| ()).expect_err("must fail")
        };
        e.to_string()
    }

    #[test]
    fn bad_magic_names_file_and_offset() {
        let mut b = images_bytes(1, 1, 1, &[0]);
        b[2] = 0;
        b[3] = 0;
        let m = err_of(&gz(&b), "train-images-idx3-ubyte.gz", false);
        assert!(
            m.contains(
                "train-images-idx3-ubyte.gz: bad magic 0x00000000 at byte 0, expected 0x00000803"
            ),
            "{m}"
        );
        let m = err_of(&images_bytes(1, 1, 1, &[0]), "l", true);
        assert!(
            m.contains("bad magic 0x00000803 at byte 0, expected 0x00000801"),
            "{m}"
        );
    }

    #[test]
    fn truncated_header_and_data() {
        let b = images_bytes(3, 2, 2, &[0; 12]);
        let m = err_of(&b[..10], "imgs", false);
        assert!(m.contains("imgs: truncated header at byte 8"), "{m}");
        // Two full images and half of the third: reported where the third starts.
        let m = err_of(&b[..16 + 10], "imgs", false);
        assert!(m.contains("imgs: truncated data at byte 24"), "{m}");
        assert!(m.contains("data has 10"), "{m}");
        // The same inside a gzip stream.
        let m = err_of(&gz(&b[..16 + 10]), "imgs.gz", false);
        assert!(m.contains("imgs.gz: truncated data at byte 24"), "{m}");
        let m = err_of(&labels_bytes(&[1, 2, 3])[..9], "labs", true);
        assert!(m.contains("labs: truncated data at byte 9"), "{m}");
    }

    #[test]
    fn trailing_bytes_rejected() {
        let mut b = labels_bytes(&[1, 2]);
        b.push(0);
        let m = err_of(&b, "labs", true);
        assert!(
            m.contains("labs: unexpected bytes after the last item the header declares at byte 10"),
            "{m}"
        );
    }

    #[test]
    fn corrupt_gzip_is_a_read_error() {
        let mut z = gz(&images_bytes(2, 2, 2, &[7; 8]));
        let n = z.len();
        z.truncate(n - 12);
        let m = err_of(&z, "cut.gz", false);
        assert!(m.contains("cut.gz"), "{m}");
        assert!(m.contains("at byte"), "{m}");
    }

    #[test]
    fn bad_label_names_offset() {
        let m = err_of(&labels_bytes(&[1, 2, 10]), "labs", true);
        assert!(
            m.contains("labs: label 10 at byte 10 is out of range: the dataset has 10 classes"),
            "{m}"
        );
    }

    #[test]
    fn count_mismatch_names_both_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (i, l) = (dir.path().join("imgs"), dir.path().join("labs"));
        std::fs::write(&i, images_bytes(2, 1, 1, &[1, 2])).expect("write");
        std::fs::write(&l, labels_bytes(&[1, 2, 3])).expect("write");
        let m = load_pair(&i, &l, 10)
            .map(|_| ())
            .expect_err("mismatch")
            .to_string();
        assert!(
            m.contains("imgs holds 2 images but") && m.contains("labs holds 3 labels"),
            "{m}"
        );
    }

    #[test]
    fn huge_header_does_not_allocate() {
        let m = err_of(
            &images_bytes(u32::MAX, u32::MAX, u32::MAX, &[]),
            "big",
            false,
        );
        assert!(m.contains("big:"), "{m}");
    }

    #[test]
    fn missing_file_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_dataset(dir.path(), false);
        std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).expect("rm");
        let m = load_dir(dir.path(), "t", 10, &[])
            .map(|_| ())
            .expect_err("missing")
            .to_string();
        assert!(m.contains("t10k-labels-idx1-ubyte[.gz]: missing"), "{m}");
    }
}
