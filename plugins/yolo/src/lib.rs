//! A YOLOv2-style anchor detector plugin (Redmon and Farhadi, "YOLO9000:
//! Better, Faster, Stronger"), as acbench ships it: a second family beside
//! the anchor-free `fcos`, so that the detector ABI is not shaped around one.
//!
//! The network (`suites/models/yolo-tiny.acnet`) ends in `anchors * (5 +
//! classes)` values per grid cell: for anchor `a`, channels `a * (5 +
//! classes) + k` hold `tx, ty, tw, th`, the objectness logit `to` and
//! `classes` class logits. With the strides `sx = image_width / W`, `sy =
//! image_height / H`, cell `(i, j)` and anchor size `(aw, ah)` in strides,
//! the box is centred at `((j + sigmoid(tx)) sx, (i + sigmoid(ty)) sy)` with
//! size `(aw exp(tw) sx, ah exp(th) sy)`.
//!
//! - **Anchors.** `anchors` square anchors whose sides (in strides) are
//!   spaced geometrically from `min_anchor` to `max_anchor` (YOLOv2 takes
//!   k-means clusters of a dataset's boxes; these settings are the knob a
//!   suite turns instead).
//! - **Assignment.** Each ground-truth box is the responsibility of the cell
//!   holding its centre and, there, of the anchor whose shape overlaps it
//!   best (IoU of the two centred boxes); a slot already taken keeps its
//!   first box. Crowd and difficult boxes make the anchors of the cell
//!   holding their centre, and of every cell whose centre they cover,
//!   ignored instead. YOLOv2 also spares predictions that already overlap
//!   a box by IoU > 0.6 from the no-object loss; the ABI's assignment sees
//!   only the ground truth, so that rule is left out.
//! - **Loss**, summed over the batch and divided by its number of responsible
//!   anchors (at least 1): `coord` x the squared errors of `sigmoid(tx),
//!   sigmoid(ty), tw, th` against their targets, weighted by `2 - w h /
//!   (image area)` as darknet does (`box`); binary cross-entropy of the
//!   objectness, target 1 for responsible anchors and 0, weighted by
//!   `noobj`, for the others (`obj`); softmax cross-entropy of the classes
//!   of responsible anchors (`cls`).
//! - **Decoding.** Score `sigmoid(to) * softmax(class)` per anchor and class.
//! - **Initial bias** of the objectness logits `-log((1 - prior) / prior)`.
//!
//! acbench links this crate ([`DETECTORS`]); `cdylib/` builds it as
//! `libacbench_detector_yolo.so`.

use acbench_plugin_api::detector::abi::{Grid, HeadLayout};
use acbench_plugin_api::detector::losses::{bce_with_logits, prior_logit, sigmoid};
use acbench_plugin_api::detector::{
    Candidate, Detector, DetectorDef, DetectorKernel, ImageTruth, LinkedDetectors, SettingSpec,
    Settings,
};
use acbench_plugin_api::linked_detectors;

/// The detectors of this crate: `yolo`.
pub fn detectors() -> Vec<Detector> {
    vec![Detector::of::<Yolo>()]
}

/// For a host that links this crate.
pub const DETECTORS: LinkedDetectors = linked_detectors!(detectors);

/// The YOLOv2-style detector (module docs).
#[derive(Debug, Clone, Copy)]
pub struct Yolo;

const ANCHORS: usize = 0;
const MIN_ANCHOR: usize = 1;
const MAX_ANCHOR: usize = 2;
const COORD: usize = 3;
const NOOBJ: usize = 4;
const PRIOR: usize = 5;

/// Most anchors a suite may ask for.
const MAX_ANCHORS: usize = 16;
/// Target values per anchor: objectness (1, 0, or -1 ignored), tx, ty, tw,
/// th, class, box weight.
const PER_ANCHOR: usize = 7;
/// The objectness target of an ignored anchor.
pub const IGNORED: f32 = -1.0;
/// `tw`, `th` beyond this are clamped when decoding (`exp` would overflow).
const MAX_LOG_SCALE: f64 = 20.0;

/// The anchors' sides in strides.
pub fn anchor_sides(s: Settings<'_>) -> Vec<f64> {
    let n = s.get(ANCHORS) as usize;
    let (lo, hi) = (s.get(MIN_ANCHOR), s.get(MAX_ANCHOR));
    (0..n)
        .map(|k| {
            if n == 1 {
                (lo * hi).sqrt()
            } else {
                lo * (hi / lo).powf(k as f64 / (n - 1) as f64)
            }
        })
        .collect()
}

/// IoU of two boxes of sizes `a` and `b` sharing their centre.
fn shape_iou(a: (f64, f64), b: (f64, f64)) -> f64 {
    let inter = a.0.min(b.0) * a.1.min(b.1);
    inter / (a.0 * a.1 + b.0 * b.1 - inter)
}

