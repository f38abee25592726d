//! One module per subcommand.

mod bench;
mod data;
mod detect;
mod export;
mod ledger;
mod merge;
mod model;
mod network;
mod plugins;
mod report;
mod shard;
mod slurm;
mod suite;
mod sweep;
mod train;

use std::path::Path;
use std::process::ExitCode;

use candle_core::Device;
use miette::IntoDiagnostic;
use serde::Serialize;

use crate::cli::{Cli, Command, DeviceName};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> miette::Result<ExitCode> {
    let threads = cli.threads;
    match cli.command {
        Command::Train(args) => train::run(&args),
        Command::Model(cmd) => model::run(cmd),
        Command::Data(cmd) => data::run(cmd),
        Command::Plugins(cmd) => plugins::run(cmd),
        Command::Suite(args) => suite::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Merge(args) => merge::run(&args),
        Command::Export(cmd) => export::run(cmd),
        Command::Ledger(cmd) => ledger::run(cmd),
        Command::Detect(cmd) => detect::run(cmd),
        Command::Sweep(args) => sweep::run(&args),
        Command::Bench(args) => bench::run(&args, threads),
        Command::BenchWorker(args) => bench::run_worker(&args),
    }
}

/// Writes through a temporary file and a rename, so an interrupted write
/// never leaves a truncated result behind.
pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> miette::Result<()> {
    acbench_suite::output::write_json(path, value).into_diagnostic()
}

pub(crate) fn device(name: DeviceName) -> miette::Result<Device> {
    match name {
        DeviceName::Cpu => Ok(Device::Cpu),
        DeviceName::Cuda => {
            if !candle_core::utils::cuda_is_available() {
                miette::bail!("--device cuda: this acbench was built without the `cuda` feature");
            }
            Device::new_cuda(0).map_err(|e| miette::miette!("--device cuda: {e}"))
        }
    }
}
