//! The one error type of this crate.
//!
//! Every variant that concerns a file carries its path, and every variant
//! about file contents carries the byte offset where the problem starts. For
//! gzip-compressed files the offset counts bytes of the decompressed stream,
//! since that is where the format's fields live.

use std::path::PathBuf;

/// Everything that can go wrong while finding, reading, downloading or
/// batching a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An I/O operation on a file or folder failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Reading a file's contents failed part-way (a corrupt gzip stream, a
    /// read error).
    #[error("{}: read failed at byte {offset}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Bytes successfully read before the failure.
        offset: u64,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A file does not start with the magic number its format requires.
    #[error("{}: bad magic 0x{found:08x} at byte {offset}, expected 0x{expected:08x}", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// Offset of the magic number.
        offset: u64,
        /// What the file holds there.
        found: u32,
        /// What the format requires.
        expected: u32,
    },

    /// A file ends before the data its header or record size promises.
    #[error("{}: truncated {what} at byte {offset}: {detail}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was cut short (`header`, `record`, `data`).
        what: &'static str,
        /// Where the incomplete part starts.
        offset: u64,
        /// Sizes involved, in words.
        detail: String,
    },

    /// A file's contents break its format in some other way.
    #[error("{}: {message} at byte {offset}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Where the problem is.
        offset: u64,
        /// What is wrong.
        message: String,
    },

    /// A file or folder holds more than fits in memory
    /// ([`crate::memory::ensure`]).
    #[error("{}: {message}", path.display())]
    TooBig {
        /// The file or folder.
        path: PathBuf,
        /// The figures.
        message: String,
    },

    /// A label is not a valid class index.
    #[error("{}: label {label} at byte {offset} is out of range: the dataset has {classes} classes", path.display())]
    BadLabel {
        /// The file.
        path: PathBuf,
        /// Offset of the label byte.
        offset: u64,
        /// The label found.
        label: u32,
        /// Number of classes (labels must be below it).
        classes: usize,
    },

    /// An image file and its label file disagree on the number of examples.
    #[error("{} holds {images} images but {} holds {labels} labels", images_path.display(), labels_path.display())]
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// Number of images it holds.
        images: usize,
        /// The label file.
        labels_path: PathBuf,
        /// Number of labels it holds.
        labels: usize,
    },

    /// The train and test splits have differently shaped images.
    #[error("{}: images are {found:?} (CxHxW) but {} has {expected:?}", path.display(), other.display())]
    ShapeMismatch {
        /// The file with the unexpected shape.
        path: PathBuf,
        /// Its shape.
        found: (usize, usize, usize),
        /// The file whose shape it should match.
        other: PathBuf,
        /// That file's shape.
        expected: (usize, usize, usize),
    },

    /// A detection annotation file is malformed or names something that
    /// is not there (an unknown class, a box outside its image, a missing
    /// image): the file, the line where known, and the element.
    #[error("{}{}: {element}: {message}", path.display(), line.map_or_else(String::new, |l| format!(":{l}")))]
    Annotation {
        /// The annotation file.
        path: PathBuf,
        /// 1-based line of the element, where the parser knows it.
        line: Option<usize>,
        /// The element (`object[2]/bndbox/xmax`, `annotations[17] (id 42)`).
        element: String,
        /// What is wrong.
        message: String,
    },

    /// An image in an image folder could not be decoded.
    #[error("{}: cannot decode image: {source}", path.display())]
    Image {
        /// The image file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: image::ImageError,
    },

    /// An image folder is laid out wrongly (no classes, an empty class, a
    /// test class unknown to the training split).
    #[error("{}: {message}", path.display())]
    Layout {
        /// The folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// A file the format requires is missing from a dataset folder.
    #[error("{}: missing (expected in {})", path.display(), dir.display())]
    MissingFile {
        /// The file that should exist.
        path: PathBuf,
        /// The dataset folder.
        dir: PathBuf,
    },

    /// The dataset name is not in the registry.
    #[error("unknown dataset `{name}`; known: {known}, or folder:PATH")]
    UnknownDataset {
        /// The name asked for.
        name: String,
        /// Known names, comma separated.
        known: String,
    },

    /// The dataset was found nowhere.
    #[error("dataset `{name}` not found; looked in:\n{}\n{hint}", looked.iter().map(|p| format!("  {}", p.display())).collect::<Vec<_>>().join("\n"))]
    NotFound {
        /// The dataset.
        name: String,
        /// Every folder searched, in order.
        looked: Vec<PathBuf>,
        /// How to get it.
        hint: String,
    },

    /// The dataset has no archive that `fetch` can download.
    #[error("dataset `{name}` cannot be fetched: {reason}")]
    NotFetchable {
        /// The dataset.
        name: String,
        /// Why, and what to do instead.
        reason: String,
    },

    /// A download failed (connection, protocol, or a body cut short).
    #[error("downloading {url}: {source}")]
    Download {
        /// The URL.
        url: String,
        /// The HTTP client's error.
        #[source]
        source: Box<ureq::Error>,
    },

    /// The body of a download ended early or broke off.
    #[error(
        "downloading {url}: connection ended after {received} of {} bytes: {source}",
        expected.map_or_else(|| "?".to_owned(), |n| n.to_string())
    )]
    Interrupted {
        /// The URL.
        url: String,
        /// Bytes received.
        received: u64,
        /// Bytes announced, when the server said.
        expected: Option<u64>,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The server answered with an error status.
    #[error("downloading {url}: server answered HTTP {status}")]
    HttpStatus {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },

    /// A downloaded file does not have the expected checksum.
    #[error("{}: MD5 mismatch for {url}: expected {expected}, got {actual} (partial file deleted)", path.display())]
    ChecksumMismatch {
        /// Where the file would have gone.
        path: PathBuf,
        /// Where it came from.
        url: String,
        /// The published checksum.
        expected: String,
        /// The checksum of what arrived.
        actual: String,
    },

    /// A downloaded archive could not be unpacked or lacks the dataset folder.
    #[error("{}: cannot unpack archive: {message}", path.display())]
    Archive {
        /// The archive.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// An option or argument is out of range.
    #[error("invalid option: {0}")]
    InvalidOption(String),

    /// A batch asked for an example the split does not have.
    #[error("example index {index} out of range: the split has {len} examples")]
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// Number of examples in the split.
        len: usize,
    },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
