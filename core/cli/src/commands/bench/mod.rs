//! `acbench bench`: acbench against a PyTorch reference of the identical
//! model, side by side, on real Fashion-MNIST.
//!
//! For every model and activation, one measurement trains for `--warmup`
//! untimed and `--batches` timed batches through [`Trainer::step`] (the step
//! `acbench train` runs), in a child process of its own (`acbench
//! bench-worker`, [`worker`]) so that its peak RSS is that run's alone; then
//! `bench/pytorch_reference.py` (embedded, [`mod@reference`]) builds the same
//! network from the elaborated IR, which it receives as JSON with every act
//! slot's formula and initial parameter values, and trains it on the same
//! batches. Both sides use the same thread count, batch, SGD learning rate,
//! PyTorch's default initialisation scheme, per-image standardisation and
//! fitting of the 1x28x28 images to the network's input (zero padding,
//! grey replicated to 3 channels), and report their trainable parameter
//! count: a row whose counts differ is not the identical model and fails.
//!
//! [`Trainer::step`]: acbench_engine::train::Trainer::step

mod measure;
mod reference;
mod table;
mod worker;

use std::path::Path;
use std::process::ExitCode;

use acbench_dsl::ir::{Network, Shape, Value};
use acbench_engine::activation::{ActBindings, Registry};
use acbench_engine::model::Model;
use acbench_engine::rng::Seed;
use candle_core::Device;
use miette::{IntoDiagnostic, miette};

use super::network::elaborate_source;
use crate::cli::{ActivationArgs, BenchActSet, BenchArgs};
use measure::{Failed, measure};
use reference::{Reference, ReferenceSpec};
use table::{Row, render_table};
pub use worker::run_worker;

/// A shipped benchmark model, embedded so that `acbench bench` works from
/// any folder, with the network arguments it is elaborated with.
struct Shipped {
    name: &'static str,
    source: &'static str,
    /// `channels`; `None` keeps the dataset's (1).
    channels: Option<i64>,
    /// `size`; `None` keeps the model's own.
    size: Option<i64>,
    /// One of the paper's models (`--model paper`), else a small one
    /// (`--model small`, the default).
    paper: bool,
}

/// Shipped models: the three small ones first (the default), then the
/// paper's at the sizes of its CIFAR (32x32) and miniImageNet (84x84) runs.
const MODELS: &[Shipped] = &[
    Shipped {
        name: "convnet",
        source: include_str!("../../../../../suites/models/convnet.acnet"),
        channels: None,
        size: None,
        paper: false,
    },
    Shipped {
        name: "vgg-small",
        source: include_str!("../../../../../suites/models/vgg-small.acnet"),
        channels: None,
        size: None,
        paper: false,
    },
    Shipped {
        name: "resnet20",
        source: include_str!("../../../../../suites/models/resnet20.acnet"),
        channels: None,
        size: None,
        paper: false,
    },
    Shipped {
        name: "alexnet",
        source: include_str!("../../../../../suites/models/alexnet.acnet"),
        channels: Some(3),
        size: Some(32),
        paper: true,
    },
    Shipped {
        name: "vgg",
        source: include_str!("../../../../../suites/models/vgg.acnet"),
        channels: Some(3),
        size: Some(32),
        paper: true,
    },
    Shipped {
        name: "vgg-v",
        source: include_str!("../../../../../suites/models/vgg-v.acnet"),
        channels: Some(3),
        size: Some(32),
        paper: true,
    },
    Shipped {
        name: "googlenet",
        source: include_str!("../../../../../suites/models/googlenet.acnet"),
        channels: Some(3),
        size: Some(32),
        paper: true,
    },
    Shipped {
        name: "resnet",
        source: include_str!("../../../../../suites/models/resnet.acnet"),
        channels: Some(3),
        size: Some(32),
        paper: true,
    },
    Shipped {
        name: "densenet",
        source: include_str!("../../../../../suites/models/densenet.acnet"),
        channels: Some(3),
        size: Some(32),
        paper: true,
    },
    Shipped {
        name: "resnet50",
        source: include_str!("../../../../../suites/models/resnet50.acnet"),
        channels: Some(3),
        size: Some(84),
        paper: true,
    },
];

