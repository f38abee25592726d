//! `acbench export mlflow OUT --uri URL`: every run of an output folder's
//! ledger as an MLflow run, through the tracking server's REST API.
//!
//! One MLflow run per ledger run, named `model/activation/optimizer/dataset/seed`,
//! tagged with its ledger key (`acbench.spec_hash`), status and labels;
//! its resolved spec as parameters, its epochs as metrics (step = epoch),
//! the folder's `report.*` files as artifacts where the server stores them.
//!
//! Exporting again adds nothing twice: a ledger run whose key the
//! experiment already holds, exported completely (tag `acbench.export`)
//! with the same status and epoch count, is skipped. An export that was
//! interrupted, or made while the run was still training (or before it was
//! trained again), is deleted and the run exported anew, since MLflow's
//! parameters cannot change and its metrics only grow.

mod client;
pub mod record;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use acbench_ledger::{RunStatus, StoredRun};

pub use client::{Client, MlflowError};
use record::{EXPORT_COMPLETE, KeyValue, TAG_EPOCHS, TAG_EXPORT, TAG_SPEC_HASH, TAG_STATUS};

/// What can stop an export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Finding or creating the experiment failed.
    #[error("experiment '{name}': {error}")]
    Experiment {
        /// The experiment's name.
        name: String,
        /// What failed.
        error: Box<MlflowError>,
    },
    /// The experiment exists but was deleted.
    #[error(
        "experiment '{name}' on {uri} is deleted: restore it in MLflow (or delete it for good \
         with `mlflow gc`), or choose another with --experiment"
    )]
    DeletedExperiment {
        /// The experiment's name.
        name: String,
        /// The server.
        uri: String,
    },
    /// Exporting one run failed.
    #[error("run {name} ({key}): {error}")]
    Run {
        /// The run's name (`model/activation/optimizer/dataset/seed`).
        name: String,
        /// Its ledger key.
        key: String,
        /// What failed.
        error: Box<MlflowError>,
    },
}

/// What an export did.
#[derive(Debug, Default)]
pub struct Summary {
    /// The experiment's id.
    pub experiment_id: String,
    /// Whether the experiment was created by this export.
    pub experiment_created: bool,
    /// MLflow runs created.
    pub created: usize,
    /// Of those, how many replaced an interrupted or outdated export.
    pub replaced: usize,
    /// Ledger runs skipped: already exported.
    pub skipped: usize,
    /// Artifact files uploaded.
    pub artifacts_uploaded: usize,
    /// Why artifacts were not uploaded, where some were not (empty when
    /// every file went to every created run).
    pub artifacts_skipped: Vec<String>,
}

/// What happened to one ledger run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Created as the MLflow run with this id.
    Created {
        /// The MLflow run id.
        run_id: String,
        /// Whether an interrupted or outdated export was deleted for it.
        replaced: bool,
    },
    /// Already exported as the MLflow run with this id.
    Skipped {
        /// The MLflow run id.
        run_id: String,
    },
}

/// Exports `runs` into the experiment `experiment` (created if missing) on
/// `client`'s server, with the `artifacts` files (paths) attached to each
/// run created; `report` hears of each run as it is done.
pub fn export(
    client: &Client,
    experiment: &str,
    runs: &[StoredRun],
    artifacts: &[PathBuf],
    report: &mut dyn FnMut(&StoredRun, &Outcome),
) -> Result<Summary, ExportError> {
    let mut summary = Summary::default();
    let experiment_error = |error| ExportError::Experiment {
        name: experiment.to_owned(),
        error: Box::new(error),
    };
    match client
        .experiment_by_name(experiment)
        .map_err(experiment_error)?
    {
        Some(e) if e.lifecycle_stage == "deleted" => {
            return Err(ExportError::DeletedExperiment {
                name: experiment.to_owned(),
                uri: client.uri().to_owned(),
            });
        }
        Some(e) => summary.experiment_id = e.experiment_id,
        None => {
            summary.experiment_id = client
                .create_experiment(experiment)
                .map_err(experiment_error)?;
            summary.experiment_created = true;
        }
    }
    let mut artifacts = Artifacts::read(artifacts);
    for run in runs {
        let outcome =
            export_run(client, &summary.experiment_id, run, &mut artifacts).map_err(|error| {
                ExportError::Run {
                    name: record::run_name(run),
                    key: run.key.clone(),
                    error: Box::new(error),
                }
            })?;
        match &outcome {
            Outcome::Created { replaced, .. } => {
                summary.created += 1;
                summary.replaced += usize::from(*replaced);
            }
            Outcome::Skipped { .. } => summary.skipped += 1,
        }
        report(run, &outcome);
    }
    summary.artifacts_uploaded = artifacts.uploaded;
    summary.artifacts_skipped = artifacts.skipped;
    summary.artifacts_skipped.extend(artifacts.unavailable);
    Ok(summary)
}

