//! From a raw suite file to fully resolved runs: presets fill what the file
//! leaves out, every dimension is expanded (models × activations ×
//! optimisers × seeds), and everything that can be checked without data is
//! checked — model files parse and fit the dataset, activations and their
//! parameters exist — so a bad suite fails before any training.

use acbench_dsl::CompileOptions;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use acbench_data::Augment;
use acbench_dsl::ir::{Network, Op, Value};
use acbench_engine::Error as EngineError;
use acbench_engine::activation::{ActBindings, ActSpec, KnownActivations};
use acbench_engine::optim::OptimizerConfig;
use acbench_engine::rng::Seed;
use acbench_engine::schedule::Schedule;
use acbench_engine::train::{InputNorm, TrainConfig};
use acbench_reports::PaperTables;
use serde::Deserialize;
use serde::de::IntoDeserializer;
use serde_json::json;
use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};

use crate::error::{Place, SourceFile, SuiteError};
use crate::file::{ArgValue, OptimizerEntry, Preset, ScheduleEntry, SuiteFile};
use crate::spec::{ActivationSpec, DatasetSpec, DetectorSpec, ModelSpec, PluginRef, RunSpec};
use acbench_engine::detection::PostProcess;
use acbench_engine::plugin::detector::Detector;

/// What the host offers, for checking a suite: activation names with their
/// parameter names, and the plugin libraries they come from. A suite's
/// activations are checked against it as against the registry itself
/// ([`KnownActivations`]).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Activation name -> parameter names.
    pub activations: BTreeMap<String, Vec<String>>,
    /// Every loaded plugin library with activations (they are part of each
    /// run's key).
    pub plugins: Vec<PluginRef>,
    /// Detector name -> the plugin it comes from (part of the key of the
    /// runs that use it, and only of those, so that adding a detector
    /// plugin keeps every classification result).
    pub detector_plugins: Vec<(String, PluginRef)>,
    /// The detectors the plugins register, for the models of detection
    /// suites.
    pub detectors: Vec<Detector>,
}

impl KnownActivations for Catalog {
    fn activation_names(&self) -> Vec<&str> {
        self.activations.keys().map(String::as_str).collect()
    }

    fn parameter_names(&self, activation: &str) -> Option<Vec<&str>> {
        let params = self.activations.get(activation)?;
        Some(params.iter().map(String::as_str).collect())
    }
}

impl Catalog {
    /// Everything `registry` offers: its activations with their parameter
    /// names, and the plugin libraries they came from.
    pub fn from_registry(registry: &acbench_engine::activation::Registry) -> Self {
        let activations = registry
            .iter()
            .map(|a| {
                (
                    a.def.name.clone(),
                    a.def.params.iter().map(|p| p.name.clone()).collect(),
                )
            })
            .collect();
        let plugin_ref = |p: &acbench_engine::plugin::PluginManifest| PluginRef {
            path: p.path.clone(),
            sha256: p.sha256.clone(),
        };
        let plugins = registry
            .plugins()
            .iter()
            .filter(|p| !p.activations.is_empty())
            .map(plugin_ref)
            .collect();
        let detector_plugins = registry
            .plugins()
            .iter()
            .flat_map(|p| p.detectors.iter().map(move |d| (d.clone(), plugin_ref(p))))
            .collect();
        Self {
            activations,
            plugins,
            detectors: registry.detectors().to_vec(),
            detector_plugins,
        }
    }

    /// The plugins in the key of a run of `model`: every activation plugin,
    /// and the plugin of the model's detector, sorted by hash.
    fn run_plugins(&self, model: &ModelSpec) -> Vec<PluginRef> {
        let mut plugins = self.plugins.clone();
        if let Some(d) = &model.detector {
            plugins.extend(
                self.detector_plugins
                    .iter()
                    .filter(|(name, _)| *name == d.name)
                    .map(|(_, p)| p.clone()),
            );
        }
        plugins.sort_by(|a, b| a.sha256.cmp(&b.sha256));
        plugins.dedup_by(|a, b| a.sha256 == b.sha256);
        plugins
    }
}

