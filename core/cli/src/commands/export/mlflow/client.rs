//! A small client of the MLflow tracking server's REST API
//! (`/api/2.0/mlflow/...`, and `/api/2.0/mlflow-artifacts/...` for
//! artifacts the server stores itself): the calls `acbench export mlflow`
//! makes, with typed errors that name the URL.
//!
//! `MLFLOW_TRACKING_TOKEN`, when set, is sent as a bearer token.

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::record::{Batch, KeyValue};

/// What can go wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum MlflowError {
    /// The tracking URI is not an `http://` or `https://` URL.
    #[error("--uri {uri}: not an http:// or https:// URL of an MLflow tracking server")]
    BadUri {
        /// What was given.
        uri: String,
    },
    /// No answer: the server is down, the address wrong, a timeout.
    #[error(
        "cannot reach the MLflow tracking server at {url}: {message} (is it running, and is --uri right?)"
    )]
    Unreachable {
        /// The URL called.
        url: String,
        /// What failed.
        message: String,
    },
    /// The server answered with an error.
    #[error("MLflow server: {url} answered HTTP {status}{}: {message}", code_text(.code))]
    Api {
        /// The URL called.
        url: String,
        /// HTTP status.
        status: u16,
        /// MLflow's `error_code` (`RESOURCE_DOES_NOT_EXIST`, ...), if it sent one.
        code: Option<String>,
        /// MLflow's message, or the body.
        message: String,
    },
    /// The server answered, but not what an MLflow server answers.
    #[error(
        "MLflow server: {url} answered something unexpected ({message}); is --uri an MLflow tracking server?"
    )]
    BadResponse {
        /// The URL called.
        url: String,
        /// What was wrong.
        message: String,
    },
}

fn code_text(code: &Option<String>) -> String {
    code.as_ref().map(|c| format!(" {c}")).unwrap_or_default()
}

