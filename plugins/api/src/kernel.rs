//! Fused CPU kernels in safe Rust, and the `extern "C"` shims that expose
//! them through the [`abi`](crate::abi).
//!
//! An author implements [`FusedKernel`] on a unit struct; the shims
//! ([`forward_shim`], [`backward_shim`]) check and turn the raw pointers the
//! host passes into slices, catch panics, and keep the message of the last
//! failure for [`last_error`]. Kernels never see a raw pointer.

use std::cell::RefCell;
use std::ffi::c_char;
use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};

use crate::ParamScope;
use crate::abi::{Layout, STATUS_ERROR, STATUS_OK, STATUS_PANIC};

/// Forward and backward of one activation over contiguous `f32` buffers.
///
/// Both functions must compute exactly the function the activation's formula
/// states, including its tie rules (`max(u, v)` gives the whole gradient to
/// `u` when `u >= v`, `min(u, v)` to `u` when `u <= v`, `where` takes the first
/// branch when its condition holds, `relu'(0) = 1` as in candle); `acbench
/// plugins check` compares them with the formula.
///
/// `params[i]` holds the values of parameter `i` of the definition: one value
/// for a [`ParamScope::Layer`] parameter, `layout.channels` values for a
/// [`ParamScope::Channel`] one ([`param_at`] reads either). Kernels run on one
/// thread; the host may call them on chunks of the batch from several threads
/// at once, so they must not keep state between calls.
pub trait FusedKernel: 'static {
    /// The scope of each parameter, in the order of the definition's
    /// parameters. The shims size the parameter slices from it, and the
    /// exported table is refused when it disagrees with the definition.
    const SCOPES: &'static [ParamScope];

    /// `out[k] = f(x[k]; params)` for every element.
    fn forward(layout: Layout, x: &[f32], params: &[&[f32]], out: &mut [f32])
    -> Result<(), String>;

    /// Given `grad_out = dL/d out`, writes `grad_x = dL/dx` and *adds* to
    /// `grad_params[i]` the total gradient of parameter `i` over the buffer
    /// (the host zeroes them before the call; [`ParamGrad`] does the adding).
    /// Gradients of fixed parameters may be computed or left alone: the host
    /// ignores them.
    fn backward(
        layout: Layout,
        x: &[f32],
        params: &[&[f32]],
        grad_out: &[f32],
        grad_x: &mut [f32],
        grad_params: &mut [&mut [f32]],
    ) -> Result<(), String>;
}

/// The value of a parameter for channel `c`: per-layer parameters hold one
/// value, per-channel ones `layout.channels` values. Reading through this lets
/// one kernel serve either scope.
#[inline]
pub fn param_at(values: &[f32], c: usize) -> f32 {
    if values.len() == 1 {
        values[0]
    } else {
        values[c]
    }
}

/// The rows of a buffer: every `(o, c)` pair in memory order, as the channel
/// `c` and the index range of its `layout.inner` contiguous elements.
#[derive(Debug, Clone)]
pub struct Rows {
    channels: usize,
    inner: usize,
    next: usize,
    end: usize,
}

