//! What an MLflow run holds for one ledger run: its tags, its parameters
//! (the resolved spec, flattened) and its metrics (per epoch), made to fit
//! MLflow's limits and cut into `runs/log-batch` requests. No I/O here.
//!
//! Limits are those of the MLflow tracking server (`mlflow/utils/validation.py`):
//! keys of at most 250 characters made of letters, digits, `_`, `-`, `.`,
//! spaces (and `/`, `:`, which acbench does not use); parameter values of at
//! most 6000 characters; at most 1000 metrics, 100 parameters, 100 tags and
//! 1000 entries in all per batch, and 1 MB per request. Tag values are kept
//! to 5000 characters, the least every MLflow backend guarantees.

use std::collections::BTreeSet;

use acbench_ledger::{EpochRecord, RunStatus, StoredRun};
use serde::{Deserialize, Serialize, Serializer};

/// Longest key (parameter, metric or tag name) MLflow accepts.
pub const MAX_KEY: usize = 250;
/// Longest parameter value MLflow accepts.
pub const MAX_PARAM_VALUE: usize = 6000;
/// Longest tag value every MLflow backend keeps.
pub const MAX_TAG_VALUE: usize = 5000;
/// Most metrics in one `runs/log-batch`.
pub const MAX_BATCH_METRICS: usize = 1000;
/// Most parameters in one `runs/log-batch`.
pub const MAX_BATCH_PARAMS: usize = 100;
/// Most tags in one `runs/log-batch`.
pub const MAX_BATCH_TAGS: usize = 100;
/// Most entries (metrics, parameters and tags together) in one `runs/log-batch`.
pub const MAX_BATCH_ENTRIES: usize = 1000;
/// Bytes of entries per `runs/log-batch`: MLflow takes 1 MB per request;
/// the rest is room for the run id and the JSON around the entries.
pub const MAX_BATCH_BYTES: usize = 900_000;

/// Tag holding the ledger key of the run (the spec hash); exports are found
/// again by it.
pub const TAG_SPEC_HASH: &str = "acbench.spec_hash";
/// Tag holding the ledger status word (`finished`, `diverged`, ...).
pub const TAG_STATUS: &str = "acbench.status";
/// Tag holding the number of exported epochs.
pub const TAG_EPOCHS: &str = "acbench.epochs";
/// Tag set last, once everything of the run was sent: a run without it is
/// an interrupted export.
pub const TAG_EXPORT: &str = "acbench.export";
/// [`TAG_EXPORT`]'s value on a complete export.
pub const EXPORT_COMPLETE: &str = "complete";
/// Tag listing the parameters whose key or value had to be shortened.
pub const TAG_TRUNCATED: &str = "acbench.truncated_params";

/// A parameter or tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// Its key.
    pub key: String,
    /// Its value.
    pub value: String,
}

impl KeyValue {
    /// A tag: its value cut to [`MAX_TAG_VALUE`] characters.
    pub fn tag(key: &str, value: &str) -> Self {
        Self {
            key: key.to_owned(),
            value: truncate_chars(value, MAX_TAG_VALUE).to_owned(),
        }
    }
}

/// One value of a metric at one step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    /// Its key.
    pub key: String,
    /// Its value; NaN and infinities are sent as protobuf JSON spells them.
    #[serde(serialize_with = "proto_double")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The epoch.
    pub step: i64,
}

/// Protobuf's JSON mapping writes non-finite doubles as strings; a JSON
/// number cannot hold them.
fn proto_double<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_nan() {
        s.serialize_str("NaN")
    } else if v.is_infinite() {
        s.serialize_str(if *v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        s.serialize_f64(*v)
    }
}

/// The parameters of a run, and what had to be shortened to fit MLflow.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    /// Parameters with unique keys, in the spec's order.
    pub params: Vec<KeyValue>,
    /// One note per shortened key or value (`KEY: value of N characters cut
    /// to 6000`); empty when nothing was.
    pub truncated: Vec<String>,
}

impl Params {
    /// The [`TAG_TRUNCATED`] tag, if anything was shortened.
    pub fn truncated_tag(&self) -> Option<KeyValue> {
        (!self.truncated.is_empty())
            .then(|| KeyValue::tag(TAG_TRUNCATED, &self.truncated.join("; ")))
    }
}

