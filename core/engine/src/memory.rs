//! Will a model fit? The memory a training run needs, estimated from the
//! network alone before anything is allocated, against the memory this
//! process may use: a model too big gives an error with the figures and its
//! largest layers instead of an allocation failure (an abort) or the
//! kernel's OOM killer.
//!
//! The estimate counts `f32` values: the parameters, their gradients, the
//! optimiser's state (one slot per parameter for momentum and AdaGrad, two
//! for AdaDelta and Adam), and the activations of one batch (every layer's
//! output, kept for the backward pass, and its gradient). It leaves out the
//! dataset, the allocator's slack and candle's temporaries, so it is a lower
//! bound: a run it refuses cannot fit.
//!
//! The memory available is [`acbench_data::memory::available`] (the
//! cgroup's limit, `MemAvailable`, `$ACBENCH_MEMORY_LIMIT`), the one probe
//! that the dataset loaders use too.

use std::fmt;

use acbench_dsl::ir::Network;

pub use acbench_data::memory::{Available, LIMIT_ENV, available, human};

use crate::optim::OptimizerConfig;
use crate::{Error, Result};

const F32: u64 = 4;

/// What a training run of a network needs, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// The parameters.
    pub parameters: u64,
    /// Their gradients.
    pub gradients: u64,
    /// The optimiser's state.
    pub optimizer: u64,
    /// The activations of one batch and their gradients.
    pub activations: u64,
    /// The batch size of `activations`.
    pub batch: usize,
    /// The layers with the most parameters, `(path, bytes)`, largest first
    /// (at most three).
    pub largest: Vec<(String, u64)>,
}

impl MemoryEstimate {
    /// Everything together.
    pub fn total(&self) -> u64 {
        self.parameters
            .saturating_add(self.gradients)
            .saturating_add(self.optimizer)
            .saturating_add(self.activations)
    }
}

impl fmt::Display for MemoryEstimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (parameters {}, gradients {}, optimiser state {}, activations of a batch of \
             {}: {})",
            human(self.total()),
            human(self.parameters),
            human(self.gradients),
            human(self.optimizer),
            self.batch,
            human(self.activations)
        )
    }
}

/// Optimiser state values per parameter.
fn optimizer_slots(opt: &OptimizerConfig) -> u64 {
    match opt {
        OptimizerConfig::Sgd => 0,
        OptimizerConfig::Momentum { .. } | OptimizerConfig::Adagrad { .. } => 1,
        OptimizerConfig::Adadelta { .. } | OptimizerConfig::Adam { .. } => 2,
    }
}

/// The estimate for training `net` with batches of `batch` under `opt`.
pub fn estimate(net: &Network, batch: usize, opt: &OptimizerConfig) -> MemoryEstimate {
    let params = (net.param_count() as u64).saturating_mul(F32);
    let mut activations = 0u64;
    let mut layers: Vec<(String, u64)> = Vec::new();
    for node in net.walk() {
        if node.children().is_empty() {
            activations = activations.saturating_add(node.output.numel() as u64);
            // A leaf's parameters are its own (a composite's are its children's).
            let own = node.param_count() as u64;
            if own > 0 {
                layers.push((node.path.clone(), own.saturating_mul(F32)));
            }
        }
    }
    layers.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    layers.truncate(3);
    MemoryEstimate {
        parameters: params,
        gradients: params,
        optimizer: params.saturating_mul(optimizer_slots(opt)),
        // Each output is kept for the backward pass and gets a gradient.
        activations: activations
            .saturating_mul(batch as u64)
            .saturating_mul(2 * F32),
        batch,
        largest: layers,
    }
}

/// Refuses `estimate` when it exceeds `available`, with the figures and the
/// largest layers.
pub fn check_against(
    net: &Network,
    estimate: &MemoryEstimate,
    available: Option<&Available>,
) -> Result<()> {
    let Some(avail) = available else {
        return Ok(());
    };
    if estimate.total() <= avail.bytes {
        return Ok(());
    }
    let largest: Vec<String> = estimate
        .largest
        .iter()
        .map(|(path, bytes)| format!("{path} ({})", human(*bytes)))
        .collect();
    Err(Error::Memory(format!(
        "network `{}` needs at least {} to train, but {} is available ({}); its largest \
         layers: {}. Make it smaller, or lower the batch size if the activations dominate",
        net.name,
        estimate,
        human(avail.bytes),
        avail.source,
        if largest.is_empty() {
            "none with parameters".to_owned()
        } else {
            largest.join(", ")
        }
    )))
}

