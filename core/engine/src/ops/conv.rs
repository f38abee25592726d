//! 2-D convolution as the IR describes it.
//!
//! Two implementations behind [`conv2d`]:
//! - the CPU kernels ([`conv_forward`], [`conv_backward`]) on slices, used by
//!   the CPU training path directly and, wrapped in a candle custom op by
//!   [`conv2d_cpu`], by candle's autograd. Per image and group: `cols =
//!   im2col(x)` as a `[K, L]` matrix (`K = cin_g*kh*kw`, `L = oh*ow`) and
//!   `y = W @ cols` written straight into the NCHW output with the bias
//!   folded in (no transpose, no separate bias op); the backward computes
//!   `dW += dY @ cols^T`, `db += rowsum(dY)` and `dx = col2im(W^T @ dY)` in
//!   one pass over the images. Images are split across rayon's threads,
//!   each task with one column buffer and (when there are several tasks)
//!   its own partial `dW`; a 1x1 stride-1 unpadded convolution uses the
//!   input itself as `cols`. Where the map is small (ResNet's last stages
//!   have 1 to 64 cells), a task puts several images side by side into one
//!   `[K, images*L]` column matrix, so each product has at least 256
//!   columns rather than a handful. (candle 0.11's
//!   own CPU conv backward goes through a direct `conv_transpose2d` loop
//!   ~12x slower than its forward, and is wrong when the two axes' stride
//!   remainders differ.)
//! - [`conv2d_generic`]: candle's `conv2d`, for every device.
//!
//! candle's `conv2d` takes one symmetric padding, one stride and one
//! dilation for both axes, and its backward derives the input gradient's
//! output padding from the height alone (so a width whose stride remainder
//! differs from the height's breaks the backward). The generic wrapper:
//! - passes the common case (same padding on all sides, one stride and
//!   dilation, equal remainders on both axes) straight to candle;
//! - otherwise pads explicitly with zeros (asymmetric TensorFlow `SAME`
//!   padding) and crops the rows/columns no window reaches, so the remainder
//!   is zero on both axes and candle's backward is exact;
//! - runs per-axis strides as stride 1 plus strided row/column selection, and
//!   per-axis dilation by spreading the kernel with a 0/1 matrix, when the
//!   two axes differ (rare; the common symmetric case is candle's own).
//!
//! Groups are candle's: it splits input and kernel per group and
//! concatenates, so each group's backward is the ungrouped one (tested).

use acbench_dsl::ir::Conv2d;
use candle_core::{Result, Shape, Tensor, WithDType, bail};
use rayon::prelude::*;

use super::gemm::{Mat, matmul, matmul_nt};
use super::scratch::Scratch;
use super::slices::add_assign;
use super::{storage_slice, strided_index};

mod generic;
mod op;

pub use generic::conv2d_generic;
pub use op::conv2d_cpu;

/// `conv(x, weight) + bias` for `x: [N, Cin, H, W]`, `weight: [Cout, Cin/groups, kh, kw]`, `bias: [Cout]`:
/// the gemm kernels on the CPU, candle's convolution elsewhere.
pub fn conv2d(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, c: &Conv2d) -> Result<Tensor> {
    if x.device().is_cpu() {
        conv2d_cpu(x, weight, bias, c)
    } else {
        conv2d_generic(x, weight, bias, c)
    }
}

/// Output size of a convolution after validating its geometry.
fn out_size(h: usize, w: usize, c: &Conv2d) -> Result<(usize, usize)> {
    let (kh, kw) = c.kernel;
    let (sh, sw) = c.stride;
    let (dh, dw) = c.dilation;
    if sh == 0 || sw == 0 || dh == 0 || dw == 0 || kh == 0 || kw == 0 {
        bail!("convolution kernel, stride and dilation must be positive");
    }
    let p = c.padding;
    let (hp, wp) = (h + p.top + p.bottom, w + p.left + p.right);
    let (eh, ew) = (dh * (kh - 1) + 1, dw * (kw - 1) + 1);
    if hp < eh || wp < ew {
        bail!("convolution window {eh}x{ew} is larger than the padded input {hp}x{wp}");
    }
    Ok(((hp - eh) / sh + 1, (wp - ew) / sw + 1))
}

