//! The CPU training path: forward and backward written by hand over the
//! model's layer tree, on plain f32 buffers.
//!
//! candle's autograd costs more than the arithmetic on these networks: its
//! backward starts every gradient as `zeros_like` and adds into it, every op
//! allocates its output, and its element-wise ops hand work to a spinning
//! thread pool that competes with rayon on a small machine. Here each layer
//! keeps exactly what its backward needs (a convolution its input, a max
//! pooling the argmax of each window, batch norm the batch statistics, LRN
//! its scale), gradients flow as owned buffers, and every buffer comes from
//! and returns to the kernels' pool ([`crate::ops::scratch`]), so after the
//! first step a training step allocates almost nothing. The kernels are the
//! ones the candle custom ops call ([`crate::ops`]); the tests hold this
//! path against candle's autograd.
//!
//! It runs every layer type whenever the model is f32 on the CPU;
//! otherwise [`Model`] uses candle's autograd, which stays the reference
//! and the path for other devices.
//!
//! - `forward`: the layers' forward passes and what they keep ([`Saved`]).
//! - `backward`: the layers' backward passes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Device, Storage, Tensor, TensorId};
use rand_chacha::ChaCha8Rng;

use super::{Model, Objective};
use crate::error::{Error, Result};
use crate::ops::scratch::Scratch;

mod backward;
mod forward;

/// An activation or gradient: f32 values in row-major order and their
/// shape. Its storage goes back to the kernels' pool when dropped.
pub(crate) struct Buf {
    data: Scratch<f32>,
    dims: Vec<usize>,
}

impl Buf {
    /// A buffer of `dims` with unspecified (initialised) contents: every
    /// caller overwrites all of it.
    fn new(dims: &[usize]) -> Self {
        Self {
            data: Scratch::any(dims.iter().product()),
            dims: dims.to_vec(),
        }
    }

    /// A zero-filled buffer of `dims`.
    fn zeros(dims: &[usize]) -> Self {
        let mut b = Self::new(dims);
        b.data.fill(0.0);
        b
    }

    /// A copy of `src`.
    fn copy_of(src: &Buf) -> Self {
        Self {
            data: Scratch::copy_of(&src.data),
            dims: src.dims.clone(),
        }
    }

    /// The buffer itself when `a` is its only owner, else a copy.
    fn unwrap(a: Arc<Buf>) -> Self {
        Arc::try_unwrap(a).unwrap_or_else(|a| Self::copy_of(&a))
    }

    /// `[N, C, rest]` as (N, C, product of the rest).
    fn ncl(&self) -> (usize, usize, usize) {
        crate::ops::ncl(&self.dims)
    }

    fn tensor(&self) -> Result<Tensor> {
        Ok(Tensor::from_slice(
            &self.data,
            self.dims.as_slice(),
            &Device::Cpu,
        )?)
    }

    /// A tensor's values as a buffer of its shape.
    fn from_tensor(t: &Tensor) -> Result<Self> {
        let t = t.to_dtype(DType::F32)?.contiguous()?;
        let mut b = Self::new(t.dims());
        read(&t, |v| b.data.copy_from_slice(v))?;
        Ok(b)
    }
}

/// Runs `f` on the contiguous f32 values of a CPU tensor.
fn read<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(v)) = &*storage else {
        return Err(Error::Internal("the CPU path needs f32 CPU tensors".into()));
    };
    let (a, b) = layout
        .contiguous_offsets()
        .ok_or_else(|| Error::Internal("the CPU path needs contiguous parameters".into()))?;
    Ok(f(&v[a..b]))
}

/// The f32 values of a small CPU tensor (per-channel parameters and
/// statistics), copied.
fn values(t: &Tensor) -> Result<Vec<f32>> {
    read(t, <[f32]>::to_vec)
}

/// One training step's outcome on the CPU path.
pub(crate) struct CpuStep {
    pub loss: f32,
    pub correct: u64,
    /// `None` when the loss was not finite (no backward pass was run).
    pub grads: Option<GradStore>,
}

impl Model {
    /// Whether [`Model::cpu_step`] and the CPU forward run this model: f32
    /// on the CPU (every layer type has a CPU implementation).
    pub(crate) fn cpu_path_applies(&self) -> bool {
        self.cpu_path && self.device.is_cpu() && self.dtype == DType::F32
    }

