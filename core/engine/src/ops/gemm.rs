//! Row-major matrix products over slices, for the CPU kernels.
//!
//! A thin safe layer over the `gemm` crate (which candle's own CPU matmul
//! uses too): the kernels call it on sub-slices of their buffers, once per
//! image, without building tensors, so a convolution's forward and both
//! backward products cost no allocation and no copy. Built with gemm's
//! `x86-v4` feature, so AVX-512 microkernels run where the CPU has them.

use std::any::TypeId;

use candle_core::WithDType;
use rayon::prelude::*;

use super::scratch::Scratch;

/// A matrix view into a slice: `rows x cols` with the given row and column
/// strides (in elements). `t()` swaps the two, which is how a product reads
/// a transposed operand without copying it.
#[derive(Debug, Clone, Copy)]
pub struct Mat {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Distance between rows.
    pub rs: usize,
    /// Distance between columns.
    pub cs: usize,
}

impl Mat {
    /// A dense row-major `rows x cols` matrix.
    pub fn rm(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose (a view, nothing moves).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// Elements a slice needs to hold this view.
    fn extent(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.rs + (self.cols - 1) * self.cs + 1
        }
    }
}

/// `dst = a @ b` (or `dst += a @ b` with `accumulate`), single-threaded or
/// on `threads` rayon threads.
///
/// # Panics
/// When the shapes do not chain or a slice is shorter than its view (a bug
/// in the calling kernel, never user input), or for a dtype other than f32
/// or f64.
#[allow(clippy::too_many_arguments)]
pub fn matmul<T: WithDType>(
    dst: &mut [T],
    dm: Mat,
    a: &[T],
    am: Mat,
    b: &[T],
    bm: Mat,
    accumulate: bool,
    threads: usize,
) {
    assert!(
        am.rows == dm.rows && bm.cols == dm.cols && am.cols == bm.rows,
        "matmul shapes {am:?} @ {bm:?} -> {dm:?}"
    );
    assert!(dst.len() >= dm.extent() && a.len() >= am.extent() && b.len() >= bm.extent());
    assert!(
        std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
            || std::any::TypeId::of::<T>() == std::any::TypeId::of::<f64>(),
        "matmul supports f32 and f64"
    );
    if dm.rows == 0 || dm.cols == 0 {
        return;
    }
    if am.cols == 0 {
        if !accumulate {
            dst.iter_mut().for_each(|v| *v = T::zero());
        }
        return;
    }
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every access of the three views inside
    // its slice; `dst` is borrowed mutably, so it overlaps neither input; T
    // is f32 or f64, which gemm supports.
    unsafe {
        gemm::gemm(
            dm.rows,
            dm.cols,
            am.cols,
            dst.as_mut_ptr(),
            dm.cs as isize,
            dm.rs as isize,
            accumulate,
            a.as_ptr(),
            am.cs as isize,
            am.rs as isize,
            b.as_ptr(),
            bm.cs as isize,
            bm.rs as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `c += a @ b^T` for row-major `a: [m, l]`, `b: [n, l]`, `c: [m, n]`, on
/// `threads` rayon threads: a convolution's weight gradient `dY @ cols^T`.
///
/// The gemm crate packs both operands of this "NT" product with strided
/// gathers, slowly. Two ways round that, each faster where the other is not
/// (measured on the paper's models, 2 threads):
/// - the dot-product kernel `matmul_nt_f32` reads rows of `a` and `b`
///   contiguously, but re-reads all of `b` for every 6 rows of `a`; that is
///   fastest while `b` stays in cache or `a` has few rows (ResNet-20,
///   DenseNet, the paper's ResNet);
/// - for tall `a` and a `b` far larger than L2 (VGG's 32x32 maps at 128 to
///   512 channels: ~20% more images per second), `b` is transposed once
///   into a pooled buffer and the product becomes a plain one that gemm
///   blocks for cache.
///
/// Without AVX-512, or for f64, gemm reads `b` through a transposed view
/// unless transposing pays.
pub fn matmul_nt<T: WithDType>(
    c: &mut [T],
    a: &[T],
    b: &[T],
    (m, n, l): (usize, usize, usize),
    threads: usize,
) {
    if l == 0 {
        return;
    }
    let f32_kernel = TypeId::of::<T>() == TypeId::of::<f32>() && nt_f32_available();
    if f32_kernel && !transpose_pays(m, n, l) {
        // SAFETY: T is f32 (checked above), so the slices are f32 slices of
        // the same lengths.
        let (c32, a32, b32) = unsafe {
            (
                std::slice::from_raw_parts_mut(c.as_mut_ptr().cast::<f32>(), c.len()),
                std::slice::from_raw_parts(a.as_ptr().cast::<f32>(), a.len()),
                std::slice::from_raw_parts(b.as_ptr().cast::<f32>(), b.len()),
            )
        };
        let rows = m.div_ceil(threads.max(1)).max(1);
        c32.par_chunks_mut(rows * n)
            .zip(a32.par_chunks(rows * l))
            .for_each(|(cc, ac)| {
                matmul_nt_f32(cc, ac, b32, cc.len() / n.max(1), n, l);
            });
        return;
    }
    if transpose_pays(m, n, l) {
        let mut bt = Scratch::<T>::any(n * l);
        transpose(b, (n, l), &mut bt);
        matmul(
            c,
            Mat::rm(m, n),
            a,
            Mat::rm(m, l),
            &bt,
            Mat::rm(l, n),
            true,
            threads,
        );
        return;
    }
    matmul(
        c,
        Mat::rm(m, n),
        a,
        Mat::rm(m, l),
        b,
        Mat::rm(n, l).t(),
        true,
        threads,
    );
}

/// Whether [`matmul_nt`] should transpose `b` rather than run the
/// dot-product kernel: `a` tall enough to re-read `b` many times, and `b`
/// (`n x l`) past 1 MiB of f32, beyond a core's L2.
fn transpose_pays(m: usize, n: usize, l: usize) -> bool {
    m >= 128 && n * l > 1 << 18
}

/// `dst = src^T` for row-major `src: [rows, cols]`, in cache-sized tiles.
fn transpose<T: Copy>(src: &[T], (rows, cols): (usize, usize), dst: &mut [T]) {
    const TILE: usize = 32;
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
}

/// `c += a @ b^T` for row-major `a: [m, l]`, `b: [n, l]`, `c: [m, n]` in
/// f32, when the CPU has AVX-512 (`false`, and nothing done, otherwise):
/// every output is a dot product of two contiguous rows.
///
/// This kernel reads both rows contiguously, 24 outputs at a time (a 6x4
/// tile) over 16-lane registers.
fn matmul_nt_f32(c: &mut [f32], a: &[f32], b: &[f32], m: usize, n: usize, l: usize) -> bool {
    assert!(a.len() >= m * l && b.len() >= n * l && c.len() >= m * n);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above); the assert
            // keeps every row read inside `a` and `b`.
            unsafe { nt_avx512(c, a, b, m, n, l) };
            return true;
        }
    }
    false
}

