//! Max and average pooling with any kernel, stride and asymmetric padding,
//! with correct gradients, and global average pooling.
//!
//! candle 0.11's `max_pool2d` backward multiplies the gradient by
//! (number of maxima)/k^2 and refuses kernel != stride, so acbench has its
//! own: CPU kernels on slices ([`max_pool_forward`] with each window's
//! argmax, [`max_pool_backward`], [`avg_pool_forward`],
//! [`avg_pool_backward`]), which the model's CPU path calls directly and
//! [`pool2d_cpu`] wraps in a candle custom op, and a generic path
//! ([`pool2d_generic`]) from differentiable candle ops for other devices.
//! Semantics (both paths):
//! - max: padded cells never win; the whole gradient of a window goes to its
//!   first maximum in row-major order (PyTorch's and TensorFlow's argmax);
//! - average: the divisor is the number of real (unpadded) cells of the
//!   window, or kh*kw with `count_include_pad`.

use acbench_dsl::ir::{Pool2d, PoolKind};
use candle_core::{DType, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use super::custom::{Input, InputGrads, Kernel, Op, Output};
use super::scratch::Scratch;
use super::slices::{PAR_MIN, par_planes};
use super::{Real, filled, storage_slice, strided_index};

/// The resolved geometry of one pooling over an `h x w` input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeom {
    /// Max or average.
    pub kind: PoolKind,
    /// Input height and width.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Kernel (rows, columns).
    pub kernel: (usize, usize),
    /// Stride (rows, columns).
    pub stride: (usize, usize),
    /// Padding: top, bottom, left, right.
    pub pad: (usize, usize, usize, usize),
    /// Whether padded cells count in an average's divisor.
    pub count_include_pad: bool,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
}

impl PoolGeom {
    /// Checks `p` against an `h x w` input: every window must hold at least
    /// one real cell (padding smaller than the kernel), so a max is never
    /// taken over padding alone and an average never divides by zero.
    pub fn new(p: &Pool2d, h: usize, w: usize) -> Result<Self> {
        let (kh, kw) = p.kernel;
        let (sh, sw) = p.stride;
        let pd = p.padding;
        if kh == 0 || kw == 0 || sh == 0 || sw == 0 {
            bail!(
                "pooling kernel and stride must be positive, got kernel {kh}x{kw} stride {sh}x{sw}"
            );
        }
        if pd.top >= kh || pd.bottom >= kh || pd.left >= kw || pd.right >= kw {
            bail!("pooling padding {pd:?} must be smaller than the kernel {kh}x{kw}");
        }
        let (hp, wp) = (h + pd.top + pd.bottom, w + pd.left + pd.right);
        if hp < kh || wp < kw {
            bail!("pooling kernel {kh}x{kw} is larger than the padded input {hp}x{wp}");
        }
        Ok(Self {
            kind: p.kind,
            h,
            w,
            kernel: p.kernel,
            stride: p.stride,
            pad: (pd.top, pd.bottom, pd.left, pd.right),
            count_include_pad: p.count_include_pad,
            oh: (hp - kh) / sh + 1,
            ow: (wp - kw) / sw + 1,
        })
    }

    /// Real-cell ranges `[y0, y1) x [x0, x1)` of window `(oy, ox)` in input coordinates.
    #[inline]
    pub(crate) fn window(&self, oy: usize, ox: usize) -> (usize, usize, usize, usize) {
        let ys = (oy * self.stride.0) as isize - self.pad.0 as isize;
        let xs = (ox * self.stride.1) as isize - self.pad.2 as isize;
        let clip = |v: isize, hi: usize| v.clamp(0, hi as isize) as usize;
        (
            clip(ys, self.h),
            clip(ys + self.kernel.0 as isize, self.h),
            clip(xs, self.w),
            clip(xs + self.kernel.1 as isize, self.w),
        )
    }

    pub(crate) fn divisor(&self, y0: usize, y1: usize, x0: usize, x1: usize) -> f64 {
        if self.count_include_pad {
            (self.kernel.0 * self.kernel.1) as f64
        } else {
            ((y1 - y0) * (x1 - x0)) as f64
        }
    }

