//! Statistics over seeds, the unit of replication.
//!
//! Every number a report compares carries its uncertainty:
//! - one activation's result is an [`Estimate`]: mean, sample standard
//!   deviation (n - 1), n and a 95% confidence interval from Student's t
//!   (`mean ± t(0.975, n-1) · std / √n`). With the handful of seeds a study
//!   affords, a bootstrap interval is too narrow (it cannot see beyond the
//!   values drawn), so the t interval is the one used, and reports say so.
//! - two activations are compared by [`Difference::of`]: paired by seed when
//!   at least two seeds ran both (the paired t interval of the per-seed
//!   differences and the paired t test's p-value), otherwise Welch's
//!   unpaired interval; beside it the probability of improvement of
//!   Agarwal et al. (2021, "Deep RL at the Edge of the Statistical
//!   Precipice", as rliable computes it): the chance that a run of one beats
//!   a run of the other, ties counting half (the Mann-Whitney U over n·m).
//! - a [`Verdict`] on "A beats B": supported when the interval of A - B lies
//!   above zero, contradicted when it lies below, else inconclusive, with the
//!   number of seeds that would decide it at the observed mean difference and
//!   spread ([`Needed`]).
//!
//! The values are checked against scipy on fixed inputs
//! (`tests/stats_goldens.rs`, made by `scripts/stats-goldens.py`).

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Confidence level of every interval.
pub const LEVEL: f64 = 0.95;

/// Most seeds [`Needed::Seeds`] reports; beyond it, [`Needed::MoreThan`].
pub const MAX_NEEDED: usize = 10_000;

/// A closed interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
}

impl Interval {
    /// Whether the interval lies wholly above zero.
    pub fn above_zero(&self) -> bool {
        self.lo > 0.0
    }

    /// Whether the interval lies wholly below zero.
    pub fn below_zero(&self) -> bool {
        self.hi < 0.0
    }
}

/// Mean, spread and confidence interval of one sample (one value per seed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// Number of values.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// Sample standard deviation (n - 1); `None` for one value.
    pub std: Option<f64>,
    /// The Student's t interval of the mean at [`LEVEL`]; `None` for one
    /// value.
    pub ci: Option<Interval>,
}

impl Estimate {
    /// The estimate of `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Estimate> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        if n < 2 {
            return Some(Estimate {
                n,
                mean,
                std: None,
                ci: None,
            });
        }
        let ss: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
        let std = (ss / (n - 1) as f64).sqrt();
        let half = t_critical((n - 1) as f64) * std / (n as f64).sqrt();
        Some(Estimate {
            n,
            mean,
            std: Some(std),
            ci: Some(Interval {
                lo: mean - half,
                hi: mean + half,
            }),
        })
    }
}

/// The two-sided critical value of Student's t with `df` degrees of
/// freedom at [`LEVEL`]: `t(0.975, df)`.
pub fn t_critical(df: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => t.inverse_cdf(0.5 + LEVEL / 2.0),
        Err(_) => f64::NAN,
    }
}

/// Two-sided p-value of the statistic `t` under Student's t with `df`
/// degrees of freedom.
fn two_sided_p(t: f64, df: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, df) {
        Ok(dist) => (2.0 * dist.sf(t.abs())).min(1.0),
        Err(_) => f64::NAN,
    }
}

/// The convergence area of a training-loss curve, one value per epoch:
/// the area under it by trapezoids one epoch wide (smaller: faster).
pub fn convergence_area(losses: &[f64]) -> f64 {
    let points: Vec<(f64, f64)> = losses
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as f64, l))
        .collect();
    area_under(&points)
}

/// The area under a curve of `(x, y)` points by trapezoids between them.
pub fn area_under(points: &[(f64, f64)]) -> f64 {
    points
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
        .sum()
}

/// How the two samples of a [`Difference`] were compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pairing {
    /// By seed: the seeds that ran both.
    Paired,
    /// Unpaired, by Welch's interval (fewer than two shared seeds).
    Welch,
    /// Too few values for any interval.
    None,
}

