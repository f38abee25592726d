//! Times `acbench_plugin_api::math` against libm (`f32::exp`, `f32::tanh`,
//! `f32::exp_m1` and `1 / (1 + exp(-x))`) on one million values, for each
//! vector width the CPU offers: the baseline build, and the AVX2+FMA and
//! AVX-512 builds that the kernel shims pick at run time. Prints ns per
//! value and how many times faster `math` is.
//!
//! `cargo bench -p acbench-plugin-api --bench math`

use std::hint::black_box;
use std::time::{Duration, Instant};

use acbench_plugin_api::math;
use acbench_plugin_api::testing::TestRng;

/// Values per pass.
const N: usize = 1 << 20;
/// Passes per measurement; the fastest counts (the others met interrupts).
const REPEATS: usize = 15;

/// One function of one implementation.
trait Func {
    const NAME: &'static str;
    fn f(x: f32) -> f32;
}

macro_rules! func {
    ($ty:ident, $name:literal, |$x:ident| $body:expr) => {
        struct $ty;
        impl Func for $ty {
            const NAME: &'static str = $name;
            #[inline(always)]
            fn f($x: f32) -> f32 {
                $body
            }
        }
    };
}

func!(LibmExp, "exp", |x| x.exp());
func!(MathExp, "exp", |x| math::exp(x));
func!(LibmExpm1, "expm1", |x| x.exp_m1());
func!(MathExpm1, "expm1", |x| math::expm1(x));
func!(LibmTanh, "tanh", |x| x.tanh());
func!(MathTanh, "tanh", |x| math::tanh(x));
func!(LibmSigmoid, "sigmoid", |x| 1.0 / (1.0 + (-x).exp()));
func!(MathSigmoid, "sigmoid", |x| math::sigmoid(x));

/// `out[k] = F(x[k])`: inlined into each width's function below.
#[inline(always)]
fn map<F: Func>(x: &[f32], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = F::f(v);
    }
}

/// The loop as built (baseline x86-64: SSE2).
fn baseline<F: Func>(x: &[f32], out: &mut [f32]) {
    map::<F>(x, out);
}

/// The loop built for AVX2+FMA, as the kernel shims build kernels.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2<F: Func>(x: &[f32], out: &mut [f32]) {
    map::<F>(x, out);
}

/// The loop built for AVX-512.
///
/// # Safety
/// The CPU must have AVX-512F, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn avx512<F: Func>(x: &[f32], out: &mut [f32]) {
    map::<F>(x, out);
}

/// A vector width: its name and whether this CPU has it.
#[derive(Clone, Copy, PartialEq)]
enum Width {
    Baseline,
    Avx2,
    Avx512,
}

impl Width {
    fn name(self) -> &'static str {
        match self {
            Width::Baseline => "baseline (SSE2)",
            Width::Avx2 => "AVX2+FMA",
            Width::Avx512 => "AVX-512",
        }
    }

    fn available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Width::Baseline => true,
                Width::Avx2 => {
                    std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                }
                Width::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Width::Baseline
        }
    }

    /// Runs `F` over `x` with this width's build.
    fn run<F: Func>(self, x: &[f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        match self {
            // SAFETY: `available()` was checked before any run.
            Width::Avx2 => return unsafe { avx2::<F>(x, out) },
            // SAFETY: as above.
            Width::Avx512 => return unsafe { avx512::<F>(x, out) },
            Width::Baseline => {}
        }
        baseline::<F>(x, out);
    }
}

/// The fastest of [`REPEATS`] passes of `F` over `x`.
fn time<F: Func>(width: Width, x: &[f32], out: &mut [f32]) -> Duration {
    (0..REPEATS)
        .map(|_| {
            let start = Instant::now();
            width.run::<F>(black_box(x), out);
            black_box(&mut *out);
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// Times libm's `L` and `math`'s `M` side by side and prints one line.
fn compare<L: Func, M: Func>(width: Width, x: &[f32], out: &mut [f32]) {
    let (libm, ours) = (time::<L>(width, x, out), time::<M>(width, x, out));
    let per = |d: Duration| d.as_secs_f64() * 1e9 / x.len() as f64;
    println!(
        "{:<16} {:<8} libm {:6.2} ns   math {:6.2} ns   x{:5.1}",
        width.name(),
        M::NAME,
        per(libm),
        per(ours),
        libm.as_secs_f64() / ours.as_secs_f64(),
    );
}

fn main() {
    // Activations' inputs: mostly moderate, some saturating.
    let x = TestRng::new(1).fill(N, -12.0, 12.0);
    let mut out = vec![0.0f32; N];
    println!("{N} values in [-12, 12), fastest of {REPEATS} passes, ns per value");
    for width in [Width::Baseline, Width::Avx2, Width::Avx512] {
        if !width.available() {
            println!("{:<16} not available on this CPU", width.name());
            continue;
        }
        compare::<LibmExp, MathExp>(width, &x, &mut out);
        compare::<LibmExpm1, MathExpm1>(width, &x, &mut out);
        compare::<LibmTanh, MathTanh>(width, &x, &mut out);
        compare::<LibmSigmoid, MathSigmoid>(width, &x, &mut out);
    }
}
