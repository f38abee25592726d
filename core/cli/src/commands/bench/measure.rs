//! One measurement of each side, each in a child process of its own, and
//! what they report.

use std::path::Path;
use std::process::{Command, Output};

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
    pub fn from_stdout(stdout: &[u8]) -> Result<Self, String> {
        let text = String::from_utf8_lossy(stdout);
        let line = text
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('{'))
            .ok_or_else(|| format!("no JSON line in its output: {}", tail(&text)))?;
        let m: Self =
            serde_json::from_str(line).map_err(|e| format!("bad JSON line `{line}`: {e}"))?;
        if !(m.img_s.is_finite() && m.img_s > 0.0) {
            return Err(format!("reported {} images per second", m.img_s));
        }
        Ok(m)
    }
}

/// A case that could not be measured to the end.
pub(super) struct Failed {
    pub why: String,
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
                    why: format!("acbench run failed: {e}"),
                    ours,
                });
            }
        };
        if m.params != case.params {
            let why = format!(
                "the worker built {} parameters, this process {}",
                m.params, case.params
            );
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
                    why: format!("PyTorch reference failed: {e}"),
                    ours,
                });
            }
        };
        if m.params != case.params {
            let why = format!(
                "PyTorch's model has {} trainable parameters, acbench's {}: the reference did \
                 not build the identical model, so its figures are left out",
                m.params, case.params
            );
            return Err(Failed { why, ours });
        }
        eprintln!("{tag} (run {r}/{repeats}): PyTorch {}", m.describe());
        theirs.push(m);
    }
    Ok((ours, theirs))
}

/// Runs one acbench measurement in a child process (`acbench bench-worker`).
fn run_acbench(case: &Case, s: &Settings<'_>) -> Result<Measurement, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find acbench itself: {e}"))?;
    let mut cmd = Command::new(&exe);
    cmd.arg("--threads")
        .arg(s.threads.to_string())
        .arg("bench-worker")
        .args(["--model", &case.model_arg, "--act", &case.act])
        .args(s.common_args())
        .arg("--data-dir")
        .arg(s.data_dir)
        .env("RAYON_NUM_THREADS", s.threads.to_string());
    for p in &s.plugins.plugins {
        cmd.arg("--plugin").arg(p);
    }
    if s.no_fused {
        cmd.arg("--no-fused");
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    finished(&out)?;
    Measurement::from_stdout(&out.stdout)
}

/// OpenMP and MKL pools sized like torch's own before it is even imported.
pub(super) fn thread_env(threads: usize) -> [(&'static str, String); 2] {
    [
        ("OMP_NUM_THREADS", threads.to_string()),
        ("MKL_NUM_THREADS", threads.to_string()),
    ]
}

/// `Ok` for a successful exit, else the status and the end of stderr.
pub(super) fn finished(out: &Output) -> Result<(), String> {
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{}:\n{}",
        out.status,
        tail(&String::from_utf8_lossy(&out.stderr))
    ))
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
        assert!(Measurement::from_stdout(b"no json").is_err());
        assert!(Measurement::from_stdout(b"{\"img_s\": 0, \"params\": 1}").is_err());
    }

    #[test]
    fn tails_keep_the_last_twelve_lines() {
        let text: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        let t = tail(&text);
        assert!(t.starts_with("line 9\n") && t.ends_with("line 20"), "{t}");
        assert_eq!(tail("  \n"), "(nothing)");
    }
}