impl MlflowError {
    /// MLflow's error code, for errors the server sent.
    pub fn code(&self) -> Option<&str> {
        match self {
            MlflowError::Api { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

/// An experiment.
#[derive(Debug, Clone, Deserialize)]
pub struct Experiment {
    /// Its id.
    pub experiment_id: String,
    /// `active` or `deleted`.
    #[serde(default)]
    pub lifecycle_stage: String,
}

/// A run, as `runs/create` and `runs/search` return it.
#[derive(Debug, Clone, Deserialize)]
pub struct Run {
    /// Id and artifact location.
    pub info: RunInfo,
    /// Tags (parameters and metrics are not read).
    #[serde(default)]
    pub data: RunData,
}

impl Run {
    /// The value of tag `key`.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.data
            .tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }
}

/// Identity and artifact location of a run.
#[derive(Debug, Clone, Deserialize)]
pub struct RunInfo {
    /// Its id.
    pub run_id: String,
    /// Where its artifacts go (`mlflow-artifacts:/1/ID/artifacts` when the
    /// server stores them).
    #[serde(default)]
    pub artifact_uri: String,
}

/// The part of a run's data that is read back.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RunData {
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

/// A connection to one tracking server.
pub struct Client {
    base: String,
    agent: ureq::Agent,
    token: Option<String>,
}

impl Client {
    /// A client of the server at `uri` (`http://host:port`, possibly with
    /// a path prefix). Nothing is sent yet.
    pub fn new(uri: &str) -> Result<Self, MlflowError> {
        let base = uri.trim().trim_end_matches('/').to_owned();
        let scheme_ok = ["http://", "https://"]
            .iter()
            .any(|s| base.len() > s.len() && base[..s.len()].eq_ignore_ascii_case(s));
        if !scheme_ok {
            return Err(MlflowError::BadUri {
                uri: uri.to_owned(),
            });
        }
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .timeout_per_read(Some(Duration::from_secs(120)))
            // MLflow's error bodies say what is wrong: read them.
            .http_status_as_error(false)
            .build()
            .into();
        let token = std::env::var("MLFLOW_TRACKING_TOKEN")
            .ok()
            .filter(|t| !t.is_empty());
        Ok(Self { base, agent, token })
    }

    /// The server's URL, as given.
    pub fn uri(&self) -> &str {
        &self.base
    }

    /// The experiment called `name`, if there is one (it may be deleted).
    pub fn experiment_by_name(&self, name: &str) -> Result<Option<Experiment>, MlflowError> {
        #[derive(Deserialize)]
        struct Answer {
            experiment: Experiment,
        }
        let url = self.api("experiments/get-by-name");
        let request = self.agent.get(&url).query("experiment_name", name);
        match self.call::<Answer>(&url, self.auth(request).call()) {
            Ok(a) => Ok(Some(a.experiment)),
            Err(e) if e.code() == Some("RESOURCE_DOES_NOT_EXIST") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates the experiment `name`; returns its id.
    pub fn create_experiment(&self, name: &str) -> Result<String, MlflowError> {
        #[derive(Deserialize)]
        struct Answer {
            experiment_id: String,
        }
        let a: Answer = self.post("experiments/create", &json!({ "name": name }))?;
        Ok(a.experiment_id)
    }

    /// The active runs of experiment `experiment_id` that match `filter`
    /// (MLflow's search syntax), every page of them.
    pub fn search_runs(&self, experiment_id: &str, filter: &str) -> Result<Vec<Run>, MlflowError> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            runs: Vec<Run>,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        let mut runs = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut body = json!({
                "experiment_ids": [experiment_id],
                "filter": filter,
                "run_view_type": "ACTIVE_ONLY",
                "max_results": 1000,
            });
            if let Some(t) = &page_token {
                body["page_token"] = json!(t);
            }
            let a: Answer = self.post("runs/search", &body)?;
            runs.extend(a.runs);
            match a.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => page_token = Some(t),
                None => return Ok(runs),
            }
        }
    }

    /// Creates a run named `name` in experiment `experiment_id`, started at
    /// `start_time` (ms since the epoch), with `tags`.
    pub fn create_run(
        &self,
        experiment_id: &str,
        name: &str,
        start_time: i64,
        tags: &[KeyValue],
    ) -> Result<Run, MlflowError> {
        #[derive(Deserialize)]
        struct Answer {
            run: Run,
        }
        let body = json!({
            "experiment_id": experiment_id,
            "run_name": name,
            "start_time": start_time,
            "tags": tags,
        });
        let a: Answer = self.post("runs/create", &body)?;
        Ok(a.run)
    }

    /// Logs one batch of metrics, parameters and tags to run `run_id`.
    pub fn log_batch(&self, run_id: &str, batch: &Batch) -> Result<(), MlflowError> {
        let body = json!({
            "run_id": run_id,
            "metrics": batch.metrics,
            "params": batch.params,
            "tags": batch.tags,
        });
        self.post::<serde_json::Value>("runs/log-batch", &body)
            .map(drop)
    }

    /// Sets tag `key` of run `run_id` to `value`.
    pub fn set_tag(&self, run_id: &str, key: &str, value: &str) -> Result<(), MlflowError> {
        let body = json!({ "run_id": run_id, "key": key, "value": value });
        self.post::<serde_json::Value>("runs/set-tag", &body)
            .map(drop)
    }

    /// Sets the status of run `run_id` (`FINISHED`, `FAILED`, ...) and,
    /// if given, its end time (ms since the epoch).
    pub fn update_run(
        &self,
        run_id: &str,
        status: &str,
        end_time: Option<i64>,
    ) -> Result<(), MlflowError> {
        let mut body = json!({ "run_id": run_id, "status": status });
        if let Some(t) = end_time {
            body["end_time"] = json!(t);
        }
        self.post::<serde_json::Value>("runs/update", &body)
            .map(drop)
    }

    /// Marks run `run_id` deleted.
    pub fn delete_run(&self, run_id: &str) -> Result<(), MlflowError> {
        self.post::<serde_json::Value>("runs/delete", &json!({ "run_id": run_id }))
            .map(drop)
    }

    /// Stores `bytes` as the artifact at `path` under the server's own
    /// artifact root (`EXPERIMENT/RUN/artifacts/report.md`); works when the
    /// server serves artifacts (`mlflow server --serve-artifacts`, the
    /// default since MLflow 2).
    pub fn upload_artifact(&self, path: &str, bytes: &[u8]) -> Result<(), MlflowError> {
        let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/{path}", self.base);
        let request = self
            .agent
            .put(&url)
            .header("Content-Type", "application/octet-stream");
        self.call::<serde_json::Value>(&url, self.auth(request).send(bytes))
            .map(drop)
    }

    fn api(&self, endpoint: &str) -> String {
        format!("{}/api/2.0/mlflow/{endpoint}", self.base)
    }

    fn auth<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => request.header("Authorization", format!("Bearer {t}")),
            None => request,
        }
    }

