//! The registry of known activations, and what checking a spec needs of it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use acbench_dsl::formula::{self, Expr};
use acbench_plugin_api::{ActivationDef, LinkedPlugin};

use super::ActSpec;
use crate::error::{Error, Result};
use crate::plugin::detector::Detector;
use crate::plugin::{
    self, Kernels, LoadedActivation, LoadedPlugin, PluginError, PluginManifest, PluginOptions,
};

/// What activations exist and which parameters each takes: all that
/// checking an activation spec needs. The [`Registry`] is the real one; a
/// suite can be checked against a lighter stand-in that offers the same.
pub trait KnownActivations {
    /// Every activation's name.
    fn activation_names(&self) -> Vec<&str>;

    /// The parameter names of `activation`, in its definition's order;
    /// `None` when no such activation is known.
    fn parameter_names(&self, activation: &str) -> Option<Vec<&str>>;

    /// Checks that `spec`'s activation exists and that every parameter it
    /// overrides is one of that activation's.
    fn check_spec(&self, spec: &ActSpec) -> Result<()> {
        let Some(params) = self.parameter_names(&spec.activation) else {
            return Err(unknown_activation(
                &spec.activation,
                &self.activation_names(),
            ));
        };
        match spec
            .overrides
            .iter()
            .find(|(k, _)| !params.contains(&k.as_str()))
        {
            Some((k, _)) => Err(Error::UnknownParameter {
                activation: spec.activation.clone(),
                parameter: k.clone(),
                valid: params.iter().map(|p| (*p).to_owned()).collect(),
            }),
            None => Ok(()),
        }
    }
}

/// No activation `name` among `known`.
fn unknown_activation(name: &str, known: &[&str]) -> Error {
    Error::UnknownActivation {
        name: name.to_owned(),
        known: if known.is_empty() {
            "none: no plugins are loaded (the shipped ones are linked into acbench; \
                     give others with --plugin / $ACBENCH_PLUGIN_PATH)"
                .to_owned()
        } else {
            known.join(", ")
        },
    }
}

/// An activation definition with its formula parsed.
#[derive(Debug, Clone)]
pub struct CompiledActivation {
    /// The definition as registered.
    pub def: ActivationDef,
    /// The parsed formula; `Expr::Param(i)` refers to `def.params[i]`.
    pub expr: Expr,
    /// The plugin's fused CPU kernels, when it has them.
    pub kernels: Option<Kernels>,
    /// The plugin it came from: its file, or a linked plugin's
    /// [`plugin::linked::origin`] (`None` for definitions registered in Rust).
    pub plugin: Option<PathBuf>,
}

impl CompiledActivation {
    /// What computes it: `formula`, or `formula+fused` when kernels exist.
    pub fn tier(&self) -> &'static str {
        if self.kernels.is_some() {
            "formula+fused"
        } else {
            "formula"
        }
    }
}

