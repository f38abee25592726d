//! `acbench bench`: acbench against a PyTorch reference of the identical
//! model, side by side, on real Fashion-MNIST.
//!
//! For every model and activation, one measurement trains for `--warmup`
//! untimed and `--batches` timed batches through [`Trainer::step`] (the step
//! `acbench train` runs), in a child process of its own (`acbench
//! bench-worker`) so that its peak RSS is that run's alone; then
//! `bench/pytorch_reference.py` (embedded here) builds the same network from
//! the elaborated IR, which it receives as JSON with every act slot's formula
//! and initial parameter values, and trains it on the same batches. Both
//! sides use the same thread count, batch, SGD learning rate, PyTorch's
//! default initialisation scheme and per-image standardisation, and report
//! their trainable parameter count: a row whose counts differ is not the
//! identical model and fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output};
use std::time::Instant;

use acbench_data::{Augment, Batcher, LoadOptions, Normalization};
use acbench_dsl::ir::{Network, Shape, Value};
use acbench_engine::activation::{ActBindings, Registry};
use acbench_engine::model::Model;
use acbench_engine::optim::OptimizerConfig;
use acbench_engine::rng::Seed;
use acbench_engine::schedule::Schedule;
use acbench_engine::train::{InputNorm, TrainConfig, Trainer};
use acbench_plugin_api::Constraint;
use candle_core::{Device, Tensor};
use miette::{IntoDiagnostic, miette};
use serde::{Deserialize, Serialize};
use tabled::settings::Style;
use tabled::{Table, Tabled};

use super::network::elaborate_source;
use crate::cli::{BenchArgs, BenchWorkerArgs, PluginArgs};

/// The shipped benchmark models, embedded so that `acbench bench` works
/// from any folder.
const MODELS: &[(&str, &str)] = &[
    (
        "convnet",
        include_str!("../../../../suites/models/convnet.acnet"),
    ),
    (
        "vgg-small",
        include_str!("../../../../suites/models/vgg-small.acnet"),
    ),
    (
        "resnet20",
        include_str!("../../../../suites/models/resnet20.acnet"),
    ),
];

/// Activations benchmarked when `--act` is not given.
const DEFAULT_ACTS: &[&str] = &["relu", "arelu"];

/// Threads of both sides when the global `--threads` is not given (the
/// issue's targets are stated for 2).
const DEFAULT_THREADS: usize = 2;

/// The PyTorch reference, written to a temporary file for each invocation.
const PYTORCH_SCRIPT: &str = include_str!("../../../../bench/pytorch_reference.py");

/// The reference's exit status when torch (or numpy) cannot be imported.
const EXIT_NO_TORCH: i32 = 3;

/// The dataset both sides train on.
const DATASET: &str = "fashion-mnist";

/// What goes in a table cell or JSON field that was not measured.
const MISSING: &str = "—";

