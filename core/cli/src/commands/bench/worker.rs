//! `acbench bench-worker`: one acbench measurement in a process of its own,
//! reported as one JSON line on stdout.

use std::process::ExitCode;
use std::time::Instant;

use acbench_data::{Augment, Batcher, LoadOptions, Normalization};
use acbench_dsl::ir::Shape;
use acbench_engine::model::Model;
use acbench_engine::optim::OptimizerConfig;
use acbench_engine::rng::Seed;
use acbench_engine::schedule::Schedule;
use acbench_engine::train::{InputNorm, TrainConfig, Trainer};
use candle_core::{Device, Tensor};
use miette::IntoDiagnostic;

use super::measure::Measurement;
use super::{BenchModel, DATASET, check_numbers, parse_binding, trainable_count};
use crate::cli::BenchWorkerArgs;

/// Runs `acbench bench-worker`: one acbench measurement, printed as one
/// JSON line ([`Measurement`]).
pub fn run_worker(args: &BenchWorkerArgs) -> miette::Result<ExitCode> {
    check_numbers(args.batches, args.batch_size, args.lr)?;
    let net = BenchModel::resolve(&args.model)?.elaborate()?;
    let registry = crate::commands::plugins::training_registry(&args.activations, Vec::new())?;
    let bindings = parse_binding(&args.act)?;
    let device = Device::Cpu;
    let mut model = Model::build(&net, &registry, &bindings, &device, Seed(args.seed))
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
        loss_every: None,
    };
    let mut trainer = Trainer::new(&mut model, &config).map_err(miette::Report::msg)?;
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

/// First image of training batch `i` (from 0) when `n` images are cycled
/// through in order; the reference script uses the same rule.
fn batch_start(i: usize, batch_size: usize, n: usize) -> usize {
    (i * batch_size) % (n - batch_size + 1)
}

/// Standardised training images fitted to the network's input (zero-padded,
/// centred, to its size; grey replicated to its channels), as one
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
    let pixels = acbench_data::fit::fit_images(&pixels, data.shape, (c, h, w))
        .map_err(|e| miette::miette!("the network's input does not take {}: {e}", data.name))?;
    let x = Tensor::from_vec(pixels, (n, c, h, w), model.device())
        .and_then(|t| t.to_dtype(model.dtype()))
        .map_err(miette::Report::msg)?;
    let y = Tensor::from_vec(labels, n, model.device()).map_err(miette::Report::msg)?;
    Ok((x, y))
}

/// Peak resident set size of this process's own memory so far, in MiB.
///
/// On Linux this is `VmHWM` from /proc/self/status, the high-water mark of
/// this process's address space. `ru_maxrss` (RUSAGE_SELF) is not: exec
/// keeps the larger of the old and the new address space's marks, and the
/// old one of a child started by posix_spawn (vfork) is its parent's, so
/// every worker and reference script would report at least the peak of the
/// `acbench bench` process that started it, both sides the same figure.
/// `ru_maxrss` remains the fallback where /proc is missing.
fn peak_rss_mb() -> Option<f64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| vm_hwm_mb(&s))
        .or_else(ru_maxrss_mb)
}

/// `VmHWM` of a /proc/PID/status text, in MiB.
fn vm_hwm_mb(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let mut words = line["VmHWM:".len()..].split_whitespace();
    let kib: f64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(kib / 1024.0)
}

/// Peak RSS from `getrusage(RUSAGE_SELF)`, in MiB.
#[cfg(unix)]
fn ru_maxrss_mb() -> Option<f64> {
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
fn ru_maxrss_mb() -> Option<f64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cycle_through_the_images_in_order() {
        assert_eq!(batch_start(0, 64, 640), 0);
        assert_eq!(batch_start(9, 64, 640), 576);
        // 10 images, batch 4: starts 0, 4, then wrap within the 7 valid starts.
        let starts: Vec<usize> = (0..4).map(|i| batch_start(i, 4, 10)).collect();
        assert_eq!(starts, [0, 4, 1, 5]);
    }

    #[test]
    fn vm_hwm_is_read_in_mib() {
        let status = "Name:\tacbench\nVmPeak:\t  900000 kB\nVmHWM:\t    7980 kB\nVmRSS:\t 10 kB\n";
        assert_eq!(vm_hwm_mb(status), Some(7980.0 / 1024.0));
        assert_eq!(vm_hwm_mb("Name:\tx\n"), None);
        assert_eq!(vm_hwm_mb("VmHWM:\t12 pages\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn peak_rss_counts_memory_this_process_touched() {
        let before = peak_rss_mb().expect("readable on Linux");
        let mut block = vec![0u8; 64 << 20];
        for page in block.chunks_mut(4096) {
            page[0] = 1;
        }
        std::hint::black_box(&block);
        let after = peak_rss_mb().expect("readable on Linux");
        assert!(after >= before, "{before} -> {after}");
        assert!(after >= 64.0, "64 MiB touched, peak {after} MiB");
    }

    #[test]
    fn training_tensors_fit_grey_images_to_three_channels() {
        use acbench_data::{Dataset, Split};
        use acbench_engine::activation::ActBindings;
        // Two 1x2x2 images with distinct pixels; a network taking 3x4x4.
        let data = Dataset {
            name: "fashion-mnist".into(),
            classes: 2,
            shape: (1, 2, 2),
            class_names: vec![],
            train: Split {
                images: vec![0, 10, 20, 30, 40, 50, 60, 80],
                labels: vec![0, 1],
            },
            test: Split::default(),
        };
        let src = "network t(classes=2, channels=3, size=4) {\n  input(channels, size, size)\n  \
                   flatten linear(classes)\n}\n";
        let net = crate::commands::network::elaborate_source(src, "t.acnet", None, &[], &[])
            .expect("elaborates");
        // No act nodes, so no activation is needed.
        let model = Model::build(
            &net,
            &acbench_engine::activation::Registry::new(),
            &ActBindings::default(),
            &Device::Cpu,
            Seed(0),
        )
        .expect("builds");
        let (x, y) = training_tensors(&data, net.input, &model).expect("fits");
        assert_eq!(x.dims(), [2, 3, 4, 4]);
        assert_eq!(y.to_vec1::<u32>().expect("labels"), [0, 1]);
        let x: Vec<Vec<Vec<Vec<f32>>>> = (0..2)
            .map(|i| x.get(i).and_then(|t| t.to_vec3::<f32>()).expect("image"))
            .collect();
        for image in &x {
            // The border is exactly zero and every channel is the same.
            assert_eq!(image[0][0], [0.0; 4]);
            assert_eq!(image[0][3], [0.0; 4]);
            assert_eq!(image[1], image[0]);
            assert_eq!(image[2], image[0]);
            // Standardised per image: the four pixels have mean 0.
            let inner: f32 = image[0][1][1..3].iter().chain(&image[0][2][1..3]).sum();
            assert!(inner.abs() < 1e-5, "{inner}");
            assert!(image[0][1][1] < image[0][2][2], "pixel order kept");
        }
    }
}