/// A resolved suite.
#[derive(Debug, Clone)]
pub struct Suite {
    /// Name (the file's `name`, else its stem).
    pub name: String,
    /// Description from the file.
    pub description: Option<String>,
    /// The suite file.
    pub file: PathBuf,
    /// Preset in force.
    pub preset: Preset,
    /// Paper tables the suite reproduces (often one).
    pub paper_tables: Vec<String>,
    /// How the runs' settings differ from those of the first paper table
    /// (`5 epochs instead of the paper's 80`), for the report.
    pub deviations: Vec<String>,
    /// Where the ledger, exports and plots go.
    pub out_dir: PathBuf,
    /// Every run, in matrix order (model, activation, optimiser, seed).
    pub runs: Vec<RunSpec>,
}

struct Defaults {
    optimizer: &'static str,
    schedule: ScheduleEntry,
    lr: f64,
    batch_size: usize,
    normalization: InputNorm,
    /// Initial values the preset gives (activation, parameter, value).
    act_inits: &'static [(&'static str, &'static str, f64)],
    /// Running-statistics momentum of a `bn` that does not set it.
    bn_momentum: f64,
}

fn defaults(preset: Preset) -> Defaults {
    match preset {
        Preset::PaperCode => Defaults {
            optimizer: "sgd",
            schedule: ScheduleEntry {
                kind: "step".into(),
                milestones: Some(vec![70, 100]),
                factor: Some(10.0),
                min_lr: None,
                per_step: None,
            },
            lr: 1e-3,
            batch_size: 64,
            normalization: InputNorm::PerImage,
            act_inits: &[("lrelu", "s", 0.2), ("prelu", "p", 0.0)],
            // TensorFlow's, as the authors' code.
            bn_momentum: CompileOptions::TF_BN_MOMENTUM,
        },
        Preset::Standard => Defaults {
            optimizer: "sgd",
            schedule: ScheduleEntry {
                kind: "constant".into(),
                milestones: None,
                factor: None,
                min_lr: None,
                per_step: None,
            },
            lr: 0.01,
            batch_size: 64,
            normalization: InputNorm::PerChannel,
            act_inits: &[],
            // PyTorch's: 0.99 lags far behind the weights in short runs
            // (a few hundred steps), so evaluation would use stale
            // statistics.
            bn_momentum: CompileOptions::TORCH_BN_MOMENTUM,
        },
    }
}

fn place<T>(s: &Spanned<T>) -> Place {
    Place::from_location(s.referenced)
}

