//! Checks for a kernel's unit tests: compare a [`FusedKernel`] with a
//! straightforward `f64` reference of its formula, and its backward with
//! central finite differences of its forward.
//!
//! `acbench plugins check` does the same against the formula itself once the
//! plugin is built; these let an author catch mistakes with `cargo test`.

use std::time::{Duration, Instant};

use crate::ParamScope;
use crate::abi::{ActivationDesc, Layout, ParamDesc, SCOPE_CHANNEL, STATUS_OK};
use crate::kernel::{FusedKernel, backward_shim, forward_shim, last_error_message, param_at};

/// Deterministic pseudo-random numbers (SplitMix64) for test inputs; written
/// here so that this crate stays free of dependencies.
#[derive(Debug, Clone)]
pub struct TestRng(u64);

impl TestRng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        // 24 random bits: exactly the precision of an f32 in [0, 1).
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * unit
    }

    /// `n` values uniform in `[lo, hi)`.
    pub fn fill(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// A reference's answer for one element: the value and its partial
/// derivatives with respect to `x` and to each parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Partials {
    /// `f(x; params)`.
    pub value: f64,
    /// `df/dx`.
    pub dx: f64,
    /// `df/dparams[i]`, one per parameter.
    pub dparams: Vec<f64>,
}

/// Largest errors found by a check, each relative to `1 + |expected|` (for
/// parameter totals: to `1 + sum of |terms|`, the scale of the sum).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Errors {
    /// Forward values.
    pub value: f64,
    /// Input gradient.
    pub grad_x: f64,
    /// Parameter gradients.
    pub grad_params: f64,
}

impl Errors {
    /// The largest of the three.
    pub fn max(&self) -> f64 {
        self.value.max(self.grad_x).max(self.grad_params)
    }
}

fn rel(got: f64, want: f64, scale: f64) -> f64 {
    if got.is_nan() != want.is_nan() {
        return f64::INFINITY;
    }
    if got == want || got.is_nan() {
        return 0.0;
    }
    (got - want).abs() / (1.0 + scale)
}

/// What [`run_kernel`] computed.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelRun {
    /// Forward values.
    pub out: Vec<f32>,
    /// Input gradient.
    pub grad_x: Vec<f32>,
    /// Parameter gradients, one buffer per parameter.
    pub grad_params: Vec<Vec<f32>>,
}

/// Runs `K`'s forward and backward, with parameter gradients zeroed first as
/// the host does.
pub fn run_kernel<K: FusedKernel>(
    layout: Layout,
    x: &[f32],
    params: &[&[f32]],
    grad_out: &[f32],
) -> Result<KernelRun, String> {
    let mut out = vec![0.0; x.len()];
    K::forward(layout, x, params, &mut out)?;
    let mut grad_x = vec![0.0; x.len()];
    let mut grads: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
    let mut views: Vec<&mut [f32]> = grads.iter_mut().map(Vec::as_mut_slice).collect();
    K::backward(layout, x, params, grad_out, &mut grad_x, &mut views)?;
    Ok(KernelRun {
        out,
        grad_x,
        grad_params: grads,
    })
}

/// Runs `K`'s forward and backward as the host does: through the C ABI
/// shims ([`forward_shim`], [`backward_shim`]), which pick the AVX-512 or
/// AVX2 build of an `#[inline(always)]` kernel where the CPU has it. Compare
/// with [`run_kernel`] (the build as compiled) to check that a kernel gives
/// the same results on every vector width.
pub fn run_shims<K: FusedKernel>(
    layout: Layout,
    x: &[f32],
    params: &[&[f32]],
    grad_out: &[f32],
) -> Result<KernelRun, String> {
    let n = layout.len();
    if x.len() != n || grad_out.len() != n || params.len() != K::SCOPES.len() {
        return Err(format!(
            "buffers of {} and {} values and {} parameters for a layout of {n} values and {} \
             parameters",
            x.len(),
            grad_out.len(),
            params.len(),
            K::SCOPES.len()
        ));
    }
    for (p, &scope) in params.iter().zip(K::SCOPES) {
        let want = match scope {
            ParamScope::Layer => 1,
            ParamScope::Channel => layout.channels,
        };
        if p.len() != want {
            return Err(format!("a {scope:?} parameter with {} values", p.len()));
        }
    }
    let status = |code: i32| {
        if code == STATUS_OK {
            Ok(())
        } else {
            Err(last_error_message())
        }
    };
    let ptrs: Vec<*const f32> = params.iter().map(|p| p.as_ptr()).collect();
    let mut out = vec![0.0; n];
    // SAFETY: every buffer holds what `layout` and `K::SCOPES` ask for
    // (checked above), and `out` is a separate allocation.
    status(unsafe { forward_shim::<K>(layout, x.as_ptr(), ptrs.as_ptr(), out.as_mut_ptr()) })?;
    let mut grad_x = vec![0.0; n];
    let mut grads: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
    let grad_ptrs: Vec<*mut f32> = grads.iter_mut().map(|g| g.as_mut_ptr()).collect();
    // SAFETY: as above; the gradient buffers are separate allocations.
    status(unsafe {
        backward_shim::<K>(
            layout,
            x.as_ptr(),
            ptrs.as_ptr(),
            grad_out.as_ptr(),
            grad_x.as_mut_ptr(),
            grad_ptrs.as_ptr(),
        )
    })?;
    Ok(KernelRun {
        out,
        grad_x,
        grad_params: grads,
    })
}

