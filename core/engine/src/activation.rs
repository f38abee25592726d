//! Activation functions as data, bound to a network's `act` slots.
//!
//! - [`Registry`]: the known activations, each formula parsed once when it is
//!   registered. Every activation comes from a plugin ([`crate::plugin`]),
//!   the shipped ones included ([`Registry::builtin`], [`Registry::discover`]).
//! - [`ActBindings`]: which activation each slot gets, parsed from CLI-style
//!   specs (`arelu`, `fc=relu`, `lrelu:s=0.2`, `fc=prelu:p=0`).
//! - [`ActLayer`]: one `act` node of a built model with its own parameters.
//!   Its forward pass calls the plugin's fused kernels when it has them and
//!   the tensor is an f32 CPU tensor ([`crate::ops::fused`]); otherwise it
//!   lowers the parsed formula to candle ops, so autograd and every device
//!   come for free.
//!
//! Lowering rules: numeric literals and fixed per-layer parameters are folded
//! as scalars; comparisons become masks; `max(u, v)` is
//! `where(u >= v, u, v)` so that on ties the *whole* gradient goes to `u`
//! (candle's `maximum` splits it 50/50, which would keep AReLU linear from
//! its a = b, c = d start); `min(u, v)` is `where(u <= v, u, v)`; `relu` and
//! `abs` are candle's, whose derivative at 0 is that of the positive side
//! (as `max(x, 0)` under the tie rule). Fused kernels must follow the same
//! conventions; `acbench plugins check` holds them to it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use acbench_dsl::formula::{self, BinOp, CmpOp, Cond, Expr, Func};
use acbench_dsl::ir::{Network, Op};
use acbench_plugin_api::abi::EntryFn;
use acbench_plugin_api::{ActivationDef, LinkedPlugin, ParamScope};
use candle_core::{DType, Device, Tensor, Var};

