//! The functions a script calls, and the engine they run in.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use acbench_ledger::{Ledger, RunStatus};
use acbench_reports::{Format, Layout, ReportSpec};
use acbench_suite::output;
use acbench_suite::runner::{BatchError, Deadline, Outcome, Runner, Summary};
use acbench_suite::{Catalog, RunSpec};
use rhai::{Array, Dynamic, Engine, EvalAltResult, INT, Map, NativeCallContext, Position, Scope};
use serde_json::Value;

use crate::error::CallError;
use crate::reads::ReadRoots;
use crate::stats;
use crate::{Limits, SweepError, SweepObserver, SweepOptions, SweepRun};

type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// Suite keys a sweep's run spec may not use, with the reason.
const REFUSED_KEYS: [(&str, &str); 2] = [
    (
        "out",
        "a sweep's runs go into its own output folder (`--out`)",
    ),
    (
        "plugins",
        "plugins are loaded once for the whole sweep: pass them with `--plugin`",
    ),
];

/// Singular keys of a run spec and the suite lists they stand for.
const SINGULAR: [(&str, &str); 4] = [
    ("model", "models"),
    ("activation", "activations"),
    ("optimizer", "optimizers"),
    ("seed", "seeds"),
];

struct Host {
    script: PathBuf,
    dir: PathBuf,
    reads: ReadRoots,
    out_dir: PathBuf,
    catalog: Catalog,
    runner: Runner,
    ledger: Ledger,
    observer: Box<dyn SweepObserver>,
    summary: Summary,
    sets: BTreeMap<String, Dynamic>,
}

fn fail(pos: Position, msg: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(Dynamic::from(msg.into()), pos))
}

/// Runs a sweep script: every run through `runner` into the output
/// folder's ledger. `catalog` is what `runner`'s registry offers.
pub fn run(
    options: &SweepOptions,
    catalog: Catalog,
    runner: Runner,
    observer: Box<dyn SweepObserver>,
) -> SweepRun {
    let name = options
        .script
        .file_stem()
        .map_or_else(|| "sweep".to_owned(), |s| s.to_string_lossy().into_owned());
    let mut summary = Summary::default();
    let result = run_script(options, catalog, runner, observer, &mut summary);
    SweepRun {
        name,
        summary,
        result,
    }
}

fn run_script(
    options: &SweepOptions,
    catalog: Catalog,
    mut runner: Runner,
    observer: Box<dyn SweepObserver>,
    summary_out: &mut Summary,
) -> Result<(), SweepError> {
    let script = &options.script;
    let text = std::fs::read_to_string(script).map_err(|source| SweepError::Io {
        path: script.clone(),
        source,
    })?;
    let sets = parse_sets(&options.sets)?;
    let reads = ReadRoots::new(script, &options.allow_read)?;
    std::fs::create_dir_all(&options.out_dir).map_err(|source| SweepError::Io {
        path: options.out_dir.clone(),
        source,
    })?;
    let ledger = Ledger::open(&output::ledger_path(&options.out_dir))?;
    runner.deadline = options.max_seconds.map(|seconds| Deadline {
        start: Instant::now(),
        seconds,
    });
    let host = Rc::new(RefCell::new(Host {
        script: script.clone(),
        dir: script.parent().unwrap_or(Path::new(".")).to_path_buf(),
        reads,
        out_dir: options.out_dir.clone(),
        catalog,
        runner,
        ledger,
        observer,
        summary: Summary::default(),
        sets: sets.iter().cloned().collect(),
    }));
    let engine = engine(&host, options.limits, options.max_seconds);
    let mut scope = Scope::new();
    for (k, v) in sets {
        scope.push_constant_dynamic(k, v);
    }
    let result = engine
        .compile_with_scope(&scope, &text)
        .map_err(|e| SweepError::parse(script, &text, &e))
        .and_then(|mut ast| {
            ast.set_source(script.display().to_string());
            engine
                .run_ast_with_scope(&mut scope, &ast)
                .map_err(|e| SweepError::eval(script, &text, &e, options.limits.max_operations))
        });
    *summary_out = host.borrow().summary.clone();
    result
}