/// Compares `K` with `reference` (the formula's value and partials in `f64`)
/// on the given buffers: forward values, `grad_x = grad_out * df/dx`, and the
/// per-parameter totals `sum grad_out * df/dp` (per channel for per-channel
/// parameters).
pub fn check_against_reference<K: FusedKernel>(
    layout: Layout,
    x: &[f32],
    params: &[&[f32]],
    grad_out: &[f32],
    reference: impl Fn(f64, &[f64]) -> Partials,
) -> Result<Errors, String> {
    let KernelRun {
        out,
        grad_x,
        grad_params: grads,
    } = run_kernel::<K>(layout, x, params, grad_out)?;
    let mut want: Vec<Vec<f64>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
    let mut scale: Vec<Vec<f64>> = want.clone();
    let mut errors = Errors::default();
    let mut p64 = vec![0.0; params.len()];
    for (c, rows) in layout.rows() {
        for (v, p) in p64.iter_mut().zip(params) {
            *v = f64::from(param_at(p, c));
        }
        for k in rows {
            let r = reference(f64::from(x[k]), &p64);
            if r.dparams.len() != params.len() {
                return Err(format!(
                    "the reference gives {} parameter partials for {} parameters",
                    r.dparams.len(),
                    params.len()
                ));
            }
            let g = f64::from(grad_out[k]);
            errors.value = errors
                .value
                .max(rel(f64::from(out[k]), r.value, r.value.abs()));
            let gx = g * r.dx;
            errors.grad_x = errors.grad_x.max(rel(f64::from(grad_x[k]), gx, gx.abs()));
            for (i, d) in r.dparams.iter().enumerate() {
                let j = if params[i].len() == 1 { 0 } else { c };
                want[i][j] += g * d;
                scale[i][j] += (g * d).abs();
            }
        }
    }
    for i in 0..params.len() {
        for j in 0..params[i].len() {
            let e = rel(f64::from(grads[i][j]), want[i][j], scale[i][j]);
            errors.grad_params = errors.grad_params.max(e);
        }
    }
    Ok(errors)
}

/// `sum grad_out * f(x; params)` in `f64`: the loss whose gradient the
/// backward computes.
fn loss<K: FusedKernel>(
    layout: Layout,
    x: &[f32],
    params: &[&[f32]],
    grad_out: &[f32],
) -> Result<f64, String> {
    let mut out = vec![0.0; x.len()];
    K::forward(layout, x, params, &mut out)?;
    Ok(out
        .iter()
        .zip(grad_out)
        .map(|(&y, &g)| f64::from(y) * f64::from(g))
        .sum())
}

/// Central difference of `loss` in one coordinate, moved by `h` either way.
fn central(
    value: f32,
    h: f32,
    mut loss_at: impl FnMut(f32) -> Result<f64, String>,
) -> Result<f64, String> {
    let (up, down) = (value + h, value - h);
    // The step actually taken after rounding to f32.
    let step = f64::from(up) - f64::from(down);
    Ok((loss_at(up)? - loss_at(down)?) / step)
}

