//! Convolution from candle's own ops, for every device (see the parent
//! module's docs for what it fixes in candle's `conv2d`).

use super::*;

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