/// Resolves `file` (read from `src`) against `catalog`. `out` overrides
/// the file's output directory.
pub fn resolve(
    src: &SourceFile,
    file: &SuiteFile,
    catalog: &Catalog,
    out: Option<&Path>,
) -> Result<Suite, SuiteError> {
    let base = src.path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let stem = src
        .path
        .file_stem()
        .map_or_else(|| "suite".to_owned(), |s| s.to_string_lossy().into_owned());
    let name = file.name.clone().unwrap_or(stem);
    let preset = file.preset.unwrap_or_default();
    let d = defaults(preset);

    // Shipped with acbench and checked by its tests: failing to load is a bug.
    let tables = PaperTables::load().map_err(SuiteError::internal)?;
    let mut paper_tables = Vec::new();
    if let Some(t) = &file.paper_table {
        for id in &t.value.0 {
            if tables.get(id).is_err() {
                let ids: Vec<&str> = tables.tables.iter().map(|t| t.id.as_str()).collect();
                return Err(src
                    .error_at(place(t), "paper_table", format!("unknown table `{id}`"))
                    .with_help(format!("the paper's tables are {}", ids.join(", "))));
            }
            paper_tables.push(id.clone());
        }
    }

    let dataset = dataset_spec(src, file)?;
    let detection = acbench_data::detection::is_detection(&dataset.name);
    let geometry = acbench_data::geometry(&dataset.name, dataset.image_size)
        .or_else(|| acbench_data::detection::geometry(&dataset.name, dataset.image_size));
    if dataset.seed.is_some() && !acbench_data::detection::is_generated(&dataset.name) {
        return Err(src.error_at(
            place(&file.dataset),
            "dataset.seed",
            format!(
                "`{}` is not a generated set: it takes no seed",
                dataset.name
            ),
        ));
    }
    if geometry.is_none() && !dataset.name.starts_with("folder:") && !detection {
        return Err(src
            .error_at(
                place(&file.dataset),
                "dataset",
                format!("unknown dataset `{}`", dataset.name),
            )
            .with_help(format!(
                "known: {} (or folder:PATH)",
                acbench_data::registry::names()
                    .into_iter()
                    .chain(acbench_data::detection::NAMES.iter().map(|(n, _)| *n))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
    }

    let epochs = match file.epochs {
        Some(0) => return Err(src.error("epochs", "must be at least 1")),
        Some(e) => e,
        None => return Err(src.error("epochs", "missing: how many epochs each run trains")),
    };
    let seeds: Vec<u64> = match (&file.seeds, file.repeats) {
        (Some(_), Some(_)) => return Err(src.error("seeds", "give `seeds` or `repeats`, not both")),
        (Some(s), None) if s.is_empty() => return Err(src.error("seeds", "the list is empty")),
        (Some(s), None) => s.clone(),
        (None, Some(0)) => return Err(src.error("repeats", "must be at least 1")),
        (None, Some(n)) => (0..n as u64).collect(),
        (None, None) => vec![0],
    };
    if file.models.is_empty() {
        return Err(src.error("models", "the list is empty"));
    }
    if file.activations.is_empty() {
        return Err(src.error("activations", "the list is empty"));
    }

    let models = file
        .models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let data = DataShape {
                geometry,
                detection,
            };
            model_spec(src, &base, i, m, data, catalog, d.bn_momentum)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let activations = file
        .activations
        .iter()
        .enumerate()
        .map(|(i, a)| activation_spec(src, i, a, catalog, &d, &models))
        .collect::<Result<Vec<_>, _>>()?;
    let default_opt = [Spanned::new(
        crate::file::Short(<OptimizerEntry as crate::file::FromShort>::from_short(
            d.optimizer,
        )),
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )];
    let optimizers = file.optimizers.as_deref().unwrap_or(&default_opt);
    if optimizers.is_empty() {
        return Err(src.error("optimizers", "the list is empty"));
    }
    let schedule = file.schedule.as_ref().map_or(&d.schedule, |s| &s.0);
    let normalization = match &file.normalization {
        Some(text) => input_norm(src, text)?,
        None => d.normalization,
    };
    let augment = file.augment.unwrap_or_default();
    let augment = Augment {
        crop_padding: augment.crop_padding,
        hflip: augment.hflip,
    };

    let mut runs = Vec::new();
    for (model, _net) in &models {
        let plugins = catalog.run_plugins(model);
        for act in &activations {
            for (oi, opt) in optimizers.iter().enumerate() {
                let entry = &opt.value.0;
                let lr = entry.lr.or(file.lr).unwrap_or(d.lr);
                let optimizer = optimizer_config(src, oi, opt)?;
                let schedule = schedule_config(src, schedule, lr)?;
                for &seed in &seeds {
                    let train = TrainConfig {
                        epochs,
                        batch_size: file.batch_size.unwrap_or(d.batch_size),
                        eval_batch_size: file.eval_batch_size.unwrap_or(500),
                        optimizer,
                        schedule: schedule.clone(),
                        weight_decay: file.weight_decay.unwrap_or(0.0),
                        seed: Seed(seed),
                        normalization,
                        augment,
                        loss_every: file.loss_every,
                    };
                    train
                        .validate()
                        .map_err(|e| src.error("training settings", e.to_string()))?;
                    runs.push(RunSpec {
                        suite: name.clone(),
                        preset,
                        model: model.clone(),
                        activation: act.clone(),
                        optimizer: entry.name.clone(),
                        dataset: dataset.clone(),
                        train,
                        plugins: plugins.clone(),
                    });
                }
            }
        }
    }

    let out_dir = match (out, &file.out) {
        (Some(o), _) => o.to_path_buf(),
        (None, Some(o)) => base.join(o),
        (None, None) => PathBuf::from("results").join(&name),
    };
    let deviations = deviations(&tables, &paper_tables, &runs);
    Ok(Suite {
        name,
        description: file.description.clone(),
        file: src.path.clone(),
        preset,
        paper_tables,
        deviations,
        out_dir,
        runs,
    })
}

/// How the runs differ from the settings of the first paper table, when
/// the paper states them; nothing otherwise. Every run of a suite shares
/// epochs, batch size and dataset, so the first run speaks for all.
fn deviations(tables: &PaperTables, paper_tables: &[String], runs: &[RunSpec]) -> Vec<String> {
    let settings = paper_tables
        .first()
        .and_then(|id| tables.get(id).ok())
        .and_then(|t| t.settings);
    let (Some(settings), Some(run)) = (settings, runs.first()) else {
        return Vec::new();
    };
    let mut out = settings.deviations(run.train.epochs, run.train.batch_size);
    if let Some(n) = run.dataset.limit_train {
        out.push(format!("only the first {n} training images"));
    }
    out
}

/// `normalization`: `per_image`, `per_channel` or `unit`.
fn input_norm(src: &SourceFile, text: &str) -> Result<InputNorm, SuiteError> {
    InputNorm::deserialize(text.into_deserializer())
        .map_err(|e: serde::de::value::Error| src.error("normalization", e.to_string()))
}

fn dataset_spec(src: &SourceFile, file: &SuiteFile) -> Result<DatasetSpec, SuiteError> {
    let e = &file.dataset.value.0;
    let at = place(&file.dataset);
    let image_size = match &e.image_size {
        None => None,
        Some(s) => {
            let parsed = s
                .split_once('x')
                .and_then(|(h, w)| {
                    Some((
                        h.trim().parse::<usize>().ok()?,
                        w.trim().parse::<usize>().ok()?,
                    ))
                })
                .filter(|&(h, w)| h > 0 && w > 0);
            match parsed {
                Some(hw) => Some(hw),
                None => {
                    return Err(src.error_at(
                        at,
                        "dataset.image_size",
                        format!("`{s}` is not HxW such as 84x84"),
                    ));
                }
            }
        }
    };
    for (key, v) in [
        ("dataset.limit_train", e.limit_train),
        ("dataset.limit_test", e.limit_test),
    ] {
        if v == Some(0) {
            return Err(src.error_at(at, key, "must be at least 1"));
        }
    }
    Ok(DatasetSpec {
        name: e.name.clone(),
        limit_train: e.limit_train,
        limit_test: e.limit_test,
        image_size,
        seed: e.seed,
    })
}

/// What a model must fit: the dataset's classes and image shape, when
/// known before loading, and whether it is a detection set.
#[derive(Debug, Clone, Copy)]
struct DataShape {
    geometry: Option<(usize, (usize, usize, usize))>,
    detection: bool,
}

/// The detector of model `key`, resolved against the catalog: its
/// settings checked and written out, and the head's channels it needs.
fn detector_spec(
    src: &SourceFile,
    at: Place,
    key: &str,
    entry: &crate::file::DetectorEntry,
    classes: usize,
    catalog: &Catalog,
) -> Result<(DetectorSpec, usize), SuiteError> {
    let key = format!("{key}.detector");
    let Some(detector) = catalog.detectors.iter().find(|d| d.name() == entry.name) else {
        let known: Vec<&str> = catalog.detectors.iter().map(|d| d.name()).collect();
        return Err(src
            .error_at(at, &key, format!("unknown detector `{}`", entry.name))
            .with_help(if known.is_empty() {
                "no detector plugin is loaded".to_owned()
            } else {
                format!("known detectors: {}", known.join(", "))
            }));
    };
    let config = detector
        .config(classes, &entry.settings)
        .map_err(|e| src.error_at(at, &key, e.to_string()))?;
    let layout = detector
        .layout(&config)
        .map_err(|e| src.error_at(at, &key, e.to_string()))?;
    let defaults = PostProcess::default();
    let post = PostProcess {
        nms_iou: entry.nms_iou.unwrap_or(defaults.nms_iou),
        score_threshold: entry.score_threshold.unwrap_or(defaults.score_threshold),
        candidates: entry.candidates.unwrap_or(defaults.candidates),
        max_detections: entry.max_detections.unwrap_or(defaults.max_detections),
    };
    post.validate()
        .map_err(|e| src.error_at(at, &key, e.to_string()))?;
    let settings = detector
        .settings()
        .iter()
        .map(|s| s.name.clone())
        .zip(config.values)
        .collect();
    Ok((
        DetectorSpec {
            name: entry.name.clone(),
            settings,
            post,
        },
        layout.channels,
    ))
}

fn model_spec(
    src: &SourceFile,
    base: &Path,
    i: usize,
    m: &Spanned<crate::file::Short<ModelEntryAlias>>,
    data: DataShape,
    catalog: &Catalog,
    bn_momentum: f64,
) -> Result<(ModelSpec, Network), SuiteError> {
    let geometry = data.geometry;
    let options = CompileOptions { bn_momentum };
    let entry = &m.value.0;
    let key = format!("models[{i}]");
    let at = place(m);
    let path = base.join(&entry.file);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        src.error_at(
            at,
            &key,
            format!("cannot read model file {}: {e}", path.display()),
        )
    })?;
    let module = acbench_dsl::parse(&text, &path.display().to_string()).map_err(|d| {
        src.error_at(
            at,
            &key,
            format!("model file {} has errors", path.display()),
        )
        .caused_by(d)
    })?;
    let sig = module
        .networks()
        .into_iter()
        .rev()
        .find(|s| entry.network.as_deref().is_none_or(|n| n == s.name));
    let Some(sig) = sig else {
        return Err(src.error_at(
            at,
            &key,
            format!(
                "{} has no network `{}`",
                path.display(),
                entry.network.as_deref().unwrap_or("?")
            ),
        ));
    };
    let mut args = entry.args.clone();
    if let Some((classes, (c, h, w))) = geometry {
        let derived = [
            ("classes", classes),
            ("channels", c),
            ("height", h),
            ("width", w),
        ];
        for (k, v) in derived {
            if sig.takes(k) && !args.contains_key(k) {
                args.insert(k.to_owned(), ArgValue::Int(v as i64));
            }
        }
        if h == w && sig.takes("size") && !args.contains_key("size") {
            args.insert("size".to_owned(), ArgValue::Int(h as i64));
        }
    }
    let dsl_args: Vec<(String, Value)> = args
        .iter()
        .map(|(k, v)| (k.clone(), v.to_value()))
        .collect();
    let net = module
        .elaborate_with(entry.network.as_deref(), &dsl_args, &options)
        .map_err(|d| {
            src.error_at(
                at,
                &key,
                format!("model {} does not elaborate", path.display()),
            )
            .caused_by(d)
        })?;
    if let Some((_, (c, h, w))) = geometry {
        let want_in = acbench_dsl::ir::Shape::Image { c, h, w };
        if net.input != want_in {
            return Err(src.error_at(
                at,
                &key,
                format!(
                    "network `{}` takes {} inputs but the dataset's images are {want_in}",
                    net.name, net.input
                ),
            ));
        }
    }
    let detector = match (&entry.detector, data.detection) {
        (Some(d), true) => {
            let classes = geometry.map_or(0, |(classes, _)| classes);
            Some(detector_spec(src, at, &key, &d.0, classes, catalog)?)
        }
        (None, true) => {
            return Err(src
                .error_at(
                    at,
                    &key,
                    "a detection dataset needs a detector for each model",
                )
                .with_help("add `detector: fcos` (or another detector) to the model's entry"));
        }
        (Some(_), false) => {
            return Err(src.error_at(
                at,
                &format!("{key}.detector"),
                "the dataset is not a detection set: its models take no detector",
            ));
        }
        (None, false) => None,
    };
    if let Some((_, channels)) = &detector {
        let ok = matches!(net.output, acbench_dsl::ir::Shape::Image { c, .. } if c == *channels);
        if !ok {
            return Err(src.error_at(
                at,
                &key,
                format!(
                    "network `{}` outputs {}; its detector needs a map of {channels} channels \
                     per location",
                    net.name, net.output
                ),
            ));
        }
    } else if let Some((classes, _)) = geometry
        && net.output != acbench_dsl::ir::Shape::Flat(classes)
    {
        return Err(src.error_at(
            at,
            &key,
            format!(
                "network `{}` outputs {} values but the dataset has {classes} classes",
                net.name, net.output
            ),
        ));
    }
    let label = entry.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .map_or_else(|| net.name.clone(), |s| s.to_string_lossy().into_owned())
    });
    let sha256 = hex::encode(Sha256::digest(text.as_bytes()));
    Ok((
        ModelSpec {
            label,
            file: path,
            sha256,
            network: entry.network.clone(),
            args,
            bn_momentum,
            detector: detector.map(|(spec, _)| spec),
        },
        net,
    ))
}