/// A convolution resolved against its input and kernel shapes: what the
/// CPU kernels need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvGeom {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub cin: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub cout: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// Kernel rows and columns.
    pub kernel: (usize, usize),
    /// Stride per axis.
    pub stride: (usize, usize),
    /// Dilation per axis.
    pub dilation: (usize, usize),
    /// Padding above and left of the input (bottom/right padding only
    /// changes the output size, which `oh`/`ow` already hold).
    pub pad: (usize, usize),
    /// Groups.
    pub groups: usize,
}

impl ConvGeom {
    /// Checks that `x: [N, Cin, H, W]` and `weight: [Cout, Cin/groups, kh, kw]` fit `c`.
    pub fn new(x: &[usize], weight: &[usize], c: &Conv2d) -> Result<Self> {
        let (&[n, cin, h, w], &[cout, cin_g, kh, kw]) = (x, weight) else {
            bail!("convolution: input {x:?} and kernel {weight:?} must both have rank 4");
        };
        let g = c.groups;
        if g == 0 || cin != cin_g * g || cout % g != 0 || (kh, kw) != c.kernel {
            bail!("convolution: {cin} input channels, kernel {weight:?}, {g} groups do not fit");
        }
        let (oh, ow) = out_size(h, w, c)?;
        Ok(Self {
            n,
            cin,
            h,
            w,
            cout,
            oh,
            ow,
            kernel: c.kernel,
            stride: c.stride,
            dilation: c.dilation,
            pad: (c.padding.top, c.padding.left),
            groups: g,
        })
    }

    fn cin_g(&self) -> usize {
        self.cin / self.groups
    }

    fn cout_g(&self) -> usize {
        self.cout / self.groups
    }

    /// Rows of a group's column matrix.
    fn k(&self) -> usize {
        self.cin_g() * self.kernel.0 * self.kernel.1
    }

    /// Output cells per channel.
    fn l(&self) -> usize {
        self.oh * self.ow
    }

    /// Elements of one input image.
    pub fn x_image(&self) -> usize {
        self.cin * self.h * self.w
    }

    /// Elements of one output image.
    pub fn y_image(&self) -> usize {
        self.cout * self.l()
    }

    /// Elements of the kernel.
    pub fn w_len(&self) -> usize {
        self.cout * self.k()
    }

    /// The output shape.
    pub fn y_dims(&self) -> [usize; 4] {
        [self.n, self.cout, self.oh, self.ow]
    }

    /// A 1x1, stride 1, unpadded convolution: the input is its own column matrix.
    fn direct(&self) -> bool {
        self.kernel == (1, 1) && self.stride == (1, 1) && self.pad == (0, 0)
    }

    /// Output columns `[lo, hi)` whose input column `ox * stride + off` is
    /// inside the image.
    fn valid_cols(&self, off: isize) -> (usize, usize) {
        let (sw, w) = (self.stride.1 as isize, self.w as isize);
        let lo = if off >= 0 { 0 } else { (-off + sw - 1) / sw };
        let hi = if w - off > 0 {
            (w - off + sw - 1) / sw
        } else {
            0
        };
        let lo = (lo as usize).min(self.ow);
        (lo, (hi as usize).clamp(lo, self.ow))
    }

    /// Visits every row segment of a group's `[K, L]` column matrix:
    /// `f(k, oy, input_row, cols)` for matrix row `k`, output row `oy`, the
    /// start of the input row it reads (`None` for a row of padding) and
    /// `(lo, hi, first)`: output columns `[lo, hi)` read real input, column
    /// `lo` reads input column `first` (the rest is padding). The column
    /// range depends only on the kernel column, so it is computed once per
    /// tap, not per row (integer division is slow).
    #[inline]
    fn rows(&self, mut f: impl FnMut(usize, usize, Option<usize>, (usize, usize, usize))) {
        let (kh, kw) = self.kernel;
        let (sh, sw) = self.stride;
        let (dh, dwl) = self.dilation;
        let (pt, pl) = (self.pad.0 as isize, self.pad.1 as isize);
        let cols: Vec<(usize, usize, usize)> = (0..kw)
            .map(|kx| {
                let off = (kx * dwl) as isize - pl;
                let (lo, hi) = self.valid_cols(off);
                (lo, hi, (lo as isize * sw as isize + off).max(0) as usize)
            })
            .collect();
        for ci in 0..self.cin_g() {
            for ky in 0..kh {
                for (kx, &c) in cols.iter().enumerate() {
                    let k = (ci * kh + ky) * kw + kx;
                    for oy in 0..self.oh {
                        let y = (oy * sh + ky * dh) as isize - pt;
                        let src = (y >= 0 && y < self.h as isize)
                            .then(|| (ci * self.h + y as usize) * self.w);
                        f(k, oy, src, c);
                    }
                }
            }
        }
    }