/// The difference A - B of two activations' results, with its uncertainty.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Difference {
    /// How it was computed.
    pub pairing: Pairing,
    /// Values used: shared seeds when paired, else the smaller sample.
    pub n: usize,
    /// Mean of A - B (of the per-seed differences when paired).
    pub mean: f64,
    /// Spread of the difference between one run of A and one of B: the
    /// standard deviation of the per-seed differences (paired), or
    /// `√(s_A² + s_B²)` (Welch); `None` when it cannot be had.
    pub spread: Option<f64>,
    /// Standard error of [`Self::mean`].
    pub se: Option<f64>,
    /// Its interval at [`LEVEL`].
    pub ci: Option<Interval>,
    /// Two-sided p-value of "no difference" (paired or Welch t test).
    pub p_value: Option<f64>,
    /// P(a run of A beats a run of B), ties half, over every pair of runs.
    pub prob_improvement: f64,
    /// Supports, contradicts or inconclusive, for "A beats B".
    pub verdict: Verdict,
}

impl Difference {
    /// The verdict on "A beats B by more than `margin`" (a negative margin:
    /// "A is within `-margin` of B or better"): the interval of A - B
    /// against `margin` instead of zero.
    pub fn verdict_beyond(&self, margin: f64) -> Verdict {
        let Some(ci) = self.ci else {
            return Verdict::Inconclusive {
                needed: Needed::Unknown,
            };
        };
        let shifted = Interval {
            lo: ci.lo - margin,
            hi: ci.hi - margin,
        };
        let needed = match self.spread {
            Some(s) => needed_seeds(self.mean - margin, s),
            None => Needed::Unknown,
        };
        Verdict::judge(shifted, needed)
    }

