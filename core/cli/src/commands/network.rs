//! Shared by the commands that read a `.acnet` file: network arguments from
//! the command line, loading and elaborating, activation bindings.

use std::path::Path;

use acbench_dsl::ir::{Network, Value};
use miette::IntoDiagnostic;

/// Parses `KEY=VALUE` network arguments; values are integers, reals,
/// `true`/`false`, or words (`same`).
pub fn parse_net_args(raw: &[String]) -> miette::Result<Vec<(String, Value)>> {
    raw.iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                miette::miette!("--arg `{kv}`: expected KEY=VALUE, e.g. --arg classes=100")
            })?;
            let k = k.trim();
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                miette::bail!("--arg `{kv}`: `{k}` is not an argument name");
            }
            Ok((k.to_owned(), acbench_dsl::parse_value(v)))
        })
        .collect()
}

/// Reads, parses and elaborates a model file. `defaults` are filled in for
/// the network's parameters of those names unless `args` sets them (the
/// dataset's `classes`, `channels`, `size`); names the network does not
/// declare are skipped, while every name in `args` must exist.
pub fn load_network(
    file: &Path,
    network: Option<&str>,
    args: &[(String, Value)],
    defaults: &[(String, Value)],
) -> miette::Result<Network> {
    let source = std::fs::read_to_string(file)
        .into_diagnostic()
        .map_err(|e| e.wrap_err(format!("cannot read model file {}", file.display())))?;
    elaborate_source(
        &source,
        &file.display().to_string(),
        network,
        args,
        defaults,
    )
}

/// [`load_network`] on source text already in memory; `name` names it in
/// diagnostics.
pub fn elaborate_source(
    source: &str,
    name: &str,
    network: Option<&str>,
    args: &[(String, Value)],
    defaults: &[(String, Value)],
) -> miette::Result<Network> {
    let module = acbench_dsl::parse(source, name).map_err(miette::Report::new)?;
    let declared: Vec<String> = module
        .networks()
        .into_iter()
        .find(|sig| network.is_none_or(|n| n == sig.name))
        .map(|sig| sig.params.into_iter().map(|p| p.name).collect())
        .unwrap_or_default();
    let mut all: Vec<(String, Value)> = args.to_vec();
    for (k, v) in defaults {
        if declared.iter().any(|d| d == k) && !args.iter().any(|(a, _)| a == k) {
            all.push((k.clone(), v.clone()));
        }
    }
    module.elaborate(network, &all).map_err(miette::Report::new)
}

/// Activation parameters the bindings add to `net` (trainable and fixed).
pub fn act_param_count(
    net: &Network,
    specs: &[String],
    registry: &acbench_engine::activation::Registry,
) -> miette::Result<usize> {
    let bindings =
        acbench_engine::activation::ActBindings::parse(specs).map_err(miette::Report::msg)?;
    bindings
        .param_count(net, registry)
        .map_err(miette::Report::msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_args_are_typed() {
        let got = parse_net_args(&[
            "classes=100".into(),
            "p=0.5".into(),
            "bn=true".into(),
            "pad=same".into(),
        ])
        .expect("valid args");
        assert_eq!(
            got,
            vec![
                ("classes".into(), Value::Int(100)),
                ("p".into(), Value::Float(0.5)),
                ("bn".into(), Value::Bool(true)),
                ("pad".into(), Value::Word("same".into())),
            ]
        );
        assert!(parse_net_args(&["classes".into()]).is_err());
        assert!(parse_net_args(&["=3".into()]).is_err());
    }
}
