//! The raw suite file, exactly as written: every field optional where the
//! preset can fill it, unknown keys rejected (with line and column, by
//! serde-saphyr). [`crate::resolve`] turns it into run specs.
//!
//! Several fields accept a short string or a full map (`optimizers: [sgd,
//! {name: adam, lr: 1e-4}]`); [`Short`] does that without serde's
//! `untagged`, whose errors lose the location and the reason.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

/// A suite file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteFile {
    /// Name used in the ledger and reports (default: the file stem).
    pub name: Option<String>,
    /// Free text shown by `--dry-run`.
    pub description: Option<String>,
    /// `paper-code` or `standard` (default `standard`).
    pub preset: Option<Preset>,
    /// The paper table(s) this suite reproduces: `table1`, or `[table1, table2]`.
    pub paper_table: Option<Spanned<TableList>>,
    /// Dataset: a name or a map with limits.
    pub dataset: Spanned<Short<DatasetEntry>>,
    /// Models to train.
    pub models: Vec<Spanned<Short<ModelEntry>>>,
    /// Activation bindings; each entry is one run dimension value.
    pub activations: Vec<Spanned<ActivationEntry>>,
    /// Optimisers (default from the preset).
    pub optimizers: Option<Vec<Spanned<Short<OptimizerEntry>>>>,
    /// Learning-rate schedule (default from the preset).
    pub schedule: Option<Short<ScheduleEntry>>,
    /// Initial learning rate (default from the preset).
    pub lr: Option<f64>,
    /// Epochs per run.
    pub epochs: Option<usize>,
    /// Training batch size.
    pub batch_size: Option<usize>,
    /// Evaluation batch size.
    pub eval_batch_size: Option<usize>,
    /// Seeds; one run per seed.
    pub seeds: Option<Vec<u64>>,
    /// Shorthand for `seeds: [0, 1, ..., repeats-1]`.
    pub repeats: Option<usize>,
    /// L2 weight decay on conv/linear weights.
    pub weight_decay: Option<f64>,
    /// `per_image`, `per_channel` or `unit`.
    pub normalization: Option<String>,
    /// Augmentation: `{crop_padding: 4, hflip: true}`.
    pub augment: Option<AugmentEntry>,
    /// Record the training loss every this many steps (default: about 300
    /// points per run).
    pub loss_every: Option<usize>,
    /// Activation plugin libraries, relative to the suite file.
    pub plugins: Option<Vec<Spanned<String>>>,
    /// Output directory, relative to the suite file (`--out` overrides).
    pub out: Option<String>,
}

/// Which defaults fill what a suite leaves unset: the authors' published code
/// or common modern practice. Part of every run's spec hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// What the authors' published code does: plain SGD, lr 1e-3 divided by
    /// 10 at epochs 70 and 100, batch 64, per-image standardisation, no
    /// augmentation, no weight decay, LReLU slope 0.2, PReLU starting at 0.
    PaperCode,
    /// Common modern defaults: per-channel normalisation, LReLU slope 0.01,
    /// PReLU starting at 0.25.
    #[default]
    Standard,
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Preset::PaperCode => "paper-code",
            Preset::Standard => "standard",
        })
    }
}

/// Dataset and how much of it to use.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetEntry {
    /// Registered name or `folder:PATH`.
    pub name: String,
    /// Use only the first N training examples.
    pub limit_train: Option<usize>,
    /// Use only the first N test examples.
    pub limit_test: Option<usize>,
    /// `HxW` for image-folder datasets.
    pub image_size: Option<String>,
    /// Seed of a generated set (`fashion-mnist-boxes`; default 0), apart
    /// from the runs' seeds so that every run sees the same data.
    pub seed: Option<u64>,
}

/// One model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// The `.acnet` file, relative to the suite file.
    pub file: String,
    /// Label in tables (default: the file stem).
    pub name: Option<String>,
    /// Network to pick in a file with several.
    pub network: Option<String>,
    /// Network arguments (`classes` and input size default to the dataset's).
    #[serde(default)]
    pub args: BTreeMap<String, ArgValue>,
    /// For a detection dataset: the detector plugin that reads the
    /// network's output (`fcos`, or a map with its settings).
    pub detector: Option<Short<DetectorEntry>>,
}

/// A detector and its settings: the plugin's own (`settings`) and the
/// host's post-processing (`nms_iou`, ...; defaults in
/// [`acbench_engine::detection::PostProcess`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorEntry {
    /// The detector's name, as a plugin registers it.
    pub name: String,
    /// Overrides of the detector's settings.
    #[serde(default)]
    pub settings: BTreeMap<String, f64>,
    /// IoU of non-maximum suppression.
    pub nms_iou: Option<f64>,
    /// Minimum score of a kept box.
    pub score_threshold: Option<f32>,
    /// Candidates decoded per image.
    pub candidates: Option<usize>,
    /// Boxes per image after suppression.
    pub max_detections: Option<usize>,
}

impl FromShort for DetectorEntry {
    fn from_short(s: &str) -> Self {
        Self {
            name: s.to_owned(),
            settings: BTreeMap::new(),
            nms_iou: None,
            score_threshold: None,
            candidates: None,
            max_detections: None,
        }
    }
}

/// A network argument value as YAML gives it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ArgValue {
    /// Integer.
    Int(i64),
    /// Real number.
    Float(f64),
    /// `true`/`false`.
    Bool(bool),
    /// A word such as `same`.
    Word(String),
}

