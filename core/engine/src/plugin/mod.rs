//! Activation plugins, read through the C ABI of [`acbench_plugin_api::abi`]:
//! the shipped ones linked into acbench ([`linked`]), every other one a
//! shared library loaded at run time.
//!
//! - [`PluginOptions`] says what to load: the shipped plugins, files given
//!   on the command line (`--plugin`) and `$ACBENCH_PLUGIN_PATH` (files or
//!   directories).
//! - Loading ([`crate::activation::Registry::load_plugin`]) opens one
//!   library, checks its ABI version and struct sizes before reading
//!   anything else, and turns its table into
//!   [`acbench_plugin_api::ActivationDef`]s and [`Kernels`]. Libraries are
//!   never unloaded: their function pointers and strings must stay valid for
//!   the whole process. A linked plugin's table goes through the same checks
//!   ([`crate::activation::Registry::load_linked`]).
//! - [`check`] holds a plugin's fused kernels against its formula.
//!
//! [`crate::activation::Registry`] ties these together; a [`PluginManifest`]
//! (path, sha256, activations) records what each run loaded.

pub mod check;
pub mod detector;
pub mod detector_check;
pub mod linked;
mod load;
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use acbench_plugin_api::abi::{self, BackwardFn, ForwardFn, LastErrorFn};
use serde::Serialize;

#[cfg(test)]
pub(crate) use load::read_entry;
pub(crate) use load::{LoadedActivation, LoadedPlugin, load};

/// The environment variable listing extra plugins: files or directories,
/// separated like `$PATH` (`:` on Unix).
pub const PLUGIN_PATH_ENV: &str = "ACBENCH_PLUGIN_PATH";

/// What goes wrong with a plugin: while loading it, or when one of its
/// kernels fails during a run. Every message names the plugin file.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file does not exist.
    #[error("plugin {}: no such file", .path.display())]
    NotFound {
        /// The path as given.
        path: PathBuf,
    },
    /// The file or directory exists but cannot be read.
    #[error("plugin {}: {source}", .path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The dynamic loader refused the file (not a library, wrong architecture,
    /// missing dependencies).
    #[error("plugin {}: cannot load the library: {message}", .path.display())]
    Load {
        /// The file.
        path: PathBuf,
        /// The loader's message.
        message: String,
    },
    /// The library exports neither [`abi::ENTRY_SYMBOL`] nor the detector
    /// entry point.
    #[error(
        "plugin {}: not an acbench plugin: it exports neither `{}` nor `{}` ({message})",
        .path.display(), abi::ENTRY_SYMBOL,
        acbench_plugin_api::detector::abi::DETECTOR_ENTRY_SYMBOL
    )]
    NoEntry {
        /// The file.
        path: PathBuf,
        /// The loader's message.
        message: String,
    },
    /// The plugin was built against another version of the ABI.
    #[error(
        "plugin {}: built for plugin ABI version {found}, but this acbench speaks version \
         {expected}; rebuild the plugin against acbench-plugin-api {}",
        .path.display(), env!("CARGO_PKG_VERSION")
    )]
    AbiVersion {
        /// The file.
        path: PathBuf,
        /// The plugin's version.
        found: u32,
        /// The host's version.
        expected: u32,
    },
    /// One of the ABI structs has another size than the host's: same version
    /// number, incompatible layout.
    #[error(
        "plugin {}: its {what} is {found} bytes but this acbench's is {expected} bytes \
         (a plugin built against a modified acbench-plugin-api?)",
        .path.display()
    )]
    StructSize {
        /// The file.
        path: PathBuf,
        /// Which struct.
        what: &'static str,
        /// The plugin's size.
        found: usize,
        /// The host's size.
        expected: usize,
    },
    /// The table is malformed: a null pointer, invalid UTF-8, a bad name or
    /// count, an unknown enum value.
    #[error("plugin {}: {message}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the activation and parameter.
        message: String,
    },
    /// An activation's formula does not parse.
    #[error(
        "plugin {}, activation `{activation}`: formula error at column {column}: {message}\n    \
         {formula}\n    {:>width$}",
        .path.display(), "^", width = .column
    )]
    Formula {
        /// The file.
        path: PathBuf,
        /// The activation.
        activation: String,
        /// The formula text.
        formula: String,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A detector's function returned a non-zero status.
    #[error(
        "plugin {}, detector `{detector}`: `{function}` {}: {message}",
        .path.display(),
        if *.panicked { "panicked".to_owned() } else { format!("failed (status {})", .status) }
    )]
    DetectorCall {
        /// The file.
        path: PathBuf,
        /// The detector.
        detector: String,
        /// `layout`, `init_bias`, `assign`, `loss` or `decode`.
        function: &'static str,
        /// Whether the status says the function panicked.
        panicked: bool,
        /// The status it returned.
        status: i32,
        /// The plugin's message (`last_error`).
        message: String,
    },
    /// Two plugins define the same activation or detector name.
    #[error(
        "{kind} `{name}` is defined twice: by {} and by {}; remove one of the plugins",
        .first.display(), .second.display()
    )]
    Duplicate {
        /// `activation` or `detector`.
        kind: &'static str,
        /// The name.
        name: String,
        /// The plugin loaded first.
        first: PathBuf,
        /// The plugin loaded second.
        second: PathBuf,
    },
    /// A fused kernel returned a non-zero status (an error or a caught panic).
    #[error(
        "plugin {}, activation `{activation}`: the {kernel} kernel {}: {message}",
        .path.display(),
        if *.status == abi::STATUS_PANIC { "panicked".to_owned() } else { format!("failed (status {})", .status) }
    )]
    Kernel {
        /// The file.
        path: PathBuf,
        /// The activation.
        activation: String,
        /// `forward` or `backward`.
        kernel: &'static str,
        /// The status the kernel returned.
        status: i32,
        /// The plugin's message (`last_error`).
        message: String,
    },
}

