//! `acbench data list|fetch`.

use std::process::ExitCode;

use acbench_data::fetch::{FetchOptions, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tabled::settings::Style;
use tabled::{Table, Tabled};

use crate::cli::DataCommand;

/// Runs `acbench data ...`.
pub fn run(cmd: DataCommand) -> miette::Result<ExitCode> {
    match cmd {
        DataCommand::List { data_dir } => {
            #[derive(Tabled)]
            struct Row {
                name: String,
                description: String,
                #[tabled(rename = "found at")]
                found: String,
                fetchable: String,
            }
            let opts = acbench_data::LoadOptions {
                data_dir,
                ..Default::default()
            };
            let rows: Vec<Row> = acbench_data::list(&opts)
                .into_iter()
                .map(|s| Row {
                    name: s.name.to_string(),
                    description: s.description.to_string(),
                    found: s
                        .found_at
                        .map_or_else(|| "-".into(), |p| p.display().to_string()),
                    fetchable: if s.fetchable { "yes" } else { "no" }.into(),
                })
                .collect();
            let mut table = Table::new(rows);
            table.with(Style::psql());
            println!("{table}");
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Fetch {
            name,
            data_dir,
            mirror,
        } => {
            let dest = match data_dir {
                Some(d) => d,
                None => acbench_data::default_root().ok_or_else(|| {
                    miette::miette!("no cache directory on this system: pass --data-dir DIR")
                })?,
            };
            let opts = FetchOptions {
                mirror,
                ..Default::default()
            };
            let bar = BarProgress::new();
            let path = acbench_data::fetch::fetch(&name, &dest, &opts, &bar)
                .map_err(miette::Report::msg)?;
            println!("{name}: ready in {}", path.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Download progress as an indicatif bar (hidden when stderr is not a terminal).
struct BarProgress {
    bar: ProgressBar,
}

impl BarProgress {
    fn new() -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        Self { bar }
    }
}

impl Progress for BarProgress {
    fn start(&self, what: &str, total: Option<u64>) {
        self.bar.reset();
        self.bar.set_length(total.unwrap_or(0));
        let style = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        self.bar.set_style(style);
        self.bar.set_message(what.to_owned());
    }

    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
