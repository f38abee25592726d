//! Times each adaptive activation's fused kernels as acbench calls them (the
//! AVX-512 or AVX2 build where the CPU has one) on a buffer of one million
//! values, each parameter at its initial value, and prints ns per value and
//! its cost relative to `arelu`.
//!
//! `cargo bench -p acbench-adaptive --bench kernels`

use acbench_adaptive::PLUGIN;
use acbench_plugin_api::abi::Layout;
use acbench_plugin_api::testing::print_kernel_times;

/// A batch of 32 feature maps of 32 channels of 32x32: 2^20 values.
const LAYOUT: Layout = Layout {
    outer: 32,
    channels: 32,
    inner: 1024,
};

fn main() -> Result<(), String> {
    let table = PLUGIN
        .table()
        .ok_or_else(acbench_plugin_api::kernel::last_error_message)?;
    // SAFETY: a table built by `linked_plugin!` is as the ABI states.
    unsafe { print_kernel_times(table, "arelu", LAYOUT, 30) }
}
