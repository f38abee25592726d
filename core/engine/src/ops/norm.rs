//! Batch normalisation, as functions of tensors (the model owns the
//! parameters and running statistics).
//!
//! Statistics are taken over every axis except the channel axis 1: N, H, W
//! for images, N for vectors. Normalisation uses the biased batch variance
//! (as PyTorch and TensorFlow do).

use candle_core::{D, Result, Tensor, bail};

/// Shape `[1, C, 1, 1]` (images) or `[1, C]` (vectors) for per-channel values.
fn channel_shape(x: &Tensor) -> Result<Vec<usize>> {
    let c = x.dim(1)?;
    match x.rank() {
        4 => Ok(vec![1, c, 1, 1]),
        2 => Ok(vec![1, c]),
        r => bail!("batch norm needs a [N, C, H, W] or [N, C] tensor, got rank {r}"),
    }
}

/// Mean and biased variance of `x` per channel, each of shape `[C]`.
pub fn batch_stats(x: &Tensor) -> Result<(Tensor, Tensor)> {
    let c = x.dim(1)?;
    // Channels first, everything else flattened: one reduction over the last axis.
    let per_channel = x.transpose(0, 1)?.contiguous()?.reshape((c, ()))?;
    let mean = per_channel.mean_keepdim(D::Minus1)?;
    let var = per_channel.broadcast_sub(&mean)?.sqr()?.mean(D::Minus1)?;
    Ok((mean.squeeze(D::Minus1)?, var))
}

/// Training mode: normalises with the batch statistics and returns
/// `(y, batch_mean, batch_biased_var)` (the statistics for the running update).
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (mean, var) = batch_stats(x)?;
    let y = normalise(x, &mean, &var, gamma, beta, eps)?;
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
    normalise(x, mean, var, gamma, beta, eps)
}

fn normalise(
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

    #[test]
    fn forward_by_hand() -> Result<()> {
        // Vector batch of 2 with 2 features: feature 0 = [1, 3], feature 1 = [2, 2].
        let x = Tensor::new(&[[1f64, 2.], [3., 2.]], &Device::Cpu)?;
        let g = Tensor::new(&[2f64, 1.], &Device::Cpu)?;
        let b = Tensor::new(&[0.5f64, -1.], &Device::Cpu)?;
        let (y, m, v) = batch_norm_train(&x, &g, &b, 0.0)?;
        assert_eq!(m.to_vec1::<f64>()?, [2.0, 2.0]);
        assert_eq!(v.to_vec1::<f64>()?, [1.0, 0.0]);
        let y = y.to_vec2::<f64>()?;
        // feature 0: (1-2)/1*2+0.5 = -1.5, (3-2)*2+0.5 = 2.5; feature 1 var 0 with eps 0 gives NaN,
        // so check only feature 0 here and feature 1 with eps below.
        assert_eq!((y[0][0], y[1][0]), (-1.5, 2.5));
        let (y, _, _) = batch_norm_train(&x, &g, &b, 1e-3)?;
        assert_eq!(y.to_vec2::<f64>()?[0][1], -1.0);
        // Eval: (x - mean) / sqrt(var + eps) * gamma + beta with given statistics.
        let img = Tensor::new(&[5f64, 7.], &Device::Cpu)?.reshape((1, 2, 1, 1))?;
        let y = batch_norm_eval(
            &img,
            &g,
            &b,
            &Tensor::new(&[1f64, 3.], &Device::Cpu)?,
            &Tensor::new(&[4f64, 16.], &Device::Cpu)?,
            0.0,
        )?;
        assert_eq!(y.flatten_all()?.to_vec1::<f64>()?, [4.5, 0.0]);
        Ok(())
    }

    #[test]
    fn train_mode_gradients() {
        let x = gradcheck::rand(&[3, 2, 2, 3], -2.0, 2.0, 1);
        let g = gradcheck::rand(&[2], 0.5, 1.5, 2);
        let b = gradcheck::rand(&[2], -0.5, 0.5, 3);
        gradcheck::check(
            |a| batch_norm_train(&a[0], &a[1], &a[2], 1e-3).map(|r| r.0),
            &[x, g, b],
            1e-5,
        );
        let v = gradcheck::rand(&[4, 3], -2.0, 2.0, 4);
        let g = gradcheck::rand(&[3], 0.5, 1.5, 5);
        let b = gradcheck::rand(&[3], -0.5, 0.5, 6);
        gradcheck::check(
            |a| batch_norm_train(&a[0], &a[1], &a[2], 1e-3).map(|r| r.0),
            &[v, g, b],
            1e-5,
        );
    }
}
