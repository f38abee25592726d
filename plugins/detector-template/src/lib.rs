//! `centers`: a small CenterNet-style detector, as a template for acbench
//! detector plugins. Copy this crate, rename it, and change the five
//! functions of [`DetectorKernel`]; `cargo test` runs the checks at the
//! bottom, and `acbench plugins check --plugin target/release/libcenters.so`
//! checks the built library through the C ABI.
//!
//! The network ends in `classes + 4` values per grid cell: one logit per
//! class (is an object's centre in this cell?), then `dx, dy` (the centre's
//! offset in the cell, through a sigmoid) and `lw, lh` (the box's size,
//! `exp(lw) * stride`). Each box is the responsibility of the cell holding
//! its centre (of two boxes in one cell, the smaller); crowd and difficult
//! boxes make their centre cell ignored. The loss is the sigmoid focal loss
//! of the class logits over every cell that is not ignored (`cls`) and the
//! squared errors of the offsets and log-sizes at responsible cells
//! (`box`), each divided by the number of responsible cells.
//!
//! Use it with any `.acnet` whose last layer gives `classes + 4` channels,
//! e.g. fcos-tiny's backbone ending in `conv(classes + 4, 1)`.

use acbench_plugin_api::detector::abi::{Grid, HeadLayout};
use acbench_plugin_api::detector::losses::{focal, prior_logit, sigmoid};
use acbench_plugin_api::detector::{
    Candidate, Detector, DetectorDef, DetectorKernel, ImageTruth, SettingSpec, Settings,
};
use acbench_plugin_api::export_detectors;

/// The detectors this library exports.
pub fn detectors() -> Vec<Detector> {
    vec![Detector::of::<Centers>()]
}

export_detectors!(detectors);

/// The detector (module docs).
pub struct Centers;

/// Setting positions, in `DetectorDef::settings` order.
const ALPHA: usize = 0;
const GAMMA: usize = 1;
const SIZE_WEIGHT: usize = 2;

/// Target values per cell: class (-1 background, -2 ignored), dx, dy, lw, lh.
const TARGETS: usize = 5;
const BACKGROUND: f32 = -1.0;
const IGNORED: f32 = -2.0;