/// Whether [`matmul_nt_f32`] runs here (the CPU has AVX-512).
fn nt_f32_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Rows of `a` and of `b` per register tile of [`nt_avx512`]: 24
/// accumulators, 6 `a` vectors and one `b` vector fill 31 of the 32 zmm
/// registers; taller tiles re-read `b` (the longer operand) fewer times.
const MR: usize = 6;
const NR: usize = 4;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
// `i` and `j` address a tile of registers; iterators would hide that.
#[allow(clippy::needless_range_loop)]
unsafe fn nt_avx512(c: &mut [f32], a: &[f32], b: &[f32], m: usize, n: usize, l: usize) {
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_maskz_loadu_ps, _mm512_reduce_add_ps,
        _mm512_setzero_ps,
    };
    let full = l / 16 * 16;
    // Lanes of the last, partial 16-wide step.
    let tail_mask: u16 = if l == full {
        0
    } else {
        (1u32 << (l - full)).wrapping_sub(1) as u16
    };
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    let mut i0 = 0;
    while i0 < m {
        let mi = (m - i0).min(MR);
        // Row offsets of the tile's `a` rows; rows past `m` repeat the last
        // one (read, never stored).
        let arow: [usize; MR] = std::array::from_fn(|i| (i0 + i.min(mi - 1)) * l);
        let mut j0 = 0;
        while j0 < n {
            let nj = (n - j0).min(NR);
            let brow: [usize; NR] = std::array::from_fn(|j| (j0 + j.min(nj - 1)) * l);
            let mut acc: [[__m512; NR]; MR] = [[_mm512_setzero_ps(); NR]; MR];
            let mut t = 0;
            // SAFETY (all loads): every row offset is of a row that exists
            // (`< m` or `< n`) and holds `l` values, and `t + 16 <= full
            // <= l` (the masked tail reads only lanes below `l`).
            while t < full {
                let av: [__m512; MR] =
                    std::array::from_fn(|i| unsafe { _mm512_loadu_ps(ap.add(arow[i] + t)) });
                for j in 0..NR {
                    let bv = unsafe { _mm512_loadu_ps(bp.add(brow[j] + t)) };
                    for i in 0..MR {
                        acc[i][j] = _mm512_fmadd_ps(av[i], bv, acc[i][j]);
                    }
                }
                t += 16;
            }
            if tail_mask != 0 {
                let av: [__m512; MR] = std::array::from_fn(|i| unsafe {
                    _mm512_maskz_loadu_ps(tail_mask, ap.add(arow[i] + full))
                });
                for j in 0..NR {
                    let bv = unsafe { _mm512_maskz_loadu_ps(tail_mask, bp.add(brow[j] + full)) };
                    for i in 0..MR {
                        acc[i][j] = _mm512_fmadd_ps(av[i], bv, acc[i][j]);
                    }
                }
            }
            for (i, row) in acc.iter().enumerate().take(mi) {
                for (j, v) in row.iter().enumerate().take(nj) {
                    c[(i0 + i) * n + j0 + j] += _mm512_reduce_add_ps(*v);
                }
            }
            j0 += NR;
        }
        i0 += MR;
    }
}

#[cfg(test)]
mod tests;
