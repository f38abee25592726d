//! Fast `f32` elementary functions for fused kernels: [`exp`], [`expm1`],
//! [`tanh`] and [`sigmoid`], plus in-place slice versions.
//!
//! The standard library's `f32::exp` and `f32::tanh` call libm once per
//! element, and a call inside a loop stops the compiler from vectorising it,
//! so a kernel built on them runs several times slower than one doing plain
//! arithmetic. The functions here are straight-line `f32` arithmetic instead:
//! range reduction, a polynomial, the power of two built from its bits, and
//! selects rather than branches for the special cases. Called in a loop of a
//! kernel whose `forward`/`backward` is `#[inline(always)]`, they are inlined
//! into the API's AVX-512 and AVX2 builds of that kernel (see
//! [`FusedKernel`](crate::FusedKernel)) and the loop runs 16 or 8 elements
//! at a time.
//!
//! They are written here by hand rather than taken from a crate (such as
//! `libm` or `sleef`) because this crate depends on nothing, so that plugin
//! authors build it in seconds. The polynomial coefficients are those of
//! S. L. Moshier's Cephes `expf` and `tanhf`.
//!
//! # Accuracy and special values
//! | function | error against the correctly rounded result |
//! |---|---|
//! | [`exp`] | at most 1 ulp |
//! | [`tanh`] | at most 1 ulp |
//! | [`expm1`] | at most 2 ulp (1 ulp on all but a few hundred inputs) |
//! | [`sigmoid`] | at most 2 ulp (1 ulp for `x >= 0`) |
//!
//! over the whole `f32` range, subnormal inputs and results included: the
//! bounds held on all 2^32 inputs when the functions were written, and the
//! tests check them against `f64` references on more than 10^7 inputs per
//! function (every 409th bit pattern, plus the overflow, underflow and
//! saturation edges). NaN in gives NaN out; infinities give the limits
//! (`exp(-inf) = 0`, `exp(inf) = inf`, `tanh(±inf) = ±1`,
//! `sigmoid(-inf) = 0`, `sigmoid(inf) = 1`, `expm1(-inf) = -1`).
//!
//! Only `*` and `+` are used, never `mul_add`: without FMA in the target
//! `mul_add` is a libm call, and with plain arithmetic a kernel gives
//! bit-identical results on the AVX-512, AVX2 and baseline builds.
//!
//! ```
//! use acbench_plugin_api::math;
//!
//! // In a kernel loop: compiled into the wide builds when the kernel's
//! // `forward` is `#[inline(always)]`.
//! let x = [-1.0f32, 0.0, 2.5];
//! let y: Vec<f32> = x.iter().map(|&v| v * math::sigmoid(v)).collect();
//! assert!((y[2] - 2.5 / (1.0 + (-2.5f32).exp())).abs() < 1e-6);
//!
//! // On a buffer, from anywhere: the slice functions pick the widest
//! // vectors the CPU has themselves.
//! let mut buf = vec![0.5f32; 1000];
//! math::tanh_slice(&mut buf);
//! assert!((buf[999] - 0.5f32.tanh()).abs() < 1e-6);
//! ```

/// `log2(e)`: `exp(x) = 2^(x log2 e)`.
const LOG2E: f32 = std::f32::consts::LOG2_E;

/// `ln 2` in two parts (Cody and Waite): `LN2_HI` has 9 significant bits,
/// so `n * LN2_HI` is exact for every `n` used here and `x - n ln 2` keeps
/// its accuracy near multiples of `ln 2`.
const LN2_HI: f32 = 0.693_359_4;
/// `ln 2 - LN2_HI`.
const LN2_LO: f32 = -2.121_944_4e-4;

/// `1.5 * 2^23`: adding it to a float of magnitude below `2^22` rounds that
/// to an integer, which then sits in the low mantissa bits of the sum.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// Largest input of `exp` that matters: above `88.73` the result is `inf`
/// anyway, and the clamp keeps the exponent arithmetic in range.
const EXP_HI: f32 = 89.0;
/// Smallest input of `exp` that matters: below `-103.98` the result rounds
/// to 0.
const EXP_LO: f32 = -104.0;
/// Below this `expm1` is `-1` in `f32` (`exp(-17.4) < 2^-25`), and the clamp
/// keeps `2^n` normal.
const EXPM1_LO: f32 = -30.0;

