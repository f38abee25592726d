//! The one error type of the reports crate.

use std::path::PathBuf;

/// Anything that can stop a report from being rendered or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The paper's reference data is malformed.
    #[error("{file}:{line}: `{key}`: {message}")]
    PaperData {
        /// File the data came from.
        file: String,
        /// 1-based line of the offending entry (0 when unknown).
        line: u64,
        /// Dotted key of the offending entry (`table1.rows.sigmoid`).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A suite names a paper table that does not exist.
    #[error("no paper table `{name}`; the paper's tables are {known}")]
    UnknownPaperTable {
        /// The name asked for.
        name: String,
        /// Comma-separated ids of the known tables.
        known: String,
    },
    /// An activation's formula could not be evaluated for its shape plot.
    #[error("activation `{activation}`: formula `{formula}`: {source}")]
    Formula {
        /// The activation.
        activation: String,
        /// Its formula.
        formula: String,
        /// Why it does not parse.
        source: acbench_dsl::formula::FormulaError,
    },
    /// Drawing a plot failed.
    #[error("plot {file}: {message}")]
    Plot {
        /// The plot's file name.
        file: String,
        /// The drawing backend's message.
        message: String,
    },
    /// Writing CSV failed.
    #[error("CSV export: {0}")]
    Csv(#[from] csv::Error),
    /// Writing JSON failed.
    #[error("JSON export: {0}")]
    Json(#[from] serde_json::Error),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}
