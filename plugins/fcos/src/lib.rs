//! An FCOS-style detector plugin (Tian et al., "FCOS: Fully Convolutional
//! One-Stage Object Detection"), single stride, as acbench ships it.
//!
//! The network (`suites/models/fcos-tiny.acnet`) ends in one tensor of
//! `classes + 5` values per location: `classes` class logits, 4 box
//! distances and 1 centerness logit. For the location at the centre of grid
//! cell `(i, j)`, `(x, y) = ((j + 0.5) sx, (i + 0.5) sy)` with the strides
//! `sx = image_width / W` and `sy = image_height / H`, a raw distance `r`
//! means `s * softplus(r)` pixels (left and right in `sx`, top and bottom
//! in `sy`), so distances are positive and the gradient never vanishes.
//!
//! - **Assignment.** A location is foreground for a box when it lies inside
//!   the box and within `radius` strides of its centre on both axes (centre
//!   sampling); of several such boxes, the smallest (then the first) wins.
//!   A location won by a crowd or difficult box, or inside one and won by
//!   none, is ignored: no loss at all. Targets per location: the class (-1
//!   background, -2 ignored), the four distances in pixels, and the
//!   centerness `sqrt(min(l,r)/max(l,r) * min(t,b)/max(t,b))`.
//! - **Loss** (torchvision's FCOS): sigmoid focal loss (`alpha`, `gamma`) over
//!   every class of every location not ignored, GIoU loss of the decoded
//!   distances, and binary cross-entropy of the centerness logit at
//!   foreground locations; each summed over the batch and divided by its
//!   number of foreground locations (at least 1).
//! - **Decoding.** Score `sqrt(sigmoid(class) * sigmoid(centerness))` per
//!   location and class, the box `[x - l, y - t, l + r, t + b]`.
//! - **Initial bias** of the class logits `-log((1 - prior) / prior)`
//!   (`-log(99)` for the default prior 0.01), so that training starts from
//!   "background everywhere".
//!
//! acbench links this crate ([`DETECTORS`]); `cdylib/` builds it as
//! `libacbench_detector_fcos.so` for loading at run time.

use acbench_plugin_api::detector::abi::{Grid, HeadLayout};
use acbench_plugin_api::detector::losses::{
    bce_with_logits, focal, giou_ltrb, prior_logit, sigmoid, softplus,
};
use acbench_plugin_api::detector::{
    Candidate, Detector, DetectorDef, DetectorKernel, ImageTruth, LinkedDetectors, SettingSpec,
    Settings,
};
use acbench_plugin_api::linked_detectors;

/// The detectors of this crate: `fcos`.
pub fn detectors() -> Vec<Detector> {
    vec![Detector::of::<Fcos>()]
}

/// For a host that links this crate.
pub const DETECTORS: LinkedDetectors = linked_detectors!(detectors);

/// The FCOS-style detector (module docs).
#[derive(Debug, Clone, Copy)]
pub struct Fcos;

/// Setting positions.
const RADIUS: usize = 0;
const ALPHA: usize = 1;
const GAMMA: usize = 2;
const PRIOR: usize = 3;

/// Target values per location: class, l, t, r, b, centerness.
const TARGETS: usize = 6;
/// The class target of a background location.
pub const BACKGROUND: f32 = -1.0;
/// The class target of an ignored location.
pub const IGNORED: f32 = -2.0;

/// The location of cell `(i, j)`, `(x, y)`.
fn location(grid: Grid, i: usize, j: usize) -> (f64, f64) {
    let (sx, sy) = grid.strides();
    ((j as f64 + 0.5) * sx, (i as f64 + 0.5) * sy)
}

/// The centerness of distances `[l, t, r, b]`.
pub fn centerness(d: [f64; 4]) -> f64 {
    let [l, t, r, b] = d;
    let ratio = |a: f64, b: f64| {
        if a.max(b) > 0.0 {
            a.min(b) / a.max(b)
        } else {
            0.0
        }
    };
    (ratio(l, r) * ratio(t, b)).sqrt()
}

