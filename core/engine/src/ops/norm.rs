//! Batch normalisation, as functions of tensors (the model owns the
//! parameters and running statistics).
//!
//! Statistics are taken over every axis except the channel axis 1: N, H, W
//! for images, N for vectors. Normalisation uses the biased batch variance
//! (as PyTorch and TensorFlow do); the running variance is updated with the
//! unbiased one (as they do too).
//!
//! The CPU kernels work on slices in the `(N, C, L)` layout ([`stats`],
//! [`normalise`], [`backward`], [`update_running`]): the model's CPU path
//! calls them on its buffers, and [`batch_norm_train`] / [`batch_norm_eval`]
//! wrap them in a candle custom op on the CPU. Other devices get the same
//! math from differentiable candle ops ([`batch_norm_train_generic`],
//! [`batch_norm_eval_generic`]).

use candle_core::{D, DType, Result, Tensor, Var, bail};
use rayon::prelude::*;

use super::custom::{Input, InputGrads, Kernel, Op, Output};
use super::slices::{lane_dot, lane_sum, par_planes};
use super::{Real, ncl, storage_slice, with_slice};

/// Per-channel mean and biased variance of `x` in the `(n, c, l)` layout.
/// Each plane is summed in `T` with vector lanes, planes are added in f64,
/// and the variance is taken around the mean (two passes, no cancellation).
pub fn stats<T: Real>(x: &[T], (n, c, l): (usize, usize, usize)) -> (Vec<T>, Vec<T>) {
    let m = (n * l).max(1) as f64;
    let per_channel: Vec<(T, T)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let planes = || (0..n).map(|i| &x[(i * c + ch) * l..][..l]);
            let s: f64 = planes().map(|p| lane_sum(p, |v| v).to_f64()).sum();
            let mean = s / m;
            let mt = T::from_f64(mean);
            let s2: f64 = planes()
                .map(|p| lane_sum(p, |v| (v - mt) * (v - mt)).to_f64())
                .sum();
            (T::from_f64(mean), T::from_f64(s2 / m))
        })
        .collect();
    per_channel.into_iter().unzip()
}

/// `1 / sqrt(var + eps)` per channel (in f64).
pub fn inv_std<T: Real>(var: &[T], eps: f64) -> Vec<T> {
    var.iter()
        .map(|v| T::from_f64(1.0 / (v.to_f64() + eps).sqrt()))
        .collect()
}

/// `y = (x - mean) * inv_std * gamma + beta` per channel, as one scale and
/// shift per channel; `y` is overwritten.
#[allow(clippy::too_many_arguments)]
pub fn normalise<T: Real>(
    x: &[T],
    (_, c, l): (usize, usize, usize),
    gamma: &[T],
    beta: &[T],
    mean: &[T],
    inv_std: &[T],
    y: &mut [T],
) {
    par_planes(y, l, |p, out| {
        let ch = p % c;
        let scale = gamma[ch] * inv_std[ch];
        let shift = beta[ch] - mean[ch] * scale;
        for (o, &v) in out.iter_mut().zip(&x[p * l..][..l]) {
            *o = v * scale + shift;
        }
    });
}

/// Gradients of [`normalise`] from `dy`: `dx` (overwritten), and the
/// per-channel `dgamma = sum(dy * xhat)`, `dbeta = sum(dy)` (returned).
/// With `batch` statistics (training), the mean and variance depend on `x`:
/// `dx = gamma * inv_std / M * (M * dy - sum(dy) - xhat * sum(dy * xhat))`;
/// with fixed (running) statistics `dx = gamma * inv_std * dy`.
#[allow(clippy::too_many_arguments)]
pub fn backward<T: Real>(
    x: &[T],
    dims: (usize, usize, usize),
    gamma: &[T],
    mean: &[T],
    inv_std: &[T],
    dy: &[T],
    batch: bool,
    dx: &mut [T],
) -> (Vec<T>, Vec<T>) {
    let (n, c, l) = dims;
    let m = T::from_f64((n * l).max(1) as f64);
    let sums: Vec<(T, T)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mut sd, mut sdx) = (0f64, 0f64);
            let (mu, is) = (mean[ch], inv_std[ch]);
            for i in 0..n {
                let at = (i * c + ch) * l;
                let (g, v) = (&dy[at..at + l], &x[at..at + l]);
                sd += lane_sum(g, |g| g).to_f64();
                sdx += lane_dot(g, v, |g, v| g * ((v - mu) * is)).to_f64();
            }
            (T::from_f64(sd), T::from_f64(sdx))
        })
        .collect();
    par_planes(dx, l, |p, out| {
        let ch = p % c;
        let (sd, sdx) = sums[ch];
        let at = p * l;
        let (g, v) = (&dy[at..at + l], &x[at..at + l]);
        if batch {
            let k = gamma[ch] * inv_std[ch] / m;
            for ((o, &g), &v) in out.iter_mut().zip(g).zip(v) {
                let xhat = (v - mean[ch]) * inv_std[ch];
                *o = k * (m * g - sd - xhat * sdx);
            }
        } else {
            let k = gamma[ch] * inv_std[ch];
            for (o, &g) in out.iter_mut().zip(g) {
                *o = k * g;
            }
        }
    });
    sums.into_iter().map(|(sd, sdx)| (sdx, sd)).unzip()
}

