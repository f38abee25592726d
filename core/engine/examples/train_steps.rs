//! Trains a model on random data for a fixed number of steps after one
//! warm-up step: a target for profilers (`perf record`), not a benchmark
//! (`acbench bench` is).
//!
//! `cargo run --release -p acbench-engine --example train_steps -- MODEL.acnet ACT STEPS [BATCH]`
//! (random data; `perf record target/release/examples/train_steps ...`).

use std::time::Instant;

use acbench_engine::activation::{ActBindings, Registry};
use acbench_engine::model::Model;
use acbench_engine::plugin::PluginOptions;
use acbench_engine::rng::Seed;
use acbench_engine::train::{TrainConfig, Trainer};
use candle_core::{Device, Tensor};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, act, steps, rest @ ..] = args.as_slice() else {
        return Err("usage: train_steps MODEL.acnet ACT STEPS [BATCH]".into());
    };
    let steps: usize = steps.parse()?;
    let batch: usize = rest.first().map_or(Ok(64), |b| b.parse())?;
    let net = acbench_dsl::compile_file(path, None, &[]).map_err(|e| format!("{e:?}"))?;
    let acbench_dsl::ir::Shape::Image { c, h, w } = net.input else {
        return Err("the model must take images".into());
    };
    let classes = match net.output {
        acbench_dsl::ir::Shape::Flat(k) => k,
        _ => return Err("the model must output class scores".into()),
    };
    // The shipped activations (linked) and those on $ACBENCH_PLUGIN_PATH.
    let registry = Registry::discover(&PluginOptions::from_env(Vec::new()))?;
    let bindings = ActBindings::uniform(act);
    let mut model = Model::build(&net, &registry, &bindings, &Device::Cpu, Seed(0))?;
    let cfg: TrainConfig = serde_json::from_value(serde_json::json!({
        "epochs": 1, "batch_size": batch, "seed": 0
    }))?;
    let mut trainer = Trainer::new(&mut model, &cfg)?;
    let x = Tensor::randn(0f32, 1.0, (batch, c, h, w), &Device::Cpu)?;
    let y = Tensor::from_vec(
        (0..batch as u32)
            .map(|i| i % classes as u32)
            .collect::<Vec<u32>>(),
        batch,
        &Device::Cpu,
    )?;
    // The first step fills the buffer pool (and faults its pages in): timed
    // on its own, so that the rate is the steady state's.
    let start = Instant::now();
    trainer.step(&x, &y, 1e-3)?;
    let first = start.elapsed().as_secs_f64();
    let start = Instant::now();
    for _ in 0..steps {
        trainer.step(&x, &y, 1e-3)?;
    }
    let s = start.elapsed().as_secs_f64();
    println!(
        "{path} {act}: first step {first:.2} s, then {steps} steps of {batch} in {s:.2} s = {:.0} images/s",
        (steps * batch) as f64 / s
    );
    Ok(())
}
