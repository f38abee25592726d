//! `acbench plugins list|check`, and the registry every command loads.

use std::path::PathBuf;
use std::process::ExitCode;

use acbench_engine::activation::{CompiledActivation, Registry};
use acbench_engine::plugin::check::{CheckRow, check_activation};
use acbench_engine::plugin::detector_check::check_detector;
use acbench_engine::plugin::{PluginOptions, linked};
use acbench_plugin_api::{Constraint, ParamScope};
use tabled::settings::{Alignment, Style, object::Columns};
use tabled::{Table, Tabled};

use crate::cli::{ActivationArgs, PluginArgs, PluginsCommand};

/// The shipped plugins (linked in), `$ACBENCH_PLUGIN_PATH` and `--plugin`
/// files.
pub fn registry(args: &PluginArgs) -> miette::Result<Registry> {
    Registry::discover(&PluginOptions::from_env(args.plugins.clone())).map_err(miette::Report::msg)
}

/// What a training command's activations come from: [`registry`] with the
/// plugin `files` a suite lists before the `--plugin` ones, and fused
/// kernels unless `--no-fused`.
pub fn training_registry(
    args: &ActivationArgs,
    mut files: Vec<PathBuf>,
) -> miette::Result<Registry> {
    files.extend(args.plugins.plugins.iter().cloned());
    let mut registry =
        Registry::discover(&PluginOptions::from_env(files)).map_err(miette::Report::msg)?;
    registry.set_fused(!args.no_fused);
    Ok(registry)
}

/// The libraries on `$ACBENCH_PLUGIN_PATH`, canonical: what a user chose
/// to trust outside any suite file.
pub fn on_plugin_path() -> miette::Result<Vec<PathBuf>> {
    let options = PluginOptions {
        shipped: false,
        ..PluginOptions::from_env(Vec::new())
    };
    Ok(options
        .resolve()
        .map_err(miette::Report::msg)?
        .iter()
        .filter_map(|p| p.canonicalize().ok())
        .collect())
}

/// Runs `acbench plugins ...`.
pub fn run(cmd: PluginsCommand) -> miette::Result<ExitCode> {
    match cmd {
        PluginsCommand::List { plugins } => {
            let registry = registry(&plugins)?;
            print!("{}", render_list(&registry));
            Ok(ExitCode::SUCCESS)
        }
        PluginsCommand::Check {
            name,
            seed,
            plugins,
        } => check(&registry(&plugins)?, name.as_deref(), seed),
    }
}

#[derive(Tabled)]
struct ListRow {
    #[tabled(rename = "name")]
    name: String,
    #[tabled(rename = "parameters (initial value)")]
    params: String,
    #[tabled(rename = "tier")]
    tier: &'static str,
    #[tabled(rename = "plugin")]
    plugin: String,
}

/// One parameter as `name=init`, with its scope and kind when not the
/// common per-layer trainable case.
fn describe_param(p: &acbench_plugin_api::ParamSpec) -> String {
    let mut notes = Vec::new();
    if p.scope == ParamScope::Channel {
        notes.push("per channel".to_owned());
    }
    if !p.trainable {
        notes.push("fixed".to_owned());
    }
    if let Constraint::Positive(min) = p.constraint {
        notes.push(format!(">= {min}"));
    }
    if notes.is_empty() {
        format!("{}={}", p.name, p.init)
    } else {
        format!("{}={} ({})", p.name, p.init, notes.join(", "))
    }
}

/// Where an activation comes from: its plugin's file name, or the crate
/// name of a plugin linked into acbench.
fn plugin_name(a: &CompiledActivation) -> String {
    match a.plugin.as_deref() {
        Some(path) => source_name(path),
        None => "-".to_owned(),
    }
}

/// A plugin's file name, or the crate name of a plugin linked into acbench.
fn source_name(path: &std::path::Path) -> String {
    match linked::linked_name(path) {
        Some(name) => format!("{name} (linked)"),
        None => path
            .file_name()
            .map_or_else(|| "-".to_owned(), |n| n.to_string_lossy().into_owned()),
    }
}