/// The running statistics' update after a training batch of `count`
/// values per channel: `running = momentum * running + (1 - momentum) *
/// batch`, with the unbiased variance (in f64).
pub fn update_running<T: Real>(
    running_mean: &mut [T],
    running_var: &mut [T],
    mean: &[T],
    var: &[T],
    count: usize,
    momentum: f64,
) {
    let unbias = if count > 1 {
        count as f64 / (count - 1) as f64
    } else {
        1.0
    };
    for (r, b) in running_mean.iter_mut().zip(mean) {
        *r = T::from_f64(momentum * r.to_f64() + (1.0 - momentum) * b.to_f64());
    }
    for (r, b) in running_var.iter_mut().zip(var) {
        *r = T::from_f64(momentum * r.to_f64() + (1.0 - momentum) * unbias * b.to_f64());
    }
}

/// [`update_running`] on the model's running-statistics variables (any
/// device and float dtype: `C` values make the round trip through f64).
pub fn update_running_vars(
    running_mean: &Var,
    running_var: &Var,
    mean: &Tensor,
    var: &Tensor,
    count: usize,
    momentum: f64,
) -> Result<()> {
    let read = |t: &Tensor| -> Result<Vec<f64>> { t.to_dtype(DType::F64)?.to_vec1() };
    let (mut rm, mut rv) = (read(running_mean)?, read(running_var)?);
    update_running(&mut rm, &mut rv, &read(mean)?, &read(var)?, count, momentum);
    let back = |v: Vec<f64>, like: &Var| -> Result<Tensor> {
        Tensor::from_vec(v, like.shape(), like.device())?.to_dtype(like.dtype())
    };
    running_mean.set(&back(rm, running_mean)?)?;
    running_var.set(&back(rv, running_var)?)
}

fn check_rank(x: &Tensor) -> Result<()> {
    if x.rank() < 2 {
        bail!(
            "batch norm needs a [N, C, H, W] or [N, C] tensor, got {:?}",
            x.dims()
        );
    }
    Ok(())
}

fn is_cpu_float(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// Training mode: normalises with the batch statistics and returns
/// `(y, batch_mean, batch_biased_var)` (the statistics for the running
/// update). The CPU kernels on the CPU, candle ops elsewhere.
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    check_rank(x)?;
    if !is_cpu_float(x) {
        return batch_norm_train_generic(x, gamma, beta, eps);
    }
    let x = x.contiguous()?;
    let dims = ncl(x.dims());
    let (mean, var) = match x.dtype() {
        DType::F32 => typed_stats::<f32>(&x, dims)?,
        _ => typed_stats::<f64>(&x, dims)?,
    };
    let inv = typed_inv_std(&var, eps)?;
    let op = BatchNormOp {
        mean: mean.clone(),
        inv_std: inv,
        batch: true,
    };
    let y = x.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, Op(op))?;
    Ok((y, mean, var))
}

/// Evaluation mode: normalises with the given (running) statistics.
pub fn batch_norm_eval(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    check_rank(x)?;
    if !is_cpu_float(x) {
        return batch_norm_eval_generic(x, gamma, beta, mean, var, eps);
    }
    let op = BatchNormOp {
        mean: mean.detach().to_dtype(x.dtype())?,
        inv_std: typed_inv_std(&var.detach().to_dtype(x.dtype())?, eps)?,
        batch: false,
    };
    x.contiguous()?
        .apply_op3(&gamma.contiguous()?, &beta.contiguous()?, Op(op))
}

fn typed_stats<T: Real>(x: &Tensor, dims: (usize, usize, usize)) -> Result<(Tensor, Tensor)> {
    let (mean, var) = with_slice::<T, _>(x, |v| stats(v, dims))?;
    let c = dims.1;
    Ok((
        Tensor::from_vec(mean, c, x.device())?,
        Tensor::from_vec(var, c, x.device())?,
    ))
}