    /// Index (in the plane) of the first maximum of window `(oy, ox)`, cell
    /// by cell: the reference the kernels' faster loops are tested against.
    #[cfg(test)]
    pub(crate) fn argmax<T: Real>(&self, plane: &[T], oy: usize, ox: usize) -> usize {
        let (y0, y1, x0, x1) = self.window(oy, ox);
        let mut best = y0 * self.w + x0;
        let mut best_v = plane[best];
        for y in y0..y1 {
            for x in x0..x1 {
                let v = plane[y * self.w + x];
                if v > best_v || (v.is_nan() && !best_v.is_nan()) {
                    best = y * self.w + x;
                    best_v = v;
                }
            }
        }
        best
    }

    /// Whether this is the common 2x2 window with stride 2 and no padding
    /// (every window whole).
    fn is_2x2(&self) -> bool {
        self.kernel == (2, 2) && self.stride == (2, 2) && self.pad == (0, 0, 0, 0)
    }

    /// Elements of one input plane and of one output plane.
    fn planes(&self) -> (usize, usize) {
        (self.h * self.w, self.oh * self.ow)
    }
}

/// Max pooling of every `[h, w]` plane of `x` into `y`, with each output's
/// argmax (its index in the plane) in `argmax`: the first maximum in
/// row-major order; a NaN wins, so that it propagates (and the divergence
/// guard sees it). Window bounds are computed once per row and column, not
/// per cell.
///
/// # Panics
/// When the slices do not hold whole planes of `g` (a bug in the caller).
pub fn max_pool_forward<T: Real>(g: &PoolGeom, x: &[T], y: &mut [T], argmax: &mut [u32]) {
    let (pin, pout) = g.planes();
    assert!(y.len() == argmax.len() && x.len() / pin.max(1) == y.len() / pout.max(1));
    if y.is_empty() {
        return;
    }
    let rows: Vec<(usize, usize)> = (0..g.oh)
        .map(|oy| {
            let (y0, y1, _, _) = g.window(oy, 0);
            (y0, y1)
        })
        .collect();
    let cols: Vec<(usize, usize)> = (0..g.ow)
        .map(|ox| {
            let (_, _, x0, x1) = g.window(0, ox);
            (x0, x1)
        })
        .collect();
    let per = (PAR_MIN / pin.max(1)).max(1);
    let pool2x2 = g.is_2x2();
    y.par_chunks_mut(per * pout)
        .zip(argmax.par_chunks_mut(per * pout))
        .enumerate()
        .for_each(|(c, (ys, idx))| {
            for (i, (yp, ip)) in ys.chunks_mut(pout).zip(idx.chunks_mut(pout)).enumerate() {
                let plane = &x[(c * per + i) * pin..][..pin];
                if pool2x2 {
                    max_pool_2x2(g, plane, yp, ip);
                    continue;
                }
                for (oy, &(y0, y1)) in rows.iter().enumerate() {
                    for (ox, &(x0, x1)) in cols.iter().enumerate() {
                        let mut best = y0 * g.w + x0;
                        let mut best_v = plane[best];
                        for yy in y0..y1 {
                            let base = yy * g.w + x0;
                            for (dx, &v) in plane[base..yy * g.w + x1].iter().enumerate() {
                                let at = base + dx;
                                // Branch-free select: window values are
                                // unordered, a branch would mispredict.
                                let better = v > best_v || (v.is_nan() && !best_v.is_nan());
                                best = if better { at } else { best };
                                best_v = if better { v } else { best_v };
                            }
                        }
                        yp[oy * g.ow + ox] = best_v;
                        ip[oy * g.ow + ox] = best as u32;
                    }
                }
            }
        });
}