/// Cephes `expf` coefficients: `exp(r) ≈ 1 + r + r^2 P(r)` on `|r| <= ln2/2`.
const EXP_P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_6e-1,
    0.5,
];

/// Cephes `tanhf` coefficients: `tanh(x) ≈ x + x^3 Q(x^2)` on `|x| < 0.625`.
const TANH_Q: [f32; 5] = [
    -5.704_988_7e-3,
    2.063_908_8e-2,
    -5.373_971_5e-2,
    1.333_144_2e-1,
    -3.333_328e-1,
];

/// Below this `|x|` [`tanh`] uses its odd polynomial; above, `expm1`.
const TANH_SMALL: f32 = 0.625;
/// `tanh(x)` rounds to 1 from `|x| > 9.01`; clamping there keeps `expm1(2|x|)`
/// finite.
const TANH_HI: f32 = 10.0;

/// `x` limited to `[lo, hi]`, NaN kept (a comparison with NaN is false, so
/// neither select replaces it; `f32::clamp` would too, but `max`/`min` would
/// not).
#[inline(always)]
fn clamp_keep_nan(x: f32, lo: f32, hi: f32) -> f32 {
    let x = if x > hi { hi } else { x };
    if x < lo { lo } else { x }
}

/// `2^k` for `-126 <= k <= 127`, built from its exponent bits.
#[inline(always)]
fn pow2i(k: i32) -> f32 {
    // In range, k + 127 is in [1, 254]: a normal exponent field.
    f32::from_bits((k.wrapping_add(127) as u32) << 23)
}

/// Splits `x` (`|x| < 2^21`, or NaN) as `x = n ln 2 + r` with `n` the
/// nearest integer to `x / ln 2` and `|r| <= ln2/2` (a little more when the
/// rounding of `x log2 e` tips `n`; the polynomial still holds there).
#[inline(always)]
fn reduce(x: f32) -> (i32, f32) {
    let t = x * LOG2E + ROUND_MAGIC;
    // The integer's bits are the difference of the two floats' bits; no
    // float-to-int conversion, which vectorises poorly on old targets.
    let n = (t.to_bits() as i32).wrapping_sub(ROUND_MAGIC.to_bits() as i32);
    let nf = t - ROUND_MAGIC;
    (n, x - nf * LN2_HI - nf * LN2_LO)
}

/// `expm1(r)` for a reduced `r`, as `r + r^2 P(r)` so that small `r` keep
/// their full relative accuracy.
#[inline(always)]
fn expm1_reduced(r: f32) -> f32 {
    let [p0, p1, p2, p3, p4, p5] = EXP_P;
    let p = ((((p0 * r + p1) * r + p2) * r + p3) * r + p4) * r + p5;
    r + (r * r) * p
}

/// `e^x`, within 1 ulp of the correctly rounded result, subnormal results
/// (`x < -87.34`) included.
/// `exp(NaN) = NaN`, `exp(-inf) = 0`, `exp(inf) = inf`; overflows to `inf`
/// above `88.7228`, underflows to 0 below `-103.98`.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let (n, r) = reduce(clamp_keep_nan(x, EXP_LO, EXP_HI));
    let p = expm1_reduced(r) + 1.0;
    // n is in [-150, 128]: 2^n is applied in two normal halves, so that
    // results that overflow or are subnormal are rounded once, at the last
    // product, as a correctly rounded multiplication rounds them.
    let half = n >> 1;
    p * pow2i(half) * pow2i(n.wrapping_sub(half))
}