/// Exports one run, unless it is there already.
fn export_run(
    client: &Client,
    experiment_id: &str,
    run: &StoredRun,
    artifacts: &mut Artifacts,
) -> Result<Outcome, MlflowError> {
    // Keys are hex digests: nothing to quote.
    let filter = format!("tags.\"{TAG_SPEC_HASH}\" = '{}'", run.key);
    let existing = client.search_runs(experiment_id, &filter)?;
    let epochs = run.epochs.len().to_string();
    let status = run.status.to_string();
    let (current, stale): (Vec<_>, Vec<_>) = existing.into_iter().partition(|r| {
        r.tag(TAG_EXPORT) == Some(EXPORT_COMPLETE)
            && r.tag(TAG_STATUS) == Some(status.as_str())
            && r.tag(TAG_EPOCHS) == Some(epochs.as_str())
    });
    if let Some(done) = current.first() {
        return Ok(Outcome::Skipped {
            run_id: done.info.run_id.clone(),
        });
    }
    for old in &stale {
        client.delete_run(&old.info.run_id)?;
    }

    let now = now_ms();
    let params = record::spec_params(&run.spec);
    let mut tags = record::run_tags(run);
    tags.extend(params.truncated_tag());
    // The key goes in at creation, so that an interrupted export is found
    // (and replaced) by the next one.
    let created = client.create_run(
        experiment_id,
        &record::run_name(run),
        now,
        &[KeyValue::tag(TAG_SPEC_HASH, &run.key)],
    )?;
    let run_id = created.info.run_id.clone();
    let metrics = record::epoch_metrics(&run.epochs, now);
    for batch in record::batches(params.params, tags, metrics) {
        client.log_batch(&run_id, &batch)?;
    }
    artifacts.upload(client, &created.info.artifact_uri);
    let end_time = (!matches!(run.status, RunStatus::Running)).then(now_ms);
    client.update_run(&run_id, record::mlflow_status(&run.status), end_time)?;
    client.set_tag(&run_id, TAG_EXPORT, EXPORT_COMPLETE)?;
    Ok(Outcome::Created {
        run_id,
        replaced: !stale.is_empty(),
    })
}

/// The report files to attach, and how uploading them goes.
struct Artifacts {
    files: Vec<(String, Vec<u8>)>,
    uploaded: usize,
    /// Set at the first failed upload: later runs do not try again.
    unavailable: Option<String>,
    /// Files left out.
    skipped: Vec<String>,
}

impl Artifacts {
    /// Reads `paths`; a file that cannot be read is left out, and said so
    /// in [`Summary::artifacts_skipped`].
    fn read(paths: &[PathBuf]) -> Self {
        let mut files = Vec::new();
        let mut skipped = Vec::new();
        for path in paths {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match std::fs::read(path) {
                Ok(bytes) => files.push((name, bytes)),
                Err(e) => skipped.push(format!("cannot read {}: {e}", path.display())),
            }
        }
        Self {
            files,
            uploaded: 0,
            unavailable: None,
            skipped,
        }
    }