/// Softmax of `logits` into `out`.
fn softmax(logits: impl Iterator<Item = f64>, out: &mut Vec<f64>) {
    out.clear();
    out.extend(logits);
    let m = out.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in out.iter_mut() {
        *v = (*v - m).exp();
        sum += *v;
    }
    for v in out.iter_mut() {
        *v /= sum;
    }
}

impl Yolo {
    fn check(s: Settings<'_>) -> Result<usize, String> {
        if s.classes == 0 {
            return Err("yolo needs at least one class".into());
        }
        let a = s.get(ANCHORS);
        if a.fract() != 0.0 || !(1.0..=MAX_ANCHORS as f64).contains(&a) {
            return Err(format!(
                "yolo: anchors must be a whole number from 1 to {MAX_ANCHORS}, got {a}"
            ));
        }
        let (lo, hi) = (s.get(MIN_ANCHOR), s.get(MAX_ANCHOR));
        if !(lo > 0.0 && hi >= lo) {
            return Err(format!(
                "yolo: need 0 < min_anchor <= max_anchor, got {lo} and {hi}"
            ));
        }
        for (name, i) in [("coord", COORD), ("noobj", NOOBJ)] {
            if s.get(i).is_nan() || s.get(i) < 0.0 {
                return Err(format!("yolo: {name} must be >= 0, got {}", s.get(i)));
            }
        }
        if !(s.get(PRIOR) > 0.0 && s.get(PRIOR) < 1.0) {
            return Err(format!(
                "yolo: prior must be in (0, 1), got {}",
                s.get(PRIOR)
            ));
        }
        Ok(a as usize)
    }
}

