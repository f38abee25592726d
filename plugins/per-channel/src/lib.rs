//! Per-channel variants of PReLU, AReLU and ATanh: the same formulas as the
//! shipped per-layer activations, with one value of every parameter per
//! channel (per feature for vectors) instead of one per layer, for the
//! per-layer against per-channel study (`suites/per-channel.rhai`).
//!
//! Tier 1 only (formula, no fused kernels): the engine lowers the formulas
//! to candle ops with per-channel broadcasting, so they train on every
//! device; they are slower on the CPU than the fused per-layer versions.
//!
//! acbench links this crate and reads [`PLUGIN`]'s table through
//! [`acbench_plugin_api::abi`], as it reads any plugin's; the `cdylib/`
//! crate beside it builds the same activations as
//! `libacbench_plugin_per_channel.so`, a plugin loaded at run time.

use acbench_plugin_api::{
    Activation, ActivationDef, LinkedPlugin, ParamScope, ParamSpec, linked_plugin,
};

fn channel(name: &str, init: f64) -> ParamSpec {
    ParamSpec {
        scope: ParamScope::Channel,
        ..ParamSpec::scalar(name, init)
    }
}

fn def(name: &str, summary: &str, params: Vec<ParamSpec>, formula: &str) -> Activation {
    Activation::new(ActivationDef {
        name: name.into(),
        summary: summary.into(),
        params,
        formula: formula.into(),
    })
}

fn abcd() -> Vec<ParamSpec> {
    vec![
        channel("a", 1.0),
        channel("b", 1.0),
        channel("c", 0.0),
        channel("d", 0.0),
    ]
}

/// The three per-channel activations.
pub fn activations() -> Vec<Activation> {
    vec![
        def(
            "prelu_channel",
            "PReLU with one slope per channel (He et al. 2015's channel-wise form)",
            vec![channel("p", 0.25)],
            "relu(x) + p * min(x, 0)",
        ),
        def(
            "arelu_channel",
            "AReLU max(a*x+c, b*x+d) with a, b, c, d per channel",
            abcd(),
            "max(a * x + c, b * x + d)",
        ),
        def(
            "atanh_channel",
            "ATanh b*tanh(a*x+c)+d with a, b, c, d per channel",
            abcd(),
            "b * tanh(a * x + c) + d",
        ),
    ]
}

/// These activations as a plugin linked into acbench.
pub const PLUGIN: LinkedPlugin = linked_plugin!(activations);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_is_per_channel_and_formulas_match_the_per_layer_ones() {
        let acts = activations();
        let names: Vec<&str> = acts.iter().map(|a| a.def().name.as_str()).collect();
        assert_eq!(names, ["prelu_channel", "arelu_channel", "atanh_channel"]);
        for a in &acts {
            assert!(!a.has_kernel(), "{}: formula only", a.def().name);
            assert!(
                a.def()
                    .params
                    .iter()
                    .all(|p| p.scope == ParamScope::Channel && p.trainable)
            );
        }
        assert_eq!(acts[1].def().formula, "max(a * x + c, b * x + d)");
    }

    #[test]
    fn the_plugin_table_builds() {
        let table = PLUGIN.table().expect("the table builds");
        assert_eq!(PLUGIN.name(), "acbench-per-channel");
        assert_eq!(table.abi_version, acbench_plugin_api::abi::ABI_VERSION);
        assert_eq!(table.activation_count, 3);
    }
}