/// `--set name=value`: `name` an identifier, `value` a YAML scalar or list.
fn parse_sets(sets: &[String]) -> Result<Vec<(String, Dynamic)>, SweepError> {
    sets.iter()
        .map(|raw| {
            let bad = |message: String| SweepError::Set {
                raw: raw.clone(),
                message,
            };
            let (k, v) = raw
                .split_once('=')
                .ok_or_else(|| bad("expected NAME=VALUE, e.g. --set quick=true".into()))?;
            let k = k.trim();
            let ident = k
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ident {
                return Err(bad(format!("`{k}` is not a script variable name")));
            }
            let value: Value = if v.trim().is_empty() {
                Value::Null
            } else {
                serde_saphyr::from_str(v).map_err(|e| bad(format!("not valid YAML: {e}")))?
            };
            let value = rhai::serde::to_dynamic(value).map_err(|e| bad(e.to_string()))?;
            Ok((k.to_owned(), value))
        })
        .collect()
}

fn engine(host: &Rc<RefCell<Host>>, limits: Limits, max_seconds: Option<f64>) -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(limits.max_operations)
        .set_max_call_levels(limits.max_call_levels)
        .set_max_expr_depths(64, 64)
        .set_max_string_size(limits.max_string_size)
        .set_max_array_size(limits.max_array_size)
        .set_max_map_size(limits.max_map_size)
        .set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
    engine.disable_symbol("eval").disable_symbol("import");
    let started = Instant::now();
    engine.on_progress(move |_| {
        let limit = max_seconds?;
        (started.elapsed().as_secs_f64() > limit).then(|| Dynamic::from(wall_message(limit)))
    });
    let h = host.clone();
    engine.on_print(move |s| match h.try_borrow_mut() {
        Ok(mut host) => host.observer.print(s),
        Err(_) => println!("{s}"),
    });
    engine.on_debug(|s, _, pos| tracing::debug!(target: "acbench::sweep", "{pos:?}: {s}"));
    engine.register_fn("log", |x: Dynamic| {
        tracing::info!(target: "acbench::sweep", "{x}");
    });

    let h = host.clone();
    engine.register_fn(
        "suite",
        move |ctx: NativeCallContext, path: &str| -> Fallible<Map> {
            h.borrow()
                .suite(path)
                .map_err(|m| fail(ctx.call_position(), format!("suite(): {m}")))
        },
    );
    let h = host.clone();
    engine.register_fn(
        "run",
        move |ctx: NativeCallContext, spec: Map| -> Fallible<Map> {
            let pos = ctx.call_position();
            let mut host = h.borrow_mut();
            let spec = host
                .resolve(&spec)
                .map_err(|m| fail(pos, format!("run(): {m}")))?;
            let mut out = host
                .run_batch(&[spec])
                .map_err(|m| fail(pos, format!("run(): {m}")))?;
            Ok(out.pop().unwrap_or_default())
        },
    );
    let h = host.clone();
    engine.register_fn(
        "runs",
        move |ctx: NativeCallContext, specs: Array| -> Fallible<Array> {
            let pos = ctx.call_position();
            let mut host = h.borrow_mut();
            let specs = specs
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let map = s.read_lock::<Map>().ok_or_else(|| {
                        format!("runs(): element {i} is a {}, not a map", s.type_name())
                    })?;
                    host.resolve(&map)
                        .map_err(|e| format!("runs(): spec {i}: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|m| fail(pos, m))?;
            let out = host
                .run_batch(&specs)
                .map_err(|m| fail(pos, format!("runs(): {m}")))?;
            Ok(out.into_iter().map(Dynamic::from_map).collect())
        },
    );
    let h = host.clone();
    engine.register_fn("activations", move || -> Array {
        h.borrow()
            .catalog
            .activations
            .keys()
            .map(|k| Dynamic::from(k.clone()))
            .collect()
    });
    let h = host.clone();
    engine.register_fn("setting", move |name: &str, default: Dynamic| -> Dynamic {
        h.borrow().sets.get(name).cloned().unwrap_or(default)
    });

    for (name, f) in [
        ("mean", stats::mean as fn(&Array) -> Result<f64, String>),
        ("std", stats::std),
    ] {
        engine.register_fn(
            name,
            move |ctx: NativeCallContext, a: Array| -> Fallible<f64> {
                f(&a).map_err(|m| fail(ctx.call_position(), m))
            },
        );
    }
    engine.register_fn(
        "argmax",
        |ctx: NativeCallContext, a: Array| -> Fallible<INT> {
            stats::argmax(&a).map_err(|m| fail(ctx.call_position(), m))
        },
    );
    engine.register_fn("rank", |a: Array| stats::rank(&a));

    for with_options in [false, true] {
        let h = host.clone();
        let table = move |ctx: NativeCallContext, rows: Array, options: Map| -> Fallible<String> {
            h.borrow()
                .table(&rows, &options, false)
                .map(|(text, _)| text)
                .map_err(|m| fail(ctx.call_position(), format!("table(): {m}")))
        };
        let h = host.clone();
        let report = move |ctx: NativeCallContext, rows: Array, options: Map| -> Fallible<Array> {
            h.borrow()
                .table(&rows, &options, true)
                .map(|(_, files)| files.into_iter().map(Dynamic::from).collect())
                .map_err(|m| fail(ctx.call_position(), format!("report(): {m}")))
        };
        if with_options {
            engine.register_fn("table", table);
            engine.register_fn("report", report);
        } else {
            engine.register_fn("table", move |ctx: NativeCallContext, rows: Array| {
                table(ctx, rows, Map::new())
            });
            engine.register_fn("report", move |ctx: NativeCallContext, rows: Array| {
                report(ctx, rows, Map::new())
            });
        }
    }
    engine
}

fn wall_message(limit: f64) -> String {
    format!("the sweep reached its wall-clock limit of {limit} s (--max-seconds)")
}

impl Host {
    /// `suite(path)`: a suite file as a map whose paths work from the script's folder.
    fn suite(&self, path: &str) -> Result<Map, CallError> {
        let file = self.dir.join(path);
        self.reads.check("suite", &file)?;
        // Read through the suite reader first: its errors carry the line.
        acbench_suite::read(&file, &[]).map_err(|e| e.headline().to_owned())?;
        let text = std::fs::read_to_string(&file).map_err(|source| CallError::Io {
            path: file.clone(),
            source,
        })?;
        let mut doc: Value =
            serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        let rel = Path::new(path).parent().unwrap_or(Path::new(""));
        if let Some(obj) = doc.as_object_mut() {
            for k in ["name", "description", "out"] {
                obj.remove(k);
            }
            let rebase = |s: &mut String| {
                if Path::new(s.as_str()).is_relative() {
                    *s = rel.join(s.as_str()).display().to_string();
                }
            };
            if let Some(Value::Array(models)) = obj.get_mut("models") {
                for m in models {
                    match m {
                        Value::String(s) => rebase(s),
                        Value::Object(o) => {
                            if let Some(Value::String(s)) = o.get_mut("file") {
                                rebase(s);
                            }
                        }
                        _ => {}
                    }
                }
            }
            if let Some(Value::Array(plugins)) = obj.get_mut("plugins") {
                for p in plugins.iter_mut() {
                    if let Value::String(s) = p {
                        rebase(s);
                    }
                }
            }
        }
        rhai::serde::to_dynamic(doc)
            .map_err(|e| e.to_string())?
            .try_cast::<Map>()
            .ok_or_else(|| format!("{} is not a map of suite keys", file.display()).into())
    }

    /// Validates a script map into the one `RunSpec` it describes.
    fn resolve(&self, map: &Map) -> Result<RunSpec, CallError> {
        let mut doc: Value = rhai::serde::from_dynamic(&Dynamic::from_map(map.clone()))
            .map_err(|e| e.to_string())?;
        let Some(obj) = doc.as_object_mut() else {
            return Err("a run spec must be a map".to_owned().into());
        };
        for (key, why) in REFUSED_KEYS {
            if obj.contains_key(key) {
                return Err(format!("`{key}`: not allowed in a sweep: {why}").into());
            }
        }
        for (one, many) in SINGULAR {
            if let Some(v) = obj.remove(one) {
                if obj.contains_key(many) {
                    return Err(format!("`{one}` and `{many}` both given; give one of them").into());
                }
                obj.insert(many.to_owned(), Value::Array(vec![v]));
            }
        }
        let loaded =
            acbench_suite::from_value(&self.script, doc).map_err(|e| self.strip(e.headline()))?;
        for (key, path) in loaded.read_paths() {
            self.reads.check(&key, &path)?;
        }
        let suite = loaded
            .resolve(&self.catalog, Some(&self.out_dir))
            .map_err(|e| self.strip(e.headline()))?;
        let n = suite.runs.len();
        let mut runs = suite.runs;
        match (runs.pop(), n) {
            (Some(spec), 1) => Ok(spec),
            _ => Err(format!(
                "the spec describes {n} runs; run() takes one (one model, activation, optimizer and \
                 seed): pass a list of specs to runs() for more"
            )
            .into()),
        }
    }

    /// Suite errors start with the file they name; in a sweep the script
    /// is that file and the location comes from the call instead.
    fn strip(&self, headline: &str) -> String {
        let path = self.script.display().to_string();
        headline
            .strip_prefix(&format!("{path} (value from --set): "))
            .or_else(|| headline.strip_prefix(&format!("{path}: ")))
            .unwrap_or(headline)
            .to_owned()
    }

    /// `run` / `runs`: the specs through the runner, as one batch, and
    /// their result maps.
    fn run_batch(&mut self, specs: &[RunSpec]) -> Result<Vec<Map>, CallError> {
        let Host {
            runner,
            ledger,
            observer,
            summary,
            ..
        } = self;
        let outcomes = runner
            .run_all(ledger, specs, observer.as_mut(), summary)
            .map_err(|e| match e {
                BatchError::Deadline { seconds } => CallError::Script(wall_message(seconds)),
                BatchError::Ledger(e) => CallError::Ledger(e),
                e @ BatchError::Interrupted { .. } => CallError::Script(e.to_string()),
            })?;
        specs
            .iter()
            .zip(&outcomes)
            .map(|(spec, outcome)| Ok(result_map(ledger, spec, &spec.key(), outcome)?))
            .collect()
    }

    /// `table` / `report`: result maps through the report engine.
    fn table(
        &self,
        rows: &Array,
        options: &Map,
        write: bool,
    ) -> Result<(String, Vec<String>), CallError> {
        let opts = TableOptions::from_map(options, write)?;
        let stored = self.ledger.runs()?;
        let mut results = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let key = row
                .read_lock::<Map>()
                .and_then(|m| m.get("key").and_then(|k| k.clone().into_string().ok()))
                .ok_or_else(|| format!("row {i} is not a result map of run() (no `key`)"))?;
            let run = stored
                .iter()
                .find(|r| r.key == key && r.status.is_done())
                .ok_or_else(|| format!("row {i}: run {key} is not ended in the ledger"))?;
            results.push(acbench_suite::record::to_report(run));
        }
        let spec = ReportSpec {
            title: opts.title,
            paper_table: opts.paper_table,
            layout: opts.layout,
            formats: opts.formats,
            plots: opts.plots,
            ..ReportSpec::default()
        };
        let dir = match &opts.dir {
            Some(d) => self.out_dir.join(d),
            None => self.out_dir.clone(),
        };
        let out = acbench_reports::render_report(&results, &spec, write.then_some(dir.as_path()))?;
        let files = out.files.iter().map(|f| f.display().to_string()).collect();
        Ok((out.text, files))
    }
}

