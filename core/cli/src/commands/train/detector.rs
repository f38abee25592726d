//! `acbench train` on a detection set: the network with its detector.

use std::collections::BTreeMap;
use std::process::ExitCode;

use acbench_dsl::ir::Value;
use acbench_engine::activation::{ActBindings, Registry};
use acbench_engine::detection::{self, DetectorRun, PostProcess};
use acbench_engine::model::Model;
use acbench_engine::train::{TrainConfig, TrainOutcome};
use candle_core::Device;
use serde::Serialize;

use super::super::network::load_network;
use crate::cli::TrainArgs;
use crate::progress::TrainProgress;

/// Trains a detector: `--detector` over a detection set.
pub(super) fn run(
    args: &TrainArgs,
    net_args: &[(String, Value)],
    bindings: &ActBindings,
    registry: &Registry,
    config: &TrainConfig,
    device: &Device,
) -> miette::Result<ExitCode> {
    let Some(spec) = &args.detector else {
        miette::bail!(
            "`{}` is a detection set: give the detector that reads the network's output, \
             e.g. --detector fcos",
            args.dataset
        );
    };
    if !acbench_data::detection::is_detection(&args.dataset) {
        miette::bail!(
            "--detector needs a detection set; `{}` is not one (detection sets: {})",
            args.dataset,
            detection_names()
        );
    }
    let (name, settings) = parse_detector(spec)?;
    let detector = registry
        .detector(&name)
        .map_err(miette::Report::msg)?
        .clone();

    let load = acbench_data::LoadOptions {
        data_dir: args.data_dir.clone(),
        image_size: args
            .image_size
            .as_deref()
            .map(super::parse_size)
            .transpose()?,
        limit_train: args.limit_train,
        limit_test: args.limit_test,
    };
    let data = acbench_data::detection::load(&args.dataset, &load, args.data_seed)
        .map_err(miette::Report::msg)?;
    let det_config = detector
        .config(data.classes, &settings)
        .map_err(miette::Report::msg)?;
    let run = DetectorRun::new(detector, det_config, &PostProcess::default())
        .map_err(miette::Report::msg)?;
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
        net_args,
        &defaults,
    )?;
    acbench_engine::memory::check(&net, config.batch_size, &config.optimizer)
        .map_err(miette::Report::msg)?;
    let mut model =
        Model::build(&net, registry, bindings, device, config.seed).map_err(miette::Report::msg)?;
    detection::init_head(&mut model, &run).map_err(miette::Report::msg)?;
    println!(
        "{}: {} with detector {} on {} ({} train / {} test images, {} / {} boxes, {} classes), \
         {} parameters, activations: {}",
        args.model.file.display(),
        net.name,
        run.detector.name(),
        data.name,
        data.train.len(),
        data.test.len(),
        data.train.boxes(),
        data.test.boxes(),
        data.classes,
        net.param_count(),
        args.acts.join(" ")
    );

    let mut progress = TrainProgress::new(config.epochs);
    let outcome =
        detection::train_detector(&mut model, &data, &run, config, device, &mut progress, None)
            .map_err(miette::Report::msg)?;
    super::print_outcome(&outcome);
    print_scores(&outcome);

    if let Some(path) = &args.out {
        let record = DetectorRecord {
            acbench_version: env!("CARGO_PKG_VERSION"),
            model_file: args.model.file.display().to_string(),
            network: &net.name,
            parameters: net.param_count(),
            dataset: &data.name,
            data_seed: args.data_seed,
            train_images: data.train.len(),
            test_images: data.test.len(),
            activations: &args.acts,
            detector: run.detector.name(),
            settings: run
                .detector
                .settings()
                .iter()
                .map(|s| s.name.clone())
                .zip(run.config.values.iter().copied())
                .collect(),
            plugins: registry.plugins(),
            threads: super::rayon_threads(),
            config,
            outcome: &outcome,
        };
        super::super::write_json(path, &record)?;
        println!("result written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `--detector NAME[:KEY=VALUE,...]`.
fn parse_detector(spec: &str) -> miette::Result<(String, BTreeMap<String, f64>)> {
    let (name, rest) = spec.split_once(':').unwrap_or((spec, ""));
    if name.trim().is_empty() {
        miette::bail!("--detector `{spec}`: expected NAME or NAME:KEY=VALUE,...");
    }
    let mut settings = BTreeMap::new();
    for item in rest.split(',').filter(|s| !s.trim().is_empty()) {
        let Some((k, v)) = item.split_once('=') else {
            miette::bail!("--detector `{spec}`: `{item}` is not KEY=VALUE");
        };
        let value: f64 = v.trim().parse().map_err(|_| {
            miette::miette!("--detector `{spec}`: `{v}` (setting `{k}`) is not a number")
        })?;
        if settings.insert(k.trim().to_owned(), value).is_some() {
            miette::bail!("--detector `{spec}`: setting `{k}` is given twice");
        }
    }
    Ok((name.trim().to_owned(), settings))
}

fn detection_names() -> String {
    acbench_data::detection::NAMES
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The last epoch's COCO numbers as pycocotools prints them, and the VOC
/// mAPs.
fn print_scores(outcome: &TrainOutcome) {
    let Some(m) = outcome.epochs.last().and_then(|e| e.detection.as_ref()) else {
        return;
    };
    let test_loss = outcome.epochs.last().map_or(f64::NAN, |e| e.test_loss);
    println!(
        "test split after the last epoch: loss {test_loss:.4}, {} detections",
        m.detections
    );
    let iou = acbench_detect::coco::params::iou_thresholds();
    let values: Vec<f64> = m.coco.iter().map(|(_, v)| *v).collect();
    if let Ok(values) = <[f64; 12]>::try_from(values) {
        for line in (acbench_detect::coco::Stats { values }).lines(&iou) {
            println!("{line}");
        }
    }
    println!(
        "VOC AP50: {:.4} (2007 11-point), {:.4} (2010+ all-point)",
        m.voc07_map, m.voc12_map
    );
}

/// What `--out` writes for a detector.
#[derive(Serialize)]
struct DetectorRecord<'a> {
    acbench_version: &'a str,
    model_file: String,
    network: &'a str,
    parameters: usize,
    dataset: &'a str,
    data_seed: u64,
    train_images: usize,
    test_images: usize,
    activations: &'a [String],
    detector: &'a str,
    settings: BTreeMap<String, f64>,
    plugins: &'a [acbench_engine::plugin::PluginManifest],
    threads: usize,
    config: &'a TrainConfig,
    outcome: &'a TrainOutcome,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detector_specs_parse_with_their_settings() -> miette::Result<()> {
        let (name, settings) = parse_detector("fcos:radius=2, prior=0.02")?;
        assert_eq!(name, "fcos");
        assert_eq!(settings.get("radius"), Some(&2.0));
        assert_eq!(settings.get("prior"), Some(&0.02));
        assert!(parse_detector("fcos")?.1.is_empty());
        for bad in [
            "",
            ":radius=1",
            "fcos:radius",
            "fcos:radius=x",
            "fcos:a=1,a=2",
        ] {
            assert!(parse_detector(bad).is_err(), "{bad}");
        }
        Ok(())
    }
}
