//! `acbench report DIR`: the tables, exports and plots of a suite's ledger.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use acbench_ledger::Ledger;
use acbench_reports::ReportSpec;
use acbench_suite::output::{self, SuiteMeta};
use miette::IntoDiagnostic;

use crate::cli::ReportArgs;

/// Runs `acbench report`.
pub fn run(args: &ReportArgs) -> miette::Result<ExitCode> {
    let meta = SuiteMeta::read(&args.dir).into_diagnostic()?;
    let ledger_path = output::existing_ledger(&args.dir).into_diagnostic()?;
    let ledger = Ledger::open(&ledger_path).map_err(miette::Report::msg)?;
    render(&args.dir, &meta, &ledger, args.no_plots)?;
    Ok(ExitCode::SUCCESS)
}

/// Renders the report of the suite's runs found in `ledger`: prints the
/// terminal tables and writes the exports and plots into `dir`.
pub fn render(dir: &Path, meta: &SuiteMeta, ledger: &Ledger, no_plots: bool) -> miette::Result<()> {
    let stored = ledger.runs().map_err(miette::Report::msg)?;
    // The suite's own runs, in matrix order; a ledger may hold older ones.
    let results: Vec<_> = meta
        .keys
        .iter()
        .filter_map(|k| stored.iter().find(|r| &r.key == k && r.status.is_done()))
        .map(acbench_suite::record::to_report)
        .collect();
    if results.is_empty() {
        println!("no finished runs yet in {}", dir.display());
        return Ok(());
    }
    // One report per paper table; several go into a folder each, with the
    // plots (the same runs) drawn once.
    let tables: Vec<Option<&String>> = if meta.paper_tables.is_empty() {
        vec![None]
    } else {
        meta.paper_tables.iter().map(Some).collect()
    };
    for (i, table) in tables.iter().enumerate() {
        let out_dir = match table {
            Some(t) if tables.len() > 1 => dir.join(t.as_str()),
            _ => dir.to_path_buf(),
        };
        let spec = ReportSpec {
            title: match table {
                Some(t) => format!("suite {} beside the paper's {t}", meta.name),
                None => format!("suite {}", meta.name),
            },
            paper_table: table.cloned(),
            deviations: meta.deviations.clone(),
            plots: !no_plots && i == 0,
            color: std::io::stdout().is_terminal(),
            ..ReportSpec::default()
        };
        let out = acbench_reports::render_report(&results, &spec, Some(&out_dir))
            .map_err(miette::Report::msg)?;
        println!("{}", out.text);
        if !out.files.is_empty() {
            println!(
                "written: {}",
                out.files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let missing = meta.keys.len() - results.len();
    if missing > 0 {
        println!(
            "({missing} of the suite's {} runs are not finished yet)",
            meta.keys.len()
        );
    }
    Ok(())
}
