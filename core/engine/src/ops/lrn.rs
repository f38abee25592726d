//! Local response normalisation across channels, TensorFlow's convention
//! (`tf.nn.local_response_normalization`, which the reference AlexNet uses):
//! `y_i = x_i / (bias + alpha * sum_{|j-i| <= radius} x_j^2)^beta`, alpha
//! *not* divided by the window size (PyTorch's `LocalResponseNorm` divides).
//!
//! The CPU kernels ([`lrn_forward`], [`lrn_backward`]) work on slices; the
//! model's CPU path calls them directly and [`lrn_cpu`] wraps them in a
//! candle custom op. [`lrn_generic`] builds the same function from
//! differentiable candle ops for every other device.

use candle_core::{DType, Result, Tensor, bail};
use rayon::prelude::*;

use super::custom::{Input, InputGrads, Kernel, Op, Output};
use super::scratch::Scratch;
use super::{Real, ncl, storage_slice, with_slice};

/// The normalisation's constants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lrn {
    /// Half-width of the channel window.
    pub radius: usize,
    /// Scale of the sum of squares.
    pub alpha: f64,
    /// Exponent.
    pub beta: f64,
    /// Additive constant.
    pub bias: f64,
}

impl Lrn {
    /// Channels `[lo, hi)` in the window of channel `ch` of `c`.
    fn window(&self, ch: usize, c: usize) -> (usize, usize) {
        (
            ch.saturating_sub(self.radius),
            (ch + self.radius + 1).min(c),
        )
    }
}

/// Images per parallel task: whole images, at least a few thousand values.
fn images_per_task(n: usize, image: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    n.div_ceil(threads)
        .max(4096usize.div_ceil(image.max(1)))
        .max(1)
}

/// `y = x * scale^-beta` with `scale = bias + alpha * (window sum of x^2)`,
/// over `x` in the `(n, c, l)` layout. `scale` and `pow` (`scale^-beta`) are
/// written too: the backward needs them.
pub fn lrn_forward<T: Real>(
    p: &Lrn,
    dims: (usize, usize, usize),
    x: &[T],
    y: &mut [T],
    scale: &mut [T],
    pow: &mut [T],
) {
    let (n, c, l) = dims;
    let image = c * l;
    assert!(x.len() == n * image && y.len() == x.len());
    assert!(scale.len() == x.len() && pow.len() == x.len());
    if x.is_empty() {
        return;
    }
    let (alpha, bias, neg_beta) = (
        T::from_f64(p.alpha),
        T::from_f64(p.bias),
        T::from_f64(-p.beta),
    );
    let per = images_per_task(n, image) * image;
    y.par_chunks_mut(per)
        .zip(scale.par_chunks_mut(per))
        .zip(pow.par_chunks_mut(per))
        .zip(x.par_chunks(per))
        .for_each(|(((y, s), q), x)| {
            for (((y, s), q), x) in y
                .chunks_mut(image)
                .zip(s.chunks_mut(image))
                .zip(q.chunks_mut(image))
                .zip(x.chunks(image))
            {
                // Squares first (into `q`, overwritten below), then each
                // channel's window sum plane by plane.
                for (sq, &v) in q.iter_mut().zip(x) {
                    *sq = v * v;
                }
                for ch in 0..c {
                    let (lo, hi) = p.window(ch, c);
                    let out = &mut s[ch * l..][..l];
                    out.fill(T::zero());
                    for j in lo..hi {
                        for (o, &v) in out.iter_mut().zip(&q[j * l..][..l]) {
                            *o += v;
                        }
                    }
                }
                for s in s.iter_mut() {
                    *s = bias + alpha * *s;
                }
                neg_pow(s, q, p.beta, neg_beta);
                for ((y, q), &v) in y.iter_mut().zip(q.iter()).zip(x) {
                    *y = v * *q;
                }
            }
        });
}