/// `e^x - 1` without the cancellation of `exp(x) - 1` near 0, within 2 ulp
/// of the correctly rounded result. `expm1(NaN) = NaN`, `expm1(±0) = ±0`,
/// `expm1(-inf) = -1`, `expm1(inf) = inf`.
#[inline(always)]
pub fn expm1(x: f32) -> f32 {
    let (n, r) = reduce(clamp_keep_nan(x, EXPM1_LO, EXP_HI));
    let em = expm1_reduced(r);
    // e^x - 1 = 2^n expm1(r) + (2^n - 1): exact products, one rounded sum,
    // and no cancellation for n != 0 (the two terms then have one sign or
    // 2^n - 1 dominates). 2^n is normal for n <= 127 (x < 88.37).
    let s = pow2i(if n > 127 { 127 } else { n });
    let near = s * em + (s - 1.0);
    // Far out the -1 is below half an ulp: e^x as in `exp`, which reaches
    // 2^128 (and overflow) without leaving the normal range.
    let half = n >> 1;
    let far = (em + 1.0) * pow2i(half) * pow2i(n.wrapping_sub(half));
    let y = if n > 64 { far } else { near };
    // `r + r^2 P(r)` turns -0 into +0; expm1(-0) is -0.
    if x == 0.0 { x } else { y }
}

/// `tanh(x)`, within 1 ulp of the correctly rounded result (odd: the sign
/// of the input, zeros included, is kept). `tanh(NaN) = NaN`,
/// `tanh(±inf) = ±1`; exactly `±1` from `|x| > 9.01`.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    // Near 0 the odd polynomial (its error is scaled by x^2 / 3 < 0.13)...
    let z = a * a;
    let [q0, q1, q2, q3, q4] = TANH_Q;
    let q = (((q0 * z + q1) * z + q2) * z + q3) * z + q4;
    let small = a + (a * z) * q;
    // ...elsewhere expm1(2a) / (expm1(2a) + 2), which has no cancellation
    // (unlike 1 - 2 / (e^2a + 1)).
    let (n, r) = reduce(2.0 * clamp_keep_nan(a, 0.0, TANH_HI));
    let s = pow2i(n);
    let u = s * expm1_reduced(r) + (s - 1.0);
    let large = u / (u + 2.0);
    let t = if a < TANH_SMALL { small } else { large };
    t.copysign(x)
}

/// The logistic function `1 / (1 + e^-x)`, within 2 ulp of the correctly
/// rounded result, subnormal results (`x < -87.3`) included.
/// `sigmoid(NaN) = NaN`, `sigmoid(-inf) = 0`, `sigmoid(inf) = 1`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    // e^-|x| is at most 1, so neither side overflows: for x < 0 the result
    // is e^x / (1 + e^x), which keeps the tiny values 1 / (1 + e^-x) would
    // lose once e^-x overflows.
    let e = exp(-x.abs());
    let num = if x >= 0.0 { 1.0 } else { e };
    num / (1.0 + e)
}