impl Fcos {
    fn check(s: Settings<'_>) -> Result<(), String> {
        if s.classes == 0 {
            return Err("fcos needs at least one class".into());
        }
        if s.get(RADIUS).is_nan() || s.get(RADIUS) <= 0.0 {
            return Err(format!(
                "fcos: radius must be positive, got {}",
                s.get(RADIUS)
            ));
        }
        if s.get(ALPHA) > 1.0 {
            return Err(format!(
                "fcos: alpha must be in [0, 1] (or negative for none), got {}",
                s.get(ALPHA)
            ));
        }
        if s.get(GAMMA).is_nan() || s.get(GAMMA) < 0.0 {
            return Err(format!("fcos: gamma must be >= 0, got {}", s.get(GAMMA)));
        }
        if !(s.get(PRIOR) > 0.0 && s.get(PRIOR) < 1.0) {
            return Err(format!(
                "fcos: prior must be in (0, 1), got {}",
                s.get(PRIOR)
            ));
        }
        Ok(())
    }

    /// The distances in pixels of raw values `raw` (`[l, t, r, b]`) and
    /// their derivatives.
    fn distances(grid: Grid, raw: [f64; 4]) -> ([f64; 4], [f64; 4]) {
        let (sx, sy) = grid.strides();
        let s = [sx, sy, sx, sy];
        let mut d = [0.0; 4];
        let mut dd = [0.0; 4];
        for k in 0..4 {
            d[k] = s[k] * softplus(raw[k]);
            dd[k] = s[k] * sigmoid(raw[k]);
        }
        (d, dd)
    }
}

