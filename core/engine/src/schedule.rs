//! Learning-rate schedules.
//!
//! Epochs are counted from 0 everywhere in the engine: epoch 0 is the first.
//! A step milestone `70` therefore means "after 70 epochs", as the paper's
//! schedule (1e-3, then /10 at epochs 70 and 100) is usually read.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How the learning rate changes over a run.
///
/// Deserialises from a map tagged by `kind`, e.g.
/// `{kind: step, lr: 0.001, milestones: [70, 100]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Schedule {
    /// The same rate throughout.
    Constant {
        /// Learning rate.
        lr: f64,
    },
    /// Divided by `factor` at each milestone epoch.
    Step {
        /// Rate before the first milestone.
        lr: f64,
        /// Epochs (0-based) from which the rate is divided once more; the
        /// order does not matter.
        #[serde(default)]
        milestones: Vec<usize>,
        /// Divisor applied at each milestone (default 10).
        #[serde(default = "default_factor")]
        factor: f64,
    },
    /// Cosine annealing from `lr` down towards `min_lr` over the run.
    Cosine {
        /// Rate at the start.
        lr: f64,
        /// Rate the curve reaches at the end of the run (default 0).
        #[serde(default)]
        min_lr: f64,
        /// Anneal after every batch rather than once per epoch (default false).
        #[serde(default)]
        per_step: bool,
    },
}

fn default_factor() -> f64 {
    Schedule::DEFAULT_FACTOR
}

impl Schedule {
    /// The divisor of a step schedule that does not give one.
    pub const DEFAULT_FACTOR: f64 = 10.0;

    /// The paper's schedule: 1e-3, divided by 10 at epochs 70 and 100.
    pub fn paper() -> Self {
        Self::Step {
            lr: 1e-3,
            milestones: vec![70, 100],
            factor: 10.0,
        }
    }

    /// The rate the run starts with.
    pub fn initial_lr(&self) -> f64 {
        match *self {
            Self::Constant { lr } | Self::Step { lr, .. } | Self::Cosine { lr, .. } => lr,
        }
    }

    /// Checks that rates are positive and finite and the factor is usable.
    pub fn validate(&self) -> Result<()> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::Config(format!(
                    "schedule: {name} must be positive and finite, got {v}"
                )))
            }
        };
        match *self {
            Self::Constant { lr } => positive("lr", lr),
            Self::Step { lr, factor, .. } => {
                positive("lr", lr)?;
                positive("factor", factor)
            }
            Self::Cosine { lr, min_lr, .. } => {
                positive("lr", lr)?;
                if min_lr.is_finite() && (0.0..=lr).contains(&min_lr) {
                    Ok(())
                } else {
                    Err(Error::Config(format!(
                        "schedule: min_lr must be in [0, lr = {lr}], got {min_lr}"
                    )))
                }
            }
        }
    }

    /// The rate for batch `batch` (0-based) of `batches_per_epoch` in epoch
    /// `epoch` (0-based) of a run of `epochs` epochs.
    pub fn lr(&self, epoch: usize, batch: usize, batches_per_epoch: usize, epochs: usize) -> f64 {
        match self {
            Self::Constant { lr } => *lr,
            Self::Step {
                lr,
                milestones,
                factor,
            } => {
                let passed = milestones.iter().filter(|&&m| epoch >= m).count();
                lr / factor.powi(i32::try_from(passed).unwrap_or(i32::MAX))
            }
            Self::Cosine {
                lr,
                min_lr,
                per_step,
            } => {
                // Fraction of the run done before this update, in [0, 1).
                let done = if *per_step {
                    let total = (epochs * batches_per_epoch).max(1);
                    (epoch * batches_per_epoch + batch) as f64 / total as f64
                } else {
                    epoch as f64 / epochs.max(1) as f64
                };
                let done = done.min(1.0);
                min_lr + (lr - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * done).cos())
            }
        }
    }
}

impl Default for Schedule {
    /// The paper's step schedule.
    fn default() -> Self {
        Self::paper()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1e-12)
    }

    #[test]
    fn constant_is_constant() {
        let s = Schedule::Constant { lr: 0.05 };
        assert_eq!(s.lr(0, 0, 10, 5), 0.05);
        assert_eq!(s.lr(4, 9, 10, 5), 0.05);
    }

    #[test]
    fn step_divides_at_milestones_like_the_paper() {
        let s = Schedule::paper();
        assert!(close(s.lr(0, 0, 782, 150), 1e-3));
        assert!(close(s.lr(69, 781, 782, 150), 1e-3));
        assert!(close(s.lr(70, 0, 782, 150), 1e-4));
        assert!(close(s.lr(99, 5, 782, 150), 1e-4));
        assert!(close(s.lr(100, 0, 782, 150), 1e-5));
        assert!(close(s.lr(149, 0, 782, 150), 1e-5));
        let unordered = Schedule::Step {
            lr: 1.0,
            milestones: vec![5, 2],
            factor: 2.0,
        };
        assert_eq!(unordered.lr(3, 0, 1, 10), 0.5);
        assert_eq!(unordered.lr(5, 0, 1, 10), 0.25);
    }

    #[test]
    fn cosine_anneals_per_epoch_and_per_step() {
        let s = Schedule::Cosine {
            lr: 1.0,
            min_lr: 0.1,
            per_step: false,
        };
        assert!(close(s.lr(0, 3, 4, 4), 1.0));
        // Halfway: the midpoint of lr and min_lr.
        assert!(close(s.lr(2, 0, 4, 4), 0.55));
        // 1/4 of the way: 0.1 + 0.9 * (1 + cos(pi/4)) / 2.
        assert!(close(s.lr(1, 0, 4, 4), 0.1 + 0.45 * (1.0 + 0.5f64.sqrt())));
        let per_step = Schedule::Cosine {
            lr: 1.0,
            min_lr: 0.0,
            per_step: true,
        };
        assert!(close(per_step.lr(1, 0, 4, 2), 0.5));
        assert!(per_step.lr(0, 1, 4, 2) < 1.0);
        assert!(per_step.lr(1, 3, 4, 2) > 0.0);
        let mut last = f64::INFINITY;
        for e in 0..2 {
            for b in 0..4 {
                let lr = per_step.lr(e, b, 4, 2);
                assert!(lr < last);
                last = lr;
            }
        }
    }

    #[test]
    fn deserialises_with_defaults_and_validates() {
        let s: Schedule =
            serde_json::from_str(r#"{"kind": "step", "lr": 0.001, "milestones": [70, 100]}"#)
                .expect("step");
        assert_eq!(s, Schedule::paper());
        let c: Schedule = serde_json::from_str(r#"{"kind": "cosine", "lr": 0.1}"#).expect("cosine");
        assert_eq!(
            c,
            Schedule::Cosine {
                lr: 0.1,
                min_lr: 0.0,
                per_step: false
            }
        );
        assert!(serde_json::from_str::<Schedule>(r#"{"kind": "constant", "rate": 1}"#).is_err());
        let json = serde_json::to_string(&Schedule::paper()).expect("serialise");
        assert_eq!(
            serde_json::from_str::<Schedule>(&json).expect("round trip"),
            Schedule::paper()
        );
        assert!(Schedule::Constant { lr: 0.0 }.validate().is_err());
        assert!(Schedule::Constant { lr: f64::NAN }.validate().is_err());
        assert!(
            Schedule::Cosine {
                lr: 0.1,
                min_lr: 0.2,
                per_step: false
            }
            .validate()
            .is_err()
        );
        Schedule::paper()
            .validate()
            .expect("paper schedule is valid");
    }
}
