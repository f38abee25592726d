//! The engine's error type.

/// Everything that can go wrong while building or training a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed (shape, device or dtype problem).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// An activation's formula does not parse or refers to unknown names.
    #[error("activation `{activation}`: formula error at column {column}: {message}")]
    Formula {
        /// Activation name.
        activation: String,
        /// 1-based column in the formula.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// No activation with that name is registered.
    #[error("unknown activation `{name}` (known: {known})")]
    UnknownActivation {
        /// The name asked for.
        name: String,
        /// Comma-separated list of known names.
        known: String,
    },
    /// An activation spec overrides a parameter its activation does not have.
    #[error(
        "`{activation}` has no parameter `{parameter}`; {}",
        valid_parameters(valid)
    )]
    UnknownParameter {
        /// Activation name.
        activation: String,
        /// The parameter asked for.
        parameter: String,
        /// The activation's parameters.
        valid: Vec<String>,
    },
    /// An activation definition is unusable (duplicate name, bad parameter names).
    #[error("activation `{name}`: {message}")]
    InvalidActivation {
        /// Activation name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// An activation binding is malformed or names a slot the network lacks.
    #[error("activation binding: {0}")]
    Binding(String),
    /// A training or model configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The network would not fit in the memory available
    /// ([`crate::memory`]).
    #[error("not enough memory: {0}")]
    Memory(String),
    /// The dataset does not fit the network (shape or class count).
    #[error("dataset does not fit the network: {0}")]
    DataMismatch(String),
    /// A plugin could not be loaded, or one of its kernels failed.
    #[error(transparent)]
    Plugin(#[from] crate::plugin::PluginError),
    /// A checkpoint could not be written.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint {
        /// The file or folder being written.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An invariant of acbench itself does not hold: a bug, not a mistake
    /// in the input.
    #[error("internal error (a bug in acbench; please report it): {0}")]
    Internal(String),
    /// Batching the dataset failed (a malformed split or bad normalisation).
    #[error(transparent)]
    Data(#[from] acbench_data::DataError),
}

/// The tail of [`Error::UnknownParameter`]'s message: what could be set instead.
fn valid_parameters(valid: &[String]) -> String {
    if valid.is_empty() {
        "it has no parameters".to_owned()
    } else {
        format!("valid: {}", valid.join(", "))
    }
}

/// Result alias for the engine.
pub type Result<T> = std::result::Result<T, Error>;
