//! A plugin's fused activation kernels as a candle custom op.
//!
//! The activation's parameters (each `[1]` or `[C]`) are packed into one 1-D
//! tensor with `Tensor::cat`, through which autograd flows back to every
//! parameter; the op is `CustomOp2(x, packed)` (`CustomOp1(x)` without
//! parameters). Its forward calls the plugin's forward kernel, its backward
//! the plugin's backward kernel, computing the input's and the packed
//! parameters' gradients at once on CPU storage.
//!
//! Both kernels run on chunks of the leading (batch) axis across rayon's
//! threads, as the ABI allows; per-chunk parameter gradients are summed.
//! A non-zero kernel status becomes an error naming the plugin and the
//! activation with the plugin's own message, never an abort.

use acbench_plugin_api::abi::Layout as AbiLayout;
use candle_core::{CpuStorage, DType, Device, Layout, Result, Storage, Tensor};
use rayon::prelude::*;

use super::Real;
use super::custom::{Input, InputGrads, Kernel, Op, Output};
use crate::plugin::Kernels;

/// Below this many elements a chunk is not worth a thread.
const MIN_CHUNK: usize = 8192;

/// Applies the kernels to `x` (`[N, C, ...]`, f32, on the CPU) with the given
/// parameter values, each an f32 tensor of 1 or `C` elements, in the order
/// the kernels expect.
pub fn activation(x: &Tensor, params: &[Tensor], kernels: &Kernels) -> Result<Tensor> {
    if !x.device().is_cpu() || x.dtype() != DType::F32 || x.rank() < 2 {
        candle_core::bail!(
            "fused `{}`: needs an f32 CPU tensor of rank >= 2, got {:?} {:?} on {:?}",
            kernels.activation(),
            x.dtype(),
            x.dims(),
            x.device().location()
        );
    }
    let channels = x.dims()[1];
    let mut lens = Vec::with_capacity(params.len());
    for p in params {
        let n = p.elem_count();
        if p.dtype() != DType::F32 || !p.device().is_cpu() || (n != 1 && n != channels) {
            candle_core::bail!(
                "fused `{}`: a parameter must be an f32 CPU tensor of 1 or {channels} values, got {:?} {:?}",
                kernels.activation(),
                p.dtype(),
                p.dims()
            );
        }
        lens.push(n);
    }
    let op = FusedOp {
        kernels: kernels.clone(),
        lens,
    };
    let x = x.contiguous()?;
    if params.is_empty() {
        return x.apply_op1(Op(op));
    }
    let flat: Vec<Tensor> = params
        .iter()
        .map(|p| p.flatten_all())
        .collect::<Result<_>>()?;
    let packed = Tensor::cat(&flat, 0)?;
    x.apply_op2(&packed, Op(op))
}

struct FusedOp {
    kernels: Kernels,
    /// Length of each parameter inside the packed tensor.
    lens: Vec<usize>,
}

fn abi_layout(dims: &[usize]) -> AbiLayout {
    AbiLayout {
        outer: dims[0],
        channels: dims[1],
        inner: dims[2..].iter().product(),
    }
}

/// The contiguous f32 values of a CPU tensor's storage.
fn cpu_f32<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("fused activation: expected f32 storage")
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("fused activation: expected a contiguous tensor"),
    }
}

fn storage_f32<'a>(storage: &'a Storage, layout: &Layout) -> Result<&'a [f32]> {
    match storage {
        Storage::Cpu(s) => cpu_f32(s, layout),
        _ => candle_core::bail!("fused activation: expected a CPU tensor"),
    }
}

/// A kernel failure as a candle error whose message is the plugin's error
/// alone (`Error::wrap` would append a backtrace when RUST_BACKTRACE is set).
fn kernel_error(e: crate::plugin::PluginError) -> candle_core::Error {
    candle_core::Error::Wrapped(Box::new(e))
}

impl FusedOp {
    /// Elements per chunk: whole rows of the leading axis, about one chunk
    /// per thread, none smaller than [`MIN_CHUNK`] unless the tensor is.
    fn chunk(layout: &AbiLayout) -> usize {
        let row = (layout.channels * layout.inner).max(1);
        let threads = rayon::current_num_threads().max(1);
        let rows = layout
            .outer
            .div_ceil(threads)
            .max(MIN_CHUNK.div_ceil(row))
            .clamp(1, layout.outer.max(1));
        rows * row
    }

    fn forward_f32(&self, x: &[f32], packed: &[f32], dims: &[usize]) -> Result<Vec<f32>> {
        let mut out = vec![0f32; x.len()];
        forward_into(&self.kernels, &self.lens, x, packed, dims, &mut out)?;
        Ok(out)
    }

    /// `(grad_x, grad_packed)`.
    fn backward_f32(
        &self,
        x: &[f32],
        packed: &[f32],
        grad: &[f32],
        dims: &[usize],
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let mut grad_x = vec![0f32; x.len()];
        let gp = backward_into(
            &self.kernels,
            &self.lens,
            x,
            packed,
            grad,
            dims,
            &mut grad_x,
        )?;
        Ok((grad_x, gp))
    }

