//! Checkpoints inside a run: after every finished epoch, everything that
//! decides the rest of the run is written to disk, so that a run killed at
//! epoch 140 of 150 resumes at epoch 140, with results bit for bit those of
//! a run that was never interrupted.
//!
//! A checkpoint is a folder per run (named by the run's key) holding two
//! files:
//! - `epoch-NNNN.safetensors` (candle's safetensors): every parameter
//!   (`param/NAME`), every batch-norm running statistic (`buffer/NAME`),
//!   the optimiser's state (`optim/PARAM/FIELD`) and the training split's
//!   current example order (`order`);
//! - `checkpoint.json`: the format version, the acbench version, the run's
//!   key, the next epoch (the schedule's position), each random stream's
//!   position, the metrics of the finished epochs, and the name and SHA-256
//!   of the tensor file.
//!
//! Writes are atomic: each file goes to a temporary name, is synced and
//! renamed, the tensor file first and the JSON last, so the JSON only ever
//! names a complete tensor file; older tensor files are deleted afterwards.
//! A checkpoint of another format, another acbench version or another run
//! is refused with the reason, and the run starts from epoch 0.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::Model;
use crate::optim::Optimizer;
use crate::train::EpochMetrics;
use crate::{Error, Result};

/// Version of the checkpoint layout; a checkpoint of another version is
/// refused.
pub const FORMAT: u32 = 1;

const MANIFEST: &str = "checkpoint.json";
const PARAM: &str = "param/";
const BUFFER: &str = "buffer/";
const OPTIM: &str = "optim/";
const ORDER: &str = "order";

/// Where one run's checkpoint lives, and whom it belongs to.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
    key: String,
    keep_last: bool,
}

/// Positions of the run's random streams (ChaCha word positions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RngPositions {
    /// The shuffling stream.
    #[serde(with = "word_pos")]
    pub shuffle: u128,
    /// The augmentation stream.
    #[serde(with = "word_pos")]
    pub augment: u128,
    /// The dropout stream.
    #[serde(with = "word_pos")]
    pub dropout: u128,
}

/// ChaCha positions are up to 68 bits: written as decimal strings, since
/// JSON numbers are not exact beyond 53.
mod word_pos {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// `checkpoint.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format: u32,
    acbench_version: String,
    key: String,
    next_epoch: usize,
    tensors: String,
    tensors_sha256: String,
    rng: RngPositions,
    history: Vec<EpochMetrics>,
}

/// Everything [`crate::train`] needs to continue a run from a checkpoint;
/// the model's parameters and statistics are already restored.
#[derive(Debug)]
pub struct Resume {
    /// The first epoch still to train (the epochs before it are done).
    pub next_epoch: usize,
    pub(crate) history: Vec<EpochMetrics>,
    pub(crate) rng: RngPositions,
    pub(crate) order: Vec<usize>,
    pub(crate) optimizer: HashMap<String, Tensor>,
}

/// What [`CheckpointStore::load`] found.
#[derive(Debug)]
pub enum Loaded {
    /// No checkpoint: the run starts from epoch 0.
    None,
    /// A valid checkpoint, already loaded into the model.
    Resume(Resume),
    /// A checkpoint that cannot be used, and why; the run starts from
    /// epoch 0 (the model is untouched).
    Refused(String),
}

/// What the training loop hands over after an epoch.
pub(crate) struct Snapshot<'a> {
    pub next_epoch: usize,
    pub model: &'a Model,
    pub optimizer: &'a Optimizer,
    pub rng: RngPositions,
    pub order: &'a [usize],
    pub history: &'a [EpochMetrics],
}

impl CheckpointStore {
    /// The checkpoint of the run `key` under `root` (one folder per run).
    /// With `keep_last`, [`CheckpointStore::finish`] keeps the last
    /// checkpoint instead of deleting it, and the last epoch is saved too.
    pub fn new(root: &Path, key: &str, keep_last: bool) -> Self {
        Self {
            dir: root.join(key),
            key: key.to_owned(),
            keep_last,
        }
    }

    /// The run's checkpoint folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the checkpoint after the run's last epoch is written (it is
    /// only worth writing when it is kept).
    pub(crate) fn saves_last(&self) -> bool {
        self.keep_last
    }

