//! `acbench export`: a suite's runs sent to other tools.

pub mod mlflow;

use std::process::ExitCode;

use acbench_ledger::Ledger;
use acbench_suite::output::{self, SuiteMeta};
use miette::IntoDiagnostic;

use crate::cli::{ExportCommand, MlflowArgs};

/// Runs `acbench export`.
pub fn run(cmd: ExportCommand) -> miette::Result<ExitCode> {
    match cmd {
        ExportCommand::Mlflow(args) => run_mlflow(&args),
    }
}

/// `acbench export mlflow OUT --uri URL [--experiment NAME]`.
fn run_mlflow(args: &MlflowArgs) -> miette::Result<ExitCode> {
    let client = mlflow::Client::new(&args.uri).map_err(miette::Report::msg)?;
    let ledger_path = output::existing_ledger(&args.dir).into_diagnostic()?;
    let ledger = Ledger::open(&ledger_path).map_err(miette::Report::msg)?;
    let runs = ledger.runs().map_err(miette::Report::msg)?;
    let experiment = match &args.experiment {
        Some(name) => name.clone(),
        None => {
            let meta = SuiteMeta::read(&args.dir).ok();
            mlflow::default_experiment(&runs, meta.as_ref().map(|m| m.name.as_str()))
        }
    };
    let artifacts = mlflow::report_files(&args.dir);
    let summary = mlflow::export(
        &client,
        &experiment,
        &runs,
        &artifacts,
        &mut |run, outcome| {
            let name = mlflow::record::run_name(run);
            match outcome {
                mlflow::Outcome::Created { run_id, replaced } => {
                    let again = if *replaced {
                        " (replacing an incomplete export)"
                    } else {
                        ""
                    };
                    println!("created  {name}  {run_id}{again}");
                }
                mlflow::Outcome::Skipped { run_id } => {
                    println!("skipped  {name}  {run_id} (already there)")
                }
            }
        },
    )
    .map_err(miette::Report::msg)?;

    let new = if summary.experiment_created {
        "new "
    } else {
        ""
    };
    println!(
        "exported {} to {}, {new}experiment '{experiment}' (id {}): created {}, skipped {} (already there)",
        ledger_path.display(),
        client.uri(),
        summary.experiment_id,
        summary.created,
        summary.skipped,
    );
    if summary.replaced > 0 {
        println!(
            "{} of the created runs replaced an interrupted or outdated export (deleted in MLflow)",
            summary.replaced
        );
    }
    if artifacts.is_empty() {
        println!("artifacts: no report files in {}", args.dir.display());
    } else if summary.created == 0 {
        println!("artifacts uploaded: 0 (no run created)");
    } else {
        println!("artifacts uploaded: {}", summary.artifacts_uploaded);
        for why in &summary.artifacts_skipped {
            println!("artifacts not uploaded: {why}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