fn typed_inv_std(var: &Tensor, eps: f64) -> Result<Tensor> {
    match var.dtype() {
        DType::F32 => Tensor::from_vec(
            with_slice::<f32, _>(var, |v| inv_std(v, eps))?,
            var.dims(),
            var.device(),
        ),
        _ => Tensor::from_vec(
            with_slice::<f64, _>(var, |v| inv_std(v, eps))?,
            var.dims(),
            var.device(),
        ),
    }
}

/// `(x, gamma, beta) -> y` with the statistics fixed in the op: the batch's
/// (whose dependence on `x` the backward includes) or the running ones.
struct BatchNormOp {
    mean: Tensor,
    inv_std: Tensor,
    batch: bool,
}

impl Kernel<3> for BatchNormOp {
    const NAME: &'static str = "acbench-batch-norm";
    const WHAT: &'static str = "batch norm";

    fn forward<T: Real>(&self, [(xs, xl), (gs, gl), (bs, bl)]: [Input<'_>; 3]) -> Output {
        let x = storage_slice::<T>(xs, xl)?;
        let (gamma, beta) = (storage_slice::<T>(gs, gl)?, storage_slice::<T>(bs, bl)?);
        let dims = ncl(xl.dims());
        if gamma.len() != dims.1 || beta.len() != dims.1 {
            bail!(
                "batch norm: {} channels, {} scales and {} shifts",
                dims.1,
                gamma.len(),
                beta.len()
            );
        }
        let mut y = vec![T::zero(); x.len()];
        let (mean, is) = (small::<T>(&self.mean)?, small::<T>(&self.inv_std)?);
        normalise(x, dims, gamma, beta, &mean, &is, &mut y);
        Ok((T::to_cpu_storage_owned(y), xl.shape().clone()))
    }

    fn backward<T: Real>(&self, [x, gamma, _]: [&Tensor; 3], dy: &Tensor) -> InputGrads<3> {
        let dims = ncl(x.dims());
        let mut dx = vec![T::zero(); x.elem_count()];
        let (g, mean, is) = (
            small::<T>(gamma)?,
            small::<T>(&self.mean)?,
            small::<T>(&self.inv_std)?,
        );
        let (dgamma, dbeta) = with_slice::<T, _>(x, |xv| {
            with_slice::<T, _>(dy, |d| {
                backward(xv, dims, &g, &mean, &is, d, self.batch, &mut dx)
            })
        })??;
        let dev = x.device();
        Ok([
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dgamma, dims.1, dev)?),
            Some(Tensor::from_vec(dbeta, dims.1, dev)?),
        ])
    }
}

/// The values of a per-channel tensor (a few hundred at most).
fn small<T: Real>(t: &Tensor) -> Result<Vec<T>> {
    with_slice::<T, _>(t, <[T]>::to_vec)
}

/// Shape `[1, C, 1, ...]` for per-channel values.
fn channel_shape(x: &Tensor) -> Result<Vec<usize>> {
    check_rank(x)?;
    Ok((0..x.rank())
        .map(|d| if d == 1 { x.dims()[1] } else { 1 })
        .collect())
}

/// Mean and biased variance of `x` per channel, each of shape `[C]`, from
/// candle ops (any device).
pub fn batch_stats_generic(x: &Tensor) -> Result<(Tensor, Tensor)> {
    let c = x.dim(1)?;
    // Channels first, everything else flattened: one reduction over the last axis.
    let per_channel = x.transpose(0, 1)?.contiguous()?.reshape((c, ()))?;
    let mean = per_channel.mean_keepdim(D::Minus1)?;
    let var = per_channel.broadcast_sub(&mean)?.sqr()?.mean(D::Minus1)?;
    Ok((mean.squeeze(D::Minus1)?, var))
}

/// [`batch_norm_train`] from differentiable candle ops, for any device.
pub fn batch_norm_train_generic(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (mean, var) = batch_stats_generic(x)?;
    let y = normalise_generic(x, &mean, &var, gamma, beta, eps)?;
    Ok((y, mean, var))
}

/// [`batch_norm_eval`] from differentiable candle ops, for any device.
pub fn batch_norm_eval_generic(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    normalise_generic(x, mean, var, gamma, beta, eps)
}