    /// Reads the checkpoint and, when it is valid for this run, loads its
    /// parameters and statistics into `model`. Nothing is changed unless
    /// every tensor is present with the model's shapes.
    pub fn load(&self, model: &mut Model) -> Loaded {
        let path = self.dir.join(MANIFEST);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::None,
            Err(e) => return Loaded::Refused(format!("{}: {e}", path.display())),
        };
        match self.read(&path, &text, model) {
            Ok(resume) => Loaded::Resume(resume),
            Err(reason) => Loaded::Refused(reason),
        }
    }

    fn read(
        &self,
        path: &Path,
        text: &str,
        model: &mut Model,
    ) -> std::result::Result<Resume, String> {
        let at = |msg: String| format!("{}: {msg}", path.display());
        // The format first, so that a future layout is named as such rather
        // than as a field error.
        let format = serde_json::from_str::<serde_json::Value>(text)
            .map_err(|e| at(format!("not a checkpoint ({e})")))?
            .get("format")
            .and_then(serde_json::Value::as_u64);
        if format != Some(u64::from(FORMAT)) {
            return Err(at(format!(
                "checkpoint format {} is not this acbench's format {FORMAT}",
                format.map_or_else(|| "(none)".to_owned(), |f| f.to_string())
            )));
        }
        let m: Manifest =
            serde_json::from_str(text).map_err(|e| at(format!("malformed checkpoint ({e})")))?;
        let version = env!("CARGO_PKG_VERSION");
        if m.acbench_version != version {
            return Err(at(format!(
                "written by acbench {}, this is acbench {version}",
                m.acbench_version
            )));
        }
        if m.key != self.key {
            return Err(at(format!(
                "belongs to run {}, not {} (another spec hash)",
                m.key, self.key
            )));
        }
        if m.history.len() != m.next_epoch {
            return Err(at(format!(
                "holds {} finished epochs but resumes at epoch {}",
                m.history.len(),
                m.next_epoch
            )));
        }
        if m.tensors.contains(['/', '\\']) || m.tensors.starts_with('.') {
            return Err(at(format!(
                "names an unexpected tensor file `{}`",
                m.tensors
            )));
        }
        let tensor_path = self.dir.join(&m.tensors);
        let bytes =
            fs::read(&tensor_path).map_err(|e| format!("{}: {e}", tensor_path.display()))?;
        if hex::encode(Sha256::digest(&bytes)) != m.tensors_sha256 {
            return Err(format!(
                "{}: contents do not match the checkpoint's SHA-256",
                tensor_path.display()
            ));
        }
        let mut tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| format!("{}: {e}", tensor_path.display()))?;
        let order = tensors
            .remove(ORDER)
            .ok_or_else(|| format!("{}: no `{ORDER}` tensor", tensor_path.display()))?
            .to_vec1::<u32>()
            .map_err(|e| format!("{}: `{ORDER}`: {e}", tensor_path.display()))?
            .into_iter()
            .map(|i| i as usize)
            .collect();
        restore_model(model, &mut tensors)
            .map_err(|e| format!("{}: {e}", tensor_path.display()))?;
        let optimizer = tensors
            .into_iter()
            .filter_map(|(name, t)| name.strip_prefix(OPTIM).map(|n| (n.to_owned(), t)))
            .collect();
        Ok(Resume {
            next_epoch: m.next_epoch,
            history: m.history,
            rng: m.rng,
            order,
            optimizer,
        })
    }

    /// Writes the checkpoint after an epoch, replacing the previous one.
    pub(crate) fn save(&self, snap: &Snapshot<'_>) -> Result<()> {
        let err = |path: &Path, e: &dyn std::fmt::Display| Error::Checkpoint {
            path: path.to_owned(),
            message: e.to_string(),
        };
        fs::create_dir_all(&self.dir).map_err(|e| err(&self.dir, &e))?;
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        for p in snap.model.params() {
            tensors.insert(format!("{PARAM}{}", p.name), host(p.var.as_tensor())?);
        }
        for (name, var) in snap.model.buffers() {
            tensors.insert(format!("{BUFFER}{name}"), host(var.as_tensor())?);
        }
        for (name, t) in snap.optimizer.state()? {
            tensors.insert(format!("{OPTIM}{name}"), host(&t)?);
        }
        let order: Vec<u32> = snap
            .order
            .iter()
            .map(|&i| {
                u32::try_from(i)
                    .map_err(|_| Error::Internal(format!("example index {i} exceeds u32")))
            })
            .collect::<Result<_>>()?;
        let n = order.len();
        tensors.insert(ORDER.into(), Tensor::from_vec(order, n, &Device::Cpu)?);

        let name = format!("epoch-{:04}.safetensors", snap.next_epoch);
        let final_path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        candle_core::safetensors::save(&tensors, &tmp).map_err(|e| err(&tmp, &e))?;
        let bytes = fs::read(&tmp).map_err(|e| err(&tmp, &e))?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| err(&tmp, &e))?;
        fs::rename(&tmp, &final_path).map_err(|e| err(&final_path, &e))?;

        let manifest = Manifest {
            format: FORMAT,
            acbench_version: env!("CARGO_PKG_VERSION").to_owned(),
            key: self.key.clone(),
            next_epoch: snap.next_epoch,
            tensors: name.clone(),
            tensors_sha256: hex::encode(Sha256::digest(&bytes)),
            rng: snap.rng,
            history: snap.history.to_vec(),
        };
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| err(&self.dir, &e))?;
        let path = self.dir.join(MANIFEST);
        write_atomically(&path, &json).map_err(|e| err(&path, &e))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| err(&self.dir, &e))?;
        // The JSON now names the new file: older tensor files are garbage.
        self.remove_tensor_files_except(Some(&name));
        Ok(())
    }

    /// The run ended (finished or diverged): its checkpoint is deleted,
    /// unless it is to be kept.
    pub fn finish(&self) -> std::io::Result<()> {
        if self.keep_last {
            return Ok(());
        }
        self.remove()
    }

    /// Deletes the checkpoint (a forced re-run starts from scratch).
    pub fn remove(&self) -> std::io::Result<()> {
        match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn remove_tensor_files_except(&self, keep: Option<&str>) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let stale = name.starts_with("epoch-")
                && (name.ends_with(".safetensors") || name.ends_with(".tmp"))
                && Some(&*name) != keep;
            if stale {
                // A file that cannot be removed costs disk, not correctness.
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// Bytes a checkpoint of `model` trained by an optimiser keeping
/// `optimizer_buffers` state values per parameter value takes on disk, for
/// `train_examples` training examples (an estimate: headers and the JSON
/// are left out).
pub fn estimated_bytes(model: &Model, optimizer_buffers: usize, train_examples: usize) -> u64 {
    let params: usize = model.params().iter().map(|p| p.var.elem_count()).sum();
    let buffers: usize = model.buffers().iter().map(|(_, v)| v.elem_count()).sum();
    let values = params * (1 + optimizer_buffers) + buffers;
    (values * 4 + train_examples * 4) as u64
}

/// A CPU copy of `t` in its own dtype (safetensors are written from the host).
fn host(t: &Tensor) -> Result<Tensor> {
    Ok(t.to_device(&Device::Cpu)?)
}

/// Copies every `param/` and `buffer/` tensor into `model`, after checking
/// that all are present with the model's shapes.
fn restore_model(
    model: &mut Model,
    tensors: &mut HashMap<String, Tensor>,
) -> std::result::Result<(), String> {
    let mut plan = Vec::new();
    let targets = model
        .params()
        .iter()
        .map(|p| (format!("{PARAM}{}", p.name), &p.var))
        .chain(
            model
                .buffers()
                .iter()
                .map(|(n, v)| (format!("{BUFFER}{n}"), v)),
        );
    for (name, var) in targets {
        let t = tensors
            .remove(&name)
            .ok_or_else(|| format!("tensor `{name}` is missing"))?;
        if t.shape() != var.shape() {
            return Err(format!(
                "tensor `{name}` has shape {:?}, the model {:?}",
                t.dims(),
                var.dims()
            ));
        }
        let t = t
            .to_dtype(var.dtype())
            .and_then(|t| t.to_device(var.device()))
            .map_err(|e| format!("tensor `{name}`: {e}"))?;
        plan.push((var, t));
    }
    if let Some(extra) = tensors
        .keys()
        .find(|k| k.starts_with(PARAM) || k.starts_with(BUFFER))
    {
        return Err(format!(
            "tensor `{extra}` belongs to no parameter of the model"
        ));
    }
    for (var, t) in plan {
        var.set(&t).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)
}
