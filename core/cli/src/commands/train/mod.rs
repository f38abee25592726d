//! `acbench train`: one model, one activation binding, one dataset.

use std::process::ExitCode;

use acbench_dsl::ir::{Network, Shape, Value};
use acbench_engine::activation::ActBindings;
use acbench_engine::model::Model;
use acbench_engine::optim::OptimizerConfig;
use acbench_engine::plugin::PluginManifest;
use acbench_engine::rng::Seed;
use acbench_engine::schedule::Schedule;
use acbench_engine::train::{self, InputNorm, RunStatus, TrainConfig, TrainOutcome};
use serde::Serialize;

use super::network::{load_network, parse_net_args};

mod detector;
use crate::cli::{NormName, OptimizerName, TrainArgs};
use crate::progress::TrainProgress;

/// Runs `acbench train`.
pub fn run(args: &TrainArgs) -> miette::Result<ExitCode> {
    // Everything the user typed is validated before the (slow) data load.
    let net_args = parse_net_args(&args.model.args)?;
    let bindings = ActBindings::parse(&args.acts).map_err(miette::Report::msg)?;
    let registry = super::plugins::training_registry(&args.activations, Vec::new())?;
    let config = train_config(args)?;
    let device = super::device(args.device)?;
    if acbench_data::detection::is_detection(&args.dataset) || args.detector.is_some() {
        return detector::run(args, &net_args, &bindings, &registry, &config, &device);
    }

    let load = acbench_data::LoadOptions {
        data_dir: args.data_dir.clone(),
        image_size: args.image_size.as_deref().map(parse_size).transpose()?,
        limit_train: args.limit_train,
        limit_test: args.limit_test,
    };
    let data = acbench_data::load(&args.dataset, &load).map_err(miette::Report::msg)?;
    let (c, h, w) = data.shape;
    let mut defaults = vec![
        ("classes".to_owned(), Value::Int(data.classes as i64)),
        ("channels".to_owned(), Value::Int(c as i64)),
        ("height".to_owned(), Value::Int(h as i64)),
        ("width".to_owned(), Value::Int(w as i64)),
    ];
    if h == w {
        defaults.push(("size".to_owned(), Value::Int(h as i64)));
    }
    let net = load_network(
        &args.model.file,
        args.model.network.as_deref(),
        &net_args,
        &defaults,
    )?;
    check_fits(&net, &data)?;
    acbench_engine::memory::check(&net, config.batch_size, &config.optimizer)
        .map_err(miette::Report::msg)?;

    let mut model = Model::build(&net, &registry, &bindings, &device, config.seed)
        .map_err(miette::Report::msg)?;
    println!(
        "{}: {} on {} ({} train / {} test images, {} classes), {} parameters, activations: {}",
        args.model.file.display(),
        net.name,
        data.name,
        data.train.len(),
        data.test.len(),
        data.classes,
        net.param_count(),
        args.acts.join(" ")
    );

    let mut progress = TrainProgress::new(config.epochs);
    let outcome = train::train(&mut model, &data, &config, &device, &mut progress)
        .map_err(miette::Report::msg)?;
    print_outcome(&outcome);

    if let Some(path) = &args.out {
        let record = RunRecord {
            acbench_version: env!("CARGO_PKG_VERSION"),
            model_file: args.model.file.display().to_string(),
            network: &net.name,
            network_args: net
                .args
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
            parameters: net.param_count(),
            dataset: &data.name,
            train_examples: data.train.len(),
            test_examples: data.test.len(),
            activations: &args.acts,
            plugins: registry.plugins(),
            fused: !args.activations.no_fused,
            device: format!("{:?}", args.device).to_lowercase(),
            threads: rayon_threads(),
            config: &config,
            test_accuracy: outcome.epochs.last().map(|e| e.test_acc),
            outcome: &outcome,
        };
        super::write_json(path, &record)?;
        println!("result written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// What `--out` writes: enough to know exactly what ran and what it gave.
#[derive(Serialize)]
struct RunRecord<'a> {
    acbench_version: &'a str,
    model_file: String,
    network: &'a str,
    network_args: Vec<(String, String)>,
    parameters: usize,
    dataset: &'a str,
    train_examples: usize,
    test_examples: usize,
    activations: &'a [String],
    /// Every plugin loaded for the run: path, sha256, activations.
    plugins: &'a [PluginManifest],
    /// Whether fused kernels were allowed (`--no-fused` turns them off).
    fused: bool,
    device: String,
    threads: usize,
    config: &'a TrainConfig,
    /// Test accuracy after the last finished epoch.
    test_accuracy: Option<f64>,
    outcome: &'a TrainOutcome,
}

pub(super) fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

pub(super) fn print_outcome(outcome: &TrainOutcome) {
    match &outcome.status {
        RunStatus::Completed => {}
        RunStatus::Diverged {
            epoch,
            batch: Some(batch),
            cause,
        } => {
            println!(
                "diverged: non-finite training loss at epoch {} batch {}{}",
                epoch + 1,
                batch + 1,
                cause
                    .as_ref()
                    .map_or_else(String::new, |c| format!(": {c}"))
            );
        }
        RunStatus::Diverged {
            epoch, batch: None, ..
        } => {
            println!("diverged: non-finite test loss after epoch {}", epoch + 1);
        }
        RunStatus::Interrupted { epoch } => {
            println!("interrupted in epoch {}", epoch + 1);
        }
    }
    match outcome.epochs.last() {
        Some(last) if last.detection.is_some() => {}
        Some(last) => println!(
            "final test accuracy {:.4}, test loss {:.4}",
            last.test_acc, last.test_loss
        ),
        None => {}
    }
    let mut lines = Vec::new();
    for slot in &outcome.act_values {
        if slot.params.is_empty() {
            continue;
        }
        let values: Vec<String> = slot
            .params
            .iter()
            .map(|(name, v)| match v.as_slice() {
                [x] => format!("{name}={x:.5}"),
                many => format!(
                    "{name}=[{} values, mean {:.5}]",
                    many.len(),
                    many.iter().sum::<f32>() / many.len() as f32
                ),
            })
            .collect();
        lines.push(format!(
            "  {:<24} {:<9} {}",
            slot.path,
            slot.activation,
            values.join("  ")
        ));
    }
    if !lines.is_empty() {
        println!("activation parameters after training:");
        for l in lines {
            println!("{l}");
        }
    }
}

fn check_fits(net: &Network, data: &acbench_data::Dataset) -> miette::Result<()> {
    let (c, h, w) = data.shape;
    if net.input != (Shape::Image { c, h, w }) {
        miette::bail!(
            "network `{}` takes {} inputs but {} images are {c}x{h}x{w}; give the network matching \
             arguments (e.g. --arg size={h})",
            net.name,
            net.input,
            data.name
        );
    }
    if net.output != Shape::Flat(data.classes) {
        miette::bail!(
            "network `{}` outputs {} values but {} has {} classes (e.g. --arg classes={})",
            net.name,
            net.output,
            data.name,
            data.classes,
            data.classes
        );
    }
    Ok(())
}

pub(super) fn parse_size(s: &str) -> miette::Result<(usize, usize)> {
    let bad = || miette::miette!("--image-size `{s}`: expected HxW such as 84x84");
    let (h, w) = s.split_once('x').ok_or_else(bad)?;
    let h: usize = h.trim().parse().map_err(|_| bad())?;
    let w: usize = w.trim().parse().map_err(|_| bad())?;
    if h == 0 || w == 0 {
        return Err(bad());
    }
    Ok((h, w))
}

fn train_config(args: &TrainArgs) -> miette::Result<TrainConfig> {
    if args.epochs == 0 {
        miette::bail!("--epochs must be at least 1");
    }
    if args.batch == 0 || args.eval_batch == 0 {
        miette::bail!("--batch and --eval-batch must be at least 1");
    }
    if !(args.lr.is_finite() && args.lr > 0.0) {
        miette::bail!("--lr must be a positive number, got {}", args.lr);
    }
    if !(args.weight_decay.is_finite() && args.weight_decay >= 0.0) {
        miette::bail!(
            "--weight-decay must be zero or positive, got {}",
            args.weight_decay
        );
    }
    let optimizer = match args.optimizer {
        OptimizerName::Momentum => OptimizerConfig::Momentum {
            momentum: args.momentum,
        },
        other => {
            let name = format!("{other:?}").to_ascii_lowercase();
            name.parse::<OptimizerConfig>()
                .map_err(miette::Report::msg)?
        }
    };
    let schedule = parse_schedule(&args.schedule, args.lr)?;
    let normalization = match args.norm {
        NormName::PerImage => InputNorm::PerImage,
        NormName::PerChannel => InputNorm::PerChannel,
        NormName::Unit => InputNorm::Unit,
    };
    let augment = if args.augment {
        acbench_data::Augment {
            crop_padding: 4,
            hflip: true,
        }
    } else {
        acbench_data::Augment::default()
    };
    let config = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch,
        eval_batch_size: args.eval_batch,
        optimizer,
        schedule,
        weight_decay: args.weight_decay,
        seed: Seed(args.seed),
        normalization,
        augment,
        loss_every: None,
    };
    config.validate().map_err(miette::Report::msg)?;
    Ok(config)
}

fn parse_schedule(s: &str, lr: f64) -> miette::Result<Schedule> {
    let s = s.trim();
    if s == "constant" {
        return Ok(Schedule::Constant { lr });
    }
    if s == "cosine" {
        return Ok(Schedule::Cosine {
            lr,
            min_lr: 0.0,
            per_step: false,
        });
    }
    if let Some(list) = s.strip_prefix("step:") {
        let milestones = list
            .split(',')
            .map(|e| {
                e.trim()
                    .parse::<usize>()
                    .map_err(|_| miette::miette!("--schedule `{s}`: `{e}` is not an epoch number"))
            })
            .collect::<miette::Result<Vec<_>>>()?;
        return Ok(Schedule::Step {
            lr,
            milestones,
            factor: 10.0,
        });
    }
    miette::bail!("--schedule `{s}`: expected `constant`, `cosine` or `step:E1,E2,...`")
}