/// [`max_pool_forward`] of one plane for a 2x2 window with stride 2 and no
/// padding: the same first-maximum rule over the window in row order.
fn max_pool_2x2<T: Real>(g: &PoolGeom, plane: &[T], y: &mut [T], idx: &mut [u32]) {
    for oy in 0..g.oh {
        let (r0, r1) = (2 * oy * g.w, (2 * oy + 1) * g.w);
        let (yr, ir) = (&mut y[oy * g.ow..][..g.ow], &mut idx[oy * g.ow..][..g.ow]);
        for (ox, (yv, iv)) in yr.iter_mut().zip(ir.iter_mut()).enumerate() {
            let c = 2 * ox;
            let (mut best, mut best_v) = (r0 + c, plane[r0 + c]);
            for at in [r0 + c + 1, r1 + c, r1 + c + 1] {
                let v = plane[at];
                let better = v > best_v || (v.is_nan() && !best_v.is_nan());
                best = if better { at } else { best };
                best_v = if better { v } else { best_v };
            }
            *yv = best_v;
            *iv = best as u32;
        }
    }
}

/// Gradient of [`max_pool_forward`]: each output's gradient goes to its
/// argmax (overlapping windows accumulate); `dx` is overwritten.
pub fn max_pool_backward<T: Real>(g: &PoolGeom, argmax: &[u32], dy: &[T], dx: &mut [T]) {
    let (pin, pout) = g.planes();
    par_planes(dx, pin, |p, plane| {
        plane.fill(T::zero());
        let (gr, idx) = (&dy[p * pout..][..pout], &argmax[p * pout..][..pout]);
        for (&gv, &i) in gr.iter().zip(idx) {
            plane[i as usize] += gv;
        }
    });
}

/// Average pooling of every plane of `x` into `y` (sums in f64).
pub fn avg_pool_forward<T: Real>(g: &PoolGeom, x: &[T], y: &mut [T]) {
    let (pin, pout) = g.planes();
    par_planes(y, pout, |p, yp| {
        let plane = &x[p * pin..][..pin];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let (y0, y1, x0, x1) = g.window(oy, ox);
                let mut acc = 0f64;
                for yy in y0..y1 {
                    for v in &plane[yy * g.w + x0..yy * g.w + x1] {
                        acc += v.to_f64();
                    }
                }
                yp[oy * g.ow + ox] = T::from_f64(acc / g.divisor(y0, y1, x0, x1));
            }
        }
    });
}

/// Gradient of [`avg_pool_forward`]: each output's gradient is shared
/// evenly over its window's real cells; `dx` is overwritten.
pub fn avg_pool_backward<T: Real>(g: &PoolGeom, dy: &[T], dx: &mut [T]) {
    let (pin, pout) = g.planes();
    par_planes(dx, pin, |p, plane| {
        plane.fill(T::zero());
        let gr = &dy[p * pout..][..pout];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let (y0, y1, x0, x1) = g.window(oy, ox);
                let share = T::from_f64(gr[oy * g.ow + ox].to_f64() / g.divisor(y0, y1, x0, x1));
                for yy in y0..y1 {
                    for v in &mut plane[yy * g.w + x0..yy * g.w + x1] {
                        *v += share;
                    }
                }
            }
        }
    });
}

/// Mean of every `plane`-sized chunk of `x`, into `y` (one value per plane).
pub fn global_avg_pool_forward<T: Real>(plane: usize, x: &[T], y: &mut [T]) {
    let div = T::from_f64(plane.max(1) as f64);
    for (o, p) in y.iter_mut().zip(x.chunks(plane.max(1))) {
        *o = p.iter().fold(T::zero(), |s, &v| s + v) / div;
    }
}

/// Gradient of [`global_avg_pool_forward`]: every cell of a plane gets its
/// output's gradient over the plane size; `dx` is overwritten.
pub fn global_avg_pool_backward<T: Real>(plane: usize, dy: &[T], dx: &mut [T]) {
    let div = T::from_f64(plane.max(1) as f64);
    for (p, g) in dx.chunks_mut(plane.max(1)).zip(dy) {
        p.fill(*g / div);
    }
}

/// Pools an `[N, C, H, W]` tensor: the CPU kernels on the CPU, the generic
/// path elsewhere.
pub fn pool2d(x: &Tensor, p: &Pool2d) -> Result<Tensor> {
    if x.device().is_cpu() {
        pool2d_cpu(x, p)
    } else {
        pool2d_generic(x, p)
    }
}