type ModelEntryAlias = crate::file::ModelEntry;

fn activation_spec(
    src: &SourceFile,
    i: usize,
    a: &Spanned<crate::file::ActivationEntry>,
    catalog: &Catalog,
    d: &Defaults,
    models: &[(ModelSpec, Network)],
) -> Result<ActivationSpec, SuiteError> {
    let key = format!("activations[{i}]");
    let at = place(a);
    let bindings =
        ActBindings::parse(&a.value.0).map_err(|e| src.error_at(at, &key, e.to_string()))?;
    let mut specs = Vec::new();
    let mut entries: Vec<(Option<&String>, &ActSpec)> =
        bindings.default.iter().map(|s| (None, s)).collect();
    entries.extend(bindings.slots.iter().map(|(k, s)| (Some(k), s)));
    for (slot, spec) in entries {
        if let Err(e) = catalog.check_spec(spec) {
            let mut error = src.error_at(at, &key, e.to_string());
            if matches!(e, EngineError::UnknownActivation { .. }) {
                error = error
                    .with_help("more activations come from plugins: list them under `plugins:`");
            }
            return Err(error);
        }
        let mut overrides = spec.overrides.clone();
        for &(act, param, value) in d.act_inits {
            if act == spec.activation && !overrides.iter().any(|(k, _)| k == param) {
                overrides.push((param.to_owned(), value));
            }
        }
        let mut s = spec.activation.clone();
        if !overrides.is_empty() {
            let kv: Vec<String> = overrides.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s = format!("{s}:{}", kv.join(","));
        }
        specs.push(match slot {
            Some(slot) => format!("{slot}={s}"),
            None => s,
        });
    }
    for (model, net) in models {
        let slots = net_slots(net);
        for slot in bindings.slots.keys() {
            if !slots.contains(slot) {
                return Err(src.error_at(
                    at,
                    &key,
                    format!(
                        "model `{}` has no act slot `{slot}` (its slots: {})",
                        model.label,
                        if slots.is_empty() {
                            "none".to_owned()
                        } else {
                            slots.join(", ")
                        }
                    ),
                ));
            }
        }
        if bindings.default.is_none() && net.act_sites().iter().any(|n| matches!(&n.op, Op::Act { slot } if slot.as_ref().is_none_or(|s| !bindings.slots.contains_key(s)))) {
            return Err(src.error_at(at, &key, format!("model `{}` has act slots this entry leaves unbound; add a default activation", model.label)));
        }
    }
    Ok(ActivationSpec {
        label: a.value.0.join(" "),
        bindings: specs,
    })
}

