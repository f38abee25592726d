//! The PyTorch side: finding a python with torch, what the reference script
//! is told to build, and running it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use acbench_dsl::ir::Network;
use acbench_engine::activation::Registry;
use acbench_engine::model::Model;
use acbench_plugin_api::Constraint;
use miette::miette;
use serde::{Deserialize, Serialize};

use super::Settings;
use super::measure::{ChildError, Measurement, report, tail, thread_env};

/// The PyTorch reference, written to a temporary file for each invocation.
const PYTORCH_SCRIPT: &str = include_str!("../../../../../bench/pytorch_reference.py");

/// The reference's exit status when torch (or numpy) cannot be imported.
const EXIT_NO_TORCH: i32 = 3;

/// What to do when there is no usable python; the version is the setup
/// script's setting.
const SETUP_HINT: &str = "create it with bench/setup-pytorch.sh (a CPU-only torch venv in \
                          ~/.cache/acbench/torch-venv; ACBENCH_TORCH_VERSION picks the torch \
                          version), or point --python / $ACBENCH_TORCH_PYTHON at a python that \
                          has torch";

/// Whether and how the PyTorch side runs.
pub(super) enum Reference {
    /// `--no-pytorch`.
    Off,
    /// Asked for but not runnable; why, and what to do.
    Unavailable(String),
    /// Probed: torch imports.
    Ready {
        python: PathBuf,
        script: PathBuf,
        torch: String,
    },
}

impl Reference {
    /// Finds the python, writes the script into `scratch` and checks that
    /// torch imports (`--probe`).
    pub fn probe(explicit: Option<PathBuf>, scratch: &Path) -> Self {
        let (python, from) = match explicit {
            Some(p) => (p, "--python"),
            None => match std::env::var_os("ACBENCH_TORCH_PYTHON").filter(|v| !v.is_empty()) {
                Some(p) => (PathBuf::from(p), "$ACBENCH_TORCH_PYTHON"),
                None => match default_python() {
                    Some(p) => (p, "the default venv"),
                    None => {
                        return Self::Unavailable(
                            "$HOME is not set, so there is no default venv; give --python or \
                             $ACBENCH_TORCH_PYTHON"
                                .to_owned(),
                        );
                    }
                },
            },
        };
        if !python.is_file() {
            return Self::Unavailable(format!(
                "no python at {} (from {from}); {SETUP_HINT}",
                python.display()
            ));
        }
        let script = scratch.join("pytorch_reference.py");
        if let Err(e) = std::fs::write(&script, PYTORCH_SCRIPT) {
            return Self::Unavailable(format!("cannot write {}: {e}", script.display()));
        }
        let out = match Command::new(&python)
            .arg(&script)
            .arg("--probe")
            .envs(thread_env(1))
            .output()
        {
            Ok(out) => out,
            Err(e) => {
                return Self::Unavailable(format!(
                    "cannot run {} (from {from}): {e}; {SETUP_HINT}",
                    python.display()
                ));
            }
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() == Some(EXIT_NO_TORCH) {
            return Self::Unavailable(format!(
                "{} (from {from}) cannot import torch; {SETUP_HINT}\n{}",
                python.display(),
                tail(&stderr)
            ));
        }
        if !out.status.success() {
            return Self::Unavailable(format!(
                "{} (from {from}) failed to run the reference script ({}); {SETUP_HINT}\n{}",
                python.display(),
                out.status,
                tail(&stderr)
            ));
        }
        #[derive(Deserialize)]
        struct Probe {
            torch: String,
        }
        let text = String::from_utf8_lossy(&out.stdout);
        match text
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Probe>(l.trim()).ok())
        {
            Some(p) => Self::Ready {
                python,
                script,
                torch: p.torch,
            },
            None => Self::Unavailable(format!(
                "{} (from {from}) did not report a torch version: {}",
                python.display(),
                tail(&text)
            )),
        }
    }
}

/// `~/.cache/acbench/torch-venv/bin/python`, where bench/setup-pytorch.sh puts it.
fn default_python() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".cache/acbench/torch-venv/bin/python"))
}

/// Runs the reference script once.
pub(super) fn run_pytorch(
    python: &Path,
    script: &Path,
    spec: &Path,
    s: &Settings<'_>,
) -> Result<Measurement, ChildError> {
    let out = Command::new(python)
        .arg(script)
        .arg("--spec")
        .arg(spec)
        .arg("--data")
        .arg(s.data_dir)
        .args(s.common_args())
        .args(["--threads", &s.threads.to_string()])
        .envs(thread_env(s.threads))
        .output()
        .map_err(|source| ChildError::Spawn {
            program: python.to_owned(),
            source,
        })?;
    report(&out)
}

/// What `pytorch_reference.py --spec` reads: the elaborated network and,
/// per act node path, the bound activation.
#[derive(Debug, Serialize)]
pub(super) struct ReferenceSpec {
    network: Network,
    acts: BTreeMap<String, BoundAct>,
}

/// The activation of one act node, with its parameters' initial values.
#[derive(Debug, Serialize)]
struct BoundAct {
    activation: String,
    formula: String,
    params: Vec<BoundParam>,
}

/// One activation parameter: one value per layer, or one per channel.
#[derive(Debug, Serialize)]
struct BoundParam {
    name: String,
    values: Vec<f32>,
    trainable: bool,
    /// Lower bound enforced after every step (`positive` parameters).
    min: Option<f64>,
}

impl ReferenceSpec {
    /// Initial values come from the built model itself, so overrides such
    /// as `lrelu:s=0.2` reach the reference exactly as acbench applied them.
    pub fn new(net: &Network, model: &Model, registry: &Registry) -> miette::Result<Self> {
        let mut acts = BTreeMap::new();
        for slot in model.act_values().map_err(miette::Report::msg)? {
            let def = &registry
                .get(&slot.activation)
                .map_err(miette::Report::msg)?
                .def;
            let params = slot
                .params
                .into_iter()
                .map(|(name, values)| {
                    let spec = def.params.iter().find(|p| p.name == name).ok_or_else(|| {
                        miette!("activation `{}` has no parameter `{name}`", def.name)
                    })?;
                    Ok(BoundParam {
                        min: match spec.constraint {
                            Constraint::None => None,
                            Constraint::Positive(min) => Some(min),
                        },
                        trainable: spec.trainable,
                        name,
                        values,
                    })
                })
                .collect::<miette::Result<Vec<_>>>()?;
            acts.insert(
                slot.path,
                BoundAct {
                    activation: slot.activation,
                    formula: def.formula.clone(),
                    params,
                },
            );
        }
        Ok(Self {
            network: net.clone(),
            acts,
        })
    }
}