/// The CPU kernels (f32 and f64) as a candle custom op.
pub fn pool2d_cpu(x: &Tensor, p: &Pool2d) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let geom = PoolGeom::new(p, h, w)?;
    x.contiguous()?.apply_op1(Op(PoolFwd(geom)))
}

struct PoolFwd(PoolGeom);

impl Kernel<1> for PoolFwd {
    const NAME: &'static str = "acbench-pool2d";
    const WHAT: &'static str = "pooling";

    fn forward<T: Real>(&self, [(src, l)]: [Input<'_>; 1]) -> Output {
        let g = &self.0;
        let (n, c, _, _) = l.shape().dims4()?;
        let x = storage_slice::<T>(src, l)?;
        let mut y = vec![T::zero(); n * c * g.oh * g.ow];
        match g.kind {
            PoolKind::Max => {
                let mut argmax = Scratch::<u32>::any(y.len());
                max_pool_forward(g, x, &mut y, &mut argmax);
            }
            PoolKind::Avg => avg_pool_forward(g, x, &mut y),
        }
        Ok((T::to_cpu_storage_owned(y), Shape::from((n, c, g.oh, g.ow))))
    }

    fn backward<T: Real>(&self, [x]: [&Tensor; 1], grad: &Tensor) -> InputGrads<1> {
        let grad = grad.contiguous()?;
        Ok([Some(x.apply_op2_no_bwd(&grad, &Op(PoolBwd(self.0)))?)])
    }
}

/// Gradient of [`PoolFwd`] with respect to its input: `(x, grad_out) ->
/// grad_x`. The max case recomputes the argmax from `x` (candle's custom
/// ops keep no state between forward and backward).
struct PoolBwd(PoolGeom);

impl Kernel<2> for PoolBwd {
    const NAME: &'static str = "acbench-pool2d-bwd";
    const WHAT: &'static str = "pooling backward";

    fn forward<T: Real>(&self, [(xs, lx), (gs, lg)]: [Input<'_>; 2]) -> Output {
        let g = &self.0;
        let (x, dy) = (storage_slice::<T>(xs, lx)?, storage_slice::<T>(gs, lg)?);
        let mut dx = vec![T::zero(); x.len()];
        match g.kind {
            PoolKind::Max => {
                let mut y = Scratch::<T>::any(dy.len());
                let mut argmax = Scratch::<u32>::any(dy.len());
                max_pool_forward(g, x, &mut y, &mut argmax);
                max_pool_backward(g, &argmax, dy, &mut dx);
            }
            PoolKind::Avg => avg_pool_backward(g, dy, &mut dx),
        }
        Ok((T::to_cpu_storage_owned(dx), lx.shape().clone()))
    }
}

/// Global average pooling, `[N, C, H, W] -> [N, C]`: the CPU kernels on
/// the CPU, candle's mean elsewhere.
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) {
        x.contiguous()?.apply_op1(Op(GapOp))
    } else {
        x.mean((2, 3))
    }
}

/// [`global_avg_pool_forward`] as a custom op, [`global_avg_pool_backward`]
/// its backward.
struct GapOp;

impl Kernel<1> for GapOp {
    const NAME: &'static str = "acbench-global-avg-pool";
    const WHAT: &'static str = "global average pooling";