impl Iterator for Rows {
    type Item = (usize, Range<usize>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let row = self.next;
        self.next += 1;
        let start = row * self.inner;
        Some((row % self.channels, start..start + self.inner))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.next;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Rows {}

impl Layout {
    /// Iterates over the rows `(o, c)` of the buffer (see [`Rows`]), so a
    /// kernel reads each channel's parameters once per row.
    pub fn rows(&self) -> Rows {
        let end = if self.channels == 0 || self.inner == 0 {
            0
        } else {
            self.outer * self.channels
        };
        Rows {
            channels: self.channels.max(1),
            inner: self.inner,
            next: 0,
            end,
        }
    }
}

/// Lanes of [`backward_row`]: independent partial sums the compiler can keep
/// in vector registers.
pub(crate) const LANES: usize = 16;

/// `term` on the elements of `x` and `grad_out` (at most [`LANES`]), padded
/// with zeros to a whole block: the loop then has a fixed length and is
/// vectorised like a kernel's main loop, where a loop over a few elements
/// would run one element at a time. Returns each element's `grad_x` and its
/// terms, parameter by parameter; the padding's are to be ignored.
#[inline(always)]
fn block_terms<const N: usize>(
    x: &[f32],
    grad_out: &[f32],
    term: &impl Fn(f32, f32) -> (f32, [f32; N]),
) -> ([f32; LANES], [[f32; LANES]; N]) {
    let (mut xs, mut gs) = ([0.0f32; LANES], [0.0f32; LANES]);
    xs[..x.len()].copy_from_slice(x);
    gs[..grad_out.len()].copy_from_slice(grad_out);
    let mut dx = [0.0f32; LANES];
    let mut terms = [[0.0f32; LANES]; N];
    for l in 0..LANES {
        let (d, ts) = term(xs[l], gs[l]);
        dx[l] = d;
        for (lane, t) in terms.iter_mut().zip(ts) {
            lane[l] = t;
        }
    }
    (dx, terms)
}

/// The backward pass over one row, with the parameter-gradient sums done
/// fast and accurately: for every element, `term(x, grad_out)` returns
/// `grad_x` and the element's `N` parameter-gradient terms; the terms are
/// summed in sixteen `f32` lanes per row and the `N` row totals returned in
/// `f64` (the host adds rows up in `f64`). Lane `l` sums the elements
/// `l, l + 16, ...` of the whole blocks of sixteen in order, then lane 0
/// the rest of the row in order; the totals add the lanes up in order.
///
/// A plain `sum += term` loop cannot be vectorised (float addition is not
/// associative, so the compiler must keep the order); independent lanes
/// let it. Each lane sums a sixteenth of one row, so its rounding error
/// stays far below that of a single f32 accumulator over the row (which is
/// what the formula path's sum amounts to); f64 lanes were twice as slow
/// end to end for AReLU.
#[inline(always)]
pub fn backward_row<const N: usize>(
    x: &[f32],
    grad_out: &[f32],
    grad_x: &mut [f32],
    term: impl Fn(f32, f32) -> (f32, [f32; N]),
) -> [f64; N] {
    let mut lanes = [[0.0f32; LANES]; N];
    let mut xc = x.chunks_exact(LANES);
    let mut gc = grad_out.chunks_exact(LANES);
    let mut dc = grad_x.chunks_exact_mut(LANES);
    for ((xv, gv), dv) in (&mut xc).zip(&mut gc).zip(&mut dc) {
        for l in 0..LANES {
            let (d, terms) = term(xv[l], gv[l]);
            dv[l] = d;
            for (lane, t) in lanes.iter_mut().zip(terms) {
                lane[l] += t;
            }
        }
    }
    let tail = xc.remainder().iter().zip(gc.remainder());
    for ((&xi, &g), d) in tail.zip(dc.into_remainder()) {
        let (dx, terms) = term(xi, g);
        *d = dx;
        for (lane, t) in lanes.iter_mut().zip(terms) {
            lane[0] += t;
        }
    }
    lanes.map(|lane| lane.iter().map(|&v| f64::from(v)).sum())
}

/// [`backward_row`] over every row of a buffer whose rows (of `inner`
/// elements) are shorter than its sixteen lanes, all with the same `term`;
/// `row_totals(row, totals)` receives each row's totals in order.
///
/// A short row has only whole-row-in-lane-0 sums, so the totals are
/// exactly [`backward_row`]'s, but the terms are computed sixteen elements
/// at a time across rows: row by row, a dense layer (rows of one element)
/// would pay a whole row's set-up and lane sums per element.
///
/// # Panics
/// If `inner` is 0 or at least sixteen, or the buffers' lengths differ.
#[inline(always)]
pub(crate) fn backward_short_rows<const N: usize>(
    inner: usize,
    x: &[f32],
    grad_out: &[f32],
    grad_x: &mut [f32],
    term: impl Fn(f32, f32) -> (f32, [f32; N]),
    mut row_totals: impl FnMut(usize, [f64; N]),
) {
    assert!(
        (1..LANES).contains(&inner),
        "rows of {inner} elements are not short"
    );
    assert!(x.len() == grad_out.len() && x.len() == grad_x.len());
    let mut sums = [0.0f32; N];
    let (mut row, mut filled) = (0, 0);
    let blocks = x.chunks(LANES).zip(grad_out.chunks(LANES));
    for ((xv, gv), dv) in blocks.zip(grad_x.chunks_mut(LANES)) {
        let (dx, terms) = block_terms(xv, gv, &term);
        dv.copy_from_slice(&dx[..dv.len()]);
        for l in 0..dv.len() {
            for (sum, ts) in sums.iter_mut().zip(&terms) {
                *sum += ts[l];
            }
            filled += 1;
            if filled == inner {
                // What `backward_row` gives for lanes that are all zero
                // but the first: `+ 0.0` turns -0 into +0, as adding the
                // empty lanes does.
                let mut totals = [0.0; N];
                for (total, sum) in totals.iter_mut().zip(&mut sums) {
                    *total = f64::from(*sum) + 0.0;
                    *sum = 0.0;
                }
                row_totals(row, totals);
                filled = 0;
                row += 1;
            }
        }
    }
}

/// Accumulates the gradient of one parameter and adds it to the host's buffer
/// when dropped.
///
/// A per-layer parameter's total is kept in `f64` over the whole call and
/// written once, so summing millions of `f32` terms loses no precision; a
/// per-channel parameter's row totals go to their channel's entry. Adding on
/// drop (rather than through a `finish` call) means no early return can lose
/// a gradient.
#[derive(Debug)]
pub struct ParamGrad<'a> {
    out: &'a mut [f32],
    total: f64,
}

impl<'a> ParamGrad<'a> {
    /// Accumulates into `out` (1 or `layout.channels` values).
    pub fn new(out: &'a mut [f32]) -> Self {
        Self { out, total: 0.0 }
    }