/// `--model` names that stand for several shipped models.
const MODEL_GROUPS: &[&str] = &["small", "paper"];

/// `--acts piecewise`.
const PIECEWISE_ACTS: &[&str] = &["relu", "arelu"];

/// `--acts smooth`.
const SMOOTH_ACTS: &[&str] = &["tanh", "sigmoid", "swish", "atanh", "asigmoid"];

/// Timed batches, warm-up batches and runs per side without `--quick`.
const FULL_RUN: (usize, usize, usize) = (40, 5, 1);

/// The same with `--quick`.
const QUICK_RUN: (usize, usize, usize) = (5, 1, 1);

/// Threads of both sides when the global `--threads` is not given.
const DEFAULT_THREADS: usize = 2;

/// The dataset both sides train on.
const DATASET: &str = "fashion-mnist";

/// What goes in a table cell or JSON field that was not measured.
const MISSING: &str = "—";

/// Runs `acbench bench`.
pub fn run(args: &BenchArgs, threads: Option<usize>) -> miette::Result<ExitCode> {
    let threads = threads.unwrap_or(DEFAULT_THREADS);
    let (batches, warmup, repeats) = if args.quick { QUICK_RUN } else { FULL_RUN };
    let batches = args.batches.unwrap_or(batches);
    let warmup = args.warmup.unwrap_or(warmup);
    let repeats = args.repeats.unwrap_or(repeats);
    check_numbers(batches, args.batch_size, args.lr)?;
    if repeats == 0 {
        miette::bail!("--repeats must be at least 1");
    }
    let acts = activations(args.act_set, &args.acts);
    let model_args = model_names(&args.models);
    if args.quick {
        println!(
            "quick run: {batches} timed batch{} after {warmup} warm-up, {repeats} run{} per side, \
             models {}; too short for figures worth quoting",
            if batches == 1 { "" } else { "es" },
            if repeats == 1 { "" } else { "s" },
            model_args.join(", ")
        );
    }
    let registry = super::plugins::training_registry(&args.activations, Vec::new())?;

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
    let load = acbench_data::LoadOptions {
        data_dir: args.data_dir.clone(),
        ..acbench_data::LoadOptions::default()
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
        batches,
        warmup,
        repeats,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: args.seed,
        threads,
        data_dir: &data_dir,
        activations: &args.activations,
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
        let (ours, theirs) = measure(case, &tag, &settings, &reference, &spec_path).unwrap_or_else(
            |Failed { why, ours }| {
                failures.push(format!("{} {}: {why}", case.label, case.act));
                (ours, Vec::new())
            },
        );
        rows.push(Row::new(&case.label, &case.act, &ours, &theirs));
    }

    println!("{}", render_table(&rows));
    println!("{}", settings.describe(&reference));
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

/// The activation bindings to measure: `--acts`' set, then every `--act`,
/// each once; `--acts all` when neither is given.
fn activations(set: Option<BenchActSet>, acts: &[String]) -> Vec<String> {
    let set = set.or(acts.is_empty().then_some(BenchActSet::All));
    let named: Vec<&str> = match set {
        None => Vec::new(),
        Some(BenchActSet::All) => [PIECEWISE_ACTS, SMOOTH_ACTS].concat(),
        Some(BenchActSet::Piecewise) => PIECEWISE_ACTS.to_vec(),
        Some(BenchActSet::Smooth) => SMOOTH_ACTS.to_vec(),
    };
    let mut out: Vec<String> = Vec::new();
    for a in named.into_iter().chain(acts.iter().map(String::as_str)) {
        if !out.iter().any(|o| o == a) {
            out.push(a.to_owned());
        }
    }
    out
}

/// `--model` values with the groups expanded, each once; the small models
/// when none is given.
fn model_names(models: &[String]) -> Vec<String> {
    let group = |paper: bool| {
        MODELS
            .iter()
            .filter(move |m| m.paper == paper)
            .map(|m| m.name.to_owned())
    };
    let wanted: Vec<String> = if models.is_empty() {
        group(false).collect()
    } else {
        models
            .iter()
            .flat_map(|m| match m.as_str() {
                "small" => group(false).collect(),
                "paper" => group(true).collect(),
                _ => vec![m.clone()],
            })
            .collect()
    };
    let mut out: Vec<String> = Vec::with_capacity(wanted.len());
    for m in wanted {
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

/// Checks the run's numbers, on both sides of the process boundary.
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
    /// Network arguments set whatever the dataset says.
    fixed: Vec<(String, Value)>,
}

impl BenchModel {
    fn resolve(arg: &str) -> miette::Result<Self> {
        if let Some(m) = MODELS.iter().find(|m| m.name == arg) {
            let fixed = [("channels", m.channels), ("size", m.size)]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), Value::Int(v))))
                .collect();
            return Ok(Self {
                label: m.name.to_owned(),
                origin: format!("{}.acnet", m.name),
                source: m.source.to_owned(),
                fixed,
            });
        }
        let path = Path::new(arg);
        let looks_like_path = path.extension().is_some_and(|e| e == "acnet")
            || arg.contains(std::path::MAIN_SEPARATOR)
            || path.is_file();
        if !looks_like_path {
            let names: Vec<&str> = MODELS.iter().map(|m| m.name).collect();
            miette::bail!(
                "unknown benchmark model `{arg}`; shipped: {} (groups: {}), or give the path of \
                 a .acnet file",
                names.join(", "),
                MODEL_GROUPS.join(", ")
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
            fixed: Vec::new(),
        })
    }

    /// The network for Fashion-MNIST: `classes` and (unless the shipped
    /// model fixes it) `channels` are the dataset's when the network
    /// declares them; `size` is the shipped model's or left to the model,
    /// whose input may be larger than the images (they are zero-padded to
    /// fit) and may have more channels (grey is replicated).
    fn elaborate(&self) -> miette::Result<Network> {
        let (classes, (c, h, w)) = acbench_data::geometry(DATASET, None)
            .ok_or_else(|| miette!("`{DATASET}` is not a registered dataset"))?;
        let defaults = [
            ("classes".to_owned(), Value::Int(classes as i64)),
            ("channels".to_owned(), Value::Int(c as i64)),
        ];
        let net = elaborate_source(&self.source, &self.origin, None, &self.fixed, &defaults)?;
        let Shape::Image {
            c: nc,
            h: nh,
            w: nw,
        } = net.input
        else {
            miette::bail!(
                "{}: network `{}` takes {} inputs; the benchmark feeds images",
                self.origin,
                net.name,
                net.input
            );
        };
        if let Err(e) = acbench_data::fit::check_fit((c, h, w), (nc, nh, nw)) {
            miette::bail!(
                "{}: network `{}` takes {} inputs; the benchmark feeds {c}x{h}x{w} Fashion-MNIST \
                 images, zero-padded to a larger size and grey replicated to more channels when \
                 the network asks for them (never cropped): {}",
                self.origin,
                net.name,
                net.input,
                e.why
            );
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

/// What every measurement shares.
struct Settings<'a> {
    batches: usize,
    warmup: usize,
    repeats: usize,
    batch_size: usize,
    lr: f64,
    seed: u64,
    threads: usize,
    data_dir: &'a Path,
    activations: &'a ActivationArgs,
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
    fn describe(&self, reference: &Reference) -> String {
        let pytorch = match reference {
            Reference::Off => "PyTorch not run (--no-pytorch)".to_owned(),
            Reference::Unavailable(_) => "PyTorch unavailable".to_owned(),
            Reference::Ready { python, torch, .. } => {
                format!("PyTorch {torch} ({})", python.display())
            }
        };
        format!(
            "setup: {} threads each, batch {}, {} timed batches after {} warm-up, SGD lr {}, \
             seed {}, median of {} run{} each; Fashion-MNIST from {} (zero-padded to each \
             model's size, grey replicated to its channels); acbench {}{}; {pytorch}",
            self.threads,
            self.batch_size,
            self.batches,
            self.warmup,
            self.lr,
            self.seed,
            self.repeats,
            if self.repeats == 1 { "" } else { "s" },
            self.data_dir.display(),
            env!("CARGO_PKG_VERSION"),
            if self.activations.no_fused {
                " (formulas only)"
            } else {
                " (fused kernels)"
            },
        )
    }
}

#[cfg(test)]
mod tests;