    fn forward<T: Real>(&self, [(s, l)]: [Input<'_>; 1]) -> Output {
        let (n, c, h, w) = l.shape().dims4()?;
        let mut y = vec![T::zero(); n * c];
        global_avg_pool_forward(h * w, storage_slice::<T>(s, l)?, &mut y);
        Ok((T::to_cpu_storage_owned(y), Shape::from((n, c))))
    }

    fn backward<T: Real>(&self, [arg]: [&Tensor; 1], grad: &Tensor) -> InputGrads<1> {
        let (_, _, h, w) = arg.dims4()?;
        let mut dx = vec![T::zero(); arg.elem_count()];
        super::with_slice::<T, _>(grad, |dy| global_avg_pool_backward(h * w, dy, &mut dx))?;
        Ok([Some(Tensor::from_vec(dx, arg.shape(), arg.device())?)])
    }
}

/// Pooling from differentiable candle ops, for any device: every window
/// offset `(ky, kx)` is a strided view taken with `index_select`; max picks
/// the first maximum with `gather` (so the gradient goes only there),
/// average sums the views and divides by a precomputed divisor map.
pub fn pool2d_generic(x: &Tensor, p: &Pool2d) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let g = PoolGeom::new(p, h, w)?;
    let dev = x.device();
    let (pt, pb, pl, pr) = g.pad;
    let padded = match g.kind {
        PoolKind::Max => pad_value(x, g.pad, f64::NEG_INFINITY)?,
        PoolKind::Avg => x.pad_with_zeros(2, pt, pb)?.pad_with_zeros(3, pl, pr)?,
    };
    let (kh, kw) = g.kernel;
    let cols: Vec<Tensor> = (0..kw)
        .map(|kx| strided_index(kx, g.stride.1, g.ow, dev))
        .collect::<Result<_>>()?;
    let mut views = Vec::with_capacity(kh * kw);
    for ky in 0..kh {
        let rows = padded.index_select(&strided_index(ky, g.stride.0, g.oh, dev)?, 2)?;
        for c in &cols {
            views.push(rows.index_select(c, 3)?);
        }
    }
    match g.kind {
        PoolKind::Max => {
            let stacked = Tensor::stack(&views, 4)?;
            // First maximum, device-independently: the smallest offset whose
            // value equals the window's max (argmax's tie rule is not
            // specified on every backend).
            let detached = stacked.detach();
            let max = detached.max_keepdim(4)?;
            let is_max = detached.broadcast_ge(&max)?;
            let kk = kh * kw;
            let offsets = Tensor::arange(0u32, kk as u32, dev)?.to_dtype(DType::F32)?;
            let offsets = offsets
                .reshape((1, 1, 1, 1, kk))?
                .broadcast_as(stacked.shape())?
                .contiguous()?;
            let never = filled(kk as f64, stacked.dims(), DType::F32, dev)?;
            let first = is_max
                .where_cond(&offsets, &never)?
                .min_keepdim(4)?
                .to_dtype(DType::U32)?;
            stacked.gather(&first, 4)?.squeeze(4)
        }
        PoolKind::Avg => {
            let mut sum = views[0].clone();
            for v in &views[1..] {
                sum = (sum + v)?;
            }
            let mut inv = Vec::with_capacity(g.oh * g.ow);
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let (y0, y1, x0, x1) = g.window(oy, ox);
                    inv.push(1.0 / g.divisor(y0, y1, x0, x1));
                }
            }
            let inv = Tensor::from_vec(inv, (1, 1, g.oh, g.ow), dev)?.to_dtype(x.dtype())?;
            sum.broadcast_mul(&inv)
        }
    }
}

/// Pads H and W with a constant (minus infinity for max pooling).
fn pad_value(x: &Tensor, (pt, pb, pl, pr): (usize, usize, usize, usize), v: f64) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (dt, dev) = (x.dtype(), x.device());
    let mut parts = Vec::with_capacity(3);
    let cols = |t: Tensor| -> Result<Tensor> {
        let mut p = Vec::with_capacity(3);
        if pl > 0 {
            p.push(filled(v, &[n, c, h + pt + pb, pl], dt, dev)?);
        }
        p.push(t);
        if pr > 0 {
            p.push(filled(v, &[n, c, h + pt + pb, pr], dt, dev)?);
        }
        Tensor::cat(&p, 3)
    };
    if pt > 0 {
        parts.push(filled(v, &[n, c, pt, w], dt, dev)?);
    }
    parts.push(x.clone());
    if pb > 0 {
        parts.push(filled(v, &[n, c, pb, w], dt, dev)?);
    }
    cols(Tensor::cat(&parts, 2)?)
}

#[cfg(test)]
mod tests;