    /// Adds the gradient total of one row of channel `c`.
    #[inline]
    pub fn add(&mut self, c: usize, row_total: f64) {
        if self.out.len() == 1 {
            self.total += row_total;
        } else {
            self.out[c] += row_total as f32;
        }
    }
}

impl Drop for ParamGrad<'_> {
    fn drop(&mut self) {
        if let [only] = self.out {
            *only += self.total as f32;
        }
    }
}

thread_local! {
    /// The message of the last failed kernel call on this thread, served by
    /// [`last_error`]. Per thread because the host calls kernels from several
    /// threads and reads the message on the thread that saw the failure.
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Records `message` as this thread's last error.
pub(crate) fn set_last_error(message: String) {
    // During thread teardown the slot may be gone; the status code still
    // reports the failure.
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = message);
}

/// This thread's last error message (empty when none), for tests and hosts
/// that link a plugin in-process.
pub fn last_error_message() -> String {
    LAST_ERROR
        .try_with(|e| e.borrow().clone())
        .unwrap_or_default()
}

/// [`PluginTable::last_error`](crate::abi::PluginTable::last_error): copies
/// this thread's last error message into `buf` (at most `cap` bytes with the
/// NUL, cut at a character boundary) and returns the message's full length.
///
/// # Safety
/// `buf` must be null or valid for writing `cap` bytes.
pub unsafe extern "C" fn last_error(buf: *mut c_char, cap: usize) -> usize {
    let message = last_error_message();
    if !buf.is_null() && cap > 0 {
        let mut n = message.len().min(cap - 1);
        while !message.is_char_boundary(n) {
            n -= 1;
        }
        // SAFETY: the caller guarantees `buf` holds `cap` bytes and n < cap;
        // a String's bytes cannot overlap a buffer the host owns.
        unsafe {
            std::ptr::copy_nonoverlapping(message.as_ptr(), buf.cast::<u8>(), n);
            *buf.add(n) = 0;
        }
    }
    message.len()
}

