//! `acbench model show`: layers, output shapes and parameter counts.

use std::process::ExitCode;

use acbench_dsl::ir::{Network, Node, Op, PoolKind};
use tabled::settings::{Alignment, Style, object::Columns};
use tabled::{Table, Tabled};

use super::network::{load_network, parse_net_args};
use crate::cli::ModelCommand;

/// Runs `acbench model ...`.
pub fn run(cmd: ModelCommand) -> miette::Result<ExitCode> {
    match cmd {
        ModelCommand::Show {
            file,
            network,
            args,
            acts,
            plugins,
        } => {
            let args = parse_net_args(&args)?;
            let net = load_network(&file, network.as_deref(), &args, &[])?;
            let act_params = if acts.is_empty() {
                None
            } else {
                let registry = super::plugins::registry(&plugins)?;
                Some(super::network::act_param_count(&net, &acts, &registry)?)
            };
            print!("{}", render(&net, act_params));
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[derive(Tabled)]
struct Row {
    #[tabled(rename = "layer")]
    path: String,
    #[tabled(rename = "op")]
    op: String,
    #[tabled(rename = "output")]
    output: String,
    #[tabled(rename = "params")]
    params: String,
}

/// The table `model show` prints, followed by the totals.
pub fn render(net: &Network, act_params: Option<usize>) -> String {
    let mut rows = vec![Row {
        path: "input".into(),
        op: String::new(),
        output: net.input.to_string(),
        params: String::new(),
    }];
    for node in net.walk() {
        let params = node.param_count();
        rows.push(Row {
            path: node.path.clone(),
            op: describe(node),
            output: node.output.to_string(),
            params: if params == 0 {
                String::new()
            } else {
                group_digits(params)
            },
        });
    }
    let mut table = Table::new(rows);
    table
        .with(Style::psql())
        .modify(Columns::new(3..4), Alignment::right());
    let mut out = format!("network {}(", net.name);
    out.push_str(
        &net.args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    out.push_str(")\n");
    out.push_str(&table.to_string());
    out.push('\n');
    let slots = net.act_sites().len();
    out.push_str(&format!(
        "parameters: {} ({} act slots)\n",
        group_digits(net.param_count()),
        slots
    ));
    if let Some(extra) = act_params {
        out.push_str(&format!(
            "activation parameters: {}; total {}\n",
            group_digits(extra),
            group_digits(net.param_count() + extra)
        ));
    }
    out
}

/// One-line description of a node's operation.
fn describe(node: &Node) -> String {
    match &node.op {
        Op::Conv2d(c) => {
            let mut s = format!("conv {}x{} -> {}", c.kernel.0, c.kernel.1, c.out_channels);
            if c.stride != (1, 1) {
                s.push_str(&format!(", stride {}", pair(c.stride)));
            }
            let p = c.padding;
            if p.top + p.bottom + p.left + p.right > 0 {
                s.push_str(&format!(
                    ", pad {}/{}/{}/{}",
                    p.top, p.bottom, p.left, p.right
                ));
            }
            if c.groups > 1 {
                s.push_str(&format!(", groups {}", c.groups));
            }
            if c.dilation != (1, 1) {
                s.push_str(&format!(", dilation {}", pair(c.dilation)));
            }
            if !c.bias {
                s.push_str(", no bias");
            }
            s
        }
        Op::BatchNorm { eps, .. } => format!("batch norm (eps {eps})"),
        Op::Lrn {
            radius,
            alpha,
            beta,
            bias,
        } => {
            format!("lrn radius {radius}, alpha {alpha}, beta {beta}, bias {bias}")
        }
        Op::Pool(p) => {
            let kind = match p.kind {
                PoolKind::Max => "max pool",
                PoolKind::Avg => "avg pool",
            };
            let mut s = format!("{kind} {}, stride {}", pair(p.kernel), pair(p.stride));
            let q = p.padding;
            if q.top + q.bottom + q.left + q.right > 0 {
                s.push_str(&format!(
                    ", pad {}/{}/{}/{}",
                    q.top, q.bottom, q.left, q.right
                ));
            }
            s
        }
        Op::GlobalAvgPool => "global avg pool".into(),
        Op::Dropout { rate } => format!("dropout {rate}"),
        Op::Flatten => "flatten".into(),
        Op::Linear {
            out_features, bias, ..
        } => {
            format!(
                "linear -> {out_features}{}",
                if *bias { "" } else { ", no bias" }
            )
        }
        Op::Act { slot } => match slot {
            Some(s) => format!("act @{s}"),
            None => "act".into(),
        },
        Op::Residual { shortcut, .. } => {
            if shortcut.is_empty() {
                "residual (identity shortcut)".into()
            } else {
                "residual (projection shortcut)".into()
            }
        }
        Op::Concat { branches } => format!("concat of {} branches", branches.len()),
        Op::Dense { layers } => format!("dense block of {} layers", layers.len()),
    }
}

fn pair((a, b): (usize, usize)) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}x{b}")
    }
}

/// `1234567` -> `1,234,567`.
fn group_digits(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::group_digits;

    #[test]
    fn digits_are_grouped_in_thousands() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(23_520_842), "23,520,842");
    }
}