/// What a run loaded from one plugin; written into results so that a
/// number can be traced to the exact library that produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginManifest {
    /// Absolute path of the library, or `<linked>/CRATE` for a plugin
    /// linked into acbench ([`linked::origin`]).
    pub path: PathBuf,
    /// SHA-256 of the file, lower-case hex; of the crate and its
    /// definitions for a linked plugin ([`linked`]).
    pub sha256: String,
    /// Names of the activations it defines.
    pub activations: Vec<String>,
    /// Names of the detectors it defines (left out of the record when
    /// there are none, so activation-only manifests read as before).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub detectors: Vec<String>,
}

/// Where to look for plugins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginOptions {
    /// Library files given explicitly (`--plugin`); loaded last.
    pub files: Vec<PathBuf>,
    /// A `$ACBENCH_PLUGIN_PATH`-style list of files and directories;
    /// directories are scanned for libraries (`lib*.so` on Linux).
    pub search_path: Option<OsString>,
    /// Register the plugins shipped with acbench, linked into it
    /// ([`linked::SHIPPED`]); first, before any file.
    pub shipped: bool,
}

impl PluginOptions {
    /// The shipped plugins, `$ACBENCH_PLUGIN_PATH` and `files`: what the
    /// command line uses.
    pub fn from_env(files: Vec<PathBuf>) -> Self {
        Self {
            files,
            search_path: std::env::var_os(PLUGIN_PATH_ENV).filter(|v| !v.is_empty()),
            shipped: true,
        }
    }

    /// Only the plugins shipped with acbench (reproducible: ignores the
    /// environment).
    pub fn shipped_only() -> Self {
        Self {
            shipped: true,
            ..Self::default()
        }
    }

    /// The library files to load, in order: search path, explicit (the
    /// shipped plugins are linked, not files). Missing explicit files and
    /// search-path entries are errors.
    pub fn resolve(&self) -> Result<Vec<PathBuf>, PluginError> {
        let mut out = Vec::new();
        if let Some(list) = &self.search_path {
            for entry in std::env::split_paths(list) {
                if entry.as_os_str().is_empty() {
                    continue;
                }
                if entry.is_dir() {
                    out.extend(libraries_in(&entry)?);
                } else if entry.exists() {
                    out.push(entry);
                } else {
                    return Err(PluginError::NotFound {
                        path: entry.clone(),
                    });
                }
            }
        }
        out.extend(self.files.iter().cloned());
        Ok(out)
    }
}

/// Libraries in `dir` (not recursive), sorted by name.
fn libraries_in(dir: &Path) -> Result<Vec<PathBuf>, PluginError> {
    let io = |source| PluginError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let is_library = name.starts_with(std::env::consts::DLL_PREFIX)
            && name.ends_with(std::env::consts::DLL_SUFFIX);
        if is_library && path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// A plugin's fused CPU kernels for one activation, with what error
/// messages need to name. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Kernels {
    pub(crate) forward: ForwardFn,
    pub(crate) backward: BackwardFn,
    last_error: Option<LastErrorFn>,
    plugin: Arc<Path>,
    activation: Arc<str>,
}

impl Kernels {
    /// The plugin file the kernels come from (a linked plugin's
    /// [`linked::origin`]).
    pub fn plugin(&self) -> &Path {
        &self.plugin
    }

    /// The activation they compute.
    pub fn activation(&self) -> &str {
        &self.activation
    }

    /// Turns a kernel's status into a result. Must run on the thread that
    /// called the kernel: plugins keep their last error per thread.
    pub(crate) fn status(&self, kernel: &'static str, status: i32) -> Result<(), PluginError> {
        if status == abi::STATUS_OK {
            return Ok(());
        }
        Err(PluginError::Kernel {
            path: self.plugin.to_path_buf(),
            activation: self.activation.to_string(),
            kernel,
            status,
            message: self.last_error(),
        })
    }

    fn last_error(&self) -> String {
        match self.last_error {
            // SAFETY: `f` comes from a loaded, never unloaded plugin, and
            // `status` runs on the thread that called the kernel.
            Some(f) => unsafe { message_from(f) },
            None => "(the plugin gives no error messages)".into(),
        }
    }
}

/// The calling thread's last error message from a plugin's `last_error`.
///
/// # Safety
/// `f` must follow the ABI's `last_error` contract.
pub(crate) unsafe fn message_from(f: LastErrorFn) -> String {
    let mut buf = vec![0u8; 512];
    // SAFETY: the buffer holds `buf.len()` writable bytes, as the ABI requires.
    let len = unsafe { f(buf.as_mut_ptr().cast(), buf.len()) };
    if len >= buf.len() {
        buf = vec![0u8; len.saturating_add(1).min(1 << 16)];
        // SAFETY: as above, with the larger buffer.
        unsafe { f(buf.as_mut_ptr().cast(), buf.len()) };
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let msg = String::from_utf8_lossy(&buf[..end]).into_owned();
    if msg.is_empty() {
        "(no message)".into()
    } else {
        msg
    }
}
