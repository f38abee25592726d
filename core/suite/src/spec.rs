//! A fully resolved run: everything that determines its numbers, and the
//! hash of that, which keys it in the ledger.

use std::collections::BTreeMap;
use std::path::PathBuf;

use acbench_engine::detection::PostProcess;
use acbench_engine::train::TrainConfig;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::file::{ArgValue, Preset};

/// One run of a suite or sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Suite (or sweep) name.
    pub suite: String,
    /// Preset the defaults came from.
    pub preset: Preset,
    /// The network.
    pub model: ModelSpec,
    /// Activation bindings.
    pub activation: ActivationSpec,
    /// Optimiser label for tables (`sgd`, `adam`).
    pub optimizer: String,
    /// The data.
    pub dataset: DatasetSpec,
    /// Everything the trainer needs (optimiser, schedule, epochs, seed, ...).
    pub train: TrainConfig,
    /// Plugin libraries the activations may come from.
    pub plugins: Vec<PluginRef>,
}

/// The network of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Label in tables (`convnet`).
    pub label: String,
    /// The `.acnet` file (not part of the key: its contents are, as `sha256`).
    pub file: PathBuf,
    /// SHA-256 of the file's contents.
    pub sha256: String,
    /// Network picked in the file, if not the last.
    pub network: Option<String>,
    /// Network arguments (dataset-derived ones included).
    pub args: BTreeMap<String, ArgValue>,
    /// Running-statistics momentum of every `bn` that does not set its own
    /// (the preset's: TensorFlow's 0.99 for `paper-code`, PyTorch's 0.9
    /// for `standard`).
    pub bn_momentum: f64,
    /// The detector that reads the network's output, for a detection
    /// dataset (left out of a classifier's spec, and so of its key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector: Option<DetectorSpec>,
}

/// A detector of a run: its name, every one of its settings (defaults
/// written out, so that a changed default changes the key) and the host's
/// post-processing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorSpec {
    /// The detector's name.
    pub name: String,
    /// Every setting's value.
    pub settings: BTreeMap<String, f64>,
    /// Suppression, thresholds and limits.
    pub post: PostProcess,
}

/// Activation bindings of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationSpec {
    /// Label in tables: the default activation, plus slot bindings (`arelu fc=relu`).
    pub label: String,
    /// CLI-style specs with the preset's initial values written out
    /// (`lrelu:s=0.2`, `fc=relu`).
    pub bindings: Vec<String>,
}

/// The data of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetSpec {
    /// Registered name or `folder:PATH`.
    pub name: String,
    /// Only the first N training examples.
    pub limit_train: Option<usize>,
    /// Only the first N test examples.
    pub limit_test: Option<usize>,
    /// Resize for image-folder datasets.
    pub image_size: Option<(usize, usize)>,
    /// Seed of a generated detection set (left out when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// A plugin library, identified by its contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRef {
    /// Where it was loaded from (not part of the key).
    pub path: PathBuf,
    /// SHA-256 of the file.
    pub sha256: String,
}

impl RunSpec {
    /// The run's key: SHA-256 (hex) of the spec as canonical JSON (object
    /// keys sorted), with file *locations* left out so that moving a
    /// checkout keeps the keys; file *contents* are in through their hashes.
    pub fn key(&self) -> String {
        let mut spec = self.clone();
        spec.model.file = PathBuf::new();
        for p in &mut spec.plugins {
            p.path = PathBuf::new();
        }
        spec.plugins.sort_by(|a, b| a.sha256.cmp(&b.sha256));
        let value = serde_json::to_value(&spec).unwrap_or(serde_json::Value::Null);
        let mut text = String::new();
        canonical(&value, &mut text);
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    /// The run as users read it: `model / activation / optimizer / seed N`.
    pub fn label(&self) -> String {
        format!(
            "{} / {} / {} / seed {}",
            self.model.label, self.activation.label, self.optimizer, self.train.seed.0
        )
    }

    /// A short form of the key for display.
    pub fn short_key(&self) -> String {
        self.key()[..12].to_owned()
    }
}

/// Writes `v` as JSON with object keys sorted at every level, whatever map
/// type serde_json was built with (another crate may enable its
/// `preserve_order` feature).
fn canonical(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = serde_json::json!({"b": 1, "a": {"d": [1, {"z": 0, "y": 1}], "c": "x"}});
        let mut s = String::new();
        canonical(&v, &mut s);
        assert_eq!(s, r#"{"a":{"c":"x","d":[1,{"y":1,"z":0}]},"b":1}"#);
    }
}