    fn post<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        body: &serde_json::Value,
    ) -> Result<T, MlflowError> {
        let url = self.api(endpoint);
        let request = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json");
        self.call(&url, self.auth(request).send(body.to_string()))
    }

    /// The answer to a call of `url`, as JSON `T`; an empty body reads as
    /// `{}`.
    fn call<T: DeserializeOwned>(
        &self,
        url: &str,
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, MlflowError> {
        let mut response = sent.map_err(|e| MlflowError::Unreachable {
            url: url.to_owned(),
            message: e.to_string(),
        })?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| MlflowError::Unreachable {
                url: url.to_owned(),
                message: format!("reading the answer: {e}"),
            })?;
        if !(200..300).contains(&status) {
            return Err(api_error(url, status, &text));
        }
        let text = if text.trim().is_empty() { "{}" } else { &text };
        serde_json::from_str(text).map_err(|e| MlflowError::BadResponse {
            url: url.to_owned(),
            message: format!("HTTP {status}, {e}: {}", excerpt(text)),
        })
    }
}

/// The error of an answer with status `status` and body `text`: MLflow's
/// `{"error_code": ..., "message": ...}`, FastAPI's `{"detail": ...}`, or
/// the start of the body.
fn api_error(url: &str, status: u16, text: &str) -> MlflowError {
    let json: Option<serde_json::Value> = serde_json::from_str(text).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|j| j.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    MlflowError::Api {
        url: url.to_owned(),
        status,
        code: field("error_code"),
        message: field("message")
            .or_else(|| field("detail"))
            .unwrap_or_else(|| excerpt(text)),
    }
}

/// The start of `text`, on one line.
fn excerpt(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let cut = super::record::truncate_chars(&one_line, 300);
    if cut.len() < one_line.len() {
        format!("{cut}...")
    } else if cut.is_empty() {
        "(empty body)".to_owned()
    } else {
        cut.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_are_taken() {
        assert!(Client::new("http://127.0.0.1:5000/").is_ok());
        assert!(Client::new("HTTPS://mlflow.example").is_ok());
        for bad in ["127.0.0.1:5000", "file:///tmp/mlruns", "http://", ""] {
            assert!(
                matches!(Client::new(bad), Err(MlflowError::BadUri { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn server_errors_keep_mlflows_code_and_message() {
        let e = api_error(
            "http://h/api/2.0/mlflow/runs/log-batch",
            400,
            r#"{"error_code": "INVALID_PARAMETER_VALUE", "message": "Changing param values is not allowed."}"#,
        );
        assert_eq!(e.code(), Some("INVALID_PARAMETER_VALUE"));
        assert_eq!(
            e.to_string(),
            "MLflow server: http://h/api/2.0/mlflow/runs/log-batch answered HTTP 400 \
             INVALID_PARAMETER_VALUE: Changing param values is not allowed."
        );
        let e = api_error(
            "http://h/x",
            503,
            r#"{"detail": "Artifact serving is disabled."}"#,
        );
        assert!(
            e.to_string()
                .ends_with("HTTP 503: Artifact serving is disabled.")
        );
        let e = api_error("http://h/x", 502, "<html>\n bad gateway </html>");
        assert!(
            e.to_string()
                .ends_with("HTTP 502: <html> bad gateway </html>")
        );
    }

    #[test]
    fn an_unreachable_server_is_an_error_not_a_panic() {
        // Port 1 on the loopback: nothing listens there.
        let client = Client::new("http://127.0.0.1:1").expect("client");
        let e = client.experiment_by_name("x").expect_err("no server");
        assert!(matches!(e, MlflowError::Unreachable { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("http://127.0.0.1:1/api/2.0/mlflow/experiments/get-by-name")
        );
    }
}