/// The text of a panic payload (`panic!` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Runs a kernel call: `Ok` → [`STATUS_OK`], `Err` → [`STATUS_ERROR`],
/// panic → [`STATUS_PANIC`], the message of either failure kept for
/// [`last_error`].
pub(crate) fn guarded(kernel: &str, call: impl FnOnce() -> Result<(), String>) -> i32 {
    // Unwind safety: after a panic the host discards every output buffer of
    // the call, and the kernel holds no state, so nothing half-written is
    // observed.
    match panic::catch_unwind(AssertUnwindSafe(call)) {
        Ok(Ok(())) => STATUS_OK,
        Ok(Err(message)) => {
            set_last_error(message);
            STATUS_ERROR
        }
        Err(payload) => {
            set_last_error(format!(
                "kernel `{kernel}` panicked: {}",
                panic_message(payload.as_ref())
            ));
            STATUS_PANIC
        }
    }
}

/// Number of elements of `layout`, or an error if it overflows.
fn element_count(layout: Layout) -> Result<usize, String> {
    layout
        .outer
        .checked_mul(layout.channels)
        .and_then(|n| n.checked_mul(layout.inner))
        .ok_or_else(|| format!("layout {layout:?} has more elements than memory can hold"))
}

/// A slice over `len` values at `ptr`; a null pointer is allowed only for an
/// empty buffer.
///
/// # Safety
/// A non-null `ptr` must be valid for reading `len` values for `'a`.
unsafe fn slice<'a>(ptr: *const f32, len: usize, what: &str) -> Result<&'a [f32], String> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(format!("null pointer for {what} ({len} values)"));
    }
    // SAFETY: non-null, and the caller guarantees `len` readable values.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// The mutable counterpart of [`slice`].
///
/// # Safety
/// A non-null `ptr` must be valid for writing `len` values for `'a`, and not
/// aliased by any other slice alive at the same time.
unsafe fn slice_mut<'a>(ptr: *mut f32, len: usize, what: &str) -> Result<&'a mut [f32], String> {
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(format!("null pointer for {what} ({len} values)"));
    }
    // SAFETY: non-null, and the caller guarantees `len` exclusive values.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// Values each parameter slice holds for `layout`.
fn scope_len(scope: ParamScope, layout: Layout) -> usize {
    match scope {
        ParamScope::Layer => 1,
        ParamScope::Channel => layout.channels,
    }
}

/// The parameter slices the host passed, sized from `K::SCOPES`.
///
/// # Safety
/// `params` must be null (only without parameters) or point to
/// `K::SCOPES.len()` pointers, each valid per [`scope_len`].
unsafe fn param_slices<'a, K: FusedKernel>(
    layout: Layout,
    params: *const *const f32,
) -> Result<Vec<&'a [f32]>, String> {
    let n = K::SCOPES.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    if params.is_null() {
        return Err(format!("null parameter array ({n} parameters expected)"));
    }
    K::SCOPES
        .iter()
        .enumerate()
        .map(|(i, &scope)| {
            // SAFETY: the caller guarantees `n` pointers at `params`.
            let p = unsafe { *params.add(i) };
            // SAFETY: the caller guarantees each parameter's values.
            unsafe { slice(p, scope_len(scope, layout), "a parameter") }
        })
        .collect()
}

/// The [`ForwardFn`](crate::abi::ForwardFn) of kernel `K`.
///
/// # Safety
/// The pointers must satisfy the contract of [`ForwardFn`](crate::abi::ForwardFn):
/// `x` and `out` hold `layout.len()` values and do not overlap; `params`
/// points to one pointer per parameter of `K::SCOPES`, each to 1 or
/// `layout.channels` values.
pub unsafe extern "C" fn forward_shim<K: FusedKernel>(
    layout: Layout,
    x: *const f32,
    params: *const *const f32,
    out: *mut f32,
) -> i32 {
    guarded(std::any::type_name::<K>(), || {
        let n = element_count(layout)?;
        // SAFETY: the buffers are as the ABI contract states (see above).
        let (x, params, out) = unsafe {
            (
                slice(x, n, "x")?,
                param_slices::<K>(layout, params)?,
                slice_mut(out, n, "out")?,
            )
        };
        wide::forward::<K>(layout, x, &params, out)
    })
}