    /// Compares the results `a` and `b`, each `(seed, value)`; `None` when
    /// either is empty.
    pub fn of(a: &[(u64, f64)], b: &[(u64, f64)]) -> Option<Difference> {
        if a.is_empty() || b.is_empty() {
            return None;
        }
        let av: Vec<f64> = a.iter().map(|p| p.1).collect();
        let bv: Vec<f64> = b.iter().map(|p| p.1).collect();
        let prob_improvement = prob_improvement(&av, &bv);
        let diffs: Vec<f64> = a
            .iter()
            .filter_map(|(seed, x)| {
                let (_, y) = b.iter().find(|(s, _)| s == seed)?;
                Some(x - y)
            })
            .collect();
        let d = if diffs.len() >= 2 {
            paired(&diffs)
        } else if av.len() >= 2 && bv.len() >= 2 {
            welch(&av, &bv)
        } else {
            let mean = mean(&av) - mean(&bv);
            Difference {
                pairing: Pairing::None,
                n: av.len().min(bv.len()),
                mean,
                spread: None,
                se: None,
                ci: None,
                p_value: None,
                prob_improvement: 0.0,
                verdict: Verdict::Inconclusive {
                    needed: Needed::Unknown,
                },
            }
        };
        Some(Difference {
            prob_improvement,
            ..d
        })
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn variance(v: &[f64]) -> f64 {
    let m = mean(v);
    v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64
}

/// The paired comparison from per-seed differences (at least two).
fn paired(diffs: &[f64]) -> Difference {
    let n = diffs.len();
    let (m, s) = (mean(diffs), variance(diffs).sqrt());
    let df = (n - 1) as f64;
    let se = s / (n as f64).sqrt();
    let half = t_critical(df) * se;
    let ci = Interval {
        lo: m - half,
        hi: m + half,
    };
    let p_value = if se > 0.0 {
        two_sided_p(m / se, df)
    } else if m == 0.0 {
        1.0
    } else {
        0.0
    };
    Difference {
        pairing: Pairing::Paired,
        n,
        mean: m,
        spread: Some(s),
        se: Some(se),
        ci: Some(ci),
        p_value: Some(p_value),
        prob_improvement: 0.0,
        verdict: Verdict::judge(ci, needed_seeds(m, s)),
    }
}

/// Welch's unpaired comparison (at least two values each).
fn welch(a: &[f64], b: &[f64]) -> Difference {
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (va, vb) = (variance(a) / na, variance(b) / nb);
    let m = mean(a) - mean(b);
    let se = (va + vb).sqrt();
    let df = (va + vb).powi(2) / (va * va / (na - 1.0) + vb * vb / (nb - 1.0));
    let (half, p_value) = if se > 0.0 {
        (t_critical(df) * se, two_sided_p(m / se, df))
    } else {
        (0.0, if m == 0.0 { 1.0 } else { 0.0 })
    };
    let ci = Interval {
        lo: m - half,
        hi: m + half,
    };
    // Seeds needed on each side, with both spreads as observed: as if
    // paired, with the spread of a difference of independent runs (an
    // approximation: Welch's degrees of freedom are not n - 1).
    let per_seed = (va * na + vb * nb).sqrt();
    Difference {
        pairing: Pairing::Welch,
        n: a.len().min(b.len()),
        mean: m,
        spread: Some(per_seed),
        se: Some(se),
        ci: Some(ci),
        p_value: Some(p_value),
        prob_improvement: 0.0,
        verdict: Verdict::judge(ci, needed_seeds(m, per_seed)),
    }
}

/// P(X > Y) over every pair of a value of `a` and one of `b`, ties half.
pub fn prob_improvement(a: &[f64], b: &[f64]) -> f64 {
    let wins: f64 = a
        .iter()
        .map(|x| {
            b.iter()
                .map(|y| match x.partial_cmp(y) {
                    Some(std::cmp::Ordering::Greater) => 1.0,
                    Some(std::cmp::Ordering::Equal) => 0.5,
                    _ => 0.0,
                })
                .sum::<f64>()
        })
        .sum();
    wins / (a.len() * b.len()) as f64
}

/// The fewest seeds whose t interval, at mean difference `m` and per-seed
/// spread `s`, would exclude zero: the least `n >= 2` with
/// `t(0.975, n-1) · s / √n < |m|`.
pub fn needed_seeds(m: f64, s: f64) -> Needed {
    if !m.is_finite() || !s.is_finite() || m == 0.0 {
        return Needed::Unknown;
    }
    let decides = |n: usize| t_critical((n - 1) as f64) * s / (n as f64).sqrt() < m.abs();
    if decides(MAX_NEEDED) {
        // The interval shrinks as n grows: bisect for the least n.
        let (mut lo, mut hi) = (1, MAX_NEEDED);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if mid >= 2 && decides(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Needed::Seeds(hi)
    } else {
        Needed::MoreThan(MAX_NEEDED)
    }
}

/// Seeds that would decide an inconclusive comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "seeds", rename_all = "snake_case")]
pub enum Needed {
    /// About this many seeds, if the mean difference and spread held.
    Seeds(usize),
    /// More than this many.
    MoreThan(usize),
    /// Cannot be told: no difference observed, or too few seeds to see
    /// the spread.
    Unknown,
}

/// What our runs say of "A beats B".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// The interval of A - B lies above zero.
    Supports,
    /// It lies below zero.
    Contradicts,
    /// It holds zero (or there is no interval).
    Inconclusive {
        /// Seeds that would decide it.
        needed: Needed,
    },
}

impl Verdict {
    fn judge(ci: Interval, needed: Needed) -> Verdict {
        if ci.above_zero() {
            Verdict::Supports
        } else if ci.below_zero() {
            Verdict::Contradicts
        } else {
            Verdict::Inconclusive { needed }
        }
    }

    /// One word: `supports`, `contradicts` or `inconclusive`.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Supports => "supports",
            Verdict::Contradicts => "contradicts",
            Verdict::Inconclusive { .. } => "inconclusive",
        }
    }
}

impl std::fmt::Display for Verdict {
    /// `supports`, `contradicts`, or `inconclusive (n≈12 would decide)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Inconclusive {
                needed: Needed::Seeds(n),
            } => write!(f, "inconclusive (n≈{n} would decide)"),
            Verdict::Inconclusive {
                needed: Needed::MoreThan(n),
            } => write!(f, "inconclusive (more than {n} seeds)"),
            Verdict::Inconclusive {
                needed: Needed::Unknown,
            } => f.write_str("inconclusive"),
            v => f.write_str(v.word()),
        }
    }
}

#[cfg(test)]
mod tests;
