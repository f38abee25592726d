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
//! - [`norm`]: batch normalisation in train and eval mode.
//! - [`fused`]: an activation plugin's fused CPU kernels with their backward.

pub mod conv;
pub mod fused;
pub mod gemm;
pub mod lrn;
pub mod norm;
pub mod pool;

use candle_core::{DType, Device, Result, Tensor};

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

/// Per-thread scratch buffers for the CPU kernels, reused across calls so
/// that a training step does not allocate (and the allocator does not hand
/// pages back to the OS only to fault them in again next step).
pub(crate) mod scratch {
    use std::any::Any;
    use std::cell::RefCell;
    use std::ops::{Deref, DerefMut};

    use candle_core::WithDType;

    /// Buffers kept per thread.
    const KEEP: usize = 16;

    thread_local! {
        static FREE: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
    }

    /// A buffer of `len` values that goes back to its thread's free list
    /// when dropped. The vector keeps the longest length it ever had (so
    /// its contents stay initialised) and the buffer is its first `len`
    /// values.
    pub(crate) struct Scratch<T: WithDType> {
        data: Vec<T>,
        len: usize,
    }

    impl<T: WithDType> Scratch<T> {
        /// `len` zeros, in a reused allocation when one is big enough.
        pub(crate) fn zeros(len: usize) -> Self {
            let mut s = Self::any(len);
            s.fill(T::zero());
            s
        }

        /// `len` values the caller overwrites before reading: a reused
        /// buffer keeps its old contents, only growth beyond the longest
        /// length it had is zero-filled, so there is no memset per call.
        pub(crate) fn any(len: usize) -> Self {
            let reused = FREE.with(|f| {
                let mut f = f.borrow_mut();
                // The smallest free buffer that is long enough, else any.
                let fits = |b: &Box<dyn Any>| b.downcast_ref::<Vec<T>>().map(|v| v.len());
                let at = f
                    .iter()
                    .enumerate()
                    .filter_map(|(i, b)| fits(b).filter(|&n| n >= len).map(|n| (n, i)))
                    .min()
                    .map(|(_, i)| i)
                    .or_else(|| f.iter().position(|b| fits(b).is_some()))?;
                f.swap_remove(at).downcast::<Vec<T>>().ok()
            });
            let mut data = reused.map_or_else(Vec::new, |b| *b);
            if data.len() < len {
                data.resize(len, T::zero());
            }
            Self { data, len }
        }
    }

    impl<T: WithDType> Deref for Scratch<T> {
        type Target = [T];
        fn deref(&self) -> &[T] {
            &self.data[..self.len]
        }
    }

    impl<T: WithDType> DerefMut for Scratch<T> {
        fn deref_mut(&mut self) -> &mut [T] {
            &mut self.data[..self.len]
        }
    }

    impl<T: WithDType> Drop for Scratch<T> {
        fn drop(&mut self) {
            let v = std::mem::take(&mut self.data);
            if v.capacity() == 0 {
                return;
            }
            let _ = FREE.try_with(|f| {
                let mut f = f.borrow_mut();
                if f.len() < KEEP {
                    f.push(Box::new(v));
                }
            });
        }
    }
}