    /// Gradients from tensors: made contiguous, read in place.
    fn grads(
        &self,
        x: &Tensor,
        packed: Option<&Tensor>,
        grad: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let x = x.contiguous()?;
        let grad = grad.contiguous()?;
        let (xs, xl) = x.storage_and_layout();
        let (gs, gl) = grad.storage_and_layout();
        let (xv, gv) = (storage_f32(&xs, xl)?, storage_f32(&gs, gl)?);
        let (gx, gp) = match packed {
            Some(p) => {
                let p = p.contiguous()?;
                let (ps, pl) = p.storage_and_layout();
                self.backward_f32(xv, storage_f32(&ps, pl)?, gv, x.dims())?
            }
            None => self.backward_f32(xv, &[], gv, x.dims())?,
        };
        let n = gp.len();
        Ok((
            Tensor::from_vec(gx, x.shape(), &Device::Cpu)?,
            Tensor::from_vec(gp, n, &Device::Cpu)?,
        ))
    }
}

/// One pointer per parameter into `packed`, whose parameters have lengths `lens`.
fn param_ptrs(lens: &[usize], packed: &[f32]) -> Vec<*const f32> {
    let mut at = 0;
    lens.iter()
        .map(|&n| {
            let p = packed[at..].as_ptr();
            at += n;
            p
        })
        .collect()
}

/// Runs the forward kernel over `x` (`dims = [N, C, ...]`) into `out`, in
/// chunks of the leading axis across rayon's threads; `packed` holds the
/// parameters (lengths `lens`, each 1 or `C`) back to back.
pub(crate) fn forward_into(
    kernels: &Kernels,
    lens: &[usize],
    x: &[f32],
    packed: &[f32],
    dims: &[usize],
    out: &mut [f32],
) -> Result<()> {
    let layout = abi_layout(dims);
    if x.len() != out.len() || x.len() != layout.outer * layout.channels * layout.inner {
        candle_core::bail!(
            "fused `{}`: buffer sizes do not match {dims:?}",
            kernels.activation()
        );
    }
    if x.is_empty() {
        return Ok(());
    }
    let row = layout.channels * layout.inner;
    let chunk = FusedOp::chunk(&layout);
    out.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .try_for_each(|(out, x)| {
            let l = AbiLayout {
                outer: x.len() / row,
                ..layout
            };
            let params = param_ptrs(lens, packed);
            // SAFETY: `x` and `out` hold `l.len()` values and do not
            // overlap; each parameter pointer has 1 or `channels` values;
            // the plugin stays loaded.
            let status =
                unsafe { (kernels.forward)(l, x.as_ptr(), params.as_ptr(), out.as_mut_ptr()) };
            kernels.status("forward", status).map_err(kernel_error)
        })
}

/// Runs the backward kernel: writes the input gradient into `grad_x` and
/// returns the packed parameters' gradient (summed over chunks).
pub(crate) fn backward_into(
    kernels: &Kernels,
    lens: &[usize],
    x: &[f32],
    packed: &[f32],
    grad: &[f32],
    dims: &[usize],
    grad_x: &mut [f32],
) -> Result<Vec<f32>> {
    let layout = abi_layout(dims);
    let mut grad_packed = vec![0f32; packed.len()];
    if x.len() != grad.len() || x.len() != grad_x.len() {
        candle_core::bail!(
            "fused `{}`: buffer sizes do not match {dims:?}",
            kernels.activation()
        );
    }
    if x.is_empty() {
        return Ok(grad_packed);
    }
    let row = layout.channels * layout.inner;
    let chunk = FusedOp::chunk(&layout);
    let partial: Vec<Vec<f32>> = grad_x
        .par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .zip(grad.par_chunks(chunk))
        .map(|((gx, x), g)| {
            let l = AbiLayout {
                outer: x.len() / row,
                ..layout
            };
            let mut gp = vec![0f32; packed.len()];
            let params = param_ptrs(lens, packed);
            let mut at = 0;
            let gp_ptrs: Vec<*mut f32> = lens
                .iter()
                .map(|&n| {
                    let p = gp[at..].as_mut_ptr();
                    at += n;
                    p
                })
                .collect();
            // SAFETY: as in `forward_into`; every gradient pointer has room
            // for its parameter's values and starts zeroed.
            let status = unsafe {
                (kernels.backward)(
                    l,
                    x.as_ptr(),
                    params.as_ptr(),
                    g.as_ptr(),
                    gx.as_mut_ptr(),
                    gp_ptrs.as_ptr(),
                )
            };
            kernels.status("backward", status).map_err(kernel_error)?;
            Ok(gp)
        })
        .collect::<Result<_>>()?;
    for gp in partial {
        for (t, v) in grad_packed.iter_mut().zip(gp) {
            *t += v;
        }
    }
    Ok(grad_packed)
}

impl Kernel<1> for FusedOp {
    const NAME: &'static str = "fused-activation";
    const WHAT: &'static str = "a fused activation";

    fn forward<T: Real>(&self, [(s, l)]: [Input<'_>; 1]) -> Output {
        let out = self.forward_f32(cpu_f32(s, l)?, &[], l.dims())?;
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn backward<T: Real>(&self, [x]: [&Tensor; 1], grad: &Tensor) -> InputGrads<1> {
        Ok([Some(self.grads(x, None, grad)?.0)])
    }
}

impl Kernel<2> for FusedOp {
    const NAME: &'static str = "fused-activation";
    const WHAT: &'static str = "a fused activation";

    fn forward<T: Real>(&self, [(s1, l1), (s2, l2)]: [Input<'_>; 2]) -> Output {
        let out = self.forward_f32(cpu_f32(s1, l1)?, cpu_f32(s2, l2)?, l1.dims())?;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn backward<T: Real>(&self, [x, packed]: [&Tensor; 2], grad: &Tensor) -> InputGrads<2> {
        let (gx, gp) = self.grads(x, Some(packed), grad)?;
        Ok([Some(gx), Some(gp)])
    }
}