    /// Whether rows of the column matrix are whole shifted input planes:
    /// stride 1, no dilation, output as wide as the input (`same` padding).
    /// Then a tap's valid cells form one contiguous run in both the input
    /// and the column row (padding columns fixed up afterwards), so im2col
    /// is one copy per tap instead of one per output row.
    fn shifted(&self) -> bool {
        self.stride == (1, 1) && self.dilation == (1, 1) && self.ow == self.w
    }

    /// For the shifted case: per tap `k`, the valid output rows `[oy0,
    /// oy1)`, valid columns `[lo, hi)` and the offset from a column-matrix
    /// cell to the input cell it reads (relative to the group's planes).
    fn shifted_taps(&self, mut f: impl FnMut(usize, (usize, usize), (usize, usize), isize)) {
        let (kh, kw) = self.kernel;
        let (pt, pl) = (self.pad.0 as isize, self.pad.1 as isize);
        let (h, w) = (self.h as isize, self.w as isize);
        for ci in 0..self.cin_g() {
            for ky in 0..kh {
                let dy = ky as isize - pt;
                // Output rows whose input row oy + dy is inside the image.
                let oy0 = (-dy).clamp(0, self.oh as isize) as usize;
                let oy1 = (h - dy).clamp(oy0 as isize, self.oh as isize) as usize;
                for kx in 0..kw {
                    let dx = kx as isize - pl;
                    let (lo, hi) = self.valid_cols(dx);
                    let shift = (ci as isize * h + dy) * w + dx;
                    f((ci * kh + ky) * kw + kx, (oy0, oy1), (lo, hi), shift);
                }
            }
        }
    }

    /// `[cin_g, H, W] -> [K, L]` for one image and group, zeros for padding;
    /// row `k` of the matrix starts at `cols[k * ld]` (`ld >= L`: an image's
    /// columns inside a wider matrix of several images).
    fn im2col<T: WithDType>(&self, src: &[T], cols: &mut [T], ld: usize) {
        let (l, ow, sw) = (self.l(), self.ow, self.stride.1);
        if self.shifted() {
            self.shifted_taps(|k, (oy0, oy1), (lo, hi), shift| {
                let row = &mut cols[k * ld..][..l];
                if oy1 <= oy0 || hi <= lo {
                    row.fill(T::zero());
                    return;
                }
                let (a, b) = (oy0 * ow + lo, (oy1 - 1) * ow + hi);
                row[..a].fill(T::zero());
                row[b..].fill(T::zero());
                let from = (a as isize + shift) as usize;
                row[a..b].copy_from_slice(&src[from..from + (b - a)]);
                // The run wrapped across rows: padding columns got
                // neighbouring cells; zero them.
                for oy in oy0..oy1 {
                    row[oy * ow..oy * ow + lo].fill(T::zero());
                    row[oy * ow + hi..(oy + 1) * ow].fill(T::zero());
                }
            });
            return;
        }
        self.rows(|k, oy, row, (lo, hi, first)| {
            let out = &mut cols[k * ld + oy * ow..][..ow];
            let Some(row) = row else {
                out.fill(T::zero());
                return;
            };
            out[..lo].fill(T::zero());
            out[hi..].fill(T::zero());
            if hi == lo {
                return;
            }
            let start = row + first;
            if sw == 1 {
                out[lo..hi].copy_from_slice(&src[start..start + (hi - lo)]);
            } else {
                for (i, o) in out[lo..hi].iter_mut().enumerate() {
                    *o = src[start + i * sw];
                }
            }
        });
    }