fn net_slots(net: &Network) -> Vec<String> {
    let mut slots: Vec<String> = net
        .act_sites()
        .iter()
        .filter_map(|n| match &n.op {
            Op::Act { slot } => slot.clone(),
            _ => None,
        })
        .collect();
    slots.sort();
    slots.dedup();
    slots
}

fn optimizer_config(
    src: &SourceFile,
    i: usize,
    opt: &Spanned<crate::file::Short<OptimizerEntry>>,
) -> Result<OptimizerConfig, SuiteError> {
    let e = &opt.value.0;
    let key = format!("optimizers[{i}]");
    let mut map = serde_json::Map::new();
    map.insert("name".into(), json!(e.name));
    for (k, v) in [
        ("momentum", e.momentum),
        ("initial_accumulator", e.initial_accumulator),
        ("rho", e.rho),
        ("epsilon", e.epsilon),
        ("beta1", e.beta1),
        ("beta2", e.beta2),
    ] {
        if let Some(v) = v {
            map.insert(k.into(), json!(v));
        }
    }
    let config: OptimizerConfig =
        serde_json::from_value(serde_json::Value::Object(map)).map_err(|err| {
            src.error_at(place(opt), &key, format!("{err}"))
                .with_help(format!("optimizers: {}", OptimizerConfig::NAMES.join(", ")))
        })?;
    config
        .validate()
        .map_err(|err| src.error_at(place(opt), &key, err.to_string()))?;
    Ok(config)
}