/// The table `plugins list` prints, then each plugin's path (or, when
/// linked, its crate) and sha256.
fn render_list(registry: &Registry) -> String {
    let rows: Vec<ListRow> = registry
        .iter()
        .map(|a| ListRow {
            name: a.def.name.clone(),
            params: if a.def.params.is_empty() {
                "-".into()
            } else {
                a.def
                    .params
                    .iter()
                    .map(describe_param)
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            tier: a.tier(),
            plugin: plugin_name(a),
        })
        .collect();
    let mut out = if rows.is_empty() {
        "no activation plugins found; give --plugin or $ACBENCH_PLUGIN_PATH\n".to_owned()
    } else {
        let mut table = Table::new(rows);
        table.with(Style::sharp());
        format!("{table}\n")
    };
    if !registry.detectors().is_empty() {
        let rows: Vec<DetectorRow> = registry
            .detectors()
            .iter()
            .map(|d| DetectorRow {
                name: d.name().to_owned(),
                settings: if d.settings().is_empty() {
                    "-".into()
                } else {
                    d.settings()
                        .iter()
                        .map(|s| format!("{}={}", s.name, s.default))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                terms: d.terms().join(", "),
                plugin: source_name(d.plugin()),
            })
            .collect();
        let mut table = Table::new(rows);
        table.with(Style::sharp());
        out.push_str(&format!("detectors:\n{table}\n"));
    }
    for p in registry.plugins() {
        let from = match linked::linked_name(&p.path) {
            Some(name) => format!("{name}, linked into acbench"),
            None => p.path.display().to_string(),
        };
        out.push_str(&format!("{from}  sha256 {}\n", p.sha256));
    }
    out
}

#[derive(Tabled)]
struct DetectorRow {
    #[tabled(rename = "detector")]
    name: String,
    #[tabled(rename = "settings (default)")]
    settings: String,
    #[tabled(rename = "loss terms")]
    terms: String,
    #[tabled(rename = "plugin")]
    plugin: String,
}

#[derive(Tabled)]
struct CheckLine {
    #[tabled(rename = "activation / detector")]
    activation: String,
    #[tabled(rename = "check")]
    check: String,
    #[tabled(rename = "max abs error")]
    max_abs_err: String,
    #[tabled(rename = "result")]
    result: String,
}

/// `plugins check [NAME]`: a table of every comparison, then a loud summary
/// of what failed (exit code 1) or a one-line pass.
fn check(registry: &Registry, name: Option<&str>, seed: u64) -> miette::Result<ExitCode> {
    let is_detector = |n: &str| registry.detectors().iter().any(|d| d.name() == n);
    let (names, detectors): (Vec<String>, Vec<String>) = match name {
        Some(n) if is_detector(n) => (Vec::new(), vec![n.to_owned()]),
        Some(n) => (
            vec![
                registry
                    .get(n)
                    .map_err(miette::Report::msg)?
                    .def
                    .name
                    .clone(),
            ],
            Vec::new(),
        ),
        None => (
            registry.names().map(str::to_owned).collect(),
            registry
                .detectors()
                .iter()
                .map(|d| d.name().to_owned())
                .collect(),
        ),
    };
    if names.is_empty() && detectors.is_empty() {
        miette::bail!("no plugins found; give --plugin or $ACBENCH_PLUGIN_PATH");
    }
    let mut lines = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    for n in &names {
        match check_activation(registry, n, seed) {
            Ok(rows) => {
                if registry.get(n).is_ok_and(|a| a.kernels.is_none()) {
                    lines.push(CheckLine {
                        activation: n.clone(),
                        check: "fused kernels".into(),
                        max_abs_err: "-".into(),
                        result: "none (formula only)".into(),
                    });
                }
                for row in rows {
                    if !row.passed() {
                        failed.push(format!("{n}: {} (worst at {})", row.check, row.case));
                    }
                    lines.push(line(row));
                }
            }
            Err(e) => {
                failed.push(format!("{n}: {e}"));
                lines.push(CheckLine {
                    activation: n.clone(),
                    check: "kernels run".into(),
                    max_abs_err: "-".into(),
                    result: "FAIL (error)".into(),
                });
            }
        }
    }
    for n in &detectors {
        let detector = registry.detector(n).map_err(miette::Report::msg)?;
        match check_detector(detector, seed) {
            Ok(rows) => {
                for row in rows {
                    if !row.passed() {
                        failed.push(format!("{n}: {} ({})", row.check, row.case));
                    }
                    lines.push(line(row));
                }
            }
            Err(e) => {
                failed.push(format!("{n}: {e}"));
                lines.push(CheckLine {
                    activation: n.clone(),
                    check: "functions run".into(),
                    max_abs_err: "-".into(),
                    result: "FAIL (error)".into(),
                });
            }
        }
    }
    let mut table = Table::new(lines);
    table
        .with(Style::sharp())
        .modify(Columns::new(2..3), Alignment::right());
    println!("{table}");
    if failed.is_empty() {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let mut counted = format!("{} activation{}", names.len(), plural(names.len()));
        if !detectors.is_empty() {
            counted.push_str(&format!(
                ", {} detector{}",
                detectors.len(),
                plural(detectors.len())
            ));
        }
        println!("all checks passed ({counted})");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("PLUGIN CHECK FAILED: {} problem(s)", failed.len());
        for f in &failed {
            eprintln!("  FAIL {f}");
        }
        Ok(ExitCode::FAILURE)
    }
}

fn line(row: CheckRow) -> CheckLine {
    let passed = row.passed();
    CheckLine {
        activation: row.activation,
        check: row.check,
        max_abs_err: format!("{:.2e}", row.max_abs_err),
        result: if passed { "ok".into() } else { "FAIL".into() },
    }
}
