//! `acbench ledger check`: is a ledger whole, and what does it hold?

use std::process::ExitCode;

use acbench_suite::output;

use crate::cli::LedgerCommand;

/// Runs `acbench ledger ...`.
pub fn run(cmd: LedgerCommand) -> miette::Result<ExitCode> {
    let LedgerCommand::Check(args) = cmd;
    let path = if args.path.is_dir() {
        output::ledger_path(&args.path)
    } else {
        args.path.clone()
    };
    let report = acbench_ledger::integrity::check(&path).map_err(miette::Report::msg)?;
    if !report.ok() {
        eprintln!(
            "{}: DAMAGED ({} problems):",
            path.display(),
            report.problems.len()
        );
        for p in &report.problems {
            eprintln!("  {p}");
        }
        eprintln!(
            "acbench will not write into it. Restore a copy, or move it away to start a new ledger."
        );
        return Ok(ExitCode::FAILURE);
    }
    let runs: usize = report.runs.iter().map(|(_, n)| n).sum();
    let by: Vec<String> = report
        .runs
        .iter()
        .map(|(status, n)| format!("{n} {status}"))
        .collect();
    println!(
        "{}: ok, {runs} runs{}, {} epochs",
        path.display(),
        if by.is_empty() {
            String::new()
        } else {
            format!(" ({})", by.join(", "))
        },
        report.epochs
    );
    Ok(ExitCode::SUCCESS)
}