    /// The adjoint of [`Self::im2col`] (same `ld`): adds every column entry
    /// onto its input cell (`dst` holds the group's `[cin_g, H, W]`
    /// gradient). Entries of padding cells in `cols` may be zeroed on the way.
    fn col2im<T: WithDType>(&self, cols: &mut [T], dst: &mut [T], ld: usize) {
        let (l, ow, sw) = (self.l(), self.ow, self.stride.1);
        if self.shifted() {
            self.shifted_taps(|k, (oy0, oy1), (lo, hi), shift| {
                if oy1 <= oy0 || hi <= lo {
                    return;
                }
                let row = &mut cols[k * ld..][..l];
                // Padding cells of the run read nothing: zero them (the
                // column matrix is scratch) so one run can be added.
                for oy in oy0..oy1 {
                    row[oy * ow..oy * ow + lo].fill(T::zero());
                    row[oy * ow + hi..(oy + 1) * ow].fill(T::zero());
                }
                let (a, b) = (oy0 * ow + lo, (oy1 - 1) * ow + hi);
                let to = (a as isize + shift) as usize;
                for (d, v) in dst[to..to + (b - a)].iter_mut().zip(&row[a..b]) {
                    *d += *v;
                }
            });
            return;
        }
        self.rows(|k, oy, row, (lo, hi, first)| {
            let Some(row) = row else { return };
            if hi == lo {
                return;
            }
            let src = &cols[k * ld + oy * ow..][..ow];
            let start = row + first;
            if sw == 1 {
                for (d, v) in dst[start..start + (hi - lo)].iter_mut().zip(&src[lo..hi]) {
                    *d += *v;
                }
            } else {
                for (i, v) in src[lo..hi].iter().enumerate() {
                    dst[start + i * sw] += *v;
                }
            }
        });
    }

    /// Images per product: where the map is small, the images of a task go
    /// into one product over a `[K, b*L]` column matrix, so that no matrix
    /// dimension is the map size (a 1x1 map would make every product a
    /// matrix-vector one, and the weight gradient's inner dimension 1).
    fn batch(&self) -> usize {
        MIN_COLS.div_ceil(self.l().max(1)).clamp(1, self.n.max(1))
    }

    /// Images per task, images per product, and the rayon threads each
    /// product may use (more than one only when there are fewer products
    /// than threads).
    fn split(&self) -> (usize, usize, usize) {
        let threads = rayon::current_num_threads().max(1);
        let b = self.batch();
        let products = self.n.div_ceil(b).max(1);
        let per = products.div_ceil(threads).max(1);
        let tasks = products.div_ceil(per).max(1);
        (per * b, b, (threads / tasks).max(1))
    }

    /// The column matrix of group `gi` of `imgs` consecutive images
    /// (`xs` starts at the first): `[K, imgs*L]`, image `j` in columns
    /// `j*L..`. One direct image is its own input, without a copy.
    fn columns<'a, T: WithDType>(
        &self,
        xs: &'a [T],
        imgs: usize,
        gi: usize,
        cols: &'a mut [T],
    ) -> &'a [T] {
        let (k, l, cin_g) = (self.k(), self.l(), self.cin_g());
        let (xi, plane) = (self.x_image(), self.h * self.w);
        let src = |j: usize| &xs[j * xi + gi * cin_g * plane..][..cin_g * plane];
        if self.direct() && imgs == 1 {
            return src(0);
        }
        let cl = imgs * l;
        for j in 0..imgs {
            if self.direct() {
                for (ci, row) in src(j).chunks(l).enumerate() {
                    cols[ci * cl + j * l..][..l].copy_from_slice(row);
                }
            } else {
                self.im2col(src(j), &mut cols[j * l..], cl);
            }
        }
        &cols[..k * cl]
    }

    /// Elements of the column scratch a task needs for `b` images per product.
    fn cols_len(&self, b: usize) -> usize {
        if self.direct() && b == 1 {
            0
        } else {
            self.k() * b * self.l()
        }
    }
}

/// Columns (images times map cells) a product should have at least before
/// the images of a small map are batched into one.
const MIN_COLS: usize = 256;