/// Compares `K`'s backward with central differences (step `h`) of `K`'s
/// forward, for every input element and every parameter value; returns the
/// largest error relative to `1 + |analytic|`. Inputs must stay at least `h`
/// away from the function's kinks, where no derivative exists.
pub fn check_finite_differences<K: FusedKernel>(
    layout: Layout,
    x: &[f32],
    params: &[&[f32]],
    grad_out: &[f32],
    h: f32,
) -> Result<f64, String> {
    let KernelRun {
        grad_x,
        grad_params: grads,
        ..
    } = run_kernel::<K>(layout, x, params, grad_out)?;
    let mut worst = 0.0f64;
    let mut xs = x.to_vec();
    for k in 0..x.len() {
        let numeric = central(x[k], h, |v| {
            xs[k] = v;
            loss::<K>(layout, &xs, params, grad_out)
        })?;
        xs[k] = x[k];
        worst = worst.max(rel(
            numeric,
            f64::from(grad_x[k]),
            f64::from(grad_x[k]).abs(),
        ));
    }
    let mut ps: Vec<Vec<f32>> = params.iter().map(|p| p.to_vec()).collect();
    for i in 0..params.len() {
        for j in 0..params[i].len() {
            let numeric = central(params[i][j], h, |v| {
                ps[i][j] = v;
                let views: Vec<&[f32]> = ps.iter().map(Vec::as_slice).collect();
                loss::<K>(layout, x, &views, grad_out)
            })?;
            ps[i][j] = params[i][j];
            let analytic = f64::from(grads[i][j]);
            worst = worst.max(rel(numeric, analytic, analytic.abs()));
        }
    }
    Ok(worst)
}

/// Checks that `K` gives bit for bit the same values and gradients through
/// the host's shims ([`run_shims`]: the AVX-512 or AVX2 build where the CPU
/// has one) as the build as compiled ([`run_kernel`]). Kernels that use the
/// [`math`](crate::math) functions (no FMA) and sum in a fixed order do.
pub fn check_same_on_every_width<K: FusedKernel>(
    layout: Layout,
    x: &[f32],
    params: &[&[f32]],
    grad_out: &[f32],
) -> Result<(), String> {
    let bits = |r: KernelRun| {
        let mut all = r.out;
        all.extend(r.grad_x);
        all.extend(r.grad_params.concat());
        all.into_iter().map(f32::to_bits).collect::<Vec<_>>()
    };
    let direct = bits(run_kernel::<K>(layout, x, params, grad_out)?);
    let shims = bits(run_shims::<K>(layout, x, params, grad_out)?);
    if direct == shims {
        Ok(())
    } else {
        Err("the wide (AVX-512/AVX2) build differs from the build as compiled".into())
    }
}

/// The buffer a plugin's kernel benchmark times: a batch of 32 feature maps
/// of 32 channels of 32x32, 2^20 values.
pub const BENCH_LAYOUT: Layout = Layout {
    outer: 32,
    channels: 32,
    inner: 1024,
};

/// A linked plugin's kernel benchmark (`benches/kernels.rs`): every
/// activation's fused kernels on [`BENCH_LAYOUT`], each parameter at its
/// initial value, the fastest of 30 calls, relative to the activation `base`
/// (see [`print_kernel_times`]).
pub fn bench_linked(plugin: &crate::linked::LinkedPlugin, base: &str) -> Result<(), String> {
    let table = plugin.table().ok_or_else(last_error_message)?;
    // SAFETY: a table built by `linked_plugin!` is as the ABI states.
    unsafe { print_kernel_times(table, base, BENCH_LAYOUT, 30) }
}