/// The resolved spec as parameters with dotted keys (`train.lr`,
/// `model.args.classes`). Objects are walked into; a list of plain values
/// is one parameter holding its JSON (`[70,100]`), a list holding objects
/// or lists is walked into by index (`plugins.0.sha256`); strings are
/// their text, other values their JSON (`null`, `true`, `{}`). Keys are
/// made valid for MLflow ([`mlflow_key`]) and unique; values longer than
/// [`MAX_PARAM_VALUE`] characters are cut, and each cut is noted.
pub fn spec_params(spec: &serde_json::Value) -> Params {
    let mut flat = Vec::new();
    flatten("", spec, &mut flat);
    let mut out = Params::default();
    let mut used = BTreeSet::new();
    for (raw, value) in flat {
        let mut key = mlflow_key(&raw);
        if !used.insert(key.clone()) {
            // Two spec paths that read the same once made valid.
            key = with_suffix(&key, &raw);
            used.insert(key.clone());
        }
        if key != raw && raw.len() > MAX_KEY {
            out.truncated
                .push(format!("{key}: key of {} characters shortened", raw.len()));
        }
        let chars = value.chars().count();
        let value = if chars > MAX_PARAM_VALUE {
            out.truncated.push(format!(
                "{key}: value of {chars} characters cut to {MAX_PARAM_VALUE}"
            ));
            truncate_chars(&value, MAX_PARAM_VALUE).to_owned()
        } else {
            value
        };
        out.params.push(KeyValue { key, value });
    }
    out
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    use serde_json::Value;
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                flatten(&join(k), v, out);
            }
        }
        Value::Array(items) if items.iter().any(|v| v.is_object() || v.is_array()) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&join(&i.to_string()), v, out);
            }
        }
        _ => {
            let key = if prefix.is_empty() { "spec" } else { prefix };
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push((key.to_owned(), text));
        }
    }
}

/// `raw` as a key MLflow accepts: characters other than ASCII letters,
/// digits, `_`, `-`, `.` and spaces become `_`; a key MLflow would read as
/// a relative path (empty, `.`, starting with `..`) gets a leading `_`; a
/// key longer than [`MAX_KEY`] is cut and ends in a hash of the whole key,
/// so distinct long keys stay distinct. The same `raw` always gives the
/// same key.
pub fn mlflow_key(raw: &str) -> String {
    let mut key: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if key.is_empty() || key == "." || key.starts_with("..") {
        key.insert(0, '_');
    }
    if key.len() > MAX_KEY {
        key = with_suffix(&key, raw);
    }
    key
}

/// `key` cut so that `_` and a hash of `raw` fit after it within [`MAX_KEY`].
fn with_suffix(key: &str, raw: &str) -> String {
    let suffix = format!("_{:016x}", fnv1a(raw));
    // ASCII only (mlflow_key made it so): any byte index is a char boundary.
    let keep = key.len().min(MAX_KEY - suffix.len());
    format!("{}{suffix}", &key[..keep])
}

/// FNV-1a, 64 bits: a hash that never changes between builds, so a key
/// shortened today is shortened the same way by the next acbench.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The first `max` characters of `text` (all of it if shorter).
pub fn truncate_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// The run's name: `model/activation/optimizer/dataset/seed`.
pub fn run_name(run: &StoredRun) -> String {
    let l = &run.labels;
    format!(
        "{}/{}/{}/{}/{}",
        l.model, l.activation, l.optimizer, l.dataset, l.seed
    )
}

/// The MLflow status of a ledger status: `FINISHED`, `FAILED` (failed and
/// diverged runs), `KILLED` (a run a signal stopped, to be resumed) or
/// `RUNNING` (a run the ledger has not seen end).
pub fn mlflow_status(status: &RunStatus) -> &'static str {
    match status {
        RunStatus::Finished => "FINISHED",
        RunStatus::Diverged { .. } | RunStatus::Failed { .. } => "FAILED",
        RunStatus::Interrupted => "KILLED",
        RunStatus::Running => "RUNNING",
    }
}

/// The run's tags (all but [`TAG_EXPORT`], which goes last): its key, its
/// status (with the error of a failed run and the epoch of a diverged one),
/// its labels, its name (`mlflow.runName`) and its epoch count.
pub fn run_tags(run: &StoredRun) -> Vec<KeyValue> {
    let l = &run.labels;
    let mut tags = vec![
        KeyValue::tag(TAG_SPEC_HASH, &run.key),
        KeyValue::tag(TAG_STATUS, &run.status.to_string()),
        KeyValue::tag(TAG_EPOCHS, &run.epochs.len().to_string()),
        KeyValue::tag("acbench.suite", &l.suite),
        KeyValue::tag("acbench.attempts", &run.attempts.to_string()),
        KeyValue::tag("model", &l.model),
        KeyValue::tag("activation", &l.activation),
        KeyValue::tag("optimizer", &l.optimizer),
        KeyValue::tag("dataset", &l.dataset),
        KeyValue::tag("seed", &l.seed.to_string()),
        KeyValue::tag("mlflow.runName", &run_name(run)),
    ];
    match &run.status {
        RunStatus::Failed { error } => tags.push(KeyValue::tag("acbench.error", error)),
        RunStatus::Diverged { epoch, .. } => {
            tags.push(KeyValue::tag("acbench.diverged_epoch", &epoch.to_string()));
        }
        RunStatus::Finished | RunStatus::Running | RunStatus::Interrupted => {}
    }
    tags
}

