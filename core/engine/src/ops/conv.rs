//! 2-D convolution as the IR describes it.
//!
//! Two implementations behind [`conv2d`]:
//! - [`conv2d_cpu`]: an im2col custom op (its backward is col2im) and one
//!   matrix product per group, so the backward is two large GEMMs plus a
//!   scatter. candle 0.11's own CPU conv backward goes through a direct
//!   `conv_transpose2d` loop that made a 3x3 convolution's backward ~12x
//!   slower than its forward (204 ms vs 17 ms for 64x32x14x14 -> 64 channels).
//!   Padding, per-axis stride and dilation are handled inside im2col.
//! - [`conv2d_generic`]: candle's `conv2d`, for every device.
//!
//! candle's `conv2d` takes one symmetric padding, one stride and one
//! dilation for both axes, and its backward derives the input gradient's
//! output padding from the height alone (so a width whose stride remainder
//! differs from the height's breaks the backward). This wrapper:
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
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, WithDType, bail};
use rayon::prelude::*;

use super::strided_index;

/// `conv(x, weight) + bias` for `x: [N, Cin, H, W]`, `weight: [Cout, Cin/groups, kh, kw]`, `bias: [Cout]`:
/// the im2col kernel on the CPU, candle's convolution elsewhere.
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

/// The CPU path: per group, `cols = im2col(x)` (`[N*L, K]` with `L = oh*ow`,
/// `K = cin_g*kh*kw`), `y = cols @ W^T`, then back to `[N, Cout, oh, ow]`.
pub fn conv2d_cpu(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    c: &Conv2d,
) -> Result<Tensor> {
    let (n, cin, h, w) = x.dims4()?;
    let (cout, cin_g, kh, kw) = weight.dims4()?;
    let g = c.groups;
    if g == 0 || cin != cin_g * g || cout % g != 0 {
        bail!(
            "convolution: {cin} input channels, kernel {:?}, {g} groups do not fit",
            weight.dims()
        );
    }
    let (oh, ow) = out_size(h, w, c)?;
    let cout_g = cout / g;
    let geom = Im2ColGeom {
        c: cin_g,
        h,
        w,
        oh,
        ow,
        conv: c.clone(),
    };
    let mut outs = Vec::with_capacity(g);
    for gi in 0..g {
        let xg = if g == 1 {
            x.clone()
        } else {
            x.narrow(1, gi * cin_g, cin_g)?
        };
        let wg = if g == 1 {
            weight.clone()
        } else {
            weight.narrow(0, gi * cout_g, cout_g)?
        };
        let cols = xg.contiguous()?.apply_op1(Im2Col(geom.clone()))?;
        let y = cols.matmul(&wg.reshape((cout_g, cin_g * kh * kw))?.t()?)?;
        outs.push(y.reshape((n, oh * ow, cout_g))?.transpose(1, 2)?);
    }
    let y = if g == 1 {
        outs.swap_remove(0)
    } else {
        Tensor::cat(&outs, 1)?
    };
    add_bias(y.contiguous()?.reshape((n, cout, oh, ow))?, bias)
}

#[derive(Debug, Clone)]
struct Im2ColGeom {
    /// Channels of the (group's) input.
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    conv: Conv2d,
}

impl Im2ColGeom {
    fn k(&self) -> usize {
        self.c * self.conv.kernel.0 * self.conv.kernel.1
    }

    /// Calls `f(col, input_index)` for every in-bounds tap of output cell `(oy, ox)`.
    #[inline]
    fn taps(&self, oy: usize, ox: usize, mut f: impl FnMut(usize, usize)) {
        let (kh, kw) = self.conv.kernel;
        let (sh, sw) = self.conv.stride;
        let (dh, dw) = self.conv.dilation;
        let (pt, pl) = (
            self.conv.padding.top as isize,
            self.conv.padding.left as isize,
        );
        for ky in 0..kh {
            let y = (oy * sh + ky * dh) as isize - pt;
            if y < 0 || y >= self.h as isize {
                continue;
            }
            for kx in 0..kw {
                let x = (ox * sw + kx * dw) as isize - pl;
                if x < 0 || x >= self.w as isize {
                    continue;
                }
                let plane_off = y as usize * self.w + x as usize;
                for ci in 0..self.c {
                    f(
                        ci * kh * kw + ky * kw + kx,
                        ci * self.h * self.w + plane_off,
                    );
                }
            }
        }
    }
}

/// `[N, C, H, W] -> [N*oh*ow, C*kh*kw]`, zeros for padded taps.
struct Im2Col(Im2ColGeom);