/// Options of `table` and `report`.
struct TableOptions {
    title: String,
    paper_table: Option<String>,
    layout: Option<Layout>,
    dir: Option<PathBuf>,
    formats: Vec<Format>,
    plots: bool,
}

impl TableOptions {
    fn from_map(map: &Map, report: bool) -> Result<Self, String> {
        let mut o = Self {
            title: "sweep".to_owned(),
            paper_table: None,
            layout: None,
            dir: None,
            formats: Format::ALL.to_vec(),
            plots: true,
        };
        for (k, v) in map {
            let text = || {
                v.clone()
                    .into_string()
                    .map_err(|t| format!("option `{k}` must be a string, not {t}"))
            };
            let parse = |v: &Dynamic| -> Result<Value, String> {
                rhai::serde::from_dynamic::<Value>(v).map_err(|e| format!("option `{k}`: {e}"))
            };
            match (k.as_str(), report) {
                ("title", _) => o.title = text()?,
                ("paper_table", _) => o.paper_table = Some(text()?),
                ("layout", _) => {
                    o.layout = Some(
                        serde_json::from_value(parse(v)?)
                            .map_err(|e| format!("option `layout`: {e}"))?,
                    );
                }
                ("dir", true) => {
                    let d = PathBuf::from(text()?);
                    if !d.components().all(|c| matches!(c, Component::Normal(_))) {
                        return Err(format!(
                            "option `dir`: `{}` must be a plain subfolder of the output folder",
                            d.display()
                        ));
                    }
                    o.dir = Some(d);
                }
                ("formats", true) => {
                    o.formats = serde_json::from_value(parse(v)?)
                        .map_err(|e| format!("option `formats`: {e}"))?;
                }
                ("plots", true) => {
                    o.plots = v
                        .as_bool()
                        .map_err(|t| format!("option `plots` must be true or false, not {t}"))?;
                }
                _ => {
                    let known = if report {
                        "title, paper_table, layout, dir, formats, plots"
                    } else {
                        "title, paper_table, layout"
                    };
                    return Err(format!("unknown option `{k}` (options: {known})"));
                }
            }
        }
        Ok(o)
    }
}

