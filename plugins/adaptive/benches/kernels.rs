//! Times each adaptive activation's fused kernels as acbench calls them (the
//! AVX-512 or AVX2 build where the CPU has one) on a buffer of one million
//! values, each parameter at its initial value, and prints ns per value and
//! its cost relative to `arelu`.
//!
//! `cargo bench -p acbench-adaptive --bench kernels`

use std::ffi::CStr;

use acbench_plugin_adaptive::acbench_plugin_entry;
use acbench_plugin_api::abi::Layout;
use acbench_plugin_api::testing::{KernelTimes, time_exported};

/// What the others are compared with.
const BASE: &str = "arelu";
/// A batch of 32 feature maps of 32 channels of 32x32: 2^20 values.
const LAYOUT: Layout = Layout {
    outer: 32,
    channels: 32,
    inner: 1024,
};
/// Calls per measurement; the fastest counts.
const REPEATS: usize = 30;

fn main() -> Result<(), String> {
    // SAFETY: the entry is safe to call; its table lives forever.
    let table = unsafe { &*acbench_plugin_entry() };
    // SAFETY: `activation_count` descriptors at `activations`.
    let acts = unsafe { std::slice::from_raw_parts(table.activations, table.activation_count) };
    let mut times: Vec<(String, KernelTimes)> = Vec::new();
    for act in acts {
        // SAFETY: the table's names are NUL-terminated and live forever.
        let name = unsafe { CStr::from_ptr(act.name) }.to_string_lossy();
        // SAFETY: a descriptor of a table built by `export_plugin!`.
        if let Some(t) = unsafe { time_exported(act, LAYOUT, REPEATS) }? {
            times.push((name.into_owned(), t));
        }
    }
    let both = |t: &KernelTimes| (t.forward + t.backward).as_secs_f64();
    let base = times
        .iter()
        .find(|(name, _)| name == BASE)
        .map(|(_, t)| both(t))
        .ok_or_else(|| format!("no kernels for {BASE}"))?;
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e9 / LAYOUT.len() as f64;
    println!("{} values, fastest of {REPEATS} calls", LAYOUT.len());
    println!("activation  forward ns/value  backward ns/value  both vs {BASE}");
    for (name, t) in &times {
        println!(
            "{name:<10}  {:>16.3}  {:>17.3}  {:>8.2}",
            per(t.forward),
            per(t.backward),
            both(t) / base
        );
    }
    Ok(())
}
