//! Times every shipped baseline's fused kernels as acbench calls them (the
//! AVX-512 or AVX2 build where the CPU has one) on a buffer of one million
//! values, each parameter at its initial value, and prints ns per value and
//! each activation's cost relative to `relu`.
//!
//! `cargo bench -p acbench-baselines --bench kernels`

use acbench_baselines::PLUGIN;
use acbench_plugin_api::testing::bench_linked;

fn main() -> Result<(), String> {
    bench_linked(&PLUGIN, "relu")
}
