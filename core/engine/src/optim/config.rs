//! [`OptimizerConfig`]: which optimiser, with its hyper-parameters, as
//! suite files and `--optimizer` spell it.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which optimiser to use, with its hyper-parameters (the learning rate comes
/// from the [`Schedule`](crate::schedule::Schedule)).
///
/// Deserialises from a map tagged by `name`, e.g. `{name: adam, beta2: 0.99}`;
/// omitted fields take the defaults below.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Plain gradient descent: `p -= lr * g`.
    Sgd,
    /// TensorFlow's `MomentumOptimizer` (Qian 1999): `v = momentum * v + g;
    /// p -= lr * v`.
    Momentum {
        /// Decay of the velocity (default 0.9).
        #[serde(default = "default_momentum")]
        momentum: f64,
    },
    /// AdaGrad (Duchi et al. 2011) as TensorFlow implements it:
    /// `acc += g^2; p -= lr * g / sqrt(acc)`.
    Adagrad {
        /// Starting value of the accumulator (TensorFlow's default 0.1), which
        /// also keeps the first steps from dividing by a tiny number.
        #[serde(default = "default_initial_accumulator")]
        initial_accumulator: f64,
    },
    /// AdaDelta (Zeiler 2012) as TensorFlow implements it, with the learning
    /// rate applied to Zeiler's unit-corrected update.
    Adadelta {
        /// Decay of both running averages (default 0.95).
        #[serde(default = "default_rho")]
        rho: f64,
        /// Added inside both square roots (default 1e-8).
        #[serde(default = "default_epsilon")]
        epsilon: f64,
    },
    /// Adam (Kingma & Ba 2014, Algorithm 1) with bias-corrected moments:
    /// `p -= lr * m_hat / (sqrt(v_hat) + epsilon)`.
    Adam {
        /// Decay of the first moment (default 0.9).
        #[serde(default = "default_beta1")]
        beta1: f64,
        /// Decay of the second moment (default 0.999).
        #[serde(default = "default_beta2")]
        beta2: f64,
        /// Added to the denominator (default 1e-8).
        #[serde(default = "default_epsilon")]
        epsilon: f64,
    },
}

fn default_momentum() -> f64 {
    0.9
}
fn default_initial_accumulator() -> f64 {
    0.1
}
fn default_rho() -> f64 {
    0.95
}
fn default_epsilon() -> f64 {
    1e-8
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}

impl OptimizerConfig {
    /// Names accepted by [`FromStr`], in the paper's order.
    pub const NAMES: [&'static str; 5] = ["sgd", "momentum", "adagrad", "adadelta", "adam"];

    /// The optimiser's name as used in suites and results.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sgd => "sgd",
            Self::Momentum { .. } => "momentum",
            Self::Adagrad { .. } => "adagrad",
            Self::Adadelta { .. } => "adadelta",
            Self::Adam { .. } => "adam",
        }
    }

    /// How many values of state this optimiser keeps per parameter value
    /// (what a checkpoint stores besides the parameters).
    pub fn state_buffers(&self) -> usize {
        self.state_fields().len()
    }

    /// Names of the per-parameter state buffers this optimiser keeps (Adam
    /// also keeps a step count).
    pub(super) fn state_fields(&self) -> &'static [&'static str] {
        match self {
            Self::Sgd => &[],
            Self::Momentum { .. } => &["velocity"],
            Self::Adagrad { .. } => &["accumulator"],
            Self::Adadelta { .. } => &["acc_grad", "acc_update"],
            Self::Adam { .. } => &["m", "v"],
        }
    }

    /// Checks that every hyper-parameter is in its valid range.
    pub fn validate(&self) -> Result<()> {
        let unit = |name: &str, v: f64| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::Config(format!(
                    "{}: {name} must be in [0, 1), got {v}",
                    self.name()
                )))
            }
        };
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::Config(format!(
                    "{}: {name} must be positive and finite, got {v}",
                    self.name()
                )))
            }
        };
        match *self {
            Self::Sgd => Ok(()),
            Self::Momentum { momentum } => unit("momentum", momentum),
            Self::Adagrad {
                initial_accumulator,
            } => positive("initial_accumulator", initial_accumulator),
            Self::Adadelta { rho, epsilon } => {
                unit("rho", rho)?;
                positive("epsilon", epsilon)
            }
            Self::Adam {
                beta1,
                beta2,
                epsilon,
            } => {
                unit("beta1", beta1)?;
                unit("beta2", beta2)?;
                positive("epsilon", epsilon)
            }
        }
    }
}

impl Default for OptimizerConfig {
    /// Plain SGD, as the paper's reference code.
    fn default() -> Self {
        Self::Sgd
    }
}

impl FromStr for OptimizerConfig {
    type Err = Error;

    /// An optimiser by name with default hyper-parameters (for `--optimizer`).
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "sgd" => Self::Sgd,
            "momentum" => Self::Momentum {
                momentum: default_momentum(),
            },
            "adagrad" => Self::Adagrad {
                initial_accumulator: default_initial_accumulator(),
            },
            "adadelta" => Self::Adadelta {
                rho: default_rho(),
                epsilon: default_epsilon(),
            },
            "adam" => Self::Adam {
                beta1: default_beta1(),
                beta2: default_beta2(),
                epsilon: default_epsilon(),
            },
            _ => {
                return Err(Error::Config(format!(
                    "unknown optimizer `{s}` (known: {})",
                    Self::NAMES.join(", ")
                )));
            }
        })
    }
}