/// `q = s^-beta`, element-wise. The common exponents avoid `powf` (an
/// exp and a log per value, which would cost as much as AlexNet's
/// convolutions): 0.75 (AlexNet) is `1/sqrt(s*sqrt(s))`.
fn neg_pow<T: Real>(s: &[T], q: &mut [T], beta: f64, neg_beta: T) {
    let one = T::one();
    let pairs = q.iter_mut().zip(s);
    if beta == 0.75 {
        pairs.for_each(|(q, &s)| *q = one / (s * s.sqrt()).sqrt());
    } else if beta == 0.5 {
        pairs.for_each(|(q, &s)| *q = one / s.sqrt());
    } else if beta == 1.0 {
        pairs.for_each(|(q, &s)| *q = one / s);
    } else {
        pairs.for_each(|(q, &s)| *q = s.powf(neg_beta));
    }
}

/// Gradient of [`lrn_forward`] (given its `scale` and `pow`); `dx` is
/// overwritten with
/// `dx_k = dy_k pow_k - 2 alpha beta x_k sum_{|i-k| <= radius} dy_i x_i pow_i / scale_i`.
pub fn lrn_backward<T: Real>(
    p: &Lrn,
    dims: (usize, usize, usize),
    x: &[T],
    scale: &[T],
    pow: &[T],
    dy: &[T],
    dx: &mut [T],
) {
    let (n, c, l) = dims;
    let image = c * l;
    assert!(x.len() == n * image && [scale.len(), pow.len(), dy.len(), dx.len()] == [x.len(); 4]);
    if x.is_empty() {
        return;
    }
    let k = T::from_f64(2.0 * p.alpha * p.beta);
    let per = images_per_task(n, image) * image;
    dx.par_chunks_mut(per).enumerate().for_each(|(t, dxs)| {
        let mut term = Scratch::<T>::any(image);
        for (i, dxi) in dxs.chunks_mut(image).enumerate() {
            let at = t * per + i * image;
            let (x, s, q, g) = (
                &x[at..][..image],
                &scale[at..][..image],
                &pow[at..][..image],
                &dy[at..][..image],
            );
            for ((((o, &g), &v), &q), &s) in term.iter_mut().zip(g).zip(x).zip(q).zip(s) {
                *o = g * v * q / s;
            }
            for ch in 0..c {
                let (lo, hi) = p.window(ch, c);
                let out = &mut dxi[ch * l..][..l];
                out.fill(T::zero());
                for j in lo..hi {
                    for (o, &v) in out.iter_mut().zip(&term[j * l..][..l]) {
                        *o += v;
                    }
                }
                let base = ch * l;
                for (m, o) in out.iter_mut().enumerate() {
                    let at = base + m;
                    *o = g[at] * q[at] - k * x[at] * *o;
                }
            }
        }
    });
}

/// LRN over axis 1 of `[N, C, H, W]` or `[N, C]`: the CPU kernels on the
/// CPU, candle ops elsewhere.
pub fn lrn(x: &Tensor, p: &Lrn) -> Result<Tensor> {
    if x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) {
        lrn_cpu(x, p)
    } else {
        lrn_generic(x, p)
    }
}

fn check_rank(x: &Tensor) -> Result<()> {
    if x.rank() < 2 {
        bail!(
            "local response normalisation needs a channel axis, got shape {:?}",
            x.dims()
        );
    }
    Ok(())
}

/// The CPU kernels as a candle custom op (f32 and f64).
pub fn lrn_cpu(x: &Tensor, p: &Lrn) -> Result<Tensor> {
    check_rank(x)?;
    x.contiguous()?.apply_op1(Op(LrnOp(*p)))
}

struct LrnOp(Lrn);

impl Kernel<1> for LrnOp {
    const NAME: &'static str = "acbench-lrn";
    const WHAT: &'static str = "local response normalisation";