/// The activations a run may bind, by name, and the plugins they came from.
/// A value rather than a global so that one run's plugins stay its own.
#[derive(Debug, Clone)]
pub struct Registry {
    acts: Vec<Arc<CompiledActivation>>,
    detectors: Vec<Detector>,
    plugins: Vec<PluginManifest>,
    fused: bool,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            acts: Vec::new(),
            detectors: Vec::new(),
            plugins: Vec::new(),
            fused: true,
        }
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The activations and detectors of the plugins shipped with acbench
    /// (the adaptive ones, the baselines, the per-channel variants; `fcos`
    /// and `yolo`), linked into it;
    /// ignores `$ACBENCH_PLUGIN_PATH`, so it is the same everywhere.
    pub fn builtin() -> Result<Self> {
        Self::discover(&PluginOptions::shipped_only())
    }

    /// Loads every plugin `options` names ([`PluginOptions::resolve`]).
    pub fn discover(options: &PluginOptions) -> Result<Self> {
        let mut r = Self::new();
        if options.shipped {
            for linked in &plugin::linked::SHIPPED {
                r.load_linked(linked)?;
            }
            for linked in &plugin::linked::SHIPPED_DETECTORS {
                r.load_linked_detectors(linked)?;
            }
        }
        for path in options.resolve()? {
            r.load_plugin(&path)?;
        }
        Ok(r)
    }

    /// Loads one plugin library and registers all its activations, or none
    /// when one is refused. A file whose contents are already loaded (the
    /// same plugin reached by two paths) is skipped.
    pub fn load_plugin(&mut self, path: &Path) -> Result<()> {
        self.add_plugin(plugin::load(path)?)
    }

    /// Registers the activations of a plugin linked into this process, read
    /// through the same checks as a library's table, with a manifest entry
    /// of its own ([`plugin::linked`]). Registering it again is a no-op.
    pub fn load_linked(&mut self, linked: &LinkedPlugin) -> Result<()> {
        self.add_plugin(plugin::linked::read(linked)?)
    }

    /// Registers detectors linked into this process, as
    /// [`Registry::load_linked`] registers activations.
    pub fn load_linked_detectors(
        &mut self,
        linked: &acbench_plugin_api::detector::LinkedDetectors,
    ) -> Result<()> {
        self.add_plugin(plugin::linked::read_detectors(linked)?)
    }

    /// Adds a plugin's activations and its manifest entry, unless a plugin
    /// with the same hash is already in.
    fn add_plugin(&mut self, loaded: LoadedPlugin) -> Result<()> {
        if let Some(same) = self
            .plugins
            .iter()
            .find(|p| p.sha256 == loaded.manifest.sha256)
        {
            tracing::debug!(
                "plugin {} is identical to {}, already loaded",
                loaded.manifest.path.display(),
                same.path.display()
            );
            return Ok(());
        }
        self.add_detectors(&loaded.manifest.path, &loaded.detectors)?;
        self.add(&loaded.manifest.path, loaded.activations)?;
        self.detectors.extend(loaded.detectors);
        self.plugins.push(loaded.manifest);
        Ok(())
    }

    /// Registers the activations behind a bare entry point: the same checks
    /// as [`Registry::load_plugin`], without a file or a manifest. For the
    /// ABI tests, which hand it deliberately broken tables; acbench itself
    /// registers in-process plugins with [`Registry::load_linked`].
    ///
    /// # Safety
    /// `entry` must follow the ABI of [`acbench_plugin_api::abi`], and
    /// everything its table points to must live for the rest of the process.
    #[cfg(test)]
    pub(crate) unsafe fn load_entry(
        &mut self,
        origin: &Path,
        entry: acbench_plugin_api::abi::EntryFn,
    ) -> Result<()> {
        // SAFETY: the caller's contract is read_entry's.
        let acts = unsafe { plugin::read_entry(origin, entry, None) }?;
        self.add(origin, acts)
    }

    /// Refuses a plugin's detectors whose names are taken (before anything
    /// of the plugin is registered).
    fn add_detectors(&self, origin: &Path, detectors: &[Detector]) -> Result<()> {
        for d in detectors {
            if let Some(prev) = self.detectors.iter().find(|p| p.name() == d.name()) {
                return Err(PluginError::Duplicate {
                    kind: "detector",
                    name: d.name().to_owned(),
                    first: prev.plugin().to_path_buf(),
                    second: origin.to_path_buf(),
                }
                .into());
            }
        }
        Ok(())
    }

    /// The detector called `name`; the error lists the known ones.
    pub fn detector(&self, name: &str) -> Result<&Detector> {
        self.detectors
            .iter()
            .find(|d| d.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self.detectors.iter().map(Detector::name).collect();
                Error::Config(format!(
                    "unknown detector `{name}`; known: {}",
                    if known.is_empty() {
                        "none (load a detector plugin with --plugin)".to_owned()
                    } else {
                        known.join(", ")
                    }
                ))
            })
    }

    /// Every registered detector, in registration order.
    pub fn detectors(&self) -> &[Detector] {
        &self.detectors
    }

    /// Checks a plugin's activations against the registry, then adds them all.
    fn add(&mut self, origin: &Path, acts: Vec<LoadedActivation>) -> Result<()> {
        let mut compiled = Vec::with_capacity(acts.len());
        for a in acts {
            if let Some(prev) = self.acts.iter().find(|p| p.def.name == a.def.name) {
                return Err(PluginError::Duplicate {
                    kind: "activation",
                    name: a.def.name,
                    first: prev
                        .plugin
                        .clone()
                        .unwrap_or_else(|| PathBuf::from("<registered in Rust>")),
                    second: origin.to_path_buf(),
                }
                .into());
            }
            let names: Vec<&str> = a.def.params.iter().map(|p| p.name.as_str()).collect();
            let expr =
                formula::parse(&a.def.formula, &names).map_err(|e| PluginError::Formula {
                    path: origin.to_path_buf(),
                    activation: a.def.name.clone(),
                    formula: a.def.formula.clone(),
                    column: e.column,
                    message: e.message,
                })?;
            compiled.push(Arc::new(CompiledActivation {
                def: a.def,
                expr,
                kernels: a.kernels,
                plugin: Some(origin.to_path_buf()),
            }));
        }
        self.acts.extend(compiled);
        Ok(())
    }

    /// Adds a definition written in Rust (no kernels, no plugin file) after
    /// checking it: a new name, distinct parameter names (none called `x`),
    /// a formula that parses. For tests and experiments; runs load plugins.
    pub fn register(&mut self, def: ActivationDef) -> Result<()> {
        let invalid = |message: String| Error::InvalidActivation {
            name: def.name.clone(),
            message,
        };
        if self.acts.iter().any(|a| a.def.name == def.name) {
            return Err(invalid(
                "an activation with this name is already registered".into(),
            ));
        }
        for (i, p) in def.params.iter().enumerate() {
            if p.name == "x" {
                return Err(invalid(
                    "a parameter may not be called `x` (the input)".into(),
                ));
            }
            if def.params[..i].iter().any(|q| q.name == p.name) {
                return Err(invalid(format!("parameter `{}` is declared twice", p.name)));
            }
        }
        let names: Vec<&str> = def.params.iter().map(|p| p.name.as_str()).collect();
        let expr = formula::parse(&def.formula, &names).map_err(|e| Error::Formula {
            activation: def.name.clone(),
            column: e.column,
            message: e.message,
        })?;
        self.acts.push(Arc::new(CompiledActivation {
            def,
            expr,
            kernels: None,
            plugin: None,
        }));
        Ok(())
    }

    /// The activation called `name`.
    pub fn get(&self, name: &str) -> Result<&Arc<CompiledActivation>> {
        self.acts
            .iter()
            .find(|a| a.def.name == name)
            .ok_or_else(|| unknown_activation(name, &self.activation_names()))
    }

    /// Registered names, in registration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.acts.iter().map(|a| a.def.name.as_str())
    }

    /// Every registered activation, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &CompiledActivation> {
        self.acts.iter().map(|a| a.as_ref())
    }

    /// The plugins registered, linked and loaded, in order, for a run's
    /// manifest.
    pub fn plugins(&self) -> &[PluginManifest] {
        &self.plugins
    }

    /// Whether act layers built from now on use fused kernels where they can
    /// (the default) or always the formula (for checks and benchmarks).
    pub fn set_fused(&mut self, on: bool) {
        self.fused = on;
    }

    /// See [`Registry::set_fused`].
    pub fn fused(&self) -> bool {
        self.fused
    }
}