/// The kernels compiled again for wider vectors, picked at run time.
///
/// Plugins are built for the baseline x86-64 target (SSE2, 4 lanes). These
/// functions enable AVX-512 or AVX2+FMA and call the kernel, so a kernel
/// whose `forward`/`backward` is `#[inline(always)]` (the shipped ones are)
/// is compiled inside them with 16- or 8-wide vectors; any other kernel
/// runs as built. Results do not depend on the choice beyond f32 rounding
/// of reordered sums.
mod wide {
    use super::FusedKernel;
    use crate::abi::Layout;

    type Out = Result<(), String>;

    /// Defines `$name::<K>(args)`, which calls `K::$method(args)` compiled
    /// for AVX-512, else for AVX2+FMA, else as built.
    macro_rules! dispatch {
        ($name:ident, $method:ident, ($($arg:ident: $ty:ty),*)) => {
            #[inline(always)]
            pub(super) fn $name<K: FusedKernel>($($arg: $ty),*) -> Out {
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx512f,avx2,fma")]
                    unsafe fn avx512<K: FusedKernel>($($arg: $ty),*) -> Out {
                        K::$method($($arg),*)
                    }
                    #[target_feature(enable = "avx2,fma")]
                    unsafe fn avx2<K: FusedKernel>($($arg: $ty),*) -> Out {
                        K::$method($($arg),*)
                    }
                    if std::arch::is_x86_feature_detected!("avx512f") {
                        // SAFETY: the CPU has AVX-512F (checked just above).
                        return unsafe { avx512::<K>($($arg),*) };
                    }
                    if std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                    {
                        // SAFETY: the CPU has AVX2 and FMA (checked just above).
                        return unsafe { avx2::<K>($($arg),*) };
                    }
                }
                K::$method($($arg),*)
            }
        };
    }

    dispatch!(forward, forward, (l: Layout, x: &[f32], p: &[&[f32]], out: &mut [f32]));
    dispatch!(
        backward,
        backward,
        (
            l: Layout,
            x: &[f32],
            p: &[&[f32]],
            g: &[f32],
            gx: &mut [f32],
            gp: &mut [&mut [f32]]
        )
    );
}

