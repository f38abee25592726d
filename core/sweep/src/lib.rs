//! Sweeps: [rhai](https://rhai.rs) scripts that decide as they go which runs
//! to train (search an initial value, halve a field of activations, compare
//! per-layer with per-channel parameters), on the same runner and the same
//! kind of ledger as suites.
//!
//! Every `run`/`runs` call goes through
//! [`acbench_suite::runner::Runner::run_all`], as a suite does, into the
//! output folder's ledger ([`acbench_suite::output`]), each run keyed by
//! the hash of its resolved spec: running a
//! sweep again after a crash or Ctrl-C replays the runs it finished
//! instantly (reading their epochs back) and trains only the rest.
//!
//! # Script API
//! - `suite(path)`: a suite YAML (path relative to the script's folder) as a
//!   map; model paths in it are rewritten to be relative to the script's
//!   folder, and `name`, `description` and `out` are dropped (a run belongs
//!   to the sweep, and the sweep's `--out` decides where results go).
//! - `run(spec)`: trains one run and returns its result map. `spec` has the
//!   keys of a suite file, which must expand to exactly one run; the
//!   singular keys `model`, `activation`, `optimizer` and `seed` stand for
//!   one-element `models`, `activations`, `optimizers`, `seeds`. It is
//!   validated into the same typed `RunSpec` as a suite (unknown keys are
//!   errors naming the key, located at the `run` call). The result map:
//!   `status` (`"finished"`, `"diverged"`, `"failed"`), `error` (failed
//!   runs), `final_acc` and `best_acc` (`()` when there is none), `epochs`
//!   (maps with `epoch`, `lr`, `train_loss`, `train_acc`, `test_loss`,
//!   `test_acc`, `wall_s`), `act_params` (slot -> parameter -> values after
//!   the last epoch), `detection` (a detector's scores after the last
//!   epoch: `coco.ap50`, `voc07.map`, ...; empty for a classifier, and
//!   `final_acc` is then COCO's AP50), `wall_s` (training seconds, summed over epochs),
//!   `key`, `replayed` (found in the ledger), and the labels `model`,
//!   `activation`, `optimizer`, `dataset`, `seed`.
//! - `runs(specs)`: an array of specs; all are validated before any trains.
//! - `mean(a)`, `std(a)` (sample, n - 1), `argmax(a)`, `rank(a)` (indices,
//!   largest first; `()` and NaN rank last, so diverged runs sink).
//! - `table(rows)`, `table(rows, options)`: the report engine's terminal
//!   table of result maps (`rows` are maps returned by `run`), as a string.
//!   Options: `title`, `paper_table` (`"table1"`...), `layout`
//!   (`"activations_by_model"`, `"model_activations_by_optimizer"`,
//!   `"activations_by_dataset"`).
//! - `report(rows)`, `report(rows, options)`: writes the exports (text,
//!   Markdown, CSV, JSON, LaTeX, HTML) and SVG plots into the output folder
//!   and returns the written paths. Options as `table`, plus `dir` (a
//!   subfolder of the output folder), `formats` (array of `"text"`,
//!   `"markdown"`, `"csv"`, `"json"`, `"latex"`, `"html"`) and `plots` (bool).
//! - `activations()`: the names of every activation the loaded plugins
//!   offer (a script can check for an optional plugin's activations).
//! - `setting(name, default)`: the value of `--set name=...`, else
//!   `default`. Every `--set` is also a constant in the script's scope.
//! - `print(x)` writes a line to stdout (through the progress display);
//!   `log(x)` goes to acbench's `tracing` log at info level (shown with
//!   `ACBENCH_LOG=info`).
//!
//! # Sandbox
//! The engine limits operations, call depth, expression depth, string,
//! array and map sizes ([`Limits`]); `eval` and `import` are disabled
//! symbols (no module imports at all: a sweep is one file); a wall-clock
//! limit ([`SweepOptions::max_seconds`]) stops the script between
//! operations and before any new training. rhai's standard library has no
//! file or network access. An error, of any kind, is reported as
//! `file:line:col: message` ([`SweepError`]).
//!
//! Every path a script hands to acbench (a `suite(path)` file, a model
//! file, a dataset given as `folder:`, `voc:` or `coco:` PATH) must lie
//! under the script's folder or a folder given with
//! [`SweepOptions::allow_read`] (`--allow-read DIR`), after `..` and
//! symbolic links are resolved: a shared sweep cannot read the rest of the
//! disk and quote it back in an error or a report. Datasets found by their
//! registered name come from acbench's data roots and are not restricted.

mod error;
mod host;
mod reads;
mod stats;

use std::path::PathBuf;

pub use error::{ScriptError, SweepError};
pub use host::run;

use acbench_suite::runner::{BatchObserver, Summary};

/// What a sweep runs, where, and under which limits.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// The `.rhai` script.
    pub script: PathBuf,
    /// Output folder: the ledger, exports, plots ([`acbench_suite::output`]).
    pub out_dir: PathBuf,
    /// `name=value` constants for the script (values are YAML scalars).
    pub sets: Vec<String>,
    /// Stop the script after this many seconds of wall-clock time.
    pub max_seconds: Option<f64>,
    /// Sandbox limits.
    pub limits: Limits,
    /// Folders the script may read besides its own (`--allow-read`).
    pub allow_read: Vec<PathBuf>,
}

/// The sandbox's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Script operations in all (a training run is one).
    pub max_operations: u64,
    /// Depth of nested function calls.
    pub max_call_levels: usize,
    /// Longest string, in bytes.
    pub max_string_size: usize,
    /// Longest array.
    pub max_array_size: usize,
    /// Largest map.
    pub max_map_size: usize,
}

impl Default for Limits {
    /// Generous for orchestration (a sweep's own work is small; training
    /// happens outside the count), tight enough that an endless loop stops
    /// within seconds.
    fn default() -> Self {
        Self {
            max_operations: 20_000_000,
            max_call_levels: 64,
            max_string_size: 1 << 20,
            max_array_size: 100_000,
            max_map_size: 10_000,
        }
    }
}

/// Progress of a sweep: each `run`/`runs` call is a batch of the runner
/// (whose `summary` counts every run of the sweep so far), plus the lines
/// the script prints.
pub trait SweepObserver: BatchObserver {
    /// The script printed a line.
    fn print(&mut self, line: &str);
}

/// How a sweep ended: what it did, and the error that stopped it, if any.
#[derive(Debug)]
pub struct SweepRun {
    /// The sweep's name (the script's file stem).
    pub name: String,
    /// Runs done before the end (or the error).
    pub summary: Summary,
    /// `Err` when the script failed.
    pub result: Result<(), SweepError>,
}