impl Im2Col {
    fn run<T: WithDType>(&self, src: &[T], l: &Layout) -> Result<Vec<T>> {
        let g = &self.0;
        let n = l.shape().dims4()?.0;
        let src = match l.contiguous_offsets() {
            Some((a, b)) => &src[a..b],
            None => bail!("im2col needs a contiguous input"),
        };
        let (k, lsz, plane) = (g.k(), g.oh * g.ow, g.c * g.h * g.w);
        let mut out = vec![T::zero(); n * lsz * k];
        out.par_chunks_mut((lsz * k).max(1))
            .zip(src.par_chunks(plane.max(1)))
            .for_each(|(o, s)| {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let row = &mut o[(oy * g.ow + ox) * k..][..k];
                        g.taps(oy, ox, |col, idx| row[col] = s[idx]);
                    }
                }
            });
        Ok(out)
    }
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "acbench-im2col"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let n = l.shape().dims4()?.0;
        let shape = Shape::from((n * self.0.oh * self.0.ow, self.0.k()));
        match s {
            CpuStorage::F32(v) => Ok((CpuStorage::F32(self.run(v, l)?), shape)),
            CpuStorage::F64(v) => Ok((CpuStorage::F64(self.run(v, l)?), shape)),
            _ => bail!("convolution supports f32 and f64 tensors only"),
        }
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let n = arg.dim(0)?;
        grad.contiguous()?
            .apply_op1_no_bwd(&Col2Im(self.0.clone(), n))
            .map(Some)
    }
}

/// The adjoint of [`Im2Col`]: sums every column entry back onto its input cell.
struct Col2Im(Im2ColGeom, usize);

impl Col2Im {
    fn run<T: WithDType>(&self, src: &[T], l: &Layout) -> Result<Vec<T>> {
        let (g, n) = (&self.0, self.1);
        let src = match l.contiguous_offsets() {
            Some((a, b)) => &src[a..b],
            None => bail!("col2im needs a contiguous input"),
        };
        let (k, lsz, plane) = (g.k(), g.oh * g.ow, g.c * g.h * g.w);
        let mut out = vec![T::zero(); n * plane];
        out.par_chunks_mut(plane.max(1))
            .zip(src.par_chunks((lsz * k).max(1)))
            .for_each(|(o, s)| {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let row = &s[(oy * g.ow + ox) * k..][..k];
                        g.taps(oy, ox, |col, idx| o[idx] += row[col]);
                    }
                }
            });
        Ok(out)
    }
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "acbench-col2im"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let shape = Shape::from((self.1, g.c, g.h, g.w));
        match s {
            CpuStorage::F32(v) => Ok((CpuStorage::F32(self.run(v, l)?), shape)),
            CpuStorage::F64(v) => Ok((CpuStorage::F64(self.run(v, l)?), shape)),
            _ => bail!("convolution supports f32 and f64 tensors only"),
        }
    }
}

/// The generic path: candle's `conv2d`, made exact for every geometry (see the module docs).
pub fn conv2d_generic(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    c: &Conv2d,
) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let (oh, ow) = out_size(h, w, c)?;
    let (kh, kw) = c.kernel;
    let (sh, sw) = c.stride;
    let (dh, dw) = c.dilation;
    let p = c.padding;
    let (hp, wp) = (h + p.top + p.bottom, w + p.left + p.right);
    let (eh, ew) = (dh * (kh - 1) + 1, dw * (kw - 1) + 1);
    let symmetric_pad = p.top == p.bottom && p.left == p.right && p.top == p.left;
    let same_remainder = (hp - eh) % sh == (wp - ew) % sw;
    if symmetric_pad && sh == sw && dh == dw && same_remainder {
        // candle's own padding and backward are exact here: no copy needed.
        let y = x.conv2d(weight, p.top, sh, dh, c.groups)?;
        return add_bias(y, bias);
    }
    let mut xp = x
        .pad_with_zeros(2, p.top, p.bottom)?
        .pad_with_zeros(3, p.left, p.right)?;
    let (used_h, used_w) = (eh + sh * (oh - 1), ew + sw * (ow - 1));
    if used_h < hp {
        xp = xp.narrow(2, 0, used_h)?;
    }
    if used_w < wp {
        xp = xp.narrow(3, 0, used_w)?;
    }
    let (kernel, dilation) = if dh == dw {
        (weight.clone(), dh)
    } else {
        (dilate_kernel(weight, dh, dw)?, 1)
    };
    let y = if sh == sw {
        xp.conv2d(&kernel, 0, sh, dilation, c.groups)?
    } else {
        let dev = x.device();
        xp.conv2d(&kernel, 0, 1, dilation, c.groups)?
            .index_select(&strided_index(0, sh, oh, dev)?, 2)?
            .index_select(&strided_index(0, sw, ow, dev)?, 3)?
    };
    add_bias(y, bias)
}

fn add_bias(y: Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?),
        None => Ok(y),
    }
}