/// The [`BackwardFn`](crate::abi::BackwardFn) of kernel `K`.
///
/// # Safety
/// The pointers must satisfy the contract of [`BackwardFn`](crate::abi::BackwardFn):
/// `x`, `grad_out` and `grad_x` hold `layout.len()` values; `params` and
/// `grad_params` each point to one pointer per parameter of `K::SCOPES`,
/// each to 1 or `layout.channels` values; the written buffers (`grad_x` and
/// every `grad_params[i]`) overlap nothing else.
pub unsafe extern "C" fn backward_shim<K: FusedKernel>(
    layout: Layout,
    x: *const f32,
    params: *const *const f32,
    grad_out: *const f32,
    grad_x: *mut f32,
    grad_params: *const *mut f32,
) -> i32 {
    guarded(std::any::type_name::<K>(), || {
        let n = element_count(layout)?;
        // SAFETY: the buffers are as the ABI contract states (see above).
        let (x, params, grad_out, grad_x) = unsafe {
            (
                slice(x, n, "x")?,
                param_slices::<K>(layout, params)?,
                slice(grad_out, n, "grad_out")?,
                slice_mut(grad_x, n, "grad_x")?,
            )
        };
        let count = K::SCOPES.len();
        if count > 0 && grad_params.is_null() {
            return Err(format!(
                "null parameter-gradient array ({count} parameters expected)"
            ));
        }
        let mut grads = K::SCOPES
            .iter()
            .enumerate()
            .map(|(i, &scope)| {
                // SAFETY: `count` pointers at `grad_params`, each to
                // exclusive values, per the ABI contract.
                unsafe {
                    slice_mut(
                        *grad_params.add(i),
                        scope_len(scope, layout),
                        "a parameter gradient",
                    )
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        wide::backward::<K>(layout, x, &params, grad_out, grad_x, &mut grads)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_memory_order() {
        let layout = Layout {
            outer: 2,
            channels: 3,
            inner: 2,
        };
        let rows: Vec<_> = layout.rows().collect();
        assert_eq!(rows.len(), 6);
        assert_eq!(rows[0], (0, 0..2));
        assert_eq!(rows[4], (1, 8..10));
        assert_eq!(rows[5], (2, 10..12));
        let empty = Layout {
            outer: 3,
            channels: 0,
            inner: 4,
        };
        assert_eq!(empty.rows().count(), 0);
    }

    /// Short rows computed across rows give every row, bit for bit, the
    /// totals and `grad_x` that `backward_row` gives it alone.
    #[test]
    fn short_rows_sum_as_backward_row_does() {
        let term = |x: f32, g: f32| (g * x, [g * x * x, -g, g * 0.0]);
        let mut seed = 7u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1 << 24) as f32 * 6.0 - 3.0
        };
        for inner in 1..LANES {
            let n = inner * 23;
            let x: Vec<f32> = (0..n).map(|_| next()).collect();
            let mut g: Vec<f32> = (0..n).map(|_| next()).collect();
            g[..inner].fill(-0.0);
            let mut want_dx = vec![0.0f32; n];
            let want: Vec<[u64; 3]> = (0..n / inner)
                .map(|row| {
                    let r = row * inner..(row + 1) * inner;
                    let totals = backward_row(&x[r.clone()], &g[r.clone()], &mut want_dx[r], term);
                    totals.map(f64::to_bits)
                })
                .collect();
            let mut got_dx = vec![0.0f32; n];
            let mut got = Vec::new();
            backward_short_rows(inner, &x, &g, &mut got_dx, term, |row, totals| {
                assert_eq!(row, got.len(), "rows in order");
                got.push(totals.map(f64::to_bits));
            });
            assert_eq!(got, want, "totals of rows of {inner}");
            let bits = |v: &[f32]| v.iter().map(|d| d.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got_dx), bits(&want_dx), "grad_x of rows of {inner}");
        }
    }

    #[test]
    fn param_grads_sum_per_layer_once_and_per_channel_in_place() {
        let mut layer = [1.0f32];
        let mut channel = [0.0f32, 10.0];
        {
            let (mut l, mut c) = (ParamGrad::new(&mut layer), ParamGrad::new(&mut channel));
            for (ch, v) in [(0, 0.5), (1, 0.25), (0, 1e-9), (1, 0.75)] {
                l.add(ch, v);
                c.add(ch, v);
            }
        }
        assert_eq!(layer, [1.0 + (0.5 + 0.25 + 1e-9 + 0.75) as f32]);
        assert_eq!(channel, [0.5 + 1e-9_f64 as f32, 11.0]);
    }

    #[test]
    fn last_error_truncates_at_a_character_boundary() {
        set_last_error("né".into()); // 'é' is two bytes
        let mut buf = [0x7f as c_char; 3];
        // SAFETY: the buffer holds 3 bytes.
        let len = unsafe { last_error(buf.as_mut_ptr(), buf.len()) };
        assert_eq!(len, 3);
        assert_eq!(
            buf,
            [b'n' as c_char, 0, 0x7f],
            "'é' does not fit with the NUL"
        );
        // SAFETY: a null buffer only asks for the length.
        assert_eq!(unsafe { last_error(std::ptr::null_mut(), 0) }, 3);
    }
}