/// The schedule `s` describes, starting at `lr`; a field of another kind
/// of schedule is an error, as is an unknown kind.
fn schedule_config(src: &SourceFile, s: &ScheduleEntry, lr: f64) -> Result<Schedule, SuiteError> {
    let step_only = [
        ("milestones", s.milestones.is_some()),
        ("factor", s.factor.is_some()),
    ];
    let cosine_only = [
        ("min_lr", s.min_lr.is_some()),
        ("per_step", s.per_step.is_some()),
    ];
    let refuse = |fields: &[(&str, bool)], kind: &str| match fields.iter().find(|(_, set)| *set) {
        Some((field, _)) => Err(src.error(
            "schedule",
            format!("`{field}` belongs to {kind} schedules, not `{}`", s.kind),
        )),
        None => Ok(()),
    };
    match s.kind.as_str() {
        "constant" => {
            refuse(&step_only, "step")?;
            refuse(&cosine_only, "cosine")?;
            Ok(Schedule::Constant { lr })
        }
        "step" => {
            refuse(&cosine_only, "cosine")?;
            Ok(Schedule::Step {
                lr,
                milestones: s.milestones.clone().unwrap_or_default(),
                factor: s.factor.unwrap_or(Schedule::DEFAULT_FACTOR),
            })
        }
        "cosine" => {
            refuse(&step_only, "step")?;
            Ok(Schedule::Cosine {
                lr,
                min_lr: s.min_lr.unwrap_or(0.0),
                per_step: s.per_step.unwrap_or(false),
            })
        }
        other => Err(src.error(
            "schedule",
            format!("unknown kind `{other}` (kinds: constant, step, cosine)"),
        )),
    }
}
