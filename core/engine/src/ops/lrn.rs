//! Local response normalisation across channels, TensorFlow's convention
//! (`tf.nn.local_response_normalization`, which the reference AlexNet uses):
//! `y_i = x_i / (bias + alpha * sum_{|j-i| <= radius} x_j^2)^beta`, alpha
//! *not* divided by the window size (PyTorch's `LocalResponseNorm` divides).
//!
//! Built from differentiable candle ops, so it runs on every device and
//! autograd gives the backward.

use candle_core::{Result, Tensor, bail};

/// LRN over axis 1 of `[N, C, H, W]` or `[N, C]`.
pub fn lrn(x: &Tensor, radius: usize, alpha: f64, beta: f64, bias: f64) -> Result<Tensor> {
    if x.rank() < 2 {
        bail!(
            "local response normalisation needs a channel axis, got shape {:?}",
            x.dims()
        );
    }
    let c = x.dim(1)?;
    let sq = x.sqr()?.pad_with_zeros(1, radius, radius)?;
    let mut sum = sq.narrow(1, 0, c)?;
    for offset in 1..=2 * radius {
        sum = (sum + sq.narrow(1, offset, c)?)?;
    }
    x * sum.affine(alpha, bias)?.powf(-beta)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck;
    use candle_core::Device;

    #[test]
    fn forward_by_hand() -> Result<()> {
        // Channels 1, 2, 3 at one pixel, radius 1, alpha 1, beta 1, bias 1:
        // y0 = 1/(1+1+4), y1 = 2/(1+1+4+9), y2 = 3/(1+4+9).
        let x = Tensor::new(&[1f64, 2., 3.], &Device::Cpu)?.reshape((1, 3, 1, 1))?;
        let y = lrn(&x, 1, 1.0, 1.0, 1.0)?.flatten_all()?.to_vec1::<f64>()?;
        let want = [1.0 / 6.0, 2.0 / 15.0, 3.0 / 14.0];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{y:?}");
        }
        // TF defaults (radius 5, bias 1, alpha 1, beta 0.5) on a vector.
        let v = Tensor::new(&[[3f64, 4.]], &Device::Cpu)?;
        let y = lrn(&v, 5, 1.0, 0.5, 1.0)?.flatten_all()?.to_vec1::<f64>()?;
        assert!(
            (y[0] - 3.0 / 26f64.sqrt()).abs() < 1e-12 && (y[1] - 4.0 / 26f64.sqrt()).abs() < 1e-12
        );
        Ok(())
    }

    #[test]
    fn gradient() {
        // AlexNet's reference setting: radius 2, alpha 1e-4 (scaled up here so
        // the normalisation matters), beta 0.75, bias 1.
        let x = gradcheck::rand(&[2, 5, 2, 3], -2.0, 2.0, 3);
        gradcheck::check(|a| lrn(&a[0], 2, 0.1, 0.75, 1.0), &[x], 1e-6);
    }
}