    /// Logits of `x` in eval mode on the CPU path.
    pub(crate) fn cpu_forward_eval(&self, x: &Tensor) -> Result<Tensor> {
        let input = Arc::new(Buf::from_tensor(x)?);
        let mut rng: Option<&mut ChaCha8Rng> = None;
        let y = self.seq_forward(&self.layers, input, &mut rng, None)?;
        y.tensor()
    }

    /// Forward in train mode, the objective's loss (softmax cross-entropy
    /// against labels, or the caller's dense loss) and, when the loss is
    /// finite, the backward pass: every parameter's gradient in a
    /// [`GradStore`] keyed like candle's.
    pub(crate) fn cpu_step(
        &mut self,
        x: &Tensor,
        objective: Objective<'_>,
        dropout_rng: &mut ChaCha8Rng,
    ) -> Result<CpuStep> {
        let input = Arc::new(Buf::from_tensor(x)?);
        let mut tape = Vec::with_capacity(self.layers.len());
        let mut rng = Some(dropout_rng);
        let logits = self.seq_forward(&self.layers, input, &mut rng, Some(&mut tape))?;
        let logits = Buf::unwrap(logits);
        let (loss, correct, dlogits) = match objective {
            Objective::Classes(labels) => softmax_cross_entropy(&logits, &labels.to_vec1()?)?,
            Objective::Dense(dense) => {
                let mut grad = Buf::new(&logits.dims);
                let loss = dense.loss(&logits.data, &logits.dims, &mut grad.data)?;
                (loss, 0, grad)
            }
        };
        drop(logits);
        if !loss.is_finite() {
            return Ok(CpuStep {
                loss,
                correct,
                grads: None,
            });
        }
        // The cache leaves the model for the backward pass, which reads the
        // layers, and comes back even when the pass fails.
        let mut cache = std::mem::take(&mut self.grad_cache);
        let mut grads = Grads {
            store: empty_grad_store()?,
            cache: &mut cache,
        };
        // The network's input needs no gradient.
        let done = self.seq_backward(&self.layers, tape, dlogits, &mut grads, false);
        let store = grads.store;
        self.grad_cache = cache;
        done?;
        Ok(CpuStep {
            loss,
            correct,
            grads: Some(store),
        })
    }
}

/// A step's gradients as the backward pass produces them, and the model's
/// tensors that hold them from one step to the next.
struct Grads<'c> {
    store: GradStore,
    cache: &'c mut HashMap<TensorId, Tensor>,
}

impl Grads<'_> {
    /// Stores `grad` (shaped like `param`) as `param`'s gradient. The
    /// tensor handed out is the same one every step (its storage swapped
    /// with `grad`'s, whose old storage goes back to the pool), so
    /// gradients cost no allocation.
    fn put(&mut self, param: &Tensor, grad: Buf) -> Result<()> {
        let t = match self.cache.get(&param.id()) {
            Some(t) => t.clone(),
            None => {
                let t = Tensor::zeros(param.shape(), DType::F32, &Device::Cpu)?;
                self.cache.insert(param.id(), t.clone());
                t
            }
        };
        let op = SwapIn(RefCell::new(grad.data.into_vec()));
        t.inplace_op1(&op)?;
        drop(Scratch::from_vec(op.0.into_inner()));
        self.store.insert(param, t);
        Ok(())
    }
}

/// An empty [`GradStore`] (its constructor is private to candle): the
/// backward of a constant scalar holds only that scalar's own entry.
fn empty_grad_store() -> Result<GradStore> {
    let t = Tensor::zeros((), DType::F32, &Device::Cpu)?;
    let mut grads = t.backward()?;
    grads.remove(&t);
    Ok(grads)
}

/// Swaps a CPU tensor's storage with the vector it holds (same length):
/// how a gradient buffer becomes a tensor's contents without a copy.
struct SwapIn(RefCell<Vec<f32>>);

