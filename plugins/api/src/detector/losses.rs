//! The loss terms detectors share, each with its gradient, in `f64` and
//! numerically stable for any finite logit. One home for the math of every
//! shipped detector (and of any plugin that wants them): the values are
//! those of `torchvision.ops` (`sigmoid_focal_loss`,
//! `generalized_box_iou_loss`) and of PyTorch's
//! `binary_cross_entropy_with_logits`, and the FCOS plugin's tests check
//! them against values computed there.

/// `log(1 + exp(x))`, without overflow.
pub fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// `1 / (1 + exp(-x))`, without overflow.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// The logit whose sigmoid is `prior`: `-log((1 - prior) / prior)`, the
/// initial bias that makes a detector start from "background everywhere"
/// (`-log(99)` for FCOS's prior of 0.01).
pub fn prior_logit(prior: f64) -> f64 {
    -((1.0 - prior) / prior).ln()
}

/// Binary cross-entropy of logit `x` against target `t` in `[0, 1]`, and
/// its derivative with respect to `x`: `(softplus(x) - t x, sigmoid(x) - t)`.
pub fn bce_with_logits(x: f64, t: f64) -> (f64, f64) {
    (softplus(x) - t * x, sigmoid(x) - t)
}

/// The sigmoid focal loss of logit `x` for target `t` (0 or 1) with weight
/// `alpha` (none when negative, as torchvision) and focusing `gamma`, and
/// its derivative with respect to `x`:
/// `alpha_t (1 - p_t)^gamma BCE(x, t)`.
pub fn focal(x: f64, t: f64, alpha: f64, gamma: f64) -> (f64, f64) {
    let p = sigmoid(x);
    let (ce, dce) = bce_with_logits(x, t);
    // p_t = p t + (1 - p)(1 - t); its derivative is p (1 - p) (2t - 1).
    let pt = p * t + (1.0 - p) * (1.0 - t);
    let dpt = p * (1.0 - p) * (2.0 * t - 1.0);
    let q = 1.0 - pt;
    let mod_ = q.powf(gamma);
    // d (1 - p_t)^gamma / dx = -gamma (1 - p_t)^(gamma - 1) dpt; zero when
    // q is 0 and gamma >= 1 (the limit), guarded against 0^(negative).
    let dmod = if q > 0.0 {
        -gamma * q.powf(gamma - 1.0) * dpt
    } else {
        0.0
    };
    let w = if alpha >= 0.0 {
        alpha * t + (1.0 - alpha) * (1.0 - t)
    } else {
        1.0
    };
    (w * mod_ * ce, w * (dmod * ce + mod_ * dce))
}

/// The `eps` of torchvision's `generalized_box_iou_loss`.
pub const GIOU_EPS: f64 = 1e-7;

/// The GIoU loss of two boxes given as distances `[left, top, right,
/// bottom]` from one shared point (FCOS's parametrisation; any two boxes
/// containing the point), and its derivatives with respect to the
/// predicted distances. `1 - IoU + (C - U) / C`, with torchvision's
/// [`GIOU_EPS`] in both denominators. Distances must be non-negative.
///
/// Where a prediction ties a target distance, the intersection's `min`
/// takes the prediction's side and the enclosure's `max` the target's.
pub fn giou_ltrb(pred: [f64; 4], target: [f64; 4]) -> (f64, [f64; 4]) {
    let [pl, pt, pr, pb] = pred;
    let [tl, tt, tr, tb] = target;
    let area_p = (pl + pr) * (pt + pb);
    let area_t = (tl + tr) * (tt + tb);
    let iw = pl.min(tl) + pr.min(tr);
    let ih = pt.min(tt) + pb.min(tb);
    let inter = iw * ih;
    let union = area_p + area_t - inter;
    let ew = pl.max(tl) + pr.max(tr);
    let eh = pt.max(tt) + pb.max(tb);
    let enc = ew * eh;
    let ue = union + GIOU_EPS;
    let ce = enc + GIOU_EPS;
    let loss = 1.0 - inter / ue + (enc - union) / ce;
    // Per distance: (d area_p, d inter, d enc).
    let part = |p: f64, t: f64, other_span: f64, i_other: f64, e_other: f64| {
        let d_area = other_span;
        let d_inter = if p <= t { i_other } else { 0.0 };
        let d_enc = if p > t { e_other } else { 0.0 };
        (d_area, d_inter, d_enc)
    };
    let parts = [
        part(pl, tl, pt + pb, ih, eh),
        part(pt, tt, pl + pr, iw, ew),
        part(pr, tr, pt + pb, ih, eh),
        part(pb, tb, pl + pr, iw, ew),
    ];
    let mut grad = [0.0; 4];
    for (g, (d_area, d_inter, d_enc)) in grad.iter_mut().zip(parts) {
        let d_union = d_area - d_inter;
        let d_iou = (d_inter * ue - inter * d_union) / (ue * ue);
        let d_pen = ((d_enc - d_union) * ce - (enc - union) * d_enc) / (ce * ce);
        *g = -d_iou + d_pen;
    }
    (loss, grad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(f: impl Fn(f64) -> f64, x: f64) -> f64 {
        let h = 1e-6;
        (f(x + h) - f(x - h)) / (2.0 * h)
    }

    #[test]
    fn stable_for_large_logits() {
        assert_eq!(softplus(1000.0), 1000.0);
        assert!(softplus(-1000.0) >= 0.0 && softplus(-1000.0) < 1e-300);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        for x in [-800.0, -30.0, 0.0, 30.0, 800.0] {
            for t in [0.0, 1.0] {
                let (l, g) = focal(x, t, 0.25, 2.0);
                assert!(l.is_finite() && g.is_finite(), "focal({x}, {t})");
            }
        }
    }

    #[test]
    fn derivatives_match_finite_differences() {
        for x in [-3.0, -0.7, 0.0, 0.4, 2.5] {
            for t in [0.0, 0.3, 1.0] {
                let (_, g) = bce_with_logits(x, t);
                assert!((g - numeric(|x| bce_with_logits(x, t).0, x)).abs() < 1e-7);
            }
            for t in [0.0, 1.0] {
                for (alpha, gamma) in [(0.25, 2.0), (-1.0, 0.0), (0.5, 1.5)] {
                    let (_, g) = focal(x, t, alpha, gamma);
                    let n = numeric(|x| focal(x, t, alpha, gamma).0, x);
                    assert!((g - n).abs() < 1e-7, "focal'({x}, {t}): {g} vs {n}");
                }
            }
        }
        let target = [3.0, 5.0, 7.0, 2.0];
        for pred in [
            [1.0, 6.0, 9.0, 1.5],
            [4.0, 4.0, 4.0, 4.0],
            [0.5, 0.5, 20.0, 8.0],
        ] {
            let (_, g) = giou_ltrb(pred, target);
            for k in 0..4 {
                let n = numeric(
                    |v| {
                        let mut p = pred;
                        p[k] = v;
                        giou_ltrb(p, target).0
                    },
                    pred[k],
                );
                assert!((g[k] - n).abs() < 1e-6, "giou' {k}: {} vs {n}", g[k]);
            }
        }
    }

    #[test]
    fn giou_of_identical_boxes_is_zero_and_of_far_ones_near_two() {
        let b = [2.0, 3.0, 4.0, 5.0];
        assert!(giou_ltrb(b, b).0.abs() < 1e-8);
        let (far, _) = giou_ltrb([0.0, 0.0, 0.01, 0.01], [0.0, 0.0, 100.0, 100.0]);
        assert!(far > 0.99 && far < 2.0);
    }
}