/// Runs `acbench bench`.
pub fn run(args: &BenchArgs, threads: Option<usize>) -> miette::Result<ExitCode> {
    let threads = threads.unwrap_or(DEFAULT_THREADS);
    check_numbers(args.batches, args.batch_size, args.lr)?;
    if args.repeats == 0 {
        miette::bail!("--repeats must be at least 1");
    }
    let acts: Vec<String> = if args.acts.is_empty() {
        DEFAULT_ACTS.iter().map(|s| (*s).to_owned()).collect()
    } else {
        args.acts.clone()
    };
    let model_args: Vec<String> = if args.models.is_empty() {
        MODELS.iter().map(|(n, _)| (*n).to_owned()).collect()
    } else {
        args.models.clone()
    };
    let mut registry = super::plugins::registry(&args.plugins)?;
    registry.set_fused(!args.no_fused);

    // Everything is checked before the first (slow) measurement.
    let mut cases = Vec::new();
    for m in &model_args {
        let source = BenchModel::resolve(m)?;
        let net = source.elaborate()?;
        for act in &acts {
            cases.push(Case::new(
                m,
                &source.label,
                &net,
                act,
                &registry,
                args.seed,
            )?);
        }
    }
    let load = LoadOptions {
        data_dir: args.data_dir.clone(),
        ..LoadOptions::default()
    };
    let data_dir = acbench_data::locate(DATASET, &load).map_err(miette::Report::msg)?;

    let scratch = tempfile::tempdir()
        .into_diagnostic()
        .map_err(|e| e.wrap_err("cannot create a temporary folder"))?;
    let reference = if args.no_pytorch {
        Reference::Off
    } else {
        Reference::probe(args.python.clone(), scratch.path())
    };
    if let Reference::Unavailable(why) = &reference {
        eprintln!("PyTorch reference unavailable: {why}\nmeasuring acbench only.");
    }
    let settings = Settings {
        batches: args.batches,
        warmup: args.warmup,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: args.seed,
        threads,
        data_dir: &data_dir,
        plugins: &args.plugins,
        no_fused: args.no_fused,
    };

    let mut failures = Vec::new();
    let mut rows = Vec::with_capacity(cases.len());
    for (i, case) in cases.iter().enumerate() {
        let spec_path = scratch.path().join(format!("spec{i}.json"));
        if let Reference::Ready { .. } = reference {
            let text = serde_json::to_string(&case.spec).into_diagnostic()?;
            std::fs::write(&spec_path, text)
                .into_diagnostic()
                .map_err(|e| e.wrap_err(format!("cannot write {}", spec_path.display())))?;
        }
        let tag = format!("[{}/{}] {} {}", i + 1, cases.len(), case.label, case.act);
        let (ours, theirs) = measure(case, &tag, args.repeats, &settings, &reference, &spec_path)
            .unwrap_or_else(|Failed { why, ours }| {
                failures.push(format!("{} {}: {why}", case.label, case.act));
                (ours, Vec::new())
            });
        rows.push(Row::new(&case.label, &case.act, &ours, &theirs));
    }

    println!("{}", render_table(&rows));
    println!("{}", settings.describe(args.repeats, &reference));
    if let Some(path) = &args.json {
        super::write_json(path, &rows)?;
        println!("rows written to {}", path.display());
    }
    let mut ok = failures.is_empty();
    for f in &failures {
        eprintln!("error: {f}");
    }
    if let Reference::Unavailable(_) = &reference {
        eprintln!(
            "error: the PyTorch columns are empty: the reference could not run (why: first lines \
             above); pass --no-pytorch to measure acbench alone"
        );
        ok = false;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A case that could not be measured to the end.
struct Failed {
    why: String,
    /// acbench's measurements before the failure.
    ours: Vec<Measurement>,
}

/// Both sides' measurements of one case, alternating, `repeats` times. On a
/// failure, PyTorch's are dropped: a reference that failed once, or built
/// another model, is not reported.
fn measure(
    case: &Case,
    tag: &str,
    repeats: usize,
    settings: &Settings<'_>,
    reference: &Reference,
    spec_path: &Path,
) -> Result<(Vec<Measurement>, Vec<Measurement>), Failed> {
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

/// Runs `acbench bench-worker`: one acbench measurement, printed as one
/// JSON line ([`Measurement`]).
pub fn run_worker(args: &BenchWorkerArgs) -> miette::Result<ExitCode> {
    check_numbers(args.batches, args.batch_size, args.lr)?;
    let net = BenchModel::resolve(&args.model)?.elaborate()?;
    let mut registry = super::plugins::registry(&args.plugins)?;
    registry.set_fused(!args.no_fused);
    let bindings = parse_binding(&args.act)?;
    let device = Device::Cpu;
    let model = Model::build(&net, &registry, &bindings, &device, Seed(args.seed))
        .map_err(miette::Report::msg)?;
    let params = trainable_count(&model);

    let steps = args.warmup + args.batches;
    let load = LoadOptions {
        data_dir: Some(args.data_dir.clone()),
        limit_train: Some(steps.saturating_mul(args.batch_size)),
        limit_test: Some(1),
        ..LoadOptions::default()
    };
    let data = acbench_data::load(DATASET, &load).map_err(miette::Report::msg)?;
    let (x, y) = training_tensors(&data, net.input, &model)?;
    let n = x.dim(0).map_err(miette::Report::msg)?;
    if n < args.batch_size {
        miette::bail!(
            "{} has {n} training images, fewer than one batch of {}",
            args.data_dir.display(),
            args.batch_size
        );
    }
    let config = TrainConfig {
        epochs: 1,
        batch_size: args.batch_size,
        eval_batch_size: args.batch_size,
        optimizer: OptimizerConfig::Sgd,
        schedule: Schedule::Constant { lr: args.lr },
        weight_decay: 0.0,
        seed: Seed(args.seed),
        normalization: InputNorm::PerImage,
        augment: Augment::default(),
    };
    let mut trainer = Trainer::new(&model, &config).map_err(miette::Report::msg)?;
    let mut step = |i: usize| -> miette::Result<f32> {
        let start = batch_start(i, args.batch_size, n);
        let xb = x
            .narrow(0, start, args.batch_size)
            .map_err(miette::Report::msg)?;
        let yb = y
            .narrow(0, start, args.batch_size)
            .map_err(miette::Report::msg)?;
        match trainer
            .step(&xb, &yb, args.lr)
            .map_err(miette::Report::msg)?
        {
            Some(outcome) => Ok(outcome.loss),
            None => miette::bail!(
                "the training loss became NaN or infinite at batch {} (try a smaller --lr)",
                i + 1
            ),
        }
    };
    for i in 0..args.warmup {
        step(i)?;
    }
    let start = Instant::now();
    let mut final_loss = f32::NAN;
    for i in args.warmup..steps {
        final_loss = step(i)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let report = Measurement {
        img_s: (args.batches * args.batch_size) as f64 / seconds.max(f64::MIN_POSITIVE),
        peak_rss_mb: peak_rss_mb(),
        params,
        seconds: Some(seconds),
        final_loss: Some(f64::from(final_loss)),
        torch: None,
    };
    println!("{}", serde_json::to_string(&report).into_diagnostic()?);
    Ok(ExitCode::SUCCESS)
}

fn check_numbers(batches: usize, batch_size: usize, lr: f64) -> miette::Result<()> {
    if batches == 0 {
        miette::bail!("--batches must be at least 1");
    }
    if batch_size == 0 {
        miette::bail!("--batch-size must be at least 1");
    }
    if !(lr.is_finite() && lr > 0.0) {
        miette::bail!("--lr must be a positive number, got {lr}");
    }
    Ok(())
}

/// First image of training batch `i` (from 0) when `n` images are cycled
/// through in order; the reference script uses the same rule.
fn batch_start(i: usize, batch_size: usize, n: usize) -> usize {
    (i * batch_size) % (n - batch_size + 1)
}

/// `--act` as bindings: specs separated by spaces, as a suite's activations.
fn parse_binding(act: &str) -> miette::Result<ActBindings> {
    let specs: Vec<&str> = act.split_whitespace().collect();
    if specs.is_empty() {
        miette::bail!("--act: empty activation binding");
    }
    ActBindings::parse(&specs).map_err(miette::Report::msg)
}

/// Trainable scalars of a built model, activation parameters included: what
/// PyTorch's `sum(p.numel() for p in model.parameters())` counts.
fn trainable_count(model: &Model) -> usize {
    model.params().iter().map(|p| p.var.elem_count()).sum()
}

/// A model file, shipped or given by path.
struct BenchModel {
    /// Row label: the shipped name, or the file's stem.
    label: String,
    /// Name in diagnostics.
    origin: String,
    source: String,
}

impl BenchModel {
    fn resolve(arg: &str) -> miette::Result<Self> {
        if let Some((name, text)) = MODELS.iter().find(|(n, _)| *n == arg) {
            return Ok(Self {
                label: (*name).to_owned(),
                origin: format!("{name}.acnet"),
                source: (*text).to_owned(),
            });
        }
        let path = Path::new(arg);
        let looks_like_path = path.extension().is_some_and(|e| e == "acnet")
            || arg.contains(std::path::MAIN_SEPARATOR)
            || path.is_file();
        if !looks_like_path {
            let names: Vec<&str> = MODELS.iter().map(|(n, _)| *n).collect();
            miette::bail!(
                "unknown benchmark model `{arg}`; shipped: {}, or give the path of a .acnet file",
                names.join(", ")
            );
        }
        let source = std::fs::read_to_string(path)
            .into_diagnostic()
            .map_err(|e| e.wrap_err(format!("cannot read model file {}", path.display())))?;
        let label = path
            .file_stem()
            .map_or_else(|| arg.to_owned(), |s| s.to_string_lossy().into_owned());
        Ok(Self {
            label,
            origin: path.display().to_string(),
            source,
        })
    }

    /// The network for Fashion-MNIST: its classes and channels are given
    /// when the network declares them; `size` is left to the model, whose
    /// input may be larger than the images (they are zero-padded to fit).
    fn elaborate(&self) -> miette::Result<Network> {
        let (classes, (c, h, w)) = acbench_data::geometry(DATASET, None)
            .ok_or_else(|| miette!("`{DATASET}` is not a registered dataset"))?;
        let defaults = [
            ("classes".to_owned(), Value::Int(classes as i64)),
            ("channels".to_owned(), Value::Int(c as i64)),
        ];
        let net = elaborate_source(&self.source, &self.origin, None, &[], &defaults)?;
        match net.input {
            Shape::Image {
                c: nc,
                h: nh,
                w: nw,
            } if nc == c && nh >= h && nw >= w => {}
            other => miette::bail!(
                "{}: network `{}` takes {other} inputs; the benchmark feeds {c}x{h}x{w} \
                 Fashion-MNIST images, zero-padded to a larger size when the network asks \
                 for one (never cropped)",
                self.origin,
                net.name
            ),
        }
        if net.output != Shape::Flat(classes) {
            miette::bail!(
                "{}: network `{}` outputs {} values; Fashion-MNIST has {classes} classes",
                self.origin,
                net.name,
                net.output
            );
        }
        Ok(net)
    }
}

/// One model and activation: what both sides are asked to build.
struct Case {
    /// `--model` as given, for the worker.
    model_arg: String,
    label: String,
    act: String,
    /// Trainable scalars of acbench's model.
    params: usize,
    /// What the reference script builds.
    spec: ReferenceSpec,
}

impl Case {
    fn new(
        model_arg: &str,
        label: &str,
        net: &Network,
        act: &str,
        registry: &Registry,
        seed: u64,
    ) -> miette::Result<Self> {
        let bindings = parse_binding(act)?;
        let model = Model::build(net, registry, &bindings, &Device::Cpu, Seed(seed))
            .map_err(|e| miette!("{label} with `{act}`: {e}"))?;
        Ok(Self {
            model_arg: model_arg.to_owned(),
            label: label.to_owned(),
            act: act.to_owned(),
            params: trainable_count(&model),
            spec: ReferenceSpec::new(net, &model, registry)?,
        })
    }
}

/// What `pytorch_reference.py --spec` reads: the elaborated network and,
/// per act node path, the bound activation.
#[derive(Debug, Serialize)]
struct ReferenceSpec {
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
    fn new(net: &Network, model: &Model, registry: &Registry) -> miette::Result<Self> {
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

/// Standardised training images zero-padded to the network's input, as one
/// `[n, C, H, W]` tensor, and their labels `[n]`; batches are slices of it,
/// as on the PyTorch side.
fn training_tensors(
    data: &acbench_data::Dataset,
    input: Shape,
    model: &Model,
) -> miette::Result<(Tensor, Tensor)> {
    let Shape::Image { c, h, w } = input else {
        miette::bail!("the benchmark needs a network that takes images, not {input}");
    };
    let n = data.train.len();
    let mut batcher = Batcher::new(data.shape, Normalization::PerImage, Augment::default())
        .map_err(miette::Report::msg)?;
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    let all: Vec<usize> = (0..n).collect();
    batcher
        .fill_eval(&data.train, &all, &mut pixels, &mut labels)
        .map_err(miette::Report::msg)?;
    let pixels = pad_images(&pixels, data.shape, (h, w));
    let x = Tensor::from_vec(pixels, (n, c, h, w), model.device())
        .and_then(|t| t.to_dtype(model.dtype()))
        .map_err(miette::Report::msg)?;
    let y = Tensor::from_vec(labels, n, model.device()).map_err(miette::Report::msg)?;
    Ok((x, y))
}

/// Zero-pads CHW images of `(c, h, w)` to `(c, to_h, to_w)`, centred (an odd
/// extra row or column goes to the bottom or right). Padding follows
/// normalisation, so the border is exactly 0 in the network's input.
fn pad_images(
    src: &[f32],
    (c, h, w): (usize, usize, usize),
    (to_h, to_w): (usize, usize),
) -> Vec<f32> {
    if (h, w) == (to_h, to_w) {
        return src.to_vec();
    }
    let (top, left) = ((to_h - h) / 2, (to_w - w) / 2);
    let images = src.len() / (c * h * w).max(1);
    let mut out = vec![0.0; images * c * to_h * to_w];
    for (plane_in, plane_out) in src
        .chunks_exact((h * w).max(1))
        .zip(out.chunks_exact_mut(to_h * to_w))
    {
        for (row_in, row_out) in plane_in
            .chunks_exact(w)
            .zip(plane_out.chunks_exact_mut(to_w).skip(top))
        {
            row_out[left..left + w].copy_from_slice(row_in);
        }
    }
    out
}

/// Peak resident set size of this process so far, in MiB (`ru_maxrss`, as
/// the reference script reads it).
#[cfg(unix)]
fn peak_rss_mb() -> Option<f64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `struct rusage` into the pointer it is
    // given, which points to one, and has no other preconditions.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: getrusage succeeded, so it filled the struct (zeroed before
    // anyway, and every field is a plain integer).
    let usage = unsafe { usage.assume_init() };
    // Linux reports KiB, macOS bytes.
    let per_mib = if cfg!(target_os = "macos") {
        1024.0 * 1024.0
    } else {
        1024.0
    };
    Some(usage.ru_maxrss as f64 / per_mib)
}

#[cfg(not(unix))]
fn peak_rss_mb() -> Option<f64> {
    None
}

/// One measurement, from the worker or the reference script (one JSON line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Measurement {
    /// Images per second over the timed batches.
    img_s: f64,
    /// Peak RSS of the whole process, MiB.
    peak_rss_mb: Option<f64>,
    /// Trainable scalars of the model it built.
    params: usize,
    /// Seconds of the timed batches.
    #[serde(default)]
    seconds: Option<f64>,
    /// Loss of the last timed batch.
    #[serde(default)]
    final_loss: Option<f64>,
    /// PyTorch's version (reference only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    torch: Option<String>,
}

impl Measurement {
    fn describe(&self) -> String {
        format!(
            "{:.1} img/s, peak RSS {}, {} parameters",
            self.img_s,
            self.peak_rss_mb
                .map_or_else(|| MISSING.to_owned(), |m| format!("{m:.1} MB")),
            self.params
        )
    }

    /// The last stdout line that is a JSON object, parsed.
    fn from_stdout(stdout: &[u8]) -> Result<Self, String> {
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

/// The last lines of a child's output, for error messages.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let start = lines.len().saturating_sub(12);
    let t = lines[start..].join("\n");
    if t.is_empty() {
        "(nothing)".to_owned()
    } else {
        t
    }
}

/// What every measurement shares.
struct Settings<'a> {
    batches: usize,
    warmup: usize,
    batch_size: usize,
    lr: f64,
    seed: u64,
    threads: usize,
    data_dir: &'a Path,
    plugins: &'a PluginArgs,
    no_fused: bool,
}

impl Settings<'_> {
    /// The run's arguments both sides take.
    fn common_args(&self) -> Vec<String> {
        vec![
            "--batches".into(),
            self.batches.to_string(),
            "--warmup".into(),
            self.warmup.to_string(),
            "--batch-size".into(),
            self.batch_size.to_string(),
            "--lr".into(),
            self.lr.to_string(),
            "--seed".into(),
            self.seed.to_string(),
        ]
    }

    /// The setup line under the table.
    fn describe(&self, repeats: usize, reference: &Reference) -> String {
        let pytorch = match reference {
            Reference::Off => "PyTorch not run (--no-pytorch)".to_owned(),
            Reference::Unavailable(_) => "PyTorch unavailable".to_owned(),
            Reference::Ready { python, torch, .. } => {
                format!("PyTorch {torch} ({})", python.display())
            }
        };
        format!(
            "setup: {} threads each, batch {}, {} timed batches after {} warm-up, SGD lr {}, \
             seed {}, median of {repeats} run{} each; Fashion-MNIST from {}; acbench {}{}; {pytorch}",
            self.threads,
            self.batch_size,
            self.batches,
            self.warmup,
            self.lr,
            self.seed,
            if repeats == 1 { "" } else { "s" },
            self.data_dir.display(),
            env!("CARGO_PKG_VERSION"),
            if self.no_fused {
                " (formulas only)"
            } else {
                " (fused kernels)"
            },
        )
    }
}

/// Runs one acbench measurement in a child process.
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

/// Runs the reference script once.
fn run_pytorch(
    python: &Path,
    script: &Path,
    spec: &Path,
    s: &Settings<'_>,
) -> Result<Measurement, String> {
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
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    finished(&out)?;
    Measurement::from_stdout(&out.stdout)
}

/// OpenMP and MKL pools sized like torch's own before it is even imported.
fn thread_env(threads: usize) -> [(&'static str, String); 2] {
    [
        ("OMP_NUM_THREADS", threads.to_string()),
        ("MKL_NUM_THREADS", threads.to_string()),
    ]
}

fn finished(out: &Output) -> Result<(), String> {
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{}:\n{}",
        out.status,
        tail(&String::from_utf8_lossy(&out.stderr))
    ))
}

/// Whether and how the PyTorch side runs.
enum Reference {
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
    fn probe(explicit: Option<PathBuf>, scratch: &Path) -> Self {
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
        let setup = "create it with bench/setup-pytorch.sh (a CPU-only torch venv in \
                     ~/.cache/acbench/torch-venv), or point --python / $ACBENCH_TORCH_PYTHON at a \
                     python that has torch";
        if !python.is_file() {
            return Self::Unavailable(format!(
                "no python at {} (from {from}); {setup}",
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
                    "cannot run {} (from {from}): {e}; {setup}",
                    python.display()
                ));
            }
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() == Some(EXIT_NO_TORCH) {
            return Self::Unavailable(format!(
                "{} (from {from}) cannot import torch; {setup}\n{}",
                python.display(),
                tail(&stderr)
            ));
        }
        if !out.status.success() {
            return Self::Unavailable(format!(
                "{} (from {from}) failed to run the reference script ({}); {setup}\n{}",
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

/// One line of the result: medians of each side's measurements.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Row {
    model: String,
    activation: String,
    acbench_img_s: Option<f64>,
    pytorch_img_s: Option<f64>,
    /// acbench images/s over PyTorch's: above 1, acbench is faster.
    ratio: Option<f64>,
    acbench_peak_rss_mb: Option<f64>,
    pytorch_peak_rss_mb: Option<f64>,
}

impl Row {
    fn new(model: &str, activation: &str, ours: &[Measurement], theirs: &[Measurement]) -> Self {
        let img_s = |m: &[Measurement]| median(m.iter().map(|m| m.img_s).collect());
        let rss = |m: &[Measurement]| median(m.iter().filter_map(|m| m.peak_rss_mb).collect());
        let (a, p) = (img_s(ours), img_s(theirs));
        Self {
            model: model.to_owned(),
            activation: activation.to_owned(),
            acbench_img_s: a,
            pytorch_img_s: p,
            ratio: a.zip(p).map(|(a, p)| a / p),
            acbench_peak_rss_mb: rss(ours),
            pytorch_peak_rss_mb: rss(theirs),
        }
    }
}

/// The median, or `None` for no values.
fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

#[derive(Tabled)]
struct TableRow {
    #[tabled(rename = "model")]
    model: String,
    #[tabled(rename = "activation")]
    activation: String,
    #[tabled(rename = "acbench img/s")]
    acbench: String,
    #[tabled(rename = "PyTorch img/s")]
    pytorch: String,
    #[tabled(rename = "acbench/PyTorch")]
    ratio: String,
    #[tabled(rename = "acbench peak RSS MB")]
    acbench_rss: String,
    #[tabled(rename = "PyTorch peak RSS MB")]
    pytorch_rss: String,
}

fn render_table(rows: &[Row]) -> String {
    let cell = |v: Option<f64>, digits: usize| {
        v.map_or_else(|| MISSING.to_owned(), |v| format!("{v:.digits$}"))
    };
    let lines: Vec<TableRow> = rows
        .iter()
        .map(|r| TableRow {
            model: r.model.clone(),
            activation: r.activation.clone(),
            acbench: cell(r.acbench_img_s, 1),
            pytorch: cell(r.pytorch_img_s, 1),
            ratio: cell(r.ratio, 2),
            acbench_rss: cell(r.acbench_peak_rss_mb, 1),
            pytorch_rss: cell(r.pytorch_peak_rss_mb, 1),
        })
        .collect();
    let mut table = Table::new(lines);
    table.with(Style::sharp());
    table.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(img_s: f64, rss: f64) -> Measurement {
        Measurement {
            img_s,
            peak_rss_mb: Some(rss),
            params: 1,
            seconds: None,
            final_loss: None,
            torch: None,
        }
    }

    #[test]
    fn medians_and_ratio() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        let row = Row::new(
            "convnet",
            "relu",
            &[m(100.0, 50.0), m(300.0, 70.0), m(200.0, 60.0)],
            &[m(400.0, 90.0)],
        );
        assert_eq!(row.acbench_img_s, Some(200.0));
        assert_eq!(row.pytorch_img_s, Some(400.0));
        assert_eq!(row.ratio, Some(0.5));
        assert_eq!(row.acbench_peak_rss_mb, Some(60.0));
        let alone = Row::new("convnet", "relu", &[m(100.0, 50.0)], &[]);
        assert_eq!((alone.pytorch_img_s, alone.ratio), (None, None));
    }

    #[test]
    fn json_rows_have_exactly_the_issue_fields() {
        let row = Row::new("resnet20", "arelu", &[m(10.0, 5.0)], &[]);
        let v = serde_json::to_value(&row).expect("serialises");
        let mut keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "acbench_img_s",
                "acbench_peak_rss_mb",
                "activation",
                "model",
                "pytorch_img_s",
                "pytorch_peak_rss_mb",
                "ratio"
            ]
        );
        assert!(v["pytorch_img_s"].is_null() && v["ratio"].is_null());
    }

    #[test]
    fn table_shows_a_dash_for_what_was_not_measured() {
        let table = render_table(&[Row::new("convnet", "arelu", &[m(1234.56, 80.0)], &[])]);
        assert!(table.contains("acbench/PyTorch"), "{table}");
        assert!(table.contains("1234.6"), "{table}");
        assert!(table.contains(MISSING), "{table}");
    }

    #[test]
    fn measurements_parse_from_the_last_json_line() {
        let out = b"some log line\n{\"img_s\": 12.5, \"peak_rss_mb\": 3.0, \"params\": 7, \
                    \"torch\": \"2.5.1\", \"threads\": 2}\n";
        let got = Measurement::from_stdout(out).expect("parses");
        assert_eq!((got.img_s, got.params), (12.5, 7));
        assert_eq!(got.torch.as_deref(), Some("2.5.1"));
        assert!(Measurement::from_stdout(b"no json").is_err());
        assert!(Measurement::from_stdout(b"{\"img_s\": 0, \"params\": 1}").is_err());
    }

    #[test]
    fn padding_centres_the_image_and_leaves_zeros() {
        // Two 1x2x2 images into 1x4x5: one row above, one below; one column
        // left, two right.
        let src = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let out = pad_images(&src, (1, 2, 2), (4, 5));
        #[rustfmt::skip]
        let first = [
            0.0, 0.0, 0.0, 0.0, 0.0,
            0.0, 1.0, 2.0, 0.0, 0.0,
            0.0, 3.0, 4.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0, 0.0,
        ];
        assert_eq!(out[..20], first);
        assert_eq!(out[26..28], [5.0, 6.0]);
        assert_eq!(out.len(), 40);
        assert_eq!(pad_images(&src, (1, 2, 2), (2, 2)), src);
    }

    #[test]
    fn batches_cycle_through_the_images_in_order() {
        assert_eq!(batch_start(0, 64, 640), 0);
        assert_eq!(batch_start(9, 64, 640), 576);
        // 10 images, batch 4: starts 0, 4, then wrap within the 7 valid starts.
        let starts: Vec<usize> = (0..4).map(|i| batch_start(i, 4, 10)).collect();
        assert_eq!(starts, [0, 4, 1, 5]);
    }

    #[test]
    fn model_names_resolve_and_unknown_ones_list_the_shipped() {
        for (name, _) in MODELS {
            let m = BenchModel::resolve(name).expect("shipped");
            let net = m.elaborate().expect("elaborates for Fashion-MNIST");
            assert_eq!(net.output, Shape::Flat(10), "{name}");
        }
        let err = BenchModel::resolve("resnet21")
            .err()
            .expect("unknown")
            .to_string();
        assert!(
            err.contains("convnet, vgg-small, resnet20"),
            "the message lists the shipped models: {err}"
        );
    }

    #[test]
    fn bindings_split_on_spaces() {
        let b = parse_binding("arelu fc=relu").expect("valid");
        assert_eq!(
            b.default.as_ref().map(|s| s.activation.as_str()),
            Some("arelu")
        );
        assert!(b.slots.contains_key("fc"));
        assert!(parse_binding("  ").is_err());
    }
}