/// Defines an in-place slice function of one of the element functions that
/// picks the widest vectors the CPU has (AVX-512, else AVX2+FMA, else the
/// build's baseline), like the kernel shims do for kernels.
macro_rules! slice_fn {
    ($(#[$doc:meta])* $name:ident, $f:ident) => {
        $(#[$doc])*
        pub fn $name(xs: &mut [f32]) {
            #[inline(always)]
            fn each(xs: &mut [f32]) {
                for v in xs {
                    *v = $f(*v);
                }
            }
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512(xs: &mut [f32]) {
                    each(xs)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2(xs: &mut [f32]) {
                    each(xs)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F (checked just above).
                    return unsafe { avx512(xs) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has AVX2 and FMA (checked just above).
                    return unsafe { avx2(xs) };
                }
            }
            each(xs)
        }
    };
}

slice_fn!(
    /// Replaces every value `v` with [`exp`]`(v)`, vectorised for the CPU.
    exp_slice,
    exp
);
slice_fn!(
    /// Replaces every value `v` with [`expm1`]`(v)`, vectorised for the CPU.
    expm1_slice,
    expm1
);
slice_fn!(
    /// Replaces every value `v` with [`tanh`]`(v)`, vectorised for the CPU.
    tanh_slice,
    tanh
);
slice_fn!(
    /// Replaces every value `v` with [`sigmoid`]`(v)`, vectorised for the CPU.
    sigmoid_slice,
    sigmoid
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `STRIDE`-th bit pattern: 2^32 / 409 = 10.5 million inputs per
    /// function, both signs, every exponent, and (409 being odd) mantissas
    /// that differ in their low bits.
    const STRIDE: u32 = 409;

    /// Distance in ulps between two finite or infinite floats of any sign,
    /// counting representable values between them (`±0` are one value);
    /// NaN is infinitely far from anything but NaN.
    fn ulps(a: f32, b: f32) -> u64 {
        if a.is_nan() || b.is_nan() {
            return if a.is_nan() && b.is_nan() {
                0
            } else {
                u64::MAX
            };
        }
        // Bit patterns in the order of the values they stand for.
        let key = |v: f32| {
            let bits = i64::from(v.to_bits() & 0x7fff_ffff);
            if v.is_sign_negative() { -bits } else { bits }
        };
        key(a).abs_diff(key(b))
    }

    /// The worst input of one function against its reference.
    #[derive(Debug, Clone, Copy, Default)]
    struct Worst {
        ulps: u64,
        at: f32,
        got: f32,
        want: f32,
        points: u64,
    }

    impl Worst {
        fn see(&mut self, x: f32, got: f32, want: f32) {
            let d = ulps(got, want);
            self.points += 1;
            if d > self.ulps || self.points == 1 {
                *self = Worst {
                    ulps: d,
                    at: x,
                    got,
                    want,
                    points: self.points,
                };
            }
        }

        fn merge(self, other: Worst) -> Worst {
            let points = self.points + other.points;
            let worst = if other.ulps > self.ulps { other } else { self };
            Worst { points, ..worst }
        }
    }

    /// Compares `f` with `reference` (computed in f64, then rounded to f32
    /// once) on every `STRIDE`-th bit pattern and on `edges`, split over the
    /// available threads.
    fn sweep(f: fn(f32) -> f32, reference: fn(f64) -> f64, edges: &[f32]) -> Worst {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        let steps = (u64::from(u32::MAX) / u64::from(STRIDE)) + 1;
        let per = steps.div_ceil(threads);
        let mut worst = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    s.spawn(move || {
                        let mut w = Worst::default();
                        for step in (t * per)..((t + 1) * per).min(steps) {
                            let x = f32::from_bits((step * u64::from(STRIDE)) as u32);
                            w.see(x, f(x), reference(f64::from(x)) as f32);
                        }
                        w
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("sweep thread"))
                .fold(Worst::default(), Worst::merge)
        });
        for &x in edges {
            let mut w = Worst::default();
            w.see(x, f(x), reference(f64::from(x)) as f32);
            worst = worst.merge(w);
        }
        worst
    }

    /// `n` consecutive floats either side of `x`, and `x` itself.
    fn around(x: f32, n: u32) -> impl Iterator<Item = f32> {
        let bits = x.to_bits();
        (bits.saturating_sub(n)..=bits.saturating_add(n)).map(f32::from_bits)
    }

    /// Inputs every function must get right: zeros, subnormals, the
    /// extremes, infinities, NaNs and the given edges with their neighbours,
    /// all with both signs.
    fn edges(special: &[f32]) -> Vec<f32> {
        let mut xs = vec![
            0.0,
            f32::from_bits(1),
            f32::from_bits(0x007f_ffff),
            f32::MIN_POSITIVE,
            f32::EPSILON,
            0.5,
            1.0,
            f32::MAX,
            f32::INFINITY,
            f32::NAN,
        ];
        for &e in special {
            xs.extend(around(e, 1000));
        }
        let negated: Vec<f32> = xs.iter().map(|&v| -v).collect();
        xs.extend(negated);
        xs
    }

    fn sigmoid64(x: f64) -> f64 {
        // e^x / (1 + e^x) for x < 0 keeps the subnormal results.
        let e = (-x.abs()).exp();
        if x >= 0.0 {
            1.0 / (1.0 + e)
        } else {
            e / (1.0 + e)
        }
    }

    /// Runs the sweep and checks the bound (and that the sweep did run).
    fn check(name: &str, f: fn(f32) -> f32, reference: fn(f64) -> f64, special: &[f32], max: u64) {
        let w = sweep(f, reference, &edges(special));
        println!(
            "{name}: max {} ulp over {} inputs (at x = {:e}: {:e}, want {:e})",
            w.ulps, w.points, w.at, w.got, w.want
        );
        assert!(w.points > 10_000_000, "{name}: only {} inputs", w.points);
        assert!(w.ulps <= max, "{name}: {w:?}");
    }

    #[test]
    fn exp_is_within_1_ulp() {
        let special = [
            88.722_84,    // last finite result
            -87.336_55,   // results turn subnormal
            -103.972_08,  // last nonzero result
            -0.346_573_6, // ±ln2/2: the range reduction switches n
            0.346_573_6,
            1.0,
            10.0,
        ];
        check("exp", exp, f64::exp, &special, 1);
    }

    #[test]
    fn expm1_is_within_2_ulp() {
        let special = [
            88.722_84,
            -17.4,
            0.346_573_6,
            -0.346_573_6,
            1e-4,
            44.5,
            88.37,
        ];
        check("expm1", expm1, f64::exp_m1, &special, 2);
    }

    #[test]
    fn tanh_is_within_1_ulp() {
        let special = [TANH_SMALL, 9.01, 9.0, 1e-4, 0.01, 4.0];
        check("tanh", tanh, f64::tanh, &special, 1);
    }

    #[test]
    fn sigmoid_is_within_2_ulp() {
        let special = [87.336_55, 88.722_84, 103.972_08, 16.6, 17.33, 1e-4, 104.0];
        check("sigmoid", sigmoid, sigmoid64, &special, 2);
    }

    #[test]
    fn special_values_follow_the_limits() {
        let inf = f32::INFINITY;
        assert_eq!(exp(-inf), 0.0);
        assert_eq!(exp(inf), inf);
        assert_eq!(exp(88.73), inf, "overflow");
        assert_eq!(exp(-104.0), 0.0, "underflow");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(expm1(-inf), -1.0);
        assert_eq!(expm1(inf), inf);
        assert_eq!(tanh(inf), 1.0);
        assert_eq!(tanh(-inf), -1.0);
        assert_eq!(tanh(9.02), 1.0);
        assert_eq!(sigmoid(-inf), 0.0);
        assert_eq!(sigmoid(inf), 1.0);
        assert_eq!(sigmoid(0.0), 0.5);
        // Signed zeros: the odd functions keep the sign.
        for f in [expm1 as fn(f32) -> f32, tanh] {
            assert!(f(-0.0) == 0.0 && f(-0.0).is_sign_negative());
            assert!(f(0.0) == 0.0 && f(0.0).is_sign_positive());
        }
        let tiny = f32::from_bits(1);
        assert_eq!((tanh(tiny), tanh(-tiny)), (tiny, -tiny));
        assert_eq!(expm1(-tiny), -tiny);
        for f in [exp as fn(f32) -> f32, expm1, tanh, sigmoid] {
            for nan in [f32::NAN, -f32::NAN, f32::from_bits(0x7f80_0001)] {
                assert!(f(nan).is_nan());
            }
        }
    }

    #[test]
    fn slice_functions_match_the_element_functions() {
        // Lengths that leave a tail after every vector width.
        let xs: Vec<f32> = (0..1037).map(|i| (i as f32 - 518.0) * 0.173).collect();
        /// A slice function and the element function it applies.
        type Case = (fn(&mut [f32]), fn(f32) -> f32);
        let cases: [Case; 4] = [
            (exp_slice, exp),
            (expm1_slice, expm1),
            (tanh_slice, tanh),
            (sigmoid_slice, sigmoid),
        ];
        for (slice, element) in cases {
            let mut ys = xs.clone();
            slice(&mut ys);
            for (&x, &y) in xs.iter().zip(&ys) {
                // Bit-identical: no FMA contraction, the same operations on
                // every build.
                assert_eq!(y.to_bits(), element(x).to_bits(), "at {x}");
            }
        }
    }
}