    fn forward<T: Real>(&self, [(s, l)]: [Input<'_>; 1]) -> Output {
        let x = storage_slice::<T>(s, l)?;
        let mut y = vec![T::zero(); x.len()];
        let (mut scale, mut pow) = (Scratch::<T>::any(x.len()), Scratch::<T>::any(x.len()));
        lrn_forward(&self.0, ncl(l.dims()), x, &mut y, &mut scale, &mut pow);
        Ok((T::to_cpu_storage_owned(y), l.shape().clone()))
    }

    /// The backward recomputes `scale` and `pow` from `x` (custom ops keep
    /// no state between forward and backward).
    fn backward<T: Real>(&self, [x]: [&Tensor; 1], dy: &Tensor) -> InputGrads<1> {
        let dims = ncl(x.dims());
        let len = x.elem_count();
        let mut dx = vec![T::zero(); len];
        with_slice::<T, _>(x, |xv| {
            with_slice::<T, _>(dy, |g| {
                let mut y = Scratch::<T>::any(len);
                let (mut scale, mut pow) = (Scratch::<T>::any(len), Scratch::<T>::any(len));
                lrn_forward(&self.0, dims, xv, &mut y, &mut scale, &mut pow);
                lrn_backward(&self.0, dims, xv, &scale, &pow, g, &mut dx);
            })
        })??;
        Ok([Some(Tensor::from_vec(dx, x.shape(), x.device())?)])
    }
}

/// LRN from differentiable candle ops, for any device (autograd gives the
/// backward).
pub fn lrn_generic(x: &Tensor, p: &Lrn) -> Result<Tensor> {
    check_rank(x)?;
    let c = x.dim(1)?;
    let sq = x.sqr()?.pad_with_zeros(1, p.radius, p.radius)?;
    let mut sum = sq.narrow(1, 0, c)?;
    for offset in 1..=2 * p.radius {
        sum = (sum + sq.narrow(1, offset, c)?)?;
    }
    x * sum.affine(p.alpha, p.bias)?.powf(-p.beta)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck;
    use candle_core::Device;

    fn lrn_of(radius: usize, alpha: f64, beta: f64, bias: f64) -> Lrn {
        Lrn {
            radius,
            alpha,
            beta,
            bias,
        }
    }

    type LrnFn = fn(&Tensor, &Lrn) -> Result<Tensor>;
    const PATHS: [LrnFn; 2] = [lrn_cpu, lrn_generic];

    #[test]
    fn forward_by_hand() -> Result<()> {
        for f in PATHS {
            // Channels 1, 2, 3 at one pixel, radius 1, alpha 1, beta 1, bias 1:
            // y0 = 1/(1+1+4), y1 = 2/(1+1+4+9), y2 = 3/(1+4+9).
            let x = Tensor::new(&[1f64, 2., 3.], &Device::Cpu)?.reshape((1, 3, 1, 1))?;
            let y = f(&x, &lrn_of(1, 1.0, 1.0, 1.0))?
                .flatten_all()?
                .to_vec1::<f64>()?;
            let want = [1.0 / 6.0, 2.0 / 15.0, 3.0 / 14.0];
            for (a, b) in y.iter().zip(want) {
                assert!((a - b).abs() < 1e-12, "{y:?}");
            }
            // TF defaults (radius 5, bias 1, alpha 1, beta 0.5) on a vector.
            let v = Tensor::new(&[[3f64, 4.]], &Device::Cpu)?;
            let y = f(&v, &lrn_of(5, 1.0, 0.5, 1.0))?
                .flatten_all()?
                .to_vec1::<f64>()?;
            assert!(
                (y[0] - 3.0 / 26f64.sqrt()).abs() < 1e-12
                    && (y[1] - 4.0 / 26f64.sqrt()).abs() < 1e-12
            );
        }
        Ok(())
    }

    #[test]
    fn gradient() {
        // AlexNet's reference setting: radius 2, alpha 1e-4 (scaled up here so
        // the normalisation matters), beta 0.75, bias 1; and a radius wider
        // than the channels.
        let x = gradcheck::rand(&[2, 5, 2, 3], -2.0, 2.0, 3);
        for f in PATHS {
            gradcheck::check(
                |a| f(&a[0], &lrn_of(2, 0.1, 0.75, 1.0)),
                std::slice::from_ref(&x),
                1e-6,
            );
            gradcheck::check(
                |a| f(&a[0], &lrn_of(1, 0.2, 0.6, 1.5)),
                std::slice::from_ref(&x),
                1e-6,
            );
            gradcheck::check(
                |a| f(&a[0], &lrn_of(7, 0.3, 0.5, 2.0)),
                std::slice::from_ref(&x),
                1e-6,
            );
        }
    }
}