    /// Uploads every file into the run whose artifacts go to
    /// `artifact_uri`, unless an upload failed before.
    fn upload(&mut self, client: &Client, artifact_uri: &str) {
        if self.unavailable.is_some() || self.files.is_empty() {
            return;
        }
        let Some(root) = served_artifact_path(artifact_uri) else {
            self.unavailable = Some(format!(
                "the runs' artifacts go to {artifact_uri}, which the tracking server does not \
                 store itself (start it with --serve-artifacts to have them uploaded)"
            ));
            return;
        };
        for (name, bytes) in &self.files {
            let path = format!("{root}/{name}");
            if let Err(e) = client.upload_artifact(&path, bytes) {
                self.unavailable = Some(e.to_string());
                return;
            }
            self.uploaded += 1;
        }
    }
}

/// The path under the server's artifact root of an artifact location the
/// server stores itself: `mlflow-artifacts:/1/ID/artifacts` and
/// `mlflow-artifacts://host:port/1/ID/artifacts` give `1/ID/artifacts`,
/// as does an `http(s)://.../api/2.0/mlflow-artifacts/artifacts/1/ID/artifacts`
/// URL. Any other location (a local path, `s3://`, ...) is not
/// uploadable through the server: `None`.
pub fn served_artifact_path(artifact_uri: &str) -> Option<String> {
    const ANCHOR: &str = "/api/2.0/mlflow-artifacts/artifacts/";
    let path = if let Some(rest) = artifact_uri.strip_prefix("mlflow-artifacts:") {
        match rest.strip_prefix("//") {
            // Past the host.
            Some(with_host) => with_host.find('/').map_or("", |i| &with_host[i..]),
            None => rest,
        }
    } else if artifact_uri.starts_with("http://") || artifact_uri.starts_with("https://") {
        let i = artifact_uri.find(ANCHOR)?;
        &artifact_uri[i + ANCHOR.len()..]
    } else {
        return None;
    };
    let path = path.trim_matches('/');
    (!path.is_empty()).then(|| path.to_owned())
}

/// The report files of the output folder `dir`: its `report.*` files.
pub fn report_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_file() && p.file_stem().is_some_and(|s| s == "report") && p.extension().is_some()
        })
        .collect();
    files.sort();
    files
}

/// The experiment's default name: the suite name of the runs if they
/// share one, else `fallback` (the output folder's recorded name) if
/// given, else `acbench`.
pub fn default_experiment(runs: &[StoredRun], fallback: Option<&str>) -> String {
    let mut suites = runs.iter().map(|r| r.labels.suite.as_str());
    match suites.next() {
        Some(first) if suites.all(|s| s == first) && !first.is_empty() => first.to_owned(),
        _ => fallback
            .filter(|n| !n.is_empty())
            .unwrap_or("acbench")
            .to_owned(),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_paths_under_the_servers_root() {
        let p = |u| served_artifact_path(u);
        assert_eq!(
            p("mlflow-artifacts:/1/abc/artifacts").as_deref(),
            Some("1/abc/artifacts")
        );
        assert_eq!(
            p("mlflow-artifacts://host:5000/1/abc/artifacts").as_deref(),
            Some("1/abc/artifacts")
        );
        assert_eq!(
            p("http://h:5000/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts").as_deref(),
            Some("1/abc/artifacts")
        );
        assert_eq!(p("/tmp/mlruns/1/abc/artifacts"), None);
        assert_eq!(p("file:///tmp/mlruns/1/abc/artifacts"), None);
        assert_eq!(p("s3://bucket/1/abc/artifacts"), None);
        assert_eq!(p("mlflow-artifacts:/"), None);
    }

    #[test]
    fn report_files_are_the_report_exports() {
        let dir = tempfile::tempdir().expect("tempdir");
        for f in [
            "report.md",
            "report.csv",
            "report.json",
            "ledger.sqlite",
            "reporting.md",
            "report",
        ] {
            std::fs::write(dir.path().join(f), "x").expect("write");
        }
        std::fs::create_dir(dir.path().join("plots")).expect("mkdir");
        let names: Vec<_> = report_files(dir.path())
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["report.csv", "report.json", "report.md"]);
    }
}