/// `y = conv(x, weight) + bias` on contiguous NCHW slices (`y` is overwritten).
///
/// # Panics
/// When a slice's length does not match `g` (a bug in the caller).
pub fn conv_forward<T: WithDType>(
    g: &ConvGeom,
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
) {
    let (k, l, cout_g) = (g.k(), g.l(), g.cout_g());
    let (xi, yi) = (g.x_image(), g.y_image());
    assert_eq!(
        (x.len(), y.len(), weight.len()),
        (g.n * xi, g.n * yi, g.w_len())
    );
    if g.n == 0 || yi == 0 {
        return;
    }
    let (per, b, inner) = g.split();
    y.par_chunks_mut(per * yi)
        .zip(x.par_chunks((per * xi).max(1)))
        .for_each(|(ys, xs)| {
            let imgs = ys.len() / yi;
            let mut cols = Scratch::<T>::any(g.cols_len(b));
            let mut outs = Scratch::<T>::any(if b > 1 { cout_g * b * l } else { 0 });
            for j0 in (0..imgs).step_by(b) {
                let bb = b.min(imgs - j0);
                let cl = bb * l;
                for gi in 0..g.groups {
                    let colsr = g.columns(&xs[j0 * xi..], bb, gi, &mut cols);
                    // One image writes straight into its NCHW output; several
                    // go through `[cout_g, bb*L]` and are scattered after.
                    let out: &mut [T] = if bb == 1 {
                        &mut ys[j0 * yi + gi * cout_g * l..][..cout_g * l]
                    } else {
                        &mut outs[..cout_g * cl]
                    };
                    if let Some(bias) = bias {
                        for (row, &bv) in out.chunks_mut(cl).zip(&bias[gi * cout_g..]) {
                            row.fill(bv);
                        }
                    }
                    matmul(
                        out,
                        Mat::rm(cout_g, cl),
                        &weight[gi * cout_g * k..][..cout_g * k],
                        Mat::rm(cout_g, k),
                        colsr,
                        Mat::rm(k, cl),
                        bias.is_some(),
                        inner,
                    );
                    if bb > 1 {
                        for j in 0..bb {
                            let img = &mut ys[(j0 + j) * yi + gi * cout_g * l..][..cout_g * l];
                            for (co, row) in img.chunks_mut(l).enumerate() {
                                row.copy_from_slice(&outs[co * cl + j * l..][..l]);
                            }
                        }
                    }
                }
            }
        });
}

/// Gradients of [`conv_forward`] from the output gradient `dy`: `dw` and
/// `db` are overwritten with the whole batch's sums; `dx` (overwritten) is
/// computed only when given.
///
/// # Panics
/// When a slice's length does not match `g` (a bug in the caller).
pub fn conv_backward<T: WithDType>(
    g: &ConvGeom,
    x: &[T],
    weight: &[T],
    dy: &[T],
    dx: Option<&mut [T]>,
    dw: &mut [T],
    mut db: Option<&mut [T]>,
) {
    let (xi, yi) = (g.x_image(), g.y_image());
    assert_eq!(
        (x.len(), dy.len(), dw.len()),
        (g.n * xi, g.n * yi, g.w_len())
    );
    let (per, b, inner) = g.split();
    let tasks = g.n.div_ceil(per);
    if let Some(d) = &dx {
        assert_eq!(d.len(), g.n * xi);
    }
    dw.fill(T::zero());
    if let Some(d) = db.as_deref_mut() {
        d.fill(T::zero());
    }
    if tasks <= 1 {
        // One task accumulates straight into the outputs.
        backward_task(g, (x, dy), weight, dx, dw, db, b, inner);
        return;
    }
    let mut dx_chunks: Vec<Option<&mut [T]>> = match dx {
        Some(d) => d.chunks_mut((per * xi).max(1)).map(Some).collect(),
        None => Vec::new(),
    };
    dx_chunks.resize_with(tasks, || None);
    let want_db = db.is_some();
    let partials: Vec<(Scratch<T>, Scratch<T>)> = dx_chunks
        .into_par_iter()
        .enumerate()
        .map(|(t, dxs)| {
            let mut pdw = Scratch::<T>::zeros(dw.len());
            let mut pdb = Scratch::<T>::zeros(if want_db { g.cout } else { 0 });
            let first = t * per;
            let count = per.min(g.n - first);
            backward_task(
                g,
                (
                    &x[first * xi..][..count * xi],
                    &dy[first * yi..][..count * yi],
                ),
                weight,
                dxs,
                &mut pdw,
                want_db.then_some(&mut *pdb),
                b,
                inner,
            );
            (pdw, pdb)
        })
        .collect();
    for (pdw, pdb) in partials {
        add_assign(dw, &pdw);
        if let Some(d) = db.as_deref_mut() {
            add_assign(d, &pdb);
        }
    }
}