impl ArgValue {
    /// The model language's form of the value.
    pub fn to_value(&self) -> acbench_dsl::ir::Value {
        use acbench_dsl::ir::Value;
        match self {
            ArgValue::Int(i) => Value::Int(*i),
            ArgValue::Float(x) => Value::Float(*x),
            ArgValue::Bool(b) => Value::Bool(*b),
            ArgValue::Word(w) => Value::Word(w.clone()),
        }
    }
}

/// Activation bindings of one run: CLI-style specs (`arelu`, `fc=relu`,
/// `lrelu:s=0.2`), written as one string (`"arelu fc=relu"`) or as a map
/// from slot to spec, with `default` for every unnamed slot.
#[derive(Debug, Clone)]
pub struct ActivationEntry(pub Vec<String>);

/// One optimiser, with an optional learning rate of its own (Table 5 style
/// studies tune the rate per optimiser).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerEntry {
    /// `sgd`, `momentum`, `adagrad`, `adadelta` or `adam`.
    pub name: String,
    /// Initial learning rate for runs with this optimiser.
    pub lr: Option<f64>,
    /// Momentum coefficient.
    pub momentum: Option<f64>,
    /// AdaGrad's initial accumulator.
    pub initial_accumulator: Option<f64>,
    /// AdaDelta's decay.
    pub rho: Option<f64>,
    /// AdaDelta's / Adam's epsilon.
    pub epsilon: Option<f64>,
    /// Adam's first-moment decay.
    pub beta1: Option<f64>,
    /// Adam's second-moment decay.
    pub beta2: Option<f64>,
}

/// Learning-rate schedule: `constant`, `cosine`, or a map such as
/// `{kind: step, milestones: [70, 100], factor: 10}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEntry {
    /// `constant`, `step` or `cosine`.
    pub kind: String,
    /// For `step`: epochs at which the rate is divided.
    pub milestones: Option<Vec<usize>>,
    /// For `step`: the divisor (default 10).
    pub factor: Option<f64>,
    /// For `cosine`: the final rate (default 0).
    pub min_lr: Option<f64>,
    /// For `cosine`: anneal per batch instead of per epoch.
    pub per_step: Option<bool>,
}

/// Augmentation settings.
#[derive(Debug, Clone, Copy, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AugmentEntry {
    /// Zero padding before a random crop back to size (0 = none).
    #[serde(default)]
    pub crop_padding: usize,
    /// Random horizontal flips.
    #[serde(default)]
    pub hflip: bool,
}

/// Builds a map-shaped value from its short string form.
pub trait FromShort: Sized {
    /// `name` alone, as in `dataset: cifar10` or `optimizers: [sgd]`.
    fn from_short(s: &str) -> Self;
}

impl FromShort for DatasetEntry {
    fn from_short(s: &str) -> Self {
        Self {
            name: s.to_owned(),
            limit_train: None,
            limit_test: None,
            image_size: None,
            seed: None,
        }
    }
}

impl FromShort for ModelEntry {
    fn from_short(s: &str) -> Self {
        Self {
            file: s.to_owned(),
            name: None,
            network: None,
            args: BTreeMap::new(),
            detector: None,
        }
    }
}

impl FromShort for OptimizerEntry {
    fn from_short(s: &str) -> Self {
        Self {
            name: s.to_owned(),
            lr: None,
            momentum: None,
            initial_accumulator: None,
            rho: None,
            epsilon: None,
            beta1: None,
            beta2: None,
        }
    }
}

impl FromShort for ScheduleEntry {
    fn from_short(s: &str) -> Self {
        Self {
            kind: s.to_owned(),
            milestones: None,
            factor: None,
            min_lr: None,
            per_step: None,
        }
    }
}

struct StringOrMap<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de> + FromShort> Visitor<'de> for StringOrMap<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a name or a map")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Ok(T::from_short(v))
    }

    fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<T, M::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map))
    }
}

/// `T` written either as its short name or as a full map.
#[derive(Debug, Clone)]
pub struct Short<T>(pub T);

impl<'de, T: Deserialize<'de> + FromShort> Deserialize<'de> for Short<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StringOrMap(PhantomData)).map(Short)
    }
}

impl<'de> Deserialize<'de> for ActivationEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ActivationEntry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an activation spec such as `arelu` or `arelu fc=relu`, or a map of slot to spec")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ActivationEntry, E> {
                let specs: Vec<String> = v.split_whitespace().map(str::to_owned).collect();
                if specs.is_empty() {
                    return Err(E::custom("empty activation spec"));
                }
                Ok(ActivationEntry(specs))
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<ActivationEntry, M::Error> {
                let mut specs = Vec::new();
                while let Some((slot, spec)) = map.next_entry::<String, String>()? {
                    if spec.contains(char::is_whitespace) || spec.is_empty() {
                        return Err(de::Error::custom(format!(
                            "slot `{slot}`: `{spec}` is not one activation spec"
                        )));
                    }
                    specs.push(if slot == "default" {
                        spec
                    } else {
                        format!("{slot}={spec}")
                    });
                }
                if specs.is_empty() {
                    return Err(de::Error::custom("empty activation map"));
                }
                Ok(ActivationEntry(specs))
            }
        }
        d.deserialize_any(V)
    }
}

/// One paper table or a list of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableList(pub Vec<String>);

impl<'de> Deserialize<'de> for TableList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TableList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a paper table such as `table1`, or a list of them")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<TableList, E> {
                Ok(TableList(vec![v.to_owned()]))
            }

            fn visit_seq<S: de::SeqAccess<'de>>(self, mut seq: S) -> Result<TableList, S::Error> {
                let mut out = Vec::new();
                while let Some(t) = seq.next_element::<String>()? {
                    out.push(t);
                }
                Ok(TableList(out))
            }
        }
        d.deserialize_any(V)
    }
}