use crate::error::{Error, Result};
use crate::ops::filled;
use crate::params::{Param, ParamKind};
use crate::plugin::{
    self, Kernels, LoadedActivation, LoadedPlugin, PluginError, PluginManifest, PluginOptions,
};

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
    plugins: Vec<PluginManifest>,
    fused: bool,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            acts: Vec::new(),
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

    /// The activations of the plugins shipped with acbench (the adaptive
    /// ones, the baselines, the per-channel variants), linked into it;
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
        self.add(&loaded.manifest.path, loaded.activations)?;
        self.plugins.push(loaded.manifest);
        Ok(())
    }

    /// Registers the activations behind a bare entry point: the same checks
    /// as [`Registry::load_plugin`], without a file. `origin` names it in
    /// messages; no manifest is recorded (see [`Registry::load_linked`]).
    ///
    /// # Safety
    /// `entry` must follow the ABI of [`acbench_plugin_api::abi`], and
    /// everything its table points to must live for the rest of the process.
    pub unsafe fn load_entry(&mut self, origin: &Path, entry: EntryFn) -> Result<()> {
        // SAFETY: the caller's contract is read_entry's.
        let acts = unsafe { plugin::read_entry(origin, entry, None) }?;
        self.add(origin, acts)
    }

    /// Checks a plugin's activations against the registry, then adds them all.
    fn add(&mut self, origin: &Path, acts: Vec<LoadedActivation>) -> Result<()> {
        let mut compiled = Vec::with_capacity(acts.len());
        for a in acts {
            if let Some(prev) = self.acts.iter().find(|p| p.def.name == a.def.name) {
                return Err(PluginError::Duplicate {
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
            .ok_or_else(|| Error::UnknownActivation {
                name: name.to_owned(),
                known: if self.acts.is_empty() {
                    "none: no plugins are loaded (the shipped ones are linked into acbench; \
                     give others with --plugin / $ACBENCH_PLUGIN_PATH)"
                        .to_owned()
                } else {
                    self.names().collect::<Vec<_>>().join(", ")
                },
            })
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

/// One activation choice: a name and initial-value overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct ActSpec {
    /// Activation name.
    pub activation: String,
    /// `(parameter, initial value)` replacing the definition's init.
    pub overrides: Vec<(String, f64)>,
}

impl ActSpec {
    /// Parses `name[:param=value[,param=value...]]`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::Binding(format!("`{s}`: {why}"));
        let (name, rest) = match s.split_once(':') {
            Some((n, r)) => (n.trim(), Some(r)),
            None => (s.trim(), None),
        };
        if name.is_empty() {
            return Err(bad("missing activation name"));
        }
        let mut overrides = Vec::new();
        if let Some(rest) = rest {
            for kv in rest.split(',') {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| bad("expected `param=value` after `:`"))?;
                let (k, v) = (k.trim(), v.trim());
                let value: f64 = v
                    .parse()
                    .map_err(|_| bad(&format!("`{v}` is not a number (parameter `{k}`)")))?;
                if !value.is_finite() {
                    return Err(bad(&format!("parameter `{k}` must be finite")));
                }
                if overrides.iter().any(|(o, _): &(String, f64)| o == k) {
                    return Err(bad(&format!("parameter `{k}` is set twice")));
                }
                overrides.push((k.to_owned(), value));
            }
        }
        Ok(Self {
            activation: name.to_owned(),
            overrides,
        })
    }
}

/// Which activation every `act` slot of a network gets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActBindings {
    /// For unnamed `act` nodes and named slots without their own binding.
    pub default: Option<ActSpec>,
    /// Per slot name (`fc` for `act@fc`).
    pub slots: BTreeMap<String, ActSpec>,
}

impl ActBindings {
    /// Every slot gets `activation` with its default initial values.
    pub fn uniform(activation: &str) -> Self {
        Self {
            default: Some(ActSpec {
                activation: activation.to_owned(),
                overrides: Vec::new(),
            }),
            slots: BTreeMap::new(),
        }
    }

    /// Parses CLI-style specs: `arelu` (the default), `fc=relu` (slot `act@fc`),
    /// each optionally with overrides `lrelu:s=0.2`, `fc=prelu:p=0`.
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<Self> {
        let mut b = Self::default();
        for spec in specs {
            let spec = spec.as_ref();
            // `=` before any `:` separates a slot; later `=` belong to overrides.
            let slot_end = spec
                .find('=')
                .filter(|&i| spec.find(':').is_none_or(|c| i < c));
            match slot_end {
                Some(i) => {
                    let slot = spec[..i].trim();
                    if slot.is_empty() {
                        return Err(Error::Binding(format!(
                            "`{spec}`: missing slot name before `=`"
                        )));
                    }
                    let act = ActSpec::parse(&spec[i + 1..])?;
                    if b.slots.insert(slot.to_owned(), act).is_some() {
                        return Err(Error::Binding(format!("slot `{slot}` is bound twice")));
                    }
                }
                None => {
                    if b.default.replace(ActSpec::parse(spec)?).is_some() {
                        return Err(Error::Binding(format!(
                            "`{spec}`: a default activation is already given (use SLOT=NAME for named slots)"
                        )));
                    }
                }
            }
        }
        Ok(b)
    }

    /// The spec an act node with this slot name gets.
    pub fn resolve(&self, slot: Option<&str>) -> Option<&ActSpec> {
        slot.and_then(|s| self.slots.get(s))
            .or(self.default.as_ref())
    }

    /// Checks the bindings against a network and a registry: every slot
    /// named here exists, every act node gets an activation, every
    /// activation and overridden parameter exists.
    pub fn check(&self, net: &Network, registry: &Registry) -> Result<()> {
        let sites = net.act_sites();
        let mut net_slots: Vec<&str> = sites
            .iter()
            .filter_map(|n| match &n.op {
                Op::Act { slot } => slot.as_deref(),
                _ => None,
            })
            .collect();
        net_slots.sort_unstable();
        net_slots.dedup();
        for slot in self.slots.keys() {
            if !net_slots.contains(&slot.as_str()) {
                let known = if net_slots.is_empty() {
                    "the network has no named slots".to_owned()
                } else {
                    format!("the network's slots are {}", net_slots.join(", "))
                };
                return Err(Error::Binding(format!("unknown slot `{slot}`; {known}")));
            }
        }
        for n in &sites {
            let Op::Act { slot } = &n.op else { continue };
            if self.resolve(slot.as_deref()).is_none() {
                return Err(Error::Binding(format!(
                    "no activation for `{}` (slot {}); give a default such as `relu`",
                    n.path,
                    slot.as_deref()
                        .map_or("unnamed".to_owned(), |s| format!("`{s}`"))
                )));
            }
        }
        for spec in self.default.iter().chain(self.slots.values()) {
            let act = registry.get(&spec.activation)?;
            for (k, _) in &spec.overrides {
                if !act.def.params.iter().any(|p| &p.name == k) {
                    let valid: Vec<&str> = act.def.params.iter().map(|p| p.name.as_str()).collect();
                    let valid = if valid.is_empty() {
                        "it has no parameters".to_owned()
                    } else {
                        format!("valid: {}", valid.join(", "))
                    };
                    return Err(Error::Binding(format!(
                        "`{}` has no parameter `{k}`; {valid}",
                        spec.activation
                    )));
                }
            }
        }
        Ok(())
    }

    /// Trainable activation parameters these bindings add to `net`: per-layer
    /// parameters count once per act node, per-channel ones once per channel
    /// of the tensor entering the node. Checks the bindings first.
    pub fn param_count(&self, net: &Network, registry: &Registry) -> Result<usize> {
        self.check(net, registry)?;
        let mut total = 0;
        for node in net.act_sites() {
            let Op::Act { slot } = &node.op else { continue };
            let Some(spec) = self.resolve(slot.as_deref()) else {
                continue;
            };
            let act = registry.get(&spec.activation)?;
            total += act
                .def
                .params
                .iter()
                .filter(|p| p.trainable)
                .map(|p| match p.scope {
                    ParamScope::Layer => 1,
                    ParamScope::Channel => node.input.channels(),
                })
                .sum::<usize>();
        }
        Ok(total)
    }
}

/// The value an activation parameter has in one act node.
#[derive(Debug, Clone)]
enum ParamValue {
    /// A fixed per-layer value, folded into the ops as a scalar.
    Scalar(f64),
    /// A fixed per-channel value, `[C]`.
    Fixed(Tensor),
    /// A trainable value, `[1]` or `[C]`.
    Trained(Var),
}

/// One `act` node of a model: an activation with its own parameters.
#[derive(Debug, Clone)]
pub struct ActLayer {
    /// Node path (`stage2.basic0.act1`).
    pub path: String,
    /// Slot name from `act@slot`.
    pub slot: Option<String>,
    act: Arc<CompiledActivation>,
    params: Vec<(String, ParamValue)>,
    /// Use the plugin's kernels where they apply (see [`Registry::set_fused`]).
    fused: bool,
}

/// An activation's fused kernels and current parameter values, packed for
/// calls on raw slices (see [`ActLayer::fused_parts`]).
pub(crate) struct FusedParts {
    /// The plugin's kernels.
    pub kernels: Kernels,
    /// Length of each parameter in `packed` (1 or the channel count).
    pub lens: Vec<usize>,
    /// Every parameter's values back to back, in the kernel's order.
    pub packed: Vec<f32>,
    /// Trainable parameters: offset and length in `packed`, and the
    /// variable's tensor (whose gradient that range is).
    pub trained: Vec<(usize, usize, Tensor)>,
}

/// An intermediate value while lowering a formula.
#[derive(Clone)]
enum Val {
    S(f64),
    T(Tensor),
}

/// A lowered condition.
enum Mask {
    Const(bool),
    T(Tensor),
}

impl ActLayer {
    /// Creates the node's parameters (initial values from the definition,
    /// then `spec`'s overrides); `channels` sizes per-channel parameters.
    /// Returns the layer and its trainable parameters (named `path.param`).
    pub fn new(
        path: &str,
        slot: Option<&str>,
        registry: &Registry,
        spec: &ActSpec,
        channels: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<(Self, Vec<Param>)> {
        let act = registry.get(&spec.activation)?.clone();
        let mut params = Vec::with_capacity(act.def.params.len());
        let mut trainable = Vec::new();
        for p in &act.def.params {
            let init = spec
                .overrides
                .iter()
                .find(|(k, _)| k == &p.name)
                .map_or(p.init, |(_, v)| *v);
            let len = match p.scope {
                ParamScope::Layer => 1,
                ParamScope::Channel => channels,
            };
            let value = if p.trainable {
                let t = Tensor::from_vec(vec![init; len], len, device)?.to_dtype(dtype)?;
                let var = Var::from_tensor(&t)?;
                trainable.push(Param {
                    name: format!("{path}.{}", p.name),
                    var: var.clone(),
                    kind: ParamKind::Activation(p.constraint),
                });
                ParamValue::Trained(var)
            } else if len == 1 {
                ParamValue::Scalar(init)
            } else {
                ParamValue::Fixed(filled(init, &[len], dtype, device)?)
            };
            params.push((p.name.clone(), value));
        }
        for (k, _) in &spec.overrides {
            if !act.def.params.iter().any(|p| &p.name == k) {
                let valid: Vec<&str> = act.def.params.iter().map(|p| p.name.as_str()).collect();
                return Err(Error::Binding(format!(
                    "`{}` has no parameter `{k}`; valid: {}",
                    act.def.name,
                    valid.join(", ")
                )));
            }
        }
        Ok((
            Self {
                path: path.to_owned(),
                slot: slot.map(str::to_owned),
                act,
                params,
                fused: registry.fused(),
            },
            trainable,
        ))
    }

    /// The bound activation's name.
    pub fn activation(&self) -> &str {
        &self.act.def.name
    }

    /// Current parameter values, in the definition's order (fixed ones included).
    pub fn values(&self) -> Result<Vec<(String, Vec<f32>)>> {
        self.params
            .iter()
            .map(|(name, v)| {
                let vals = match v {
                    ParamValue::Scalar(s) => vec![*s as f32],
                    ParamValue::Fixed(t) => t.to_dtype(DType::F32)?.to_vec1()?,
                    ParamValue::Trained(var) => var.as_tensor().to_dtype(DType::F32)?.to_vec1()?,
                };
                Ok((name.clone(), vals))
            })
            .collect()
    }

    /// Applies the activation to `x` (`[N, C, H, W]` or `[N, C]`): with the
    /// plugin's fused kernels when it has them, they are enabled and `x` is
    /// an f32 CPU tensor; otherwise through the formula.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.fused && self.fused_applies(x) {
            self.forward_fused(x)
        } else {
            self.forward_formula(x)
        }
    }

    /// Whether [`ActLayer::forward_fused`] can compute `x`.
    pub fn fused_applies(&self, x: &Tensor) -> bool {
        self.act.kernels.is_some()
            && x.device().is_cpu()
            && x.dtype() == DType::F32
            && x.rank() >= 2
            && self.params.iter().all(|(_, v)| match v {
                ParamValue::Scalar(_) => true,
                ParamValue::Fixed(t) => t.dtype() == DType::F32 && t.elem_count() == x.dims()[1],
                ParamValue::Trained(v) => {
                    v.dtype() == DType::F32
                        && (v.elem_count() == 1 || v.elem_count() == x.dims()[1])
                }
            })
    }

    /// Applies the activation with the plugin's fused kernels (an error when
    /// it has none or `x` is not an f32 CPU tensor).
    pub fn forward_fused(&self, x: &Tensor) -> Result<Tensor> {
        let Some(kernels) = &self.act.kernels else {
            return Err(Error::Config(format!(
                "activation `{}` has no fused kernels",
                self.act.def.name
            )));
        };
        let params = self
            .params
            .iter()
            .map(|(_, v)| {
                Ok(match v {
                    ParamValue::Scalar(s) => Tensor::new(&[*s as f32], x.device())?,
                    ParamValue::Fixed(t) => t.clone(),
                    ParamValue::Trained(var) => var.as_tensor().clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(crate::ops::fused::activation(x, &params, kernels)?)
    }

    /// The variables of the trainable parameters, in the definition's order.
    pub(crate) fn trained_vars(&self) -> impl Iterator<Item = &Var> {
        self.params.iter().filter_map(|(_, v)| match v {
            ParamValue::Trained(var) => Some(var),
            _ => None,
        })
    }

    /// What the CPU training path needs to call the fused kernels on raw
    /// f32 slices with `channels` channels: `None` when the fused path does
    /// not apply (no kernels, fused disabled, or parameters not f32 on the
    /// CPU with 1 or `channels` values).
    pub(crate) fn fused_parts(&self, channels: usize) -> Result<Option<FusedParts>> {
        let Some(kernels) = self.act.kernels.as_ref().filter(|_| self.fused) else {
            return Ok(None);
        };
        let mut parts = FusedParts {
            kernels: kernels.clone(),
            lens: Vec::with_capacity(self.params.len()),
            packed: Vec::new(),
            trained: Vec::new(),
        };
        for (_, v) in &self.params {
            let values: Vec<f32> = match v {
                ParamValue::Scalar(s) => vec![*s as f32],
                ParamValue::Fixed(t) => {
                    if t.dtype() != DType::F32 || !t.device().is_cpu() {
                        return Ok(None);
                    }
                    t.to_vec1()?
                }
                ParamValue::Trained(var) => {
                    let t = var.as_tensor();
                    if t.dtype() != DType::F32 || !t.device().is_cpu() {
                        return Ok(None);
                    }
                    parts
                        .trained
                        .push((parts.packed.len(), t.elem_count(), t.clone()));
                    t.flatten_all()?.to_vec1()?
                }
            };
            if values.len() != 1 && values.len() != channels {
                return Ok(None);
            }
            parts.lens.push(values.len());
            parts.packed.extend(values);
        }
        Ok(Some(parts))
    }

    /// Applies the activation by lowering its formula to candle ops (every
    /// device and dtype).
    pub fn forward_formula(&self, x: &Tensor) -> Result<Tensor> {
        // Per-channel values broadcast along axis 1; per-layer `[1]` broadcasts as is.
        let channel_shape: Vec<usize> = (0..x.rank())
            .map(|d| if d == 1 { x.dims()[1] } else { 1 })
            .collect();
        let env = self
            .params
            .iter()
            .map(|(_, v)| {
                Ok(match v {
                    ParamValue::Scalar(s) => Val::S(*s),
                    ParamValue::Fixed(t) => Val::T(t.reshape(channel_shape.as_slice())?),
                    ParamValue::Trained(var) => {
                        let t = var.as_tensor();
                        if t.elem_count() == 1 {
                            Val::T(t.clone())
                        } else {
                            Val::T(t.reshape(channel_shape.as_slice())?)
                        }
                    }
                })
            })
            .collect::<Result<Vec<Val>>>()?;
        match eval(&self.act.expr, x, &env)? {
            Val::T(t) if t.dims() == x.dims() => Ok(t),
            Val::T(t) => Ok(t.broadcast_as(x.shape())?.contiguous()?),
            // A formula that ignores x (e.g. a constant) still maps x's shape.
            Val::S(s) => Ok(filled(s, x.dims(), x.dtype(), x.device())?),
        }
    }
}

fn eval(e: &Expr, x: &Tensor, env: &[Val]) -> candle_core::Result<Val> {
    Ok(match e {
        Expr::X => Val::T(x.clone()),
        Expr::Param(i) => env
            .get(*i)
            .cloned()
            .ok_or_else(|| candle_core::Error::Msg("parameter index".into()))?,
        Expr::Num(v) => Val::S(*v),
        Expr::Neg(u) => match eval(u, x, env)? {
            Val::S(s) => Val::S(-s),
            Val::T(t) => Val::T(t.neg()?),
        },
        Expr::Binary(op, l, r) => binary(*op, eval(l, x, env)?, eval(r, x, env)?)?,
        Expr::Call(f, u) => match eval(u, x, env)? {
            Val::S(s) => Val::S(Expr::Call(*f, Box::new(Expr::Num(s))).eval(0.0, &[])),
            Val::T(t) => Val::T(match f {
                Func::Abs => t.abs()?,
                Func::Exp => t.exp()?,
                Func::Log => t.log()?,
                Func::Sigmoid => candle_nn::ops::sigmoid(&t)?,
                Func::Tanh => t.tanh()?,
                Func::Relu => t.relu()?,
            }),
        },
        Expr::Max(u, v) | Expr::Min(u, v) => {
            let (u, v) = (eval(u, x, env)?, eval(v, x, env)?);
            let op = if matches!(e, Expr::Max(..)) {
                CmpOp::Ge
            } else {
                CmpOp::Le
            };
            select(compare(op, &u, &v)?, u, v, x.dtype())?
        }
        Expr::Where(c, a, b) => {
            let Cond { op, lhs, rhs } = c.as_ref();
            let mask = compare(*op, &eval(lhs, x, env)?, &eval(rhs, x, env)?)?;
            // A constant condition evaluates only the branch it picks.
            match mask {
                Mask::Const(true) => eval(a, x, env)?,
                Mask::Const(false) => eval(b, x, env)?,
                m => select(m, eval(a, x, env)?, eval(b, x, env)?, x.dtype())?,
            }
        }
    })
}

fn binary(op: BinOp, l: Val, r: Val) -> candle_core::Result<Val> {
    Ok(match (l, r) {
        (Val::S(a), Val::S(b)) => Val::S(match op {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
        }),
        (Val::T(t), Val::S(s)) => Val::T(match op {
            BinOp::Add => t.affine(1.0, s)?,
            BinOp::Sub => t.affine(1.0, -s)?,
            BinOp::Mul => t.affine(s, 0.0)?,
            BinOp::Div => t.affine(1.0 / s, 0.0)?,
        }),
        (Val::S(s), Val::T(t)) => Val::T(match op {
            BinOp::Add => t.affine(1.0, s)?,
            BinOp::Sub => t.affine(-1.0, s)?,
            BinOp::Mul => t.affine(s, 0.0)?,
            BinOp::Div => t.recip()?.affine(s, 0.0)?,
        }),
        (Val::T(a), Val::T(b)) => Val::T(match op {
            BinOp::Add => a.broadcast_add(&b)?,
            BinOp::Sub => a.broadcast_sub(&b)?,
            BinOp::Mul => a.broadcast_mul(&b)?,
            BinOp::Div => a.broadcast_div(&b)?,
        }),
    })
}

fn candle_cmp(op: CmpOp) -> candle_core::op::CmpOp {
    match op {
        CmpOp::Lt => candle_core::op::CmpOp::Lt,
        CmpOp::Le => candle_core::op::CmpOp::Le,
        CmpOp::Gt => candle_core::op::CmpOp::Gt,
        CmpOp::Ge => candle_core::op::CmpOp::Ge,
        CmpOp::Eq => candle_core::op::CmpOp::Eq,
        CmpOp::Ne => candle_core::op::CmpOp::Ne,
    }
}

/// `lhs op rhs` as a mask (or a constant when both sides are scalars).
fn compare(op: CmpOp, lhs: &Val, rhs: &Val) -> candle_core::Result<Mask> {
    Ok(match (lhs, rhs) {
        (Val::S(a), Val::S(b)) => Mask::Const(op.holds(*a, *b)),
        (Val::T(t), Val::S(s)) => Mask::T(t.cmp(*s, candle_cmp(op))?),
        (Val::S(s), Val::T(t)) => {
            // s op t  <=>  t op' s with the operands swapped.
            let flipped = match op {
                CmpOp::Lt => CmpOp::Gt,
                CmpOp::Le => CmpOp::Ge,
                CmpOp::Gt => CmpOp::Lt,
                CmpOp::Ge => CmpOp::Le,
                other => other,
            };
            Mask::T(t.cmp(*s, candle_cmp(flipped))?)
        }
        (Val::T(a), Val::T(b)) => {
            let shape = a.shape().broadcast_shape_binary_op(b.shape(), "compare")?;
            Mask::T(
                a.broadcast_as(&shape)?
                    .cmp(&b.broadcast_as(&shape)?, candle_cmp(op))?,
            )
        }
    })
}

/// `where(mask, a, b)` with broadcasting; scalars become constant tensors.
fn select(mask: Mask, a: Val, b: Val, dtype: DType) -> candle_core::Result<Val> {
    let m = match mask {
        Mask::Const(true) => return Ok(a),
        Mask::Const(false) => return Ok(b),
        Mask::T(m) => m,
    };
    if let (Val::S(sa), Val::S(sb)) = (&a, &b) {
        // Both branches constant: the mask alone decides (no gradient).
        return Ok(Val::T(m.to_dtype(dtype)?.affine(sa - sb, *sb)?));
    }
    let mut shape = m.shape().clone();
    for v in [&a, &b] {
        if let Val::T(t) = v {
            shape = shape.broadcast_shape_binary_op(t.shape(), "where")?;
        }
    }
    let device = m.device().clone();
    let branch = |v: Val| -> candle_core::Result<Tensor> {
        match v {
            Val::S(s) => filled(s, shape.dims(), dtype, &device),
            Val::T(t) if t.shape() == &shape => Ok(t),
            Val::T(t) => t.broadcast_as(&shape),
        }
    };
    let m = if m.shape() == &shape {
        m
    } else {
        m.broadcast_as(&shape)?
    };
    Ok(Val::T(m.where_cond(&branch(a)?, &branch(b)?)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck;
    use acbench_plugin_api::{Constraint, ParamSpec};

    fn layer(reg: &Registry, spec: &str, channels: usize) -> (ActLayer, Vec<Param>) {
        let spec = ActSpec::parse(spec).expect("spec");
        ActLayer::new(
            "blk.act0",
            None,
            reg,
            &spec,
            channels,
            DType::F64,
            &Device::Cpu,
        )
        .expect("layer")
    }

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
    fn binding_specs_parse() -> Result<()> {
        let b = ActBindings::parse(&["arelu", "fc=prelu:p=0", "conv = lrelu:s=0.2"])?;
        assert_eq!(
            b.default,
            Some(ActSpec {
                activation: "arelu".into(),
                overrides: vec![]
            })
        );
        assert_eq!(
            b.slots["fc"],
            ActSpec {
                activation: "prelu".into(),
                overrides: vec![("p".into(), 0.0)]
            }
        );
        assert_eq!(b.slots["conv"].overrides, [("s".to_owned(), 0.2)]);
        assert_eq!(
            b.resolve(Some("fc")).map(|s| s.activation.as_str()),
            Some("prelu")
        );
        assert_eq!(
            b.resolve(Some("other")).map(|s| s.activation.as_str()),
            Some("arelu")
        );
        assert_eq!(
            b.resolve(None).map(|s| s.activation.as_str()),
            Some("arelu")
        );
        let s = ActSpec::parse("pelu:a=2,b=0.5")?;
        assert_eq!(s.overrides, [("a".to_owned(), 2.0), ("b".to_owned(), 0.5)]);
        for bad in [
            &["relu", "tanh"][..],
            &["fc=relu", "fc=tanh"],
            &["=relu"],
            &["lrelu:s"],
            &["lrelu:s=x"],
            &[":s=1"],
            &["pelu:a=1,a=2"],
        ] {
            assert!(
                matches!(ActBindings::parse(bad), Err(Error::Binding(_))),
                "{bad:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn unknown_override_lists_valid_parameters() -> Result<()> {
        let reg = Registry::builtin()?;
        let spec = ActSpec::parse("arelu:e=1")?;
        match ActLayer::new("a", None, &reg, &spec, 1, DType::F32, &Device::Cpu) {
            Err(Error::Binding(m)) => {
                assert_eq!(m, "`arelu` has no parameter `e`; valid: a, b, c, d")
            }
            other => panic!("{other:?}"),
        }
        Ok(())
    }

    /// Every shipped activation: values against the formula's reference
    /// semantics, gradients (x and parameters) against finite differences.
    #[test]
    fn every_activation_values_and_gradients() -> Result<()> {
        let reg = Registry::builtin()?;
        // Parameters moved off their symmetric starts so no formula sits on a kink.
        let specs = [
            "relu",
            "lrelu:s=0.2",
            "prelu:p=0.3",
            "swish:beta=1.4",
            "pelu:a=1.3,b=0.7",
            "frelu:bias=-0.5",
            "sigmoid",
            "tanh",
            "asigmoid:a=1.2,b=0.8,c=0.1,d=-0.2",
            "atanh:a=1.2,b=0.8,c=0.1,d=-0.2",
            "arelu:a=1.2,b=0.4,c=0.1,d=-0.2",
        ];
        // |x| >= 0.3 keeps every kink (x = 0, and AReLU's at x = 0.375) out of reach of eps.
        let xs: Vec<f64> = vec![
            -2.0, -1.1, -0.6, -0.3, 0.3, 0.7, 1.3, 2.2, -0.9, 0.5, 1.7, -1.6,
        ];
        let x = Tensor::from_vec(xs.clone(), (2, 3, 2), &Device::Cpu)?.reshape((2, 3, 1, 2))?;
        for spec in specs {
            let (l, params) = layer(&reg, spec, 3);
            let pvals: Vec<f64> = l.values()?.iter().map(|(_, v)| f64::from(v[0])).collect();
            let y = l.forward(&x)?.flatten_all()?.to_vec1::<f64>()?;
            for (xi, yi) in xs.iter().zip(&y) {
                let want = l.act.expr.eval(*xi, &pvals);
                assert!((want - yi).abs() < 1e-6, "{spec}({xi}) = {yi}, want {want}");
            }
            // Gradient wrt x through the generic checker ...
            gradcheck::check(|a| l.forward(&a[0]), std::slice::from_ref(&x), 1e-6);
            // ... and wrt every trainable parameter by perturbing its Var.
            let w = gradcheck::rand(x.dims(), -1.0, 1.0, 3);
            let loss =
                || -> Result<f64> { Ok(l.forward(&x)?.mul(&w)?.sum_all()?.to_scalar::<f64>()?) };
            let grads = l.forward(&x)?.mul(&w)?.sum_all()?.backward()?;
            for p in &params {
                let base = p.var.as_tensor().to_vec1::<f64>()?;
                let analytic = match grads.get(p.var.as_tensor()) {
                    Some(g) => g.to_vec1::<f64>()?,
                    None => panic!("{spec}: no gradient for {}", p.name),
                };
                for i in 0..base.len() {
                    let at = |d: f64| -> Result<f64> {
                        let mut v = base.clone();
                        v[i] += d;
                        p.var.set(&Tensor::from_vec(v, base.len(), &Device::Cpu)?)?;
                        loss()
                    };
                    let numeric = (at(1e-6)? - at(-1e-6)?) / 2e-6;
                    p.var
                        .set(&Tensor::from_vec(base.clone(), base.len(), &Device::Cpu)?)?;
                    let err = (numeric - analytic[i]).abs() / (1.0 + numeric.abs());
                    assert!(
                        err < 1e-6,
                        "{spec} {}: analytic {} numeric {numeric}",
                        p.name,
                        analytic[i]
                    );
                }
            }
        }
        Ok(())
    }

    #[test]
    fn parameter_kinds_and_fixed_values() -> Result<()> {
        let reg = Registry::builtin()?;
        let (l, params) = layer(&reg, "lrelu:s=0.2", 4);
        assert!(params.is_empty(), "the LReLU slope is fixed");
        assert_eq!(l.values()?, [("s".to_owned(), vec![0.2f32])]);
        let (_, params) = layer(&reg, "pelu", 4);
        let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["blk.act0.a", "blk.act0.b"]);
        assert_eq!(
            params[0].kind,
            ParamKind::Activation(Constraint::Positive(0.1))
        );
        assert_eq!(params[0].var.dims(), [1]);
        Ok(())
    }

    #[test]
    fn per_channel_parameters_broadcast_on_images_and_vectors() -> Result<()> {
        let mut reg = Registry::new();
        let mut p = ParamSpec::scalar("p", 0.25);
        p.scope = ParamScope::Channel;
        let mut k = ParamSpec::fixed("k", 2.0);
        k.scope = ParamScope::Channel;
        reg.register(ActivationDef {
            name: "cprelu".into(),
            summary: String::new(),
            params: vec![p, k],
            formula: "k * (relu(x) + p * min(x, 0))".into(),
        })?;
        let (l, params) = layer(&reg, "cprelu", 3);
        assert_eq!(params.len(), 1);
        assert_eq!(params[0].var.dims(), [3]);
        params[0]
            .var
            .set(&Tensor::new(&[0.1f64, 0.2, 0.3], &Device::Cpu)?)?;
        let img = Tensor::new(&[-1f64, -1., -1.], &Device::Cpu)?.reshape((1, 3, 1, 1))?;
        assert_eq!(
            l.forward(&img)?.flatten_all()?.to_vec1::<f64>()?,
            [-0.2, -0.4, -0.6]
        );
        let vec = Tensor::new(&[[-1f64, 2., -1.]], &Device::Cpu)?;
        assert_eq!(
            l.forward(&vec)?.flatten_all()?.to_vec1::<f64>()?,
            [-0.2, 4.0, -0.6]
        );
        let g = l.forward(&img)?.sum_all()?.backward()?;
        let gp = g.get(params[0].var.as_tensor()).map(|t| t.to_vec1::<f64>());
        assert_eq!(gp.transpose()?, Some(vec![-2.0, -2.0, -2.0]));
        Ok(())
    }

    /// From a = b = 1, c = d = 0 both arguments of AReLU's max tie
    /// everywhere; the whole gradient must go to the first, so one step
    /// moves a (and c) but not b (and d).
    #[test]
    fn arelu_leaves_its_linear_start() -> Result<()> {
        let reg = Registry::builtin()?;
        let spec = ActSpec::parse("arelu")?;
        let (l, params) = ActLayer::new("act0", None, &reg, &spec, 2, DType::F32, &Device::Cpu)?;
        let x = Tensor::new(&[-2f32, -0.5, 1.0, 3.0], &Device::Cpu)?.reshape((1, 2, 1, 2))?;
        let target = x.relu()?;
        let loss = l.forward(&x)?.sub(&target)?.sqr()?.sum_all()?;
        let grads = loss.backward()?;
        for p in &params {
            let g = grads
                .get(p.var.as_tensor())
                .map_or(Ok(0.0), |g| g.sum_all()?.to_scalar::<f32>())?;
            p.var.set(&(p.var.as_tensor() - (g as f64) * 0.1)?)?;
        }
        let v = l.values()?;
        let get = |n: &str| v.iter().find(|(k, _)| k == n).map(|(_, v)| v[0]);
        assert_ne!(get("a"), get("b"), "{v:?}");
        assert_eq!(get("b"), Some(1.0));
        assert_eq!(get("d"), Some(0.0));
        assert_ne!(get("c"), Some(0.0));
        Ok(())
    }

    #[test]
    fn constant_branches_and_folding() -> Result<()> {
        let mut reg = Registry::new();
        for (name, f) in [
            ("step", "where(x > 0, 1, 0)"),
            ("two", "2 * 3 - 4"),
            ("cmin", "min(1, x) + max(2, 3)"),
        ] {
            reg.register(ActivationDef {
                name: name.into(),
                summary: String::new(),
                params: vec![],
                formula: f.into(),
            })?;
        }
        let x = Tensor::new(&[[-1f64, 0.5, 2.0]], &Device::Cpu)?;
        let run = |n: &str| -> Result<Vec<f64>> {
            let (l, _) = layer(&reg, n, 3);
            Ok(l.forward(&x)?.flatten_all()?.to_vec1::<f64>()?)
        };
        assert_eq!(run("step")?, [0.0, 1.0, 1.0]);
        assert_eq!(run("two")?, [2.0, 2.0, 2.0]);
        assert_eq!(run("cmin")?, [2.0, 3.5, 4.0]);
        Ok(())
    }
}