impl DetectorKernel for Yolo {
    const TERMS: &'static [&'static str] = &["box", "obj", "cls"];

    fn def() -> DetectorDef {
        DetectorDef {
            name: "yolo".into(),
            summary: "YOLOv2-style anchor detector: one responsible anchor per box, \
                      squared box errors, objectness and softmax class losses"
                .into(),
            settings: vec![
                SettingSpec::new("anchors", 5.0, "anchors per cell"),
                SettingSpec::new("min_anchor", 1.5, "smallest anchor side, in strides"),
                SettingSpec::new("max_anchor", 6.0, "largest anchor side, in strides"),
                SettingSpec::new("coord", 1.0, "weight of the box loss"),
                SettingSpec::new(
                    "noobj",
                    1.0,
                    "weight of the objectness loss of empty anchors",
                ),
                SettingSpec::new("prior", 0.01, "initial objectness probability"),
            ],
        }
    }

    fn layout(s: Settings<'_>) -> Result<HeadLayout, String> {
        let a = Self::check(s)?;
        Ok(HeadLayout {
            channels: a * (5 + s.classes),
            target_channels: a * PER_ANCHOR,
        })
    }

    fn init_bias(s: Settings<'_>, bias: &mut [f32]) -> Result<(), String> {
        let b = prior_logit(s.get(PRIOR)) as f32;
        for a in 0..Self::check(s)? {
            bias[a * (5 + s.classes) + 4] = b;
        }
        Ok(())
    }

    fn assign(
        s: Settings<'_>,
        grid: Grid,
        truth: ImageTruth<'_>,
        targets: &mut [f32],
    ) -> Result<(), String> {
        let sides = anchor_sides(s);
        let (sx, sy) = grid.strides();
        let plane = grid.height * grid.width;
        let image_area = (grid.image_width * grid.image_height) as f64;
        targets.fill(0.0);
        let mut set = |a: usize, k: usize, cell: usize, v: f64| {
            targets[(a * PER_ANCHOR + k) * plane + cell] = v as f32;
        };
        // Ignored regions first, so that a responsible anchor overrides them.
        for (b, bbox) in truth.boxes.iter().enumerate() {
            if !truth.is_ignored(b) {
                continue;
            }
            let [x, y, w, h] = bbox.map(f64::from);
            for i in 0..grid.height {
                for j in 0..grid.width {
                    let (cx, cy) = ((j as f64 + 0.5) * sx, (i as f64 + 0.5) * sy);
                    let covers = cx > x && cx < x + w && cy > y && cy < y + h;
                    let holds = ((x + w / 2.0) / sx).floor() as isize == j as isize
                        && ((y + h / 2.0) / sy).floor() as isize == i as isize;
                    if covers || holds {
                        for a in 0..sides.len() {
                            set(a, 0, i * grid.width + j, f64::from(IGNORED));
                        }
                    }
                }
            }
        }
        let mut taken = vec![false; sides.len() * plane];
        for (b, bbox) in truth.boxes.iter().enumerate() {
            if truth.is_ignored(b) {
                continue;
            }
            let [x, y, w, h] = bbox.map(f64::from);
            if !(w > 0.0 && h > 0.0) {
                continue;
            }
            let (gx, gy) = ((x + w / 2.0) / sx, (y + h / 2.0) / sy);
            let (j, i) = (gx.floor(), gy.floor());
            if j < 0.0 || i < 0.0 || j >= grid.width as f64 || i >= grid.height as f64 {
                continue;
            }
            let cell = i as usize * grid.width + j as usize;
            let (bw, bh) = (w / sx, h / sy);
            let mut best = 0;
            for (a, &side) in sides.iter().enumerate() {
                if shape_iou((side, side), (bw, bh))
                    > shape_iou((sides[best], sides[best]), (bw, bh))
                {
                    best = a;
                }
            }
            if std::mem::replace(&mut taken[best * plane + cell], true) {
                continue;
            }
            let side = sides[best];
            set(best, 0, cell, 1.0);
            set(best, 1, cell, gx - j);
            set(best, 2, cell, gy - i);
            set(best, 3, cell, (bw / side).ln());
            set(best, 4, cell, (bh / side).ln());
            set(best, 5, cell, f64::from(truth.classes[b]));
            set(best, 6, cell, 2.0 - w * h / image_area);
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
        let anchors = Self::check(s)?;
        let (coord, noobj) = (s.get(COORD), s.get(NOOBJ));
        let plane = grid.height * grid.width;
        let per = 5 + classes;
        let (hc, tc) = (anchors * per * plane, anchors * PER_ANCHOR * plane);
        let responsible = targets
            .chunks_exact(tc)
            .flat_map(|t| (0..anchors).map(move |a| &t[a * PER_ANCHOR * plane..][..plane]))
            .flatten()
            .filter(|&&o| o == 1.0)
            .count();
        let norm = responsible.max(1) as f64;
        if let Some(g) = grad.as_deref_mut() {
            g.fill(0.0);
        }
        let (mut bx, mut obj, mut cls) = (0.0f64, 0.0f64, 0.0f64);
        let mut probs = Vec::with_capacity(classes);
        for n in 0..grid.batch {
            for a in 0..anchors {
                for cell in 0..plane {
                    let hi = |k: usize| n * hc + (a * per + k) * plane + cell;
                    let t =
                        |k: usize| f64::from(targets[n * tc + (a * PER_ANCHOR + k) * plane + cell]);
                    let o = t(0);
                    if o == f64::from(IGNORED) {
                        continue;
                    }
                    let positive = o == 1.0;
                    let weight = if positive { 1.0 } else { noobj };
                    let (l, d) = bce_with_logits(f64::from(head[hi(4)]), o);
                    obj += weight * l;
                    if let Some(g) = grad.as_deref_mut() {
                        g[hi(4)] = (weight * d / norm) as f32;
                    }
                    if !positive {
                        continue;
                    }
                    let w = coord * t(6);
                    for k in 0..4 {
                        let x = f64::from(head[hi(k)]);
                        let (p, dp) = if k < 2 {
                            let sg = sigmoid(x);
                            (sg, sg * (1.0 - sg))
                        } else {
                            (x, 1.0)
                        };
                        let e = p - t(1 + k);
                        bx += w * e * e;
                        if let Some(g) = grad.as_deref_mut() {
                            g[hi(k)] = (2.0 * w * e * dp / norm) as f32;
                        }
                    }
                    softmax((0..classes).map(|c| f64::from(head[hi(5 + c)])), &mut probs);
                    let label = t(5) as usize;
                    cls -= probs[label].max(f64::MIN_POSITIVE).ln();
                    if let Some(g) = grad.as_deref_mut() {
                        for (c, &p) in probs.iter().enumerate() {
                            let onehot = if c == label { 1.0 } else { 0.0 };
                            g[hi(5 + c)] = ((p - onehot) / norm) as f32;
                        }
                    }
                }
            }
        }
        terms[0] = (bx / norm) as f32;
        terms[1] = (obj / norm) as f32;
        terms[2] = (cls / norm) as f32;
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
        let sides = anchor_sides(s);
        let (sx, sy) = grid.strides();
        let plane = grid.height * grid.width;
        let per = 5 + classes;
        let floor = f64::from(threshold);
        let mut probs = Vec::with_capacity(classes);
        for (a, &side) in sides.iter().enumerate() {
            for i in 0..grid.height {
                for j in 0..grid.width {
                    let cell = i * grid.width + j;
                    let v = |k: usize| f64::from(head[(a * per + k) * plane + cell]);
                    let objectness = sigmoid(v(4));
                    if objectness.is_nan() || objectness < floor {
                        continue;
                    }
                    softmax((0..classes).map(|c| v(5 + c)), &mut probs);
                    let cx = (j as f64 + sigmoid(v(0))) * sx;
                    let cy = (i as f64 + sigmoid(v(1))) * sy;
                    let w = side * v(2).min(MAX_LOG_SCALE).exp() * sx;
                    let h = side * v(3).min(MAX_LOG_SCALE).exp() * sy;
                    for (c, &p) in probs.iter().enumerate() {
                        let score = objectness * p;
                        if score >= floor {
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
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