impl KnownActivations for Registry {
    fn activation_names(&self) -> Vec<&str> {
        self.names().collect()
    }

    fn parameter_names(&self, activation: &str) -> Option<Vec<&str>> {
        let act = self.acts.iter().find(|a| a.def.name == activation)?;
        Some(act.def.params.iter().map(|p| p.name.as_str()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acbench_plugin_api::ParamSpec;

    #[test]
    fn builtin_registry() -> Result<()> {
        let reg = Registry::builtin()?;
        let mut names: Vec<&str> = reg.names().collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "arelu",
                "arelu_channel",
                "asigmoid",
                "atanh",
                "atanh_channel",
                "frelu",
                "lrelu",
                "pelu",
                "prelu",
                "prelu_channel",
                "relu",
                "sigmoid",
                "swish",
                "tanh"
            ]
        );
        let mut dup = reg.clone();
        let e = dup.register(reg.get("relu")?.def.clone());
        assert!(matches!(e, Err(Error::InvalidActivation { .. })));
        let bad = ActivationDef {
            name: "bad".into(),
            summary: String::new(),
            params: vec![ParamSpec::scalar("a", 1.0)],
            formula: "a * x + q".into(),
        };
        match Registry::new().register(bad) {
            Err(Error::Formula {
                column: 9, message, ..
            }) => {
                assert_eq!(message, "unknown name `q`; parameters are a")
            }
            other => panic!("{other:?}"),
        }
        Ok(())
    }

    #[test]
    fn specs_are_checked_against_the_known_activations() -> Result<()> {
        let reg = Registry::builtin()?;
        let check = |reg: &Registry, spec: &str| -> Result<String> {
            match reg.check_spec(&ActSpec::parse(spec)?) {
                Ok(()) => Ok(String::new()),
                Err(e) => Ok(e.to_string()),
            }
        };
        assert_eq!(check(&reg, "arelu:a=2,d=0")?, "");
        assert_eq!(
            check(&reg, "arelu:e=1")?,
            "`arelu` has no parameter `e`; valid: a, b, c, d"
        );
        assert_eq!(
            check(&reg, "relu:e=1")?,
            "`relu` has no parameter `e`; it has no parameters"
        );
        assert!(check(&reg, "nope")?.starts_with("unknown activation `nope` (known: "));
        assert!(check(&Registry::new(), "relu")?.contains("no plugins are loaded"));
        Ok(())
    }
}
