//! One measurement of each side, each in a child process of its own, and
//! what they report: one JSON line on stdout ([`Measurement`]), or a
//! [`ChildError`] saying why there is none.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};

use serde::{Deserialize, Serialize};

use super::reference::{Reference, run_pytorch};
use super::{Case, MISSING, Settings};

/// One measurement, from the worker or the reference script (one JSON line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Measurement {
    /// Images per second over the timed batches.
    pub img_s: f64,
    /// Peak RSS of the measuring process itself, MiB.
    pub peak_rss_mb: Option<f64>,
    /// Trainable scalars of the model it built.
    pub params: usize,
    /// Seconds of the timed batches.
    #[serde(default)]
    pub seconds: Option<f64>,
    /// Loss of the last timed batch.
    #[serde(default)]
    pub final_loss: Option<f64>,
    /// PyTorch's version (reference only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch: Option<String>,
}

impl Measurement {
    pub fn describe(&self) -> String {
        format!(
            "{:.1} img/s, peak RSS {}, {} parameters",
            self.img_s,
            self.peak_rss_mb
                .map_or_else(|| MISSING.to_owned(), |m| format!("{m:.1} MB")),
            self.params
        )
    }

    /// The last stdout line that is a JSON object, parsed.
    pub fn from_stdout(stdout: &[u8]) -> Result<Self, ProtocolError> {
        let text = String::from_utf8_lossy(stdout);
        let line = text
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('{'))
            .ok_or_else(|| ProtocolError::NoReport { tail: tail(&text) })?;
        let m: Self = serde_json::from_str(line).map_err(|source| ProtocolError::BadJson {
            line: line.to_owned(),
            source,
        })?;
        if !(m.img_s.is_finite() && m.img_s > 0.0) {
            return Err(ProtocolError::BadRate { img_s: m.img_s });
        }
        Ok(m)
    }
}

/// A child's stdout that is not the report the protocol asks for.
#[derive(Debug, thiserror::Error)]
pub(super) enum ProtocolError {
    /// No line is a JSON object.
    #[error("no JSON line in its output: {tail}")]
    NoReport {
        /// The end of its output.
        tail: String,
    },
    /// The last JSON line is not a [`Measurement`].
    #[error("bad JSON line `{line}`: {source}")]
    BadJson {
        /// The line.
        line: String,
        /// What the parser said.
        source: serde_json::Error,
    },
    /// The rate is not a positive number.
    #[error("reported {img_s} images per second")]
    BadRate {
        /// The rate reported.
        img_s: f64,
    },
}

