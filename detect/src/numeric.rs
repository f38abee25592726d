//! numpy's arithmetic where the reference implementations use it, reproduced
//! operation for operation so that results agree to the bit: `linspace`,
//! `arange` and the pairwise summation behind `sum` and `mean`.

/// `numpy.linspace(start, stop, num)` (with `endpoint=True`) as numpy
/// computes it: `step = (stop - start) / (num - 1)`, `y[i] = i * step +
/// start`, and the last value set to `stop` exactly. So the IoU thresholds
/// `linspace(0.5, 0.95, 10)` hold `0.8999999999999999`, not `0.9`.
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    match num {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (stop - start) / (num - 1) as f64;
            let mut y: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
            y[num - 1] = stop;
            y
        }
    }
}

/// `numpy.arange(start, stop, step)` for a positive `step`, as numpy fills
/// it: `ceil((stop - start) / step)` values, `start + i * delta` with
/// `delta = (start + step) - start`.
pub fn arange(start: f64, stop: f64, step: f64) -> Vec<f64> {
    let len = ((stop - start) / step).ceil();
    if len.is_nan() || len <= 0.0 {
        return Vec::new();
    }
    let delta = (start + step) - start;
    (0..len as usize)
        .map(|i| start + i as f64 * delta)
        .collect()
}

/// `numpy.sum` of a one-dimensional float64 array: 0 plus numpy's pairwise
/// summation (eight accumulators over blocks of at most 128 values, halves
/// split on multiples of eight above that).
pub fn sum(values: &[f64]) -> f64 {
    0.0 + pairwise(values)
}

fn pairwise(a: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &v in a {
            res += v;
        }
        res
    } else if n <= BLOCK {
        let mut r = [0.0; 8];
        r.copy_from_slice(&a[..8]);
        let whole = n - n % 8;
        let mut i = 8;
        while i < whole {
            for (j, acc) in r.iter_mut().enumerate() {
                *acc += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &a[whole..] {
            res += v;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise(&a[..n2]) + pairwise(&a[n2..])
    }
}

/// `numpy.mean` of a non-empty one-dimensional float64 array: its [`sum`]
/// divided by its length. `None` for an empty slice (numpy gives NaN).
pub fn mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        None
    } else {
        Some(sum(values) / values.len() as f64)
    }
}

/// The indices `0..n` by descending `key`, equal keys in index order:
/// numpy's `argsort(-x, kind='mergesort')` (which also takes `-0.0` and
/// `0.0` as equal). NaN keys, which the evaluators never pass, go last, so
/// the comparison stays a total order.
pub fn argsort_descending(n: usize, key: impl Fn(usize) -> f64) -> Vec<usize> {
    use std::cmp::Ordering;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| {
        let (a, b) = (key(i), key(j));
        match (a.is_nan(), b.is_nan()) {
            (false, false) => b.partial_cmp(&a).unwrap_or(Ordering::Equal),
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
        }
    });
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bits numpy 2.4's `linspace(.5, .95, 10)` holds.
    #[test]
    fn iou_thresholds_are_numpys() {
        let t = linspace(0.5, 0.95, 10);
        let numpy: [f64; 10] = [
            0.5,
            0.55,
            0.6,
            0.65,
            0.7,
            0.75,
            0.8,
            0.85,
            0.899_999_999_999_999_9,
            0.95,
        ];
        assert_eq!(t.len(), 10);
        for (ours, theirs) in t.iter().zip(numpy) {
            assert_eq!(ours.to_bits(), theirs.to_bits(), "{ours} vs {theirs}");
        }
        // Not i / 100: the ninth threshold is one ulp below 0.9.
        assert_ne!(t[8], 0.9);
        assert_eq!(t[8], 0.9 - f64::EPSILON / 2.0);
    }

    /// Values of numpy's `linspace(0, 1, 101)`, printed by numpy.
    #[test]
    fn recall_thresholds_are_numpys() {
        let r = linspace(0.0, 1.0, 101);
        assert_eq!(r.len(), 101);
        assert_eq!(r[0], 0.0);
        assert_eq!(r[100], 1.0);
        assert_eq!(r[3], 0.03);
        assert_eq!(r[7], 0.07);
        assert_eq!(r[29], 0.29);
        assert_eq!(r[57], 0.5700000000000001);
        assert_eq!(r[58], 0.58);
        assert_eq!(r[99], 0.99);
        for (i, v) in r.iter().enumerate() {
            assert_eq!(*v, i as f64 * 0.01, "{i}");
        }
    }

    #[test]
    fn eleven_point_recalls_are_numpys_arange() {
        let t = arange(0.0, 1.1, 0.1);
        let numpy = [
            0.0,
            0.1,
            0.2,
            0.300_000_000_000_000_04,
            0.4,
            0.5,
            0.600_000_000_000_000_1,
            0.700_000_000_000_000_1,
            0.8,
            0.9,
            1.0,
        ];
        assert_eq!(t, numpy);
    }

    #[test]
    fn argsort_is_stable_and_descending() {
        let x = [0.5, 0.9, 0.5, -0.0, 0.9, 0.0];
        assert_eq!(argsort_descending(x.len(), |i| x[i]), [1, 4, 0, 2, 3, 5]);
        let x = [f64::NAN, 1.0, f64::NAN, f64::NEG_INFINITY, 2.0];
        assert_eq!(argsort_descending(x.len(), |i| x[i]), [4, 1, 3, 0, 2]);
    }

    #[test]
    fn small_linspaces() {
        assert!(linspace(0.0, 1.0, 0).is_empty());
        assert_eq!(linspace(2.0, 5.0, 1), [2.0]);
        assert_eq!(linspace(0.0, 1.0, 3), [0.0, 0.5, 1.0]);
    }

    /// Sums checked against numpy 2.4's `np.sum` of the same arrays
    /// (`0.1 * arange(n)` plus 1e-3 each), which differ in the last bits
    /// from a left-to-right sum.
    #[test]
    fn pairwise_sum_is_numpys() {
        let xs = |n: usize| -> Vec<f64> { (0..n).map(|i| 0.1 * i as f64 + 1e-3).collect() };
        // np.sum(0.1*np.arange(n)+1e-3) for n = 5, 20, 300, 1000.
        assert_eq!(sum(&xs(5)), 1.0050000000000001);
        assert_eq!(sum(&xs(20)), 19.02);
        assert_eq!(sum(&xs(300)), 4485.3);
        // A left-to-right sum gives 4485.300000000003 and 49950.99999999993.
        assert_ne!(xs(300).iter().sum::<f64>(), 4485.3);
        assert_eq!(sum(&xs(1000)), 49951.0);
        assert_eq!(sum(&[]), 0.0);
        assert_eq!(mean(&[]), None);
        assert_eq!(mean(&[1.0, 2.0]), Some(1.5));
    }
}