/// The map `run` returns, built from the ledger so that a replayed run and
/// a fresh one look the same.
fn result_map(
    ledger: &Ledger,
    spec: &RunSpec,
    key: &str,
    outcome: &Outcome,
) -> Result<Map, acbench_ledger::LedgerError> {
    let epochs = ledger.epochs(key)?;
    let mut m = Map::new();
    let mut put = |k: &str, v: Dynamic| {
        m.insert(k.into(), v);
    };
    let status = outcome.status();
    put("status", Dynamic::from(status.to_string()));
    if let RunStatus::Failed { error } = status {
        put("error", Dynamic::from(error.clone()));
    }
    let finite = |x: f64| x.is_finite().then_some(x);
    let final_acc = match status {
        RunStatus::Finished => epochs.last().and_then(|e| finite(e.test_acc)),
        _ => None,
    };
    let best_acc = epochs
        .iter()
        .filter_map(|e| finite(e.test_acc))
        .max_by(f64::total_cmp);
    let opt = |x: Option<f64>| x.map_or(Dynamic::UNIT, Dynamic::from);
    put("final_acc", opt(final_acc));
    put("best_acc", opt(best_acc));
    put(
        "wall_s",
        Dynamic::from(epochs.iter().map(|e| e.wall_s).sum::<f64>()),
    );
    let mut act_params = Map::new();
    if let Some(last) = epochs.last() {
        for p in &last.act_params {
            let slot = act_params
                .entry(p.slot.as_str().into())
                .or_insert_with(|| Dynamic::from_map(Map::new()));
            if let Some(mut slot) = slot.write_lock::<Map>() {
                let values: Array = p.values.iter().map(|&v| Dynamic::from(v)).collect();
                slot.insert(p.param.as_str().into(), Dynamic::from_array(values));
            }
        }
    }
    let mut detection = Map::new();
    if let Some(last) = epochs.last() {
        for (k, v) in &last.detection {
            detection.insert(k.as_str().into(), Dynamic::from(*v));
        }
    }
    let epochs: Array = epochs
        .iter()
        .map(|e| {
            let mut em = Map::new();
            em.insert("epoch".into(), Dynamic::from(e.epoch as INT));
            for (k, v) in [
                ("lr", e.lr),
                ("train_loss", e.train_loss),
                ("train_acc", e.train_acc),
                ("test_loss", e.test_loss),
                ("test_acc", e.test_acc),
                ("wall_s", e.wall_s),
            ] {
                em.insert(k.into(), Dynamic::from(v));
            }
            Dynamic::from_map(em)
        })
        .collect();
    put("epochs", Dynamic::from_array(epochs));
    put("detection", Dynamic::from_map(detection));
    put("act_params", Dynamic::from_map(act_params));
    put("key", Dynamic::from(key.to_owned()));
    put(
        "replayed",
        Dynamic::from(matches!(outcome, Outcome::Replayed(_))),
    );
    put("model", Dynamic::from(spec.model.label.clone()));
    put("activation", Dynamic::from(spec.activation.label.clone()));
    put("optimizer", Dynamic::from(spec.optimizer.clone()));
    put("dataset", Dynamic::from(spec.dataset.name.clone()));
    put("seed", Dynamic::from(spec.train.seed.0 as INT));
    Ok(m)
}

#[cfg(test)]
mod tests;