/// Every metric of every epoch, at step = epoch: `train_loss`,
/// `train_acc`, `test_loss`, `test_acc`, `lr`, `wall_s`; each activation
/// parameter as `act.SLOT.PARAM` (`act.SLOT.PARAM.I` for the I-th of a
/// parameter with several values); each layer's weight increment as
/// `dw.LAYER`; and the per-step loss curve as `train_loss_step`, at
/// step = steps done in the run.
pub fn epoch_metrics(epochs: &[EpochRecord], timestamp: i64) -> Vec<Metric> {
    let mut out = Vec::new();
    for e in epochs {
        let step = i64::try_from(e.epoch).unwrap_or(i64::MAX);
        let mut push = |key: String, value: f64| {
            out.push(Metric {
                key,
                value,
                timestamp,
                step,
            });
        };
        for (key, value) in [
            ("train_loss", e.train_loss),
            ("train_acc", e.train_acc),
            ("test_loss", e.test_loss),
            ("test_acc", e.test_acc),
            ("lr", e.lr),
            ("wall_s", e.wall_s),
        ] {
            push(key.to_owned(), value);
        }
        for p in &e.act_params {
            let base = format!("act.{}.{}", p.slot, p.param);
            if let [value] = p.values[..] {
                push(mlflow_key(&base), value);
            } else {
                for (i, &value) in p.values.iter().enumerate() {
                    push(mlflow_key(&format!("{base}.{i}")), value);
                }
            }
        }
        for (layer, norm) in &e.weight_increments {
            push(mlflow_key(&format!("dw.{layer}")), *norm);
        }
        for &(step, value) in &e.step_losses {
            out.push(Metric {
                key: "train_loss_step".to_owned(),
                value,
                timestamp,
                step: i64::try_from(step).unwrap_or(i64::MAX),
            });
        }
    }
    out
}

/// One `runs/log-batch` request's entries.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Batch {
    /// Metrics.
    pub metrics: Vec<Metric>,
    /// Parameters.
    pub params: Vec<KeyValue>,
    /// Tags.
    pub tags: Vec<KeyValue>,
}

impl Batch {
    fn len(&self) -> usize {
        self.metrics.len() + self.params.len() + self.tags.len()
    }
}

/// `params`, `tags` and `metrics` cut into batches within MLflow's limits
/// ([`MAX_BATCH_PARAMS`], [`MAX_BATCH_TAGS`], [`MAX_BATCH_METRICS`],
/// [`MAX_BATCH_ENTRIES`], [`MAX_BATCH_BYTES`]), in order: parameters
/// first, then tags, then metrics. Each entry is in exactly one batch, so
/// no parameter is ever sent twice.
pub fn batches(params: Vec<KeyValue>, tags: Vec<KeyValue>, metrics: Vec<Metric>) -> Vec<Batch> {
    let mut b = Batcher::default();
    for p in params {
        b.make_room(b.current.params.len(), MAX_BATCH_PARAMS, json_len(&p));
        b.current.params.push(p);
    }
    for t in tags {
        b.make_room(b.current.tags.len(), MAX_BATCH_TAGS, json_len(&t));
        b.current.tags.push(t);
    }
    for m in metrics {
        b.make_room(b.current.metrics.len(), MAX_BATCH_METRICS, json_len(&m));
        b.current.metrics.push(m);
    }
    b.finish()
}

/// The batches so far and the one being filled.
#[derive(Default)]
struct Batcher {
    done: Vec<Batch>,
    current: Batch,
    bytes: usize,
}

impl Batcher {
    /// Closes the current batch (if it holds anything) when one more entry
    /// of `size` bytes, of a kind it already holds `count` of, with at
    /// most `max` of that kind per batch, would not fit in it.
    fn make_room(&mut self, count: usize, max: usize, size: usize) {
        let full = count >= max
            || self.current.len() >= MAX_BATCH_ENTRIES
            || self.bytes + size > MAX_BATCH_BYTES;
        if full && self.current.len() > 0 {
            self.done.push(std::mem::take(&mut self.current));
            self.bytes = 0;
        }
        self.bytes += size;
    }

    /// Every batch, the last one included.
    fn finish(mut self) -> Vec<Batch> {
        if self.current.len() > 0 {
            self.done.push(self.current);
        }
        self.done
    }
}

/// Bytes of `value` as JSON, with a comma.
fn json_len(value: &impl Serialize) -> usize {
    serde_json::to_string(value).map_or(0, |s| s.len()) + 1
}

#[cfg(test)]
mod tests;
