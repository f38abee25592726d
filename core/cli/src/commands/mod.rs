//! One module per subcommand.

mod data;
mod model;
mod network;
mod train;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> miette::Result<ExitCode> {
    match cli.command {
        Command::Train(args) => train::run(&args),
        Command::Model(cmd) => model::run(cmd),
        Command::Data(cmd) => data::run(cmd),
    }
}
