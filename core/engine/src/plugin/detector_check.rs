//! `plugins check` for a detector: runs its functions on seeded random
//! batches and checks what a training run relies on.
//!
//! - `layout`, `init_bias`: they answer, with plausible sizes;
//! - `assign`: every target value written and finite, and the same
//!   targets for the same boxes;
//! - `loss`: finite terms and gradient, and the gradient against central
//!   finite differences of the summed terms at sampled head values;
//! - `decode`: counts within capacity, finite boxes and scores.
//!
//! The batches: 2 images on an 8x8 grid of a 64x64 input, 3 classes, 0 to
//! 4 boxes per image (one of them, sometimes, a crowd region), head values
//! uniform in [-2, 2].

use std::collections::BTreeMap;

use acbench_plugin_api::detector::abi::{FLAG_CROWD, Grid};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::PluginError;
use super::check::CheckRow;
use super::detector::{Detector, TruthBatch};

/// Head values probed by finite differences per case.
const PROBES: usize = 24;
/// Step of the central differences.
const STEP: f32 = 1e-2;

/// Checks `detector` with its default settings on seeded random batches.
pub fn check_detector(detector: &Detector, seed: u64) -> Result<Vec<CheckRow>, PluginError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let classes = 3;
    let cfg = detector.config(classes, &BTreeMap::new())?;
    let layout = detector.layout(&cfg)?;
    detector.init_bias(&cfg, layout.channels)?;
    let grid = Grid {
        batch: 2,
        height: 8,
        width: 8,
        image_height: 64,
        image_width: 64,
    };
    let row = |check: &str, max_abs_err: f64, worst: f64, case: String| CheckRow {
        activation: detector.name().to_owned(),
        check: check.to_owned(),
        max_abs_err,
        worst,
        case,
    };
    let (mut targets_bad, mut repeat_bad, mut finite_bad) = (0.0f64, 0.0f64, 0.0f64);
    let (mut fd_err, mut fd_worst, mut fd_case) = (0.0f64, 0.0f64, String::new());
    let mut decode_bad = 0.0f64;
    for case in 0..4 {
        let truth = random_truth(&mut rng, grid, classes as u32);
        let mut targets = Vec::new();
        detector.assign(&cfg, layout, grid, &truth, &mut targets)?;
        targets_bad += targets.iter().filter(|v| !v.is_finite()).count() as f64;
        let mut again = Vec::new();
        detector.assign(&cfg, layout, grid, &truth, &mut again)?;
        let same = targets
            .iter()
            .zip(&again)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        repeat_bad += f64::from(u8::from(!same));

        let n = grid.batch * layout.channels * grid.height * grid.width;
        let mut head: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
        let mut grad = vec![f32::NAN; n];
        let terms = detector.loss(&cfg, layout, grid, &head, &targets, Some(&mut grad))?;
        finite_bad += terms.iter().chain(&grad).filter(|v| !v.is_finite()).count() as f64;
        let total = |head: &[f32]| -> Result<f64, PluginError> {
            let t = detector.loss(&cfg, layout, grid, head, &targets, None)?;
            Ok(t.iter().map(|&v| f64::from(v)).sum())
        };
        for _ in 0..PROBES {
            let i = rng.random_range(0..n);
            let v = head[i];
            head[i] = v + STEP;
            let up = total(&head)?;
            head[i] = v - STEP;
            let down = total(&head)?;
            head[i] = v;
            let numeric = (up - down) / (2.0 * f64::from(STEP));
            let analytic = f64::from(grad[i]);
            let err = (numeric - analytic).abs();
            // f32 losses and a finite step: a loose, scale-aware bound.
            let tolerance = 2e-2 + 5e-2 * numeric.abs().max(analytic.abs());
            fd_err = fd_err.max(err);
            if err / tolerance > fd_worst {
                fd_worst = err / tolerance;
                fd_case = format!(
                    "case {case}, head value {i}: analytic {analytic:.5}, numeric {numeric:.5}"
                );
            }
        }
        let capacity = 50;
        let decoded = detector.decode(&cfg, layout, grid, &head, 0.0, capacity)?;
        decode_bad += decoded
            .iter()
            .flatten()
            .filter(|d| !(d.bbox.iter().all(|v| v.is_finite()) && d.score.is_finite()))
            .count() as f64;
    }
    let pass_if_zero = |bad: f64| if bad == 0.0 { 0.0 } else { f64::INFINITY };
    Ok(vec![
        row(
            "targets written, finite",
            targets_bad,
            pass_if_zero(targets_bad),
            format!("{targets_bad} values not finite"),
        ),
        row(
            "targets repeatable",
            repeat_bad,
            pass_if_zero(repeat_bad),
            format!("{repeat_bad} cases differ"),
        ),
        row(
            "loss and grad finite",
            finite_bad,
            pass_if_zero(finite_bad),
            format!("{finite_bad} values not finite"),
        ),
        row("finite diff head", fd_err, fd_worst, fd_case),
        row(
            "decoded boxes finite",
            decode_bad,
            pass_if_zero(decode_bad),
            format!("{decode_bad} boxes not finite"),
        ),
    ])
}

/// 0 to 4 boxes per image inside the input, sometimes a crowd region.
fn random_truth(rng: &mut ChaCha8Rng, grid: Grid, classes: u32) -> TruthBatch {
    let mut t = TruthBatch::new();
    let (h, w) = (grid.image_height as f32, grid.image_width as f32);
    for _ in 0..grid.batch {
        for _ in 0..rng.random_range(0..=4) {
            let bw = rng.random_range(4.0..w / 2.0);
            let bh = rng.random_range(4.0..h / 2.0);
            let x = rng.random_range(0.0..w - bw);
            let y = rng.random_range(0.0..h - bh);
            let flags = if rng.random_bool(0.1) { FLAG_CROWD } else { 0 };
            t.push_box([x, y, bw, bh], rng.random_range(0..classes), flags);
        }
        t.end_image();
    }
    t
}