/// Spreads a `[O, I, kh, kw]` kernel to `[O, I, dh*(kh-1)+1, dw*(kw-1)+1]`
/// with zeros between taps: `E_h K E_w^T` with 0/1 matrices, which keeps the
/// kernel's gradient flowing on every device.
fn dilate_kernel(k: &Tensor, dh: usize, dw: usize) -> Result<Tensor> {
    let (_, _, kh, kw) = k.dims4()?;
    let spread = |n: usize, d: usize| -> Result<Tensor> {
        let e = d * (n - 1) + 1;
        let mut m = vec![0f32; e * n];
        for i in 0..n {
            m[i * d * n + i] = 1.0;
        }
        Tensor::from_vec(m, (e, n), k.device())?.to_dtype(k.dtype())
    };
    let (eh, ew) = (spread(kh, dh)?, spread(kw, dw)?);
    eh.broadcast_matmul(k)?.broadcast_matmul(&ew.t()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck;
    use acbench_dsl::ir::Padding;
    use candle_core::Device;

    fn conv(
        cin: usize,
        cout: usize,
        k: (usize, usize),
        s: (usize, usize),
        pad: [usize; 4],
        d: (usize, usize),
        groups: usize,
    ) -> Conv2d {
        Conv2d {
            in_channels: cin,
            out_channels: cout,
            kernel: k,
            stride: s,
            padding: Padding {
                top: pad[0],
                bottom: pad[1],
                left: pad[2],
                right: pad[3],
            },
            dilation: d,
            groups,
            bias: true,
        }
    }

    #[test]
    fn forward_by_hand() -> Result<()> {
        // 1 channel 3x3 input, 2x2 kernel of ones, stride 2, padding bottom/right 1 (TF SAME).
        let x = Tensor::from_vec(
            (1..=9).map(f64::from).collect::<Vec<_>>(),
            (1, 1, 3, 3),
            &Device::Cpu,
        )?;
        let w = Tensor::ones((1, 1, 2, 2), candle_core::DType::F64, &Device::Cpu)?;
        let b = Tensor::new(&[0.5f64], &Device::Cpu)?;
        for f in [conv2d_cpu, conv2d_generic] {
            let same = conv(1, 1, (2, 2), (2, 2), [0, 1, 0, 1], (1, 1), 1);
            let y = f(&x, &w, Some(&b), &same)?;
            assert_eq!(y.flatten_all()?.to_vec1::<f64>()?, [12.5, 9.5, 15.5, 9.5]);
            // Per-axis stride (1, 2) and dilation (2, 1): rows 0 and 2, columns
            // (0, 1) and (2, pad): 1+2+7+8 = 18, 3+0+9+0 = 12.
            let odd = conv(1, 1, (2, 2), (1, 2), [0, 0, 0, 1], (2, 1), 1);
            let y = f(&x, &w, None, &odd)?;
            assert_eq!(y.flatten_all()?.to_vec1::<f64>()?, [18.0, 12.0]);
        }
        Ok(())
    }

    #[test]
    fn gradients_with_stride_padding_dilation_groups() {
        let cases = [
            // candle's own padding (the fast path): remainders 0/0 and 1/1,
            // groups, dilation.
            (
                conv(2, 2, (3, 3), (2, 2), [1, 1, 1, 1], (1, 1), 1),
                [1, 2, 5, 5],
            ),
            (
                conv(2, 2, (3, 3), (2, 2), [1, 1, 1, 1], (1, 1), 1),
                [1, 2, 6, 6],
            ),
            (
                conv(4, 4, (3, 3), (1, 1), [1, 1, 1, 1], (1, 1), 2),
                [1, 4, 4, 5],
            ),
            (
                conv(2, 2, (3, 3), (1, 1), [2, 2, 2, 2], (2, 2), 1),
                [1, 2, 5, 6],
            ),
            // Odd width with stride 2: candle alone gets the backward shape wrong here.
            (
                conv(2, 2, (3, 3), (2, 2), [1, 1, 1, 1], (1, 1), 1),
                [1, 2, 5, 6],
            ),
            (
                conv(2, 4, (3, 3), (2, 2), [0, 1, 0, 1], (1, 1), 2),
                [2, 2, 6, 5],
            ),
            (
                conv(4, 2, (2, 2), (1, 1), [1, 0, 0, 1], (2, 2), 2),
                [1, 4, 5, 5],
            ),
            (
                conv(2, 2, (3, 2), (2, 1), [1, 1, 0, 0], (1, 2), 1),
                [1, 2, 6, 5],
            ),
            (
                conv(3, 3, (1, 1), (1, 1), [0, 0, 0, 0], (1, 1), 3),
                [2, 3, 2, 2],
            ),
        ];
        for (i, (c, shape)) in cases.iter().enumerate() {
            let x = gradcheck::rand(shape, -1.0, 1.0, i as u64);
            let w = gradcheck::rand(
                &[
                    c.out_channels,
                    c.in_channels / c.groups,
                    c.kernel.0,
                    c.kernel.1,
                ],
                -1.0,
                1.0,
                10 + i as u64,
            );
            let b = gradcheck::rand(&[c.out_channels], -1.0, 1.0, 20 + i as u64);
            for f in [conv2d_cpu, conv2d_generic] {
                gradcheck::check(
                    |a| f(&a[0], &a[1], Some(&a[2]), c),
                    &[x.clone(), w.clone(), b.clone()],
                    1e-6,
                );
            }
        }
    }
}