/// A kernel benchmark's report: times every exported activation of `table`
/// with [`time_exported`] and prints ns per value and each one's cost
/// (forward + backward) relative to the activation `base`.
///
/// # Safety
/// As [`time_exported`], for every descriptor of `table`: a table built by
/// [`export_plugin!`](crate::export_plugin) qualifies.
pub unsafe fn print_kernel_times(
    table: &crate::abi::PluginTable,
    base: &str,
    layout: Layout,
    repeats: usize,
) -> Result<(), String> {
    // SAFETY: the caller guarantees `activation_count` descriptors.
    let acts = unsafe { std::slice::from_raw_parts(table.activations, table.activation_count) };
    let mut times: Vec<(String, KernelTimes)> = Vec::new();
    for act in acts {
        // SAFETY: the table's names are NUL-terminated and live as long as it.
        let name = unsafe { std::ffi::CStr::from_ptr(act.name) }.to_string_lossy();
        // SAFETY: guaranteed by the caller.
        if let Some(t) = unsafe { time_exported(act, layout, repeats) }? {
            times.push((name.into_owned(), t));
        }
    }
    let both = |t: &KernelTimes| (t.forward + t.backward).as_secs_f64();
    let base_time = times
        .iter()
        .find(|(name, _)| name == base)
        .map(|(_, t)| both(t))
        .ok_or_else(|| format!("no kernels for {base}"))?;
    let per = |d: Duration| d.as_secs_f64() * 1e9 / layout.len() as f64;
    println!("{} values, fastest of {repeats} calls", layout.len());
    println!("activation  forward ns/value  backward ns/value  both vs {base}");
    for (name, t) in &times {
        println!(
            "{name:<10}  {:>16.3}  {:>17.3}  {:>8.2}",
            per(t.forward),
            per(t.backward),
            both(t) / base_time
        );
    }
    Ok(())
}

/// How long an activation's kernels take on one buffer: the fastest of
/// several calls each (the slower ones met interrupts or cold caches).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelTimes {
    /// One forward call.
    pub forward: Duration,
    /// One backward call.
    pub backward: Duration,
}

/// Times the fused kernels of one exported activation as the host calls them
/// (through its table's C functions, so in the AVX-512 or AVX2 build where
/// the CPU has one), on `layout` with inputs uniform in `[-4, 4)` and every
/// parameter at its initial value: the fastest of `repeats` calls of each.
/// `None` when the activation has no kernels. For a plugin's benchmarks:
/// compare an activation with `relu` of the shipped baselines.
///
/// # Safety
/// `desc` must be as the [`abi`](crate::abi) states: `params` points to
/// `param_count` valid descriptors and the kernels honour their contracts.
/// Every descriptor of a table built by
/// [`export_plugin!`](crate::export_plugin) is.
pub unsafe fn time_exported(
    desc: &ActivationDesc,
    layout: Layout,
    repeats: usize,
) -> Result<Option<KernelTimes>, String> {
    let (Some(forward), Some(backward)) = (desc.forward, desc.backward) else {
        return Ok(None);
    };
    let params: &[ParamDesc] = if desc.param_count == 0 {
        &[]
    } else {
        // SAFETY: the caller guarantees `param_count` descriptors.
        unsafe { std::slice::from_raw_parts(desc.params, desc.param_count) }
    };
    let values: Vec<Vec<f32>> = params
        .iter()
        .map(|p| {
            let n = if p.scope == SCOPE_CHANNEL {
                layout.channels
            } else {
                1
            };
            vec![p.init as f32; n]
        })
        .collect();
    let ptrs: Vec<*const f32> = values.iter().map(|v| v.as_ptr()).collect();
    let mut rng = TestRng::new(0);
    let n = layout.len();
    let (x, grad_out) = (rng.fill(n, -4.0, 4.0), rng.fill(n, -1.0, 1.0));
    let (mut out, mut grad_x) = (vec![0.0f32; n], vec![0.0f32; n]);
    let mut grads: Vec<Vec<f32>> = values.iter().map(|v| vec![0.0; v.len()]).collect();
    let grad_ptrs: Vec<*mut f32> = grads.iter_mut().map(|g| g.as_mut_ptr()).collect();
    let fastest = |call: &mut dyn FnMut() -> i32| -> Result<Duration, String> {
        let mut best = Duration::MAX;
        for _ in 0..repeats.max(1) {
            let start = Instant::now();
            let status = call();
            best = best.min(start.elapsed());
            if status != STATUS_OK {
                return Err(format!("kernel status {status}"));
            }
        }
        Ok(best)
    };
    Ok(Some(KernelTimes {
        // SAFETY: every buffer is sized for `layout` and the parameters'
        // scopes; outputs are separate allocations.
        forward: fastest(&mut || unsafe {
            forward(layout, x.as_ptr(), ptrs.as_ptr(), out.as_mut_ptr())
        })?,
        // SAFETY: as above.
        backward: fastest(&mut || unsafe {
            backward(
                layout,
                x.as_ptr(),
                ptrs.as_ptr(),
                grad_out.as_ptr(),
                grad_x.as_mut_ptr(),
                grad_ptrs.as_ptr(),
            )
        })?,
    }))
}
