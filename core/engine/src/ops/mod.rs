//! Tensor operations the model needs beyond what candle 0.11 gets right.
//!
//! Each operation has one entry point (e.g. [`pool::pool2d`]) that picks an
//! implementation by device: a CPU kernel wrapped in a candle custom op with
//! an explicit backward, or a generic path built from differentiable candle
//! ops that runs on every device (CUDA included). Both are public so tests can
//! hold them against each other, and so a faster kernel can replace either
//! without touching the model.
//!
//! - [`pool`]: max and average pooling with any kernel, stride and
//!   asymmetric padding (candle's max-pool backward is wrong and refuses
//!   kernel != stride).
//! - [`conv`]: convolution with asymmetric padding, per-axis stride and
//!   dilation, and groups: an im2col kernel on the CPU (candle's CPU conv
//!   backward is slow, and wrong when the two axes' stride remainders
//!   differ), candle's `conv2d` made exact elsewhere.
//! - [`lrn`]: local response normalisation, TensorFlow's convention.
//! - [`norm`]: batch normalisation in train and eval mode, and the running
//!   statistics' update.
//! - [`dropout`]: the dropout mask (the one place its random draws happen).
//! - [`fused`]: an activation plugin's fused CPU kernels with their backward.
//!
//! The CPU kernels themselves are functions on slices (`conv_forward`,
//! `max_pool_forward`, `norm::backward`, ...): the candle custom ops call
//! them on tensor storage, and the model's CPU training path
//! (`model::cpu`) calls the same functions on its own buffers, so each
//! piece of math has one home. Their temporary buffers come from one pool
//! (`scratch.rs`).

pub mod conv;
pub(crate) mod custom;
pub mod dropout;
pub mod fused;
pub mod gemm;
pub mod lrn;
pub mod norm;
pub mod pool;
pub(crate) mod scratch;
pub(crate) mod slices;

use candle_core::{CpuStorage, DType, Device, Result, Storage, Tensor, WithDType, bail};

/// The float types the CPU kernels compute in: f32 for training, f64 for
/// gradient checks.
pub trait Real: WithDType {
    /// Square root.
    fn sqrt(self) -> Self;
    /// `self` to the power `e`.
    fn powf(self, e: Self) -> Self;
    /// Whether this is a NaN.
    fn is_nan(self) -> bool;
}

macro_rules! real {
    ($($t:ty),*) => {$(
        impl Real for $t {
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn powf(self, e: Self) -> Self {
                <$t>::powf(self, e)
            }
            #[inline]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
        }
    )*};
}
real!(f32, f64);

/// Runs `f` on the contiguous values of a CPU tensor of element type `T`
/// (made contiguous first if it is not).
pub(crate) fn with_slice<T: WithDType, R>(t: &Tensor, f: impl FnOnce(&[T]) -> R) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        bail!("a CPU kernel got a tensor on {:?}", t.device().location())
    };
    let values = T::cpu_storage_as_slice(cpu)?;
    let Some((a, b)) = layout.contiguous_offsets() else {
        bail!("a CPU kernel needs a contiguous tensor")
    };
    Ok(f(&values[a..b]))
}

/// The contiguous values of a custom op's CPU input.
pub(crate) fn storage_slice<'a, T: WithDType>(
    s: &'a CpuStorage,
    l: &candle_core::Layout,
) -> Result<&'a [T]> {
    let v = T::cpu_storage_as_slice(s)?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("a CPU kernel needs contiguous tensors"),
    }
}

/// `[N, C, rest...]` as `(N, C, product of the rest)`: the layout every
/// per-channel kernel works on (`rest` is empty for vectors).
pub fn ncl(dims: &[usize]) -> (usize, usize, usize) {
    let n = dims.first().copied().unwrap_or(1);
    let c = dims.get(1).copied().unwrap_or(1);
    (n, c, dims.iter().skip(2).product())
}

/// A constant tensor of `shape` filled with `value`, in any float dtype
/// (`Tensor::full` is typed by its Rust scalar, the model's dtype is a value).
pub(crate) fn filled(value: f64, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
    Tensor::zeros(shape, dtype, device)?.affine(0.0, value)
}

/// `start, start + step, ...` (`count` values) as a u32 index tensor.
pub(crate) fn strided_index(
    start: usize,
    step: usize,
    count: usize,
    device: &Device,
) -> Result<Tensor> {
    let idx: Vec<u32> = (0..count).map(|i| (start + i * step) as u32).collect();
    Tensor::from_vec(idx, count, device)
}

#[cfg(test)]
pub(crate) mod gradcheck {
    //! Central finite differences in f64 against candle's autograd.

    use candle_core::{DType, Device, Tensor, Var};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Random f64 tensor with values in [lo, hi).
    pub fn rand(shape: &[usize], lo: f64, hi: f64, seed: u64) -> Tensor {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| rng.random_range(lo..hi)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).expect("shape matches")
    }

    /// Checks d(sum(f(inputs) * w))/d(inputs) for fixed random weights `w`
    /// against central differences; returns the largest relative error.
    pub fn check<F, E>(f: F, inputs: &[Tensor], tol: f64)
    where
        F: Fn(&[Tensor]) -> std::result::Result<Tensor, E>,
        E: std::fmt::Debug,
    {
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(t).expect("var"))
            .collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let out = f(&ts).expect("forward");
        assert_eq!(out.dtype(), DType::F64);
        let w = rand(out.dims(), -1.0, 1.0, 99);
        let loss = out.mul(&w).expect("mul").sum_all().expect("sum");
        let grads = loss.backward().expect("backward");
        let eps = 1e-6;
        for (k, input) in inputs.iter().enumerate() {
            let analytic: Vec<f64> = match grads.get(&ts[k]) {
                Some(g) => g.flatten_all().and_then(|g| g.to_vec1()).expect("grad"),
                None => vec![0.0; input.elem_count()],
            };
            let base: Vec<f64> = input.flatten_all().and_then(|t| t.to_vec1()).expect("vec");
            for i in 0..base.len() {
                let eval = |delta: f64| -> f64 {
                    let args: Vec<Tensor> = inputs
                        .iter()
                        .enumerate()
                        .map(|(j, t)| {
                            if j == k {
                                let mut v = base.clone();
                                v[i] += delta;
                                Tensor::from_vec(v, t.dims(), &Device::Cpu).expect("shape")
                            } else {
                                t.clone()
                            }
                        })
                        .collect();
                    let o = f(&args).expect("forward");
                    o.mul(&w)
                        .and_then(|o| o.sum_all())
                        .and_then(|s| s.to_scalar::<f64>())
                        .expect("loss")
                };
                let numeric = (eval(eps) - eval(-eps)) / (2.0 * eps);
                let err = (numeric - analytic[i]).abs() / (1.0 + numeric.abs());
                assert!(
                    err < tol,
                    "input {k} element {i}: analytic {} numeric {numeric} (rel err {err})",
                    analytic[i]
                );
            }
        }
    }
}