impl DetectorKernel for Fcos {
    const TERMS: &'static [&'static str] = &["cls", "box", "ctr"];

    fn def() -> DetectorDef {
        DetectorDef {
            name: "fcos".into(),
            summary: "FCOS-style anchor-free detector, one stride: centre sampling, focal, \
                      GIoU and centerness losses"
                .into(),
            settings: vec![
                SettingSpec::new("radius", 1.5, "centre sampling radius, in strides"),
                SettingSpec::new("alpha", 0.25, "focal loss weight of positives (<0: none)"),
                SettingSpec::new("gamma", 2.0, "focal loss focusing parameter"),
                SettingSpec::new("prior", 0.01, "initial foreground probability of a class"),
            ],
        }
    }

    fn layout(s: Settings<'_>) -> Result<HeadLayout, String> {
        Self::check(s)?;
        Ok(HeadLayout {
            channels: s.classes + 5,
            target_channels: TARGETS,
        })
    }

    fn init_bias(s: Settings<'_>, bias: &mut [f32]) -> Result<(), String> {
        bias[..s.classes].fill(prior_logit(s.get(PRIOR)) as f32);
        Ok(())
    }

    fn assign(
        s: Settings<'_>,
        grid: Grid,
        truth: ImageTruth<'_>,
        targets: &mut [f32],
    ) -> Result<(), String> {
        let (sx, sy) = grid.strides();
        let (rx, ry) = (s.get(RADIUS) * sx, s.get(RADIUS) * sy);
        let plane = grid.height * grid.width;
        for i in 0..grid.height {
            for j in 0..grid.width {
                let (x, y) = location(grid, i, j);
                let mut best: Option<(f64, usize, [f64; 4])> = None;
                let mut in_ignored = false;
                for (k, b) in truth.boxes.iter().enumerate() {
                    let [bx, by, bw, bh] = b.map(f64::from);
                    let d = [x - bx, y - by, bx + bw - x, by + bh - y];
                    if d.iter().any(|&v| v <= 0.0) {
                        continue;
                    }
                    if truth.is_ignored(k) {
                        in_ignored = true;
                    }
                    let (cx, cy) = (bx + bw / 2.0, by + bh / 2.0);
                    if (x - cx).abs() >= rx || (y - cy).abs() >= ry {
                        continue;
                    }
                    let area = bw * bh;
                    if best.is_none_or(|(a, _, _)| area < a) {
                        best = Some((area, k, d));
                    }
                }
                let cell = i * grid.width + j;
                let mut put = |c: usize, v: f64| targets[c * plane + cell] = v as f32;
                match best {
                    Some((_, k, d)) if !truth.is_ignored(k) => {
                        put(0, f64::from(truth.classes[k]));
                        for (c, v) in d.iter().enumerate() {
                            put(1 + c, *v);
                        }
                        put(5, centerness(d));
                    }
                    other => {
                        let label = if other.is_some() || in_ignored {
                            IGNORED
                        } else {
                            BACKGROUND
                        };
                        put(0, f64::from(label));
                        for c in 1..TARGETS {
                            put(c, 0.0);
                        }
                    }
                }
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
        let classes = s.classes;
        let (alpha, gamma) = (s.get(ALPHA), s.get(GAMMA));
        let plane = grid.height * grid.width;
        let channels = classes + 5;
        let fg = targets
            .chunks_exact(TARGETS * plane)
            .map(|t| t[..plane].iter().filter(|&&c| c >= 0.0).count())
            .sum::<usize>();
        let norm = fg.max(1) as f64;
        if let Some(g) = grad.as_deref_mut() {
            g.fill(0.0);
        }
        let (mut cls, mut bx, mut ctr) = (0.0f64, 0.0f64, 0.0f64);
        for n in 0..grid.batch {
            let h = &head[n * channels * plane..(n + 1) * channels * plane];
            let t = &targets[n * TARGETS * plane..(n + 1) * TARGETS * plane];
            for cell in 0..plane {
                let label = t[cell];
                if label == IGNORED {
                    continue;
                }
                let at = |c: usize| n * channels * plane + c * plane + cell;
                for c in 0..classes {
                    let target = if label == c as f32 { 1.0 } else { 0.0 };
                    let (l, d) = focal(f64::from(h[c * plane + cell]), target, alpha, gamma);
                    cls += l;
                    if let Some(g) = grad.as_deref_mut() {
                        g[at(c)] = (d / norm) as f32;
                    }
                }
                if label < 0.0 {
                    continue;
                }
                let raw: [f64; 4] =
                    std::array::from_fn(|k| f64::from(h[(classes + k) * plane + cell]));
                let target: [f64; 4] =
                    std::array::from_fn(|k| f64::from(t[(1 + k) * plane + cell]));
                let (d, dd) = Self::distances(grid, raw);
                let (l, dg) = giou_ltrb(d, target);
                bx += l;
                let (lc, dc) = bce_with_logits(
                    f64::from(h[(classes + 4) * plane + cell]),
                    f64::from(t[5 * plane + cell]),
                );
                ctr += lc;
                if let Some(g) = grad.as_deref_mut() {
                    for k in 0..4 {
                        g[at(classes + k)] = (dg[k] * dd[k] / norm) as f32;
                    }
                    g[at(classes + 4)] = (dc / norm) as f32;
                }
            }
        }
        terms[0] = (cls / norm) as f32;
        terms[1] = (bx / norm) as f32;
        terms[2] = (ctr / norm) as f32;
        Ok(())
    }

    fn decode(
        s: Settings<'_>,
        grid: Grid,
        head: &[f32],
        threshold: f32,
        out: &mut Vec<Candidate>,
    ) -> Result<(), String> {
        let classes = s.classes;
        let plane = grid.height * grid.width;
        // score = sqrt(p * ctr) >= threshold  <=>  p * ctr >= threshold^2.
        let floor = f64::from(threshold.max(0.0)).powi(2);
        for i in 0..grid.height {
            for j in 0..grid.width {
                let cell = i * grid.width + j;
                let ctr = sigmoid(f64::from(head[(classes + 4) * plane + cell]));
                let mut bbox = None;
                for c in 0..classes {
                    let p = sigmoid(f64::from(head[c * plane + cell])) * ctr;
                    if p.is_nan() || p < floor {
                        continue;
                    }
                    let [l, t, r, b] = *bbox.get_or_insert_with(|| {
                        let raw =
                            std::array::from_fn(|k| f64::from(head[(classes + k) * plane + cell]));
                        Self::distances(grid, raw).0
                    });
                    let (x, y) = location(grid, i, j);
                    out.push(Candidate {
                        bbox: [
                            (x - l) as f32,
                            (y - t) as f32,
                            (l + r) as f32,
                            (t + b) as f32,
                        ],
                        score: p.sqrt() as f32,
                        class: c as u32,
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
