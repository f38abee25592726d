//! Loops over slices shared by the CPU kernels: planes across rayon's
//! threads, and sums that vectorise.

use candle_core::WithDType;
use rayon::prelude::*;

/// Below this many elements an element-wise loop stays on one thread.
pub(crate) const PAR_MIN: usize = 1 << 15;

/// Calls `f(plane_index, plane)` for every `plane`-sized chunk of `data`,
/// in groups of planes across rayon's threads.
pub(crate) fn par_planes<T: Send>(
    data: &mut [T],
    plane: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let plane = plane.max(1);
    let per = (PAR_MIN / plane).max(1);
    data.par_chunks_mut(per * plane)
        .enumerate()
        .for_each(|(c, chunk)| {
            for (i, p) in chunk.chunks_mut(plane).enumerate() {
                f(c * per + i, p);
            }
        });
}

/// `dst += src`, element-wise.
pub(crate) fn add_assign<T: WithDType>(dst: &mut [T], src: &[T]) {
    if dst.len() >= PAR_MIN {
        dst.par_chunks_mut(PAR_MIN)
            .zip(src.par_chunks(PAR_MIN))
            .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(a, b)| *a += *b));
    } else {
        dst.iter_mut().zip(src).for_each(|(a, b)| *a += *b);
    }
}

/// `dst *= src`, element-wise.
pub(crate) fn mul_assign<T: WithDType>(dst: &mut [T], src: &[T]) {
    if dst.len() >= PAR_MIN {
        dst.par_chunks_mut(PAR_MIN)
            .zip(src.par_chunks(PAR_MIN))
            .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(a, b)| *a *= *b));
    } else {
        dst.iter_mut().zip(src).for_each(|(a, b)| *a *= *b);
    }
}

/// `sum(f(v))` over a slice with 16 independent partial sums, so the loop
/// vectorises (a single accumulator is a serial dependency chain).
#[inline]
pub(crate) fn lane_sum<T: WithDType>(xs: &[T], f: impl Fn(T) -> T) -> T {
    let mut acc = [T::zero(); 16];
    let chunks = xs.chunks_exact(16);
    let rest = chunks.remainder().iter().fold(T::zero(), |s, &v| s + f(v));
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    acc.iter().fold(T::zero(), |s, &v| s + v) + rest
}

/// `sum(f(a, b))` over two slices of equal length, as [`lane_sum`].
#[inline]
pub(crate) fn lane_dot<T: WithDType>(xs: &[T], ys: &[T], f: impl Fn(T, T) -> T) -> T {
    let mut acc = [T::zero(); 16];
    let (cx, cy) = (xs.chunks_exact(16), ys.chunks_exact(16));
    let rest = cx
        .remainder()
        .iter()
        .zip(cy.remainder())
        .fold(T::zero(), |s, (&a, &b)| s + f(a, b));
    for (a16, b16) in cx.zip(cy) {
        for ((acc, &a), &b) in acc.iter_mut().zip(a16).zip(b16) {
            *acc += f(a, b);
        }
    }
    acc.iter().fold(T::zero(), |s, &v| s + v) + rest
}
