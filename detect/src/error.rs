//! The crate's errors.

use std::path::PathBuf;

/// A bad element of a ground truth or a detection list: where it is (as the
/// JSON file spells it, e.g. `annotations[17].bbox`, or `[3].score` in a
/// results list) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct DataError {
    /// The element and field.
    pub at: String,
    /// What is wrong with it.
    pub message: String,
}

impl DataError {
    /// An error at `at`.
    pub fn new(at: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            at: at.into(),
            message: message.into(),
        }
    }
}

/// A ground-truth or results file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not JSON at all.
    #[error("{}: not valid JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// serde_json's error, with its line and column.
        source: serde_json::Error,
    },
    /// The file is JSON, but an element is not what it should be.
    #[error("{}: {source}", path.display())]
    Data {
        /// The file.
        path: PathBuf,
        /// The element and what is wrong with it.
        source: DataError,
    },
}

/// Bad arguments to [`crate::nms()`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NmsError {
    /// The boxes, scores (and classes) differ in length.
    #[error("{boxes} boxes but {other} {what}")]
    Lengths {
        /// How many boxes.
        boxes: usize,
        /// How many of the other.
        other: usize,
        /// `scores` or `classes`.
        what: &'static str,
    },
    /// The IoU threshold is NaN.
    #[error("the IoU threshold is NaN")]
    NanThreshold,
}
