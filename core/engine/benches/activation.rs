//! Fused activation kernels against the formula path, side by side in one run.
//!
//! 1. Forward + backward of AReLU on a `64x64x32x32` f32 tensor (gradients
//!    for the input and the four parameters): fused kernel vs formula.
//! 2. Training throughput of the quick-run convnet (`suites/models/convnet.acnet`)
//!    on random 28x28 batches: fused AReLU, formula AReLU, ReLU.
//!
//! Run with `cargo bench -p acbench-engine --bench activation`. It uses the
//! shipped plugins, linked into the engine. Set `RAYON_NUM_THREADS` to fix
//! the thread count.

use std::time::{Duration, Instant};

use acbench_engine::activation::{ActBindings, ActLayer, ActSpec, Registry};
use acbench_engine::model::Model;
use acbench_engine::optim::{Optimizer, OptimizerConfig};
use acbench_engine::params::Param;
use acbench_engine::rng::Seed;
use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

// Like the acbench binary: candle allocates a buffer per op and glibc malloc
// would slow both paths (ARCHITECTURE.md, "Build profiles").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Res<T> = Result<T, Box<dyn std::error::Error>>;
/// One timed operation; the flag picks the fused path.
type Step<'a> = dyn Fn(bool) -> Res<()> + 'a;

fn main() -> Res<()> {
    let threads = rayon::current_num_threads();
    println!("threads: {threads}");
    activation_layer()?;
    convnet()?;
    Ok(())
}

/// Median of `runs` timed calls after `warmup` untimed ones.
fn median(warmup: usize, runs: usize, mut f: impl FnMut() -> Res<()>) -> Res<Duration> {
    for _ in 0..warmup {
        f()?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times[runs / 2])
}

fn activation_layer() -> Res<()> {
    let registry = Registry::builtin()?;
    let spec = ActSpec::parse("arelu:a=1.1,b=0.3,c=0.05,d=-0.02")?;
    let (layer, params) =
        ActLayer::new("act", None, &registry, &spec, 64, DType::F32, &Device::Cpu)?;
    let dims = (64, 64, 32, 32);
    let x = candle_core::Var::from_tensor(&Tensor::randn(0f32, 1.0, dims, &Device::Cpu)?)?;
    let w = Tensor::randn(0f32, 1.0, dims, &Device::Cpu)?;
    if !layer.fused_applies(x.as_tensor()) {
        return Err("the shipped arelu has no fused kernels".into());
    }
    let run = |fused: bool| -> Res<Tensor> {
        Ok(if fused {
            layer.forward_fused(x.as_tensor())?
        } else {
            layer.forward_formula(x.as_tensor())?
        })
    };
    // forward, forward + backward from a ones gradient (the activation
    // alone), and forward + backward of a weighted sum (what training adds:
    // the same extra ops on both paths).
    let steps: [(&str, &Step); 3] = [
        ("forward", &|fused| run(fused).map(|_| ())),
        ("forward+backward", &|fused| {
            let grads = run(fused)?.backward()?;
            check_grads(&grads, &params)
        }),
        ("forward+backward of sum(y*w)", &|fused| {
            let grads = run(fused)?.mul(&w)?.sum_all()?.backward()?;
            check_grads(&grads, &params)
        }),
    ];
    println!("arelu on 64x64x32x32 f32 (median of 9 runs):");
    for (label, step) in steps {
        let fused = median(2, 9, || step(true))?;
        let formula = median(2, 9, || step(false))?;
        println!(
            "  {label:<30} fused {:>6.1} ms  formula {:>6.1} ms  formula/fused = {:.2}x",
            fused.as_secs_f64() * 1e3,
            formula.as_secs_f64() * 1e3,
            formula.as_secs_f64() / fused.as_secs_f64()
        );
    }
    Ok(())
}

fn check_grads(grads: &candle_core::backprop::GradStore, params: &[Param]) -> Res<()> {
    for p in params {
        if grads.get(p.var.as_tensor()).is_none() {
            return Err(format!("no gradient for {}", p.name).into());
        }
    }
    Ok(())
}

fn convnet() -> Res<()> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../suites/models/convnet.acnet"
    );
    let net = acbench_dsl::compile_file(path, None, &[]).map_err(|e| format!("{path}: {e:?}"))?;
    let batch = 64;
    let x = Tensor::randn(0f32, 1.0, (batch, 1, 28, 28), &Device::Cpu)?;
    let y = Tensor::from_vec(
        (0..batch as u32).map(|i| i % 10).collect::<Vec<u32>>(),
        batch,
        &Device::Cpu,
    )?;
    let mut rates = Vec::new();
    for (label, act, fused) in [
        ("arelu fused", "arelu", true),
        ("arelu formula", "arelu", false),
        ("relu fused", "relu", true),
        ("relu formula", "relu", false),
    ] {
        let mut registry = Registry::builtin()?;
        registry.set_fused(fused);
        let mut model = Model::build(
            &net,
            &registry,
            &ActBindings::uniform(act),
            &Device::Cpu,
            Seed(0),
        )?;
        let mut opt = Optimizer::new(model.params(), OptimizerConfig::Sgd, 0.0)?;
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let per_step = median(2, 9, || {
            let logits = model.forward_train(&x, &mut rng)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            let grads = loss.backward()?;
            opt.step(&grads, 1e-3)?;
            Ok(())
        })?;
        let rate = batch as f64 / per_step.as_secs_f64();
        println!("convnet training, batch {batch}: {label:<14} {rate:>8.0} images/s");
        rates.push((label, rate));
    }
    let rate = |l: &str| {
        rates
            .iter()
            .find(|(n, _)| *n == l)
            .map_or(f64::NAN, |r| r.1)
    };
    println!(
        "convnet: fused arelu / fused relu = {:.3}; fused arelu / formula arelu = {:.3}",
        rate("arelu fused") / rate("relu fused"),
        rate("arelu fused") / rate("arelu formula")
    );
    Ok(())
}