impl DetectorKernel for Centers {
    const TERMS: &'static [&'static str] = &["cls", "box"];

    fn def() -> DetectorDef {
        DetectorDef {
            name: "centers".into(),
            summary: "CenterNet-style template detector: one cell per object centre".into(),
            settings: vec![
                SettingSpec::new("alpha", 0.25, "focal loss weight of positives"),
                SettingSpec::new("gamma", 2.0, "focal loss focusing parameter"),
                SettingSpec::new("size_weight", 1.0, "weight of the box loss"),
            ],
        }
    }

    fn layout(s: Settings<'_>) -> Result<HeadLayout, String> {
        if s.classes == 0 {
            return Err("centers needs at least one class".into());
        }
        Ok(HeadLayout {
            channels: s.classes + 4,
            target_channels: TARGETS,
        })
    }

    fn init_bias(s: Settings<'_>, bias: &mut [f32]) -> Result<(), String> {
        // Start from "no object anywhere" (a prior of 1%), as FCOS does.
        bias[..s.classes].fill(prior_logit(0.01) as f32);
        Ok(())
    }

    fn assign(
        _s: Settings<'_>,
        grid: Grid,
        truth: ImageTruth<'_>,
        targets: &mut [f32],
    ) -> Result<(), String> {
        let (sx, sy) = grid.strides();
        let plane = grid.height * grid.width;
        targets.fill(0.0);
        targets[..plane].fill(BACKGROUND);
        let mut area = vec![f64::INFINITY; plane];
        for (k, b) in truth.boxes.iter().enumerate() {
            let [x, y, w, h] = b.map(f64::from);
            let (gx, gy) = ((x + w / 2.0) / sx, (y + h / 2.0) / sy);
            let (j, i) = (gx.floor(), gy.floor());
            if !(w > 0.0 && h > 0.0) || j < 0.0 || i < 0.0 {
                continue;
            }
            let (j, i) = (j as usize, i as usize);
            if j >= grid.width || i >= grid.height {
                continue;
            }
            let cell = i * grid.width + j;
            if truth.is_ignored(k) {
                targets[cell] = IGNORED;
                continue;
            }
            if w * h >= area[cell] {
                continue;
            }
            area[cell] = w * h;
            let t = [
                f64::from(truth.classes[k]),
                gx - j as f64,
                gy - i as f64,
                (w / sx).ln(),
                (h / sy).ln(),
            ];
            for (c, v) in t.into_iter().enumerate() {
                targets[c * plane + cell] = v as f32;
            }
        }
        Ok(())
    }

    fn loss(
        s: Settings<'_>,
        grid: Grid,
        head: &[f32],
        targets: &[f32],
        terms: &mut [f32],
        mut grad: Option<&mut [f32]>,
    ) -> Result<(), String> {
        let (classes, plane) = (s.classes, grid.height * grid.width);
        let channels = classes + 4;
        let positives = targets
            .chunks_exact(TARGETS * plane)
            .map(|t| t[..plane].iter().filter(|&&c| c >= 0.0).count())
            .sum::<usize>();
        let norm = positives.max(1) as f64;
        if let Some(g) = grad.as_deref_mut() {
            g.fill(0.0);
        }
        let (mut cls, mut size) = (0.0, 0.0);
        for n in 0..grid.batch {
            for cell in 0..plane {
                let t = |c: usize| f64::from(targets[(n * TARGETS + c) * plane + cell]);
                let at = |c: usize| (n * channels + c) * plane + cell;
                let label = t(0);
                if label == f64::from(IGNORED) {
                    continue;
                }
                for c in 0..classes {
                    let target = if label == c as f64 { 1.0 } else { 0.0 };
                    let (l, d) = focal(f64::from(head[at(c)]), target, s.get(ALPHA), s.get(GAMMA));
                    cls += l;
                    if let Some(g) = grad.as_deref_mut() {
                        g[at(c)] = (d / norm) as f32;
                    }
                }
                if label < 0.0 {
                    continue;
                }
                for k in 0..4 {
                    let x = f64::from(head[at(classes + k)]);
                    let (p, dp) = if k < 2 {
                        let q = sigmoid(x);
                        (q, q * (1.0 - q))
                    } else {
                        (x, 1.0)
                    };
                    let e = p - t(1 + k);
                    size += s.get(SIZE_WEIGHT) * e * e;
                    if let Some(g) = grad.as_deref_mut() {
                        g[at(classes + k)] = (2.0 * s.get(SIZE_WEIGHT) * e * dp / norm) as f32;
                    }
                }
            }
        }
        terms[0] = (cls / norm) as f32;
        terms[1] = (size / norm) as f32;
        Ok(())
    }

    fn decode(
        s: Settings<'_>,
        grid: Grid,
        head: &[f32],
        threshold: f32,
        out: &mut Vec<Candidate>,
    ) -> Result<(), String> {
        let (sx, sy) = grid.strides();
        let plane = grid.height * grid.width;
        let v = |c: usize, cell: usize| f64::from(head[c * plane + cell]);
        for i in 0..grid.height {
            for j in 0..grid.width {
                let cell = i * grid.width + j;
                for c in 0..s.classes {
                    let score = sigmoid(v(c, cell));
                    if score.is_nan() || score < f64::from(threshold) {
                        continue;
                    }
                    let k = s.classes;
                    let cx = (j as f64 + sigmoid(v(k, cell))) * sx;
                    let cy = (i as f64 + sigmoid(v(k + 1, cell))) * sy;
                    let w = v(k + 2, cell).min(20.0).exp() * sx;
                    let h = v(k + 3, cell).min(20.0).exp() * sy;
                    out.push(Candidate {
                        bbox: [
                            (cx - w / 2.0) as f32,
                            (cy - h / 2.0) as f32,
                            w as f32,
                            h as f32,
                        ],
                        score: score as f32,
                        class: c as u32,
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use acbench_plugin_api::detector::testing::{Harness, TruthBox};
    use acbench_plugin_api::testing::TestRng;

    use super::*;

    fn grid() -> Grid {
        Grid {
            batch: 1,
            height: 12,
            width: 12,
            image_height: 96,
            image_width: 96,
        }
    }

    #[test]
    fn the_gradient_matches_finite_differences() {
        let h = Harness::<Centers>::new(3);
        let boxes = vec![vec![TruthBox::new([10.0, 10.0, 30.0, 20.0], 2)]];
        let targets = h.assign(grid(), &boxes).expect("assign");
        let head = TestRng::new(1).fill(7 * 144, -2.0, 2.0);
        let check = h
            .gradient_check(grid(), &head, &targets, 1e-2, 1e-2, 0..head.len())
            .expect("check");
        // The loss is summed in f32, so tiny gradients carry the finite
        // differences' rounding: judge the absolute error.
        assert!(check.max_abs < 1e-3, "{check:?}");
    }

    #[test]
    fn decoding_finds_the_assigned_box() {
        let h = Harness::<Centers>::new(3);
        // Centre (25, 20): cell (2, 3), offsets (0.125, 0.5); size 30x20.
        let mut head = vec![-10.0f32; 7 * 144];
        let cell = 2 * 12 + 3;
        head[2 * 144 + cell] = 4.0;
        head[3 * 144 + cell] = -(7.0f32.ln()); // sigmoid = 0.125
        head[4 * 144 + cell] = 0.0; // sigmoid = 0.5
        head[5 * 144 + cell] = (30.0f32 / 8.0).ln();
        head[6 * 144 + cell] = (20.0f32 / 8.0).ln();
        let found = h.decode(grid(), &head, 0.5, 10).expect("decode");
        assert_eq!(found[0].len(), 1);
        for (got, want) in found[0][0].bbox.iter().zip([10.0, 10.0, 30.0, 20.0]) {
            assert!((got - want).abs() < 1e-3, "{:?}", found[0][0].bbox);
        }
    }
}