fn normalise_generic(
    x: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let shape = channel_shape(x)?;
    // One per-channel scale and shift, then a single pass over x.
    let scale = gamma.mul(&(var + eps)?.sqrt()?.recip()?)?;
    let shift = (beta - mean.mul(&scale)?)?;
    x.broadcast_mul(&scale.reshape(shape.as_slice())?)?
        .broadcast_add(&shift.reshape(shape.as_slice())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck;
    use candle_core::Device;

    type Train = fn(&Tensor, &Tensor, &Tensor, f64) -> Result<(Tensor, Tensor, Tensor)>;
    const TRAIN: [Train; 2] = [batch_norm_train, batch_norm_train_generic];

    #[test]
    fn forward_by_hand() -> Result<()> {
        for f in TRAIN {
            // Vector batch of 2 with 2 features: feature 0 = [1, 3], feature 1 = [2, 2].
            let x = Tensor::new(&[[1f64, 2.], [3., 2.]], &Device::Cpu)?;
            let g = Tensor::new(&[2f64, 1.], &Device::Cpu)?;
            let b = Tensor::new(&[0.5f64, -1.], &Device::Cpu)?;
            let (y, m, v) = f(&x, &g, &b, 0.0)?;
            assert_eq!(m.to_vec1::<f64>()?, [2.0, 2.0]);
            assert_eq!(v.to_vec1::<f64>()?, [1.0, 0.0]);
            let y = y.to_vec2::<f64>()?;
            // feature 0: (1-2)/1*2+0.5 = -1.5, (3-2)*2+0.5 = 2.5; feature 1 has
            // variance 0, which with eps 0 gives NaN: checked with eps below.
            assert_eq!((y[0][0], y[1][0]), (-1.5, 2.5));
            let (y, _, _) = f(&x, &g, &b, 1e-3)?;
            assert_eq!(y.to_vec2::<f64>()?[0][1], -1.0);
        }
        // Eval: (x - mean) / sqrt(var + eps) * gamma + beta with given statistics.
        let g = Tensor::new(&[2f64, 1.], &Device::Cpu)?;
        let b = Tensor::new(&[0.5f64, -1.], &Device::Cpu)?;
        let img = Tensor::new(&[5f64, 7.], &Device::Cpu)?.reshape((1, 2, 1, 1))?;
        let (mean, var) = (
            Tensor::new(&[1f64, 3.], &Device::Cpu)?,
            Tensor::new(&[4f64, 16.], &Device::Cpu)?,
        );
        for f in [batch_norm_eval, batch_norm_eval_generic] {
            let y = f(&img, &g, &b, &mean, &var, 0.0)?;
            assert_eq!(y.flatten_all()?.to_vec1::<f64>()?, [4.5, 0.0]);
        }
        Ok(())
    }

    #[test]
    fn train_mode_gradients() {
        for f in TRAIN {
            let x = gradcheck::rand(&[3, 2, 2, 3], -2.0, 2.0, 1);
            let g = gradcheck::rand(&[2], 0.5, 1.5, 2);
            let b = gradcheck::rand(&[2], -0.5, 0.5, 3);
            gradcheck::check(
                |a| f(&a[0], &a[1], &a[2], 1e-3).map(|r| r.0),
                &[x, g, b],
                1e-5,
            );
            let v = gradcheck::rand(&[4, 3], -2.0, 2.0, 4);
            let g = gradcheck::rand(&[3], 0.5, 1.5, 5);
            let b = gradcheck::rand(&[3], -0.5, 0.5, 6);
            gradcheck::check(
                |a| f(&a[0], &a[1], &a[2], 1e-3).map(|r| r.0),
                &[v, g, b],
                1e-5,
            );
        }
    }

    #[test]
    fn eval_mode_gradients() {
        let mean = gradcheck::rand(&[2], -0.5, 0.5, 7);
        let var = gradcheck::rand(&[2], 0.5, 2.0, 8);
        let x = gradcheck::rand(&[3, 2, 2, 2], -2.0, 2.0, 9);
        let g = gradcheck::rand(&[2], 0.5, 1.5, 10);
        let b = gradcheck::rand(&[2], -0.5, 0.5, 11);
        gradcheck::check(
            |a| batch_norm_eval(&a[0], &a[1], &a[2], &mean, &var, 1e-3),
            &[x, g, b],
            1e-6,
        );
    }

    #[test]
    fn running_update_uses_the_unbiased_variance() {
        let (mut rm, mut rv) = (vec![0f32, 1.0], vec![1f32, 2.0]);
        update_running(&mut rm, &mut rv, &[2.0, 3.0], &[1.0, 0.5], 2, 0.9);
        let want = [0.2, 1.2, 0.9 + 0.1 * 2.0, 1.8 + 0.1 * 1.0];
        for (got, want) in rm.iter().chain(&rv).zip(want) {
            assert!((f64::from(*got) - want).abs() < 1e-6, "{rm:?} {rv:?}");
        }
    }
}