/// Why a child process gave no measurement.
#[derive(Debug, thiserror::Error)]
pub(super) enum ChildError {
    /// acbench cannot find its own executable to start the worker.
    #[error("cannot find acbench itself: {0}")]
    NoExecutable(#[source] std::io::Error),
    /// The program cannot be started.
    #[error("cannot run {}: {source}", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// It exited with an error.
    #[error("{status}:\n{stderr}")]
    Exit {
        /// Its exit status.
        status: ExitStatus,
        /// The end of its stderr.
        stderr: String,
    },
    /// It finished, but its report breaks the protocol.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

/// Why a case could not be measured to the end.
#[derive(Debug, thiserror::Error)]
pub(super) enum CaseError {
    /// acbench's worker gave no measurement.
    #[error("acbench run failed: {0}")]
    Ours(#[source] ChildError),
    /// The reference script gave no measurement.
    #[error("PyTorch reference failed: {0}")]
    Reference(#[source] ChildError),
    /// The worker built another model than this process.
    #[error("the worker built {worker} parameters, this process {here}")]
    WorkerModel {
        /// Trainable scalars of the worker's model.
        worker: usize,
        /// Trainable scalars of this process's model.
        here: usize,
    },
    /// The reference built another model than acbench.
    #[error(
        "PyTorch's model has {theirs} trainable parameters, acbench's {ours}: the reference did \
         not build the identical model, so its figures are left out"
    )]
    ReferenceModel {
        /// Trainable scalars of PyTorch's model.
        theirs: usize,
        /// Trainable scalars of acbench's model.
        ours: usize,
    },
}

/// A case that could not be measured to the end.
pub(super) struct Failed {
    pub why: CaseError,
    /// acbench's measurements before the failure.
    pub ours: Vec<Measurement>,
}

/// Both sides' measurements of one case, alternating, `repeats` times. On a
/// failure, PyTorch's are dropped: a reference that failed once, or built
/// another model, is not reported.
pub(super) fn measure(
    case: &Case,
    tag: &str,
    settings: &Settings<'_>,
    reference: &Reference,
    spec_path: &Path,
) -> Result<(Vec<Measurement>, Vec<Measurement>), Failed> {
    let repeats = settings.repeats;
    let mut ours = Vec::with_capacity(repeats);
    let mut theirs = Vec::with_capacity(repeats);
    for r in 1..=repeats {
        let m = match run_acbench(case, settings) {
            Ok(m) => m,
            Err(e) => {
                return Err(Failed {
                    why: CaseError::Ours(e),
                    ours,
                });
            }
        };
        if m.params != case.params {
            let why = CaseError::WorkerModel {
                worker: m.params,
                here: case.params,
            };
            return Err(Failed { why, ours });
        }
        eprintln!("{tag} (run {r}/{repeats}): acbench {}", m.describe());
        ours.push(m);
        let Reference::Ready { python, script, .. } = reference else {
            continue;
        };
        let m = match run_pytorch(python, script, spec_path, settings) {
            Ok(m) => m,
            Err(e) => {
                return Err(Failed {
                    why: CaseError::Reference(e),
                    ours,
                });
            }
        };
        if m.params != case.params {
            let why = CaseError::ReferenceModel {
                theirs: m.params,
                ours: case.params,
            };
            return Err(Failed { why, ours });
        }
        eprintln!("{tag} (run {r}/{repeats}): PyTorch {}", m.describe());
        theirs.push(m);
    }
    Ok((ours, theirs))
}

/// Runs one acbench measurement in a child process (`acbench bench-worker`).
fn run_acbench(case: &Case, s: &Settings<'_>) -> Result<Measurement, ChildError> {
    let exe = std::env::current_exe().map_err(ChildError::NoExecutable)?;
    let mut cmd = Command::new(&exe);
    cmd.arg("--threads")
        .arg(s.threads.to_string())
        .arg("bench-worker")
        .args(["--model", &case.model_arg, "--act", &case.act])
        .args(s.common_args())
        .arg("--data-dir")
        .arg(s.data_dir)
        .env("RAYON_NUM_THREADS", s.threads.to_string());
    for p in &s.activations.plugins.plugins {
        cmd.arg("--plugin").arg(p);
    }
    if s.activations.no_fused {
        cmd.arg("--no-fused");
    }
    let out = cmd.output().map_err(|source| ChildError::Spawn {
        program: exe.clone(),
        source,
    })?;
    report(&out)
}

/// OpenMP and MKL pools sized like torch's own before it is even imported.
pub(super) fn thread_env(threads: usize) -> [(&'static str, String); 2] {
    [
        ("OMP_NUM_THREADS", threads.to_string()),
        ("MKL_NUM_THREADS", threads.to_string()),
    ]
}

/// The measurement a child that ended reports: its JSON line after a
/// successful exit, else its status and the end of its stderr.
pub(super) fn report(out: &Output) -> Result<Measurement, ChildError> {
    if !out.status.success() {
        return Err(ChildError::Exit {
            status: out.status,
            stderr: tail(&String::from_utf8_lossy(&out.stderr)),
        });
    }
    Ok(Measurement::from_stdout(&out.stdout)?)
}

/// The last lines of a child's output, for error messages.
pub(super) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let start = lines.len().saturating_sub(12);
    let t = lines[start..].join("\n");
    if t.is_empty() {
        "(nothing)".to_owned()
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurements_parse_from_the_last_json_line() {
        let out = b"some log line\n{\"img_s\": 12.5, \"peak_rss_mb\": 3.0, \"params\": 7, \
                    \"torch\": \"2.15.0\", \"threads\": 2}\n";
        let got = Measurement::from_stdout(out).expect("parses");
        assert_eq!((got.img_s, got.params), (12.5, 7));
        assert_eq!(got.torch.as_deref(), Some("2.15.0"));
        assert!(matches!(
            Measurement::from_stdout(b"no json"),
            Err(ProtocolError::NoReport { .. })
        ));
        assert!(matches!(
            Measurement::from_stdout(b"{\"img_s\": 1}"),
            Err(ProtocolError::BadJson { .. })
        ));
        assert!(matches!(
            Measurement::from_stdout(b"{\"img_s\": 0, \"params\": 1}"),
            Err(ProtocolError::BadRate { .. })
        ));
    }

    #[test]
    fn tails_keep_the_last_twelve_lines() {
        let text: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        let t = tail(&text);
        assert!(t.starts_with("line 9\n") && t.ends_with("line 20"), "{t}");
        assert_eq!(tail("  \n"), "(nothing)");
    }
}