/// Refuses `net` when its parameters alone (`bytes` per value) exceed the
/// memory [`available`] now: what building the model allocates, checked by
/// [`crate::model::Model::build`] whatever its caller.
pub fn check_parameters(net: &Network, bytes: usize) -> Result<()> {
    let parameters = (net.param_count() as u64).saturating_mul(bytes as u64);
    let e = MemoryEstimate {
        parameters,
        gradients: 0,
        optimizer: 0,
        activations: 0,
        batch: 0,
        ..estimate(net, 0, &OptimizerConfig::Sgd)
    };
    check_against(net, &e, available().as_ref())
}

/// [`estimate`] then [`check_against`] the memory [`available`] now.
pub fn check(net: &Network, batch: usize, opt: &OptimizerConfig) -> Result<MemoryEstimate> {
    let e = estimate(net, batch, opt);
    check_against(net, &e, available().as_ref())?;
    Ok(e)
}

#[cfg(test)]
mod tests {
    use acbench_dsl::ir::Value;

    use super::*;

    fn compile(src: &str) -> Network {
        acbench_dsl::parse(src, "m.acnet")
            .and_then(|m| m.elaborate(None, &[("classes".to_owned(), Value::Int(10))]))
            .unwrap_or_else(|e| panic!("{e:?}"))
    }

    const HUGE: &str = "network huge(classes=10) {\n input 1x28x28\n flatten\n \
                        linear(16000000)\n act\n linear(classes)\n}\n";

    #[test]
    fn the_estimate_counts_parameters_gradients_state_and_activations() {
        let net = compile(HUGE);
        let adam = serde_json::from_str(r#"{"name": "adam"}"#).expect("adam");
        let e = estimate(&net, 64, &adam);
        let params: u64 = (784 * 16_000_000 + 16_000_000 + 16_000_000 * 10 + 10) * 4;
        assert_eq!(e.parameters, params);
        assert_eq!(e.gradients, params);
        assert_eq!(e.optimizer, 2 * params);
        // Outputs: 784 (flatten), 16e6 (linear), 16e6 (act), 10; x batch x 8.
        assert_eq!(e.activations, (784 + 32_000_000 + 10) * 64 * 8);
        assert_eq!(
            e.largest[0],
            ("linear0".to_owned(), 50_176_000_000 + 64_000_000)
        );
        let sgd = estimate(&net, 64, &OptimizerConfig::Sgd);
        assert_eq!(sgd.optimizer, 0);
    }

    #[test]
    fn a_model_that_cannot_fit_is_refused_with_figures_and_its_largest_layers() {
        let net = compile(HUGE);
        let e = estimate(&net, 64, &OptimizerConfig::Sgd);
        let avail = Available {
            bytes: 24 << 30,
            source: "MemAvailable",
        };
        let msg = check_against(&net, &e, Some(&avail))
            .expect_err("refused")
            .to_string();
        assert!(
            msg.contains("network `huge` needs at least 110.0 GiB"),
            "{msg}"
        );
        assert!(msg.contains("parameters 47.4 GiB"), "{msg}");
        assert!(
            msg.contains("but 24.0 GiB is available (MemAvailable)"),
            "{msg}"
        );
        assert!(
            msg.contains("largest layers: linear0 (46.8 GiB), linear1 (610.4 MiB)"),
            "{msg}"
        );
        let small =
            compile("network s(classes=10) {\n input 1x28x28\n flatten\n linear(classes)\n}\n");
        let e = estimate(&small, 64, &OptimizerConfig::Sgd);
        assert!(check_against(&small, &e, Some(&avail)).is_ok());
        assert!(
            check_against(&net, &e, None).is_ok(),
            "nothing known: no refusal"
        );
    }
}