/// [`conv_backward`] for consecutive images `xs` with output gradients
/// `dys`, `b` images per product: adds their weight and bias gradients
/// onto `dw` and `db`, and writes their input gradient into `dx`.
#[allow(clippy::too_many_arguments)]
fn backward_task<T: WithDType>(
    g: &ConvGeom,
    (xs, dys): (&[T], &[T]),
    weight: &[T],
    mut dx: Option<&mut [T]>,
    dw: &mut [T],
    mut db: Option<&mut [T]>,
    b: usize,
    inner: usize,
) {
    let (k, l, cin_g, cout_g) = (g.k(), g.l(), g.cin_g(), g.cout_g());
    let (xi, yi, plane) = (g.x_image(), g.y_image(), g.h * g.w);
    let imgs = dys.len() / yi.max(1);
    let mut cols = Scratch::<T>::any(g.cols_len(b));
    let mut dcols = Scratch::<T>::any(if dx.is_some() { g.cols_len(b) } else { 0 });
    let mut dyb = Scratch::<T>::any(if b > 1 { cout_g * b * l } else { 0 });
    // col2im adds into the input gradient; a direct convolution writes it.
    if let Some(d) = dx.as_deref_mut().filter(|_| !g.direct()) {
        d.fill(T::zero());
    }
    for j0 in (0..imgs).step_by(b) {
        let bb = b.min(imgs - j0);
        let cl = bb * l;
        for gi in 0..g.groups {
            let colsr = g.columns(&xs[j0 * xi..], bb, gi, &mut cols);
            // The images' output gradients as one `[cout_g, bb*L]` matrix.
            let dyg: &[T] = if bb == 1 {
                &dys[j0 * yi + gi * cout_g * l..][..cout_g * l]
            } else {
                for j in 0..bb {
                    let img = &dys[(j0 + j) * yi + gi * cout_g * l..][..cout_g * l];
                    for (co, row) in img.chunks(l).enumerate() {
                        dyb[co * cl + j * l..][..l].copy_from_slice(row);
                    }
                }
                &dyb[..cout_g * cl]
            };
            weight_grad(
                &mut dw[gi * cout_g * k..][..cout_g * k],
                dyg,
                colsr,
                (cout_g, k, cl),
                inner,
            );
            if let Some(d) = db.as_deref_mut() {
                for (sum, row) in d[gi * cout_g..].iter_mut().zip(dyg.chunks(cl.max(1))) {
                    *sum += row.iter().fold(T::zero(), |a, &v| a + v);
                }
            }
            let Some(d) = dx.as_deref_mut() else {
                continue;
            };
            let wt = Mat::rm(cout_g, k).t();
            let wg = &weight[gi * cout_g * k..][..cout_g * k];
            // Where image `j`'s gradient for this group starts.
            let at = |j: usize| (j0 + j) * xi + gi * cin_g * plane;
            let len = cin_g * plane;
            // One direct image writes its columns straight into `d`; else
            // the batch's columns go through `dcols`.
            let straight = g.direct() && bb == 1;
            let (dst, n) = if straight {
                (&mut d[at(0)..][..len], l)
            } else {
                (&mut dcols[..k * cl], cl)
            };
            matmul(
                dst,
                Mat::rm(k, n),
                wg,
                wt,
                dyg,
                Mat::rm(cout_g, n),
                false,
                inner,
            );
            if straight {
                continue;
            }
            let dc = &mut dcols[..k * cl];
            for j in 0..bb {
                let dst = &mut d[at(j)..][..len];
                if g.direct() {
                    for (ci, row) in dst.chunks_mut(l).enumerate() {
                        row.copy_from_slice(&dc[ci * cl + j * l..][..l]);
                    }
                } else {
                    g.col2im(&mut dc[j * l..], dst, cl);
                }
            }
        }
    }
}

/// `dw += dy @ cols^T` (`[cout_g, l] @ [l, k]`) on `threads` threads.
fn weight_grad<T: WithDType>(
    dw: &mut [T],
    dy: &[T],
    cols: &[T],
    (cout_g, k, l): (usize, usize, usize),
    threads: usize,
) {
    matmul_nt(dw, dy, cols, (cout_g, k, l), threads);
}

#[cfg(test)]
mod tests;