impl candle_core::InplaceOp1 for SwapIn {
    fn name(&self) -> &'static str {
        "acbench-swap-in"
    }

    fn cpu_fwd(
        &self,
        storage: &mut CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<()> {
        let CpuStorage::F32(v) = storage else {
            candle_core::bail!("gradient swap: not an f32 tensor")
        };
        let mut new = self.0.borrow_mut();
        if v.len() != new.len() || layout.start_offset() != 0 || !layout.is_contiguous() {
            candle_core::bail!(
                "gradient swap: {} values for a tensor of {}",
                new.len(),
                v.len()
            );
        }
        std::mem::swap(v, &mut new);
        Ok(())
    }
}

/// Mean softmax cross-entropy of `logits: [N, K]` against class indices,
/// the number of rows whose first maximum is the label, and the gradient
/// `(softmax - onehot) / N`.
fn softmax_cross_entropy(logits: &Buf, labels: &[u32]) -> Result<(f32, u64, Buf)> {
    let &[n, k] = logits.dims.as_slice() else {
        return Err(Error::Internal(format!(
            "cross-entropy needs [N, classes] logits, got {:?}",
            logits.dims
        )));
    };
    if labels.len() != n {
        return Err(Error::DataMismatch(format!(
            "{} labels for a batch of {n}",
            labels.len()
        )));
    }
    if let Some(bad) = labels.iter().find(|&&y| y as usize >= k) {
        return Err(Error::DataMismatch(format!(
            "label {bad} is out of range for {k} classes"
        )));
    }
    let mut grad = Buf::new(&logits.dims);
    let mut loss = 0f64;
    let mut correct = 0u64;
    for ((row, g), &y) in logits
        .data
        .chunks(k)
        .zip(grad.data.chunks_mut(k))
        .zip(labels)
    {
        let mut best = 0;
        for (j, &v) in row.iter().enumerate() {
            if v > row[best] {
                best = j;
            }
        }
        correct += u64::from(best == y as usize);
        let max = row[best];
        let mut sum = 0f64;
        for (gj, &v) in g.iter_mut().zip(row) {
            let e = f64::from(v - max).exp();
            *gj = e as f32;
            sum += e;
        }
        loss += sum.ln() - f64::from(row[y as usize] - max);
        let scale = 1.0 / (sum * n as f64);
        for gj in g.iter_mut() {
            *gj = (f64::from(*gj) * scale) as f32;
        }
        g[y as usize] -= 1.0 / n as f32;
    }
    Ok(((loss / n.max(1) as f64) as f32, correct, grad))
}

/// Joins `parts` (`[N, C_i, rest]` each, same `N` and `rest`) along the
/// channel axis.
fn concat_channels(parts: &[&Buf]) -> Buf {
    let (n, _, l) = parts[0].ncl();
    let channels: usize = parts.iter().map(|p| p.ncl().1).sum();
    let mut dims = parts[0].dims.clone();
    dims[1] = channels;
    let mut y = Buf::new(&dims);
    let image = channels * l;
    for_images(&mut y.data, image, n, |i, out| {
        let mut at = 0;
        for p in parts {
            let len = p.ncl().1 * l;
            out[at..at + len].copy_from_slice(&p.data[i * len..][..len]);
            at += len;
        }
    });
    y
}

/// The gradient of [`concat_channels`]: `dy` split back into parts of
/// `channels[i]` channels each.
fn split_channels(dy: &Buf, channels: &[usize]) -> Vec<Buf> {
    let (n, c, l) = dy.ncl();
    channels
        .iter()
        .scan(0, |from, &ci| {
            let mut dims = dy.dims.clone();
            dims[1] = ci;
            let mut part = Buf::new(&dims);
            let (start, len) = (*from * l, ci * l);
            for_images(&mut part.data, len, n, |i, out| {
                out.copy_from_slice(&dy.data[i * c * l + start..][..len]);
            });
            *from += ci;
            Some(part)
        })
        .collect()
}

/// Calls `f(image, values)` for each of the `n` images of `data`
/// (`image` values each), across rayon's threads when it is large.
fn for_images(data: &mut [f32], image: usize, n: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    use rayon::prelude::*;
    if image == 0 || n == 0 {
        return;
    }
    if data.len() < crate::ops::slices::PAR_MIN {
        data.chunks_mut(image)
            .enumerate()
            .for_each(|(i, d)| f(i, d));
    } else {
        data.par_chunks_mut(image)
            .enumerate()
            .for_each(|(i, d)| f(i, d));
    }
}
