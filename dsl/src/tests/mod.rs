//! Language tests: every construct, the shape rules and path naming
//! (`networks`), and every kind of error with its message and location
//! (`errors`); the helpers they share.

use crate::ir::{Network, Shape, Value};
use crate::parse;

mod errors;
mod networks;

fn net_with(src: &str, args: &[(&str, Value)]) -> Network {
    let args: Vec<(String, Value)> = args
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    match parse(src, "m.acnet").and_then(|m| m.elaborate(None, &args)) {
        Ok(n) => n,
        Err(d) => panic!("{}", d.to_plain_string()),
    }
}

fn net(src: &str) -> Network {
    net_with(src, &[])
}

/// All errors as `line:col kind message`.
fn errors(src: &str) -> Vec<String> {
    match parse(src, "m.acnet").and_then(|m| m.elaborate(None, &[])) {
        Ok(_) => panic!("expected an error for:\n{src}"),
        Err(d) => d
            .errors()
            .iter()
            .map(|e| {
                let (l, c) = e.line_col().unwrap_or((0, 0));
                format!("{l}:{c} {:?} {}", e.kind(), e.message())
            })
            .collect(),
    }
}

fn error(src: &str) -> String {
    let all = errors(src);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.into_iter().next().unwrap_or_default()
}

fn paths(n: &Network) -> Vec<String> {
    n.walk()
        .iter()
        .map(|n| format!("{} {}", n.path, n.output))
        .collect()
}

fn image(c: usize, h: usize, w: usize) -> Shape {
    Shape::Image { c, h, w }
}
