//! Suite files: a declared study (`suites/*.yaml`) resolved into fully
//! specified runs.
//!
//! Two stages, as ripgrep does with its flags: [`read`] parses the YAML
//! (serde-saphyr; unknown keys and wrong types are errors with line and
//! column) and applies `--set` overrides; [`Loaded::resolve`] fills the
//! preset's defaults, expands the matrix (models × activations × optimisers
//! × seeds) and checks everything that can be checked without data. The
//! result is a list of [`RunSpec`]s, each keyed by the hash of its contents.
//!
//! ```yaml
//! name: quickstart
//! preset: standard            # or paper-code
//! paper_table: table1         # compare with the paper's Table 1
//! dataset: {name: fashion-mnist, limit_train: 10000}
//! models: [../suites/models/convnet.acnet]
//! activations: [relu, sigmoid, asigmoid, arelu, "arelu fc=relu"]
//! optimizers: [sgd, {name: adam, lr: 1e-3}]
//! lr: 0.05
//! epochs: 2
//! seeds: [0, 1]
//! ```

pub mod error;
pub mod estimate;
pub mod file;
pub mod lock;
pub mod output;
pub mod record;
pub mod resolve;
pub mod runner;
pub mod set;
pub mod shard;
pub mod spec;

use std::path::{Path, PathBuf};

pub use error::SuiteError;
pub use file::Preset;
pub use resolve::{Catalog, Suite};
pub use spec::{ActivationSpec, DatasetSpec, ModelSpec, PluginRef, RunSpec};

use error::{Place, SourceFile};
use file::SuiteFile;
use set::Override;

/// A parsed suite file with its overrides applied, not yet resolved.
#[derive(Debug)]
pub struct Loaded {
    source: SourceFile,
    file: SuiteFile,
}

/// Reads and parses a suite file, then applies `--set key=value` overrides.
pub fn read(path: &Path, sets: &[String]) -> Result<Loaded, SuiteError> {
    let text = std::fs::read_to_string(path).map_err(|e| SuiteError::io(path, &e))?;
    parse(path, text, sets)
}

/// Like [`read`], from text already in memory (`path` names it in errors).
pub fn parse(path: &Path, text: String, sets: &[String]) -> Result<Loaded, SuiteError> {
    let source = SourceFile {
        path: path.to_owned(),
        text,
    };
    let options = serde_saphyr::options! { with_snippet: false };
    let yaml_error = |e: serde_saphyr::Error| {
        let place = e.location().map(Place::from_location).unwrap_or_default();
        let text = e.to_string();
        // serde-saphyr says "error: line L column C: what"; the location is
        // ours to render, so keep only "what".
        let what = text
            .strip_prefix("error: ")
            .map(
                |rest| match rest.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
                    Some((_, what)) => what,
                    None => rest,
                },
            )
            .unwrap_or(&text);
        source.error_at(place, "", what.trim().to_owned())
    };
    let file: SuiteFile =
        serde_saphyr::from_str_with_options(&source.text, options.clone()).map_err(yaml_error)?;
    if sets.is_empty() {
        return Ok(Loaded { source, file });
    }
    // Overrides are applied to the document, which is then read again; values
    // that came from --set have no line, and errors about them say so.
    let mut doc: serde_json::Value =
        serde_saphyr::from_str_with_options(&source.text, options).map_err(yaml_error)?;
    for raw in sets {
        let o = Override::parse(raw).map_err(|m| source.error("--set", m))?;
        o.apply(&mut doc).map_err(|m| source.error("--set", m))?;
    }
    let file: SuiteFile = serde_json::from_value(doc)
        .map_err(|e| source.error("--set", format!("after applying {}: {e}", sets.join(" "))))?;
    Ok(Loaded { source, file })
}

/// Like [`read`], from a document already in memory as JSON (a sweep
/// script's map): `path` is where relative paths start from and what errors
/// name; nothing in it has a line, so errors name the key only.
pub fn from_value(path: &Path, doc: serde_json::Value) -> Result<Loaded, SuiteError> {
    let source = SourceFile {
        path: path.to_owned(),
        text: String::new(),
    };
    let file: SuiteFile =
        serde_json::from_value(doc).map_err(|e| source.error("spec", e.to_string()))?;
    Ok(Loaded { source, file })
}

impl Loaded {
    /// Plugin libraries the suite names, resolved against its folder.
    pub fn plugin_paths(&self) -> Vec<PathBuf> {
        let base = self.source.path.parent().unwrap_or(Path::new("."));
        self.file
            .plugins
            .iter()
            .flatten()
            .map(|p| base.join(&p.value))
            .collect()
    }

    /// The files and folders the suite reads, each with the key that names
    /// it: model files (resolved against the suite's folder, as
    /// [`Loaded::resolve`] reads them) and a dataset given by path (as the
    /// loader opens it, from the working directory). Plugin libraries are
    /// [`Loaded::plugin_paths`].
    pub fn read_paths(&self) -> Vec<(String, PathBuf)> {
        let base = self.source.path.parent().unwrap_or(Path::new("."));
        let models = self
            .file
            .models
            .iter()
            .enumerate()
            .map(|(i, m)| (format!("models[{i}]"), base.join(&m.value.0.file)));
        let dataset = acbench_data::given_path(&self.file.dataset.value.0.name)
            .map(|p| ("dataset".to_owned(), p.to_path_buf()));
        models.chain(dataset).collect()
    }

    /// Refuses the suite's `plugins:` entries that are not among `trusted`
    /// (canonical paths the user chose, `$ACBENCH_PLUGIN_PATH`): loading a
    /// library runs its code, which a shared suite file must not do on its
    /// own. The error names the entry's line and says how to allow it
    /// (`--allow-plugins`).
    pub fn check_plugins_allowed(&self, trusted: &[PathBuf]) -> Result<(), SuiteError> {
        let base = self.source.path.parent().unwrap_or(Path::new("."));
        for (i, p) in self.file.plugins.iter().flatten().enumerate() {
            let path = base.join(&p.value);
            let known = path.canonicalize().is_ok_and(|c| trusted.contains(&c));
            if !known {
                return Err(self
                    .source
                    .error_at(
                        error::Place::from_location(p.referenced),
                        &format!("plugins[{i}]"),
                        format!(
                            "the suite asks to load the plugin library {}, which would run its \
                             native code",
                            path.display()
                        ),
                    )
                    .with_help(
                        "a suite file cannot load code on its own: pass --allow-plugins if you \
                         trust this file, or put the library on $ACBENCH_PLUGIN_PATH",
                    ));
            }
        }
        Ok(())
    }

    /// Resolves the suite against what the host offers; `out` overrides the
    /// suite's output directory.
    pub fn resolve(&self, catalog: &Catalog, out: Option<&Path>) -> Result<Suite, SuiteError> {
        resolve::resolve(&self.source, &self.file, catalog, out)
    }
}

#[cfg(test)]
mod tests;
