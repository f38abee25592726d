//! The CPU training path: forward and backward written by hand over the
//! model's layer tree, on plain f32 buffers.
//!
//! candle's autograd costs more than the arithmetic on a small network: its
//! backward starts every gradient as `zeros_like` and adds into it, every op
//! allocates its output, and its element-wise ops hand work to a spinning
//! thread pool that competes with rayon on a 2-core machine. Here each layer
//! keeps exactly what its backward needs (a convolution its input, a max
//! pooling the argmax of each window, batch norm the batch statistics),
//! gradients flow as owned buffers, and every buffer comes from and returns
//! to a per-thread free list keyed by length, so after the first step a
//! training step allocates almost nothing. The kernels are the ones the
//! candle custom ops use ([`ops::conv`], [`ops::fused`], [`ops::pool`]'s
//! window rules), and the tests hold this path against candle's autograd.
//!
//! It runs when the model is f32 on the CPU and every layer is one it knows
//! (all but LRN, concat and dense blocks); otherwise [`Model`] uses candle's
//! autograd, which stays the reference and the path for other devices.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use acbench_dsl::ir::PoolKind;
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Device, Storage, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::{BatchNorm, Layer, Model};
use crate::activation::FusedParts;
use crate::error::{Error, Result};
use crate::ops::conv::{ConvGeom, conv_backward, conv_forward};
use crate::ops::fused::{backward_into, forward_into};
use crate::ops::gemm::{Mat, matmul};
use crate::ops::pool::PoolGeom;
use crate::ops::scratch::Scratch;

/// Free buffers per length kept for reuse (more than any network here has
/// alive at once of one size).
const POOL_DEPTH: usize = 512;

/// Below this many elements an element-wise loop stays on one thread.
const PAR_MIN: usize = 1 << 15;

thread_local! {
    static FREE: RefCell<HashMap<usize, Vec<Vec<f32>>>> = RefCell::new(HashMap::new());
}

/// An activation or gradient: f32 values in row-major order and their
/// shape. Its storage goes back to the thread's free list when dropped.
pub(crate) struct Buf {
    data: Vec<f32>,
    dims: Vec<usize>,
}

impl Buf {
    /// A buffer of `dims` with unspecified (initialised) contents: every
    /// caller overwrites all of it.
    fn new(dims: &[usize]) -> Self {
        let len = dims.iter().product();
        let data = FREE
            .with(|f| f.borrow_mut().get_mut(&len).and_then(Vec::pop))
            .unwrap_or_else(|| vec![0.0; len]);
        Self {
            data,
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
        let mut b = Self::new(&src.dims);
        b.data.copy_from_slice(&src.data);
        b
    }

    /// The buffer itself when `a` is its only owner, else a copy.
    fn unwrap(a: Arc<Buf>) -> Self {
        Arc::try_unwrap(a).unwrap_or_else(|a| Self::copy_of(&a))
    }

    /// `[N, C, rest]` as (N, C, product of the rest).
    fn ncl(&self) -> (usize, usize, usize) {
        let n = self.dims[0];
        let c = self.dims.get(1).copied().unwrap_or(1);
        (n, c, self.dims.iter().skip(2).product())
    }

    fn tensor(&self) -> Result<Tensor> {
        Ok(Tensor::from_slice(
            &self.data,
            self.dims.as_slice(),
            &Device::Cpu,
        )?)
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        let data = std::mem::take(&mut self.data);
        if data.is_empty() {
            return;
        }
        // `try_with`: during thread teardown the list may be gone already.
        let _ = FREE.try_with(|f| {
            let mut f = f.borrow_mut();
            let list = f.entry(data.len()).or_default();
            if list.len() < POOL_DEPTH {
                list.push(data);
            }
        });
    }
}

/// Runs `f` on the contiguous f32 values of a CPU tensor.
fn read<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(v)) = &*storage else {
        return Err(Error::Config("the CPU path needs f32 CPU tensors".into()));
    };
    let (a, b) = layout
        .contiguous_offsets()
        .ok_or_else(|| Error::Config("the CPU path needs contiguous parameters".into()))?;
    Ok(f(&v[a..b]))
}

/// What a layer's backward needs from its forward.
enum Saved {
    Conv {
        x: Arc<Buf>,
        geom: ConvGeom,
    },
    BatchNorm {
        x: Arc<Buf>,
        mean: Vec<f32>,
        inv_std: Vec<f32>,
    },
    MaxPool {
        /// Per output cell, the index of its window's maximum in the plane.
        argmax: Scratch<u32>,
        geom: PoolGeom,
        x_dims: Vec<usize>,
    },
    AvgPool {
        geom: PoolGeom,
        x_dims: Vec<usize>,
    },
    GlobalAvgPool {
        x_dims: Vec<usize>,
    },
    Dropout {
        mask: Vec<f32>,
    },
    Identity,
    Reshape {
        x_dims: Vec<usize>,
    },
    Linear {
        x: Arc<Buf>,
    },
    ActFused {
        x: Arc<Buf>,
        parts: FusedParts,
    },
    ActFormula {
        x: Var,
        y: Tensor,
        act: usize,
    },
    Residual {
        body: Vec<Saved>,
        shortcut: Vec<Saved>,
    },
}

/// One training step's outcome on the CPU path.
pub(crate) struct CpuStep {
    pub loss: f32,
    pub correct: u64,
    /// `None` when the loss was not finite (no backward pass was run).
    pub grads: Option<GradStore>,
}

impl Model {
    /// Whether [`Model::cpu_step`] and the CPU forward can run this model.
    pub(crate) fn cpu_path_applies(&self) -> bool {
        fn known(layers: &[Layer]) -> bool {
            layers.iter().all(|l| match l {
                Layer::Lrn { .. } | Layer::Concat(_) | Layer::Dense(_) => false,
                Layer::Residual { body, shortcut } => known(body) && known(shortcut),
                _ => true,
            })
        }
        self.cpu_path && self.device.is_cpu() && self.dtype == DType::F32 && known(&self.layers)
    }

    /// Logits of `x` in eval mode on the CPU path.
    pub(crate) fn cpu_forward_eval(&self, x: &Tensor) -> Result<Tensor> {
        let input = Arc::new(input_buf(x)?);
        let mut rng: Option<&mut ChaCha8Rng> = None;
        let y = self.seq_forward(&self.layers, input, &mut rng, None)?;
        y.tensor()
    }

    /// Forward in train mode, softmax cross-entropy against `labels`, and
    /// (when the loss is finite) the backward pass: every parameter's
    /// gradient in a [`GradStore`] keyed like candle's.
    pub(crate) fn cpu_step(
        &self,
        x: &Tensor,
        labels: &Tensor,
        dropout_rng: &mut ChaCha8Rng,
    ) -> Result<CpuStep> {
        let input = Arc::new(input_buf(x)?);
        let labels: Vec<u32> = labels.to_vec1()?;
        let mut tape = Vec::with_capacity(self.layers.len());
        let mut rng = Some(dropout_rng);
        let logits = self.seq_forward(&self.layers, input, &mut rng, Some(&mut tape))?;
        let logits = Buf::unwrap(logits);
        let (loss, correct, dlogits) = softmax_cross_entropy(&logits, &labels)?;
        drop(logits);
        if !loss.is_finite() {
            return Ok(CpuStep {
                loss,
                correct,
                grads: None,
            });
        }
        let mut grads = empty_grad_store()?;
        // The network's input needs no gradient.
        self.seq_backward(&self.layers, tape, dlogits, &mut grads, false)?;
        Ok(CpuStep {
            loss,
            correct,
            grads: Some(grads),
        })
    }

    fn seq_forward(
        &self,
        layers: &[Layer],
        mut x: Arc<Buf>,
        rng: &mut Option<&mut ChaCha8Rng>,
        mut tape: Option<&mut Vec<Saved>>,
    ) -> Result<Arc<Buf>> {
        for layer in layers {
            let (y, saved) = self.layer_forward(layer, x, rng, tape.is_some())?;
            if let Some(t) = tape.as_deref_mut() {
                t.push(saved);
            }
            x = y;
        }
        Ok(x)
    }

    /// One layer; `train` decides batch statistics, dropout and whether
    /// anything is kept for the backward pass.
    fn layer_forward(
        &self,
        layer: &Layer,
        x: Arc<Buf>,
        rng: &mut Option<&mut ChaCha8Rng>,
        train: bool,
    ) -> Result<(Arc<Buf>, Saved)> {
        Ok(match layer {
            Layer::Conv { spec, weight, bias } => {
                let w = weight.as_tensor();
                let geom = ConvGeom::new(&x.dims, w.dims(), spec)?;
                let mut y = Buf::new(&geom.y_dims());
                read(w, |w| match bias {
                    Some(b) => read(b.as_tensor(), |b| {
                        conv_forward(&geom, &x.data, w, Some(b), &mut y.data)
                    }),
                    None => {
                        conv_forward(&geom, &x.data, w, None, &mut y.data);
                        Ok(())
                    }
                })??;
                let saved = if train {
                    Saved::Conv { x, geom }
                } else {
                    Saved::Identity
                };
                (Arc::new(y), saved)
            }
            Layer::BatchNorm(bn) => {
                let (y, saved) = batch_norm_forward(bn, x, train)?;
                (Arc::new(y), saved)
            }
            Layer::Pool(p) => {
                let (n, c, _) = x.ncl();
                let (h, w) = (x.dims[2], x.dims[3]);
                let geom = PoolGeom::new(p, h, w)?;
                let mut y = Buf::new(&[n, c, geom.oh, geom.ow]);
                let saved = match p.kind {
                    PoolKind::Max => {
                        let argmax = max_pool_forward(&geom, &x.data, &mut y.data);
                        Saved::MaxPool {
                            argmax,
                            geom,
                            x_dims: x.dims.clone(),
                        }
                    }
                    PoolKind::Avg => {
                        avg_pool_forward(&geom, &x.data, &mut y.data);
                        Saved::AvgPool {
                            geom,
                            x_dims: x.dims.clone(),
                        }
                    }
                };
                (Arc::new(y), if train { saved } else { Saved::Identity })
            }
            Layer::GlobalAvgPool => {
                let (n, c, l) = x.ncl();
                let mut y = Buf::new(&[n, c]);
                for (o, plane) in y.data.iter_mut().zip(x.data.chunks(l.max(1))) {
                    *o = plane.iter().sum::<f32>() / l.max(1) as f32;
                }
                let saved = if train {
                    Saved::GlobalAvgPool {
                        x_dims: x.dims.clone(),
                    }
                } else {
                    Saved::Identity
                };
                (Arc::new(y), saved)
            }
            Layer::Dropout { rate } => match rng.as_deref_mut() {
                Some(rng) if *rate > 0.0 => {
                    // The same draws, in the same order, as the candle path.
                    let keep = (1.0 - rate) as f32;
                    let scale = 1.0 / keep;
                    let mask: Vec<f32> = (0..x.data.len())
                        .map(|_| {
                            if rng.random::<f32>() < keep {
                                scale
                            } else {
                                0.0
                            }
                        })
                        .collect();
                    let mut y = Buf::unwrap(x);
                    y.data.iter_mut().zip(&mask).for_each(|(v, m)| *v *= m);
                    (Arc::new(y), Saved::Dropout { mask })
                }
                _ => (x, Saved::Identity),
            },
            Layer::Flatten => {
                let x_dims = x.dims.clone();
                let mut y = Buf::unwrap(x);
                y.dims = vec![x_dims[0], x_dims[1..].iter().product()];
                (Arc::new(y), Saved::Reshape { x_dims })
            }
            Layer::Linear { weight, bias } => {
                let w = weight.as_tensor();
                let (out_f, in_f) = w.dims2()?;
                let n = x.dims[0];
                let mut y = Buf::new(&[n, out_f]);
                if let Some(b) = bias {
                    read(b.as_tensor(), |b| {
                        y.data.chunks_mut(out_f).for_each(|r| r.copy_from_slice(b))
                    })?;
                }
                let threads = rayon::current_num_threads();
                read(w, |w| {
                    matmul(
                        &mut y.data,
                        Mat::rm(n, out_f),
                        &x.data,
                        Mat::rm(n, in_f),
                        w,
                        Mat::rm(out_f, in_f).t(),
                        bias.is_some(),
                        threads,
                    )
                })?;
                let saved = if train {
                    Saved::Linear { x }
                } else {
                    Saved::Identity
                };
                (Arc::new(y), saved)
            }
            Layer::Act(i) => {
                let act = &self.acts[*i];
                let (_, c, _) = x.ncl();
                match act.fused_parts(c)? {
                    Some(parts) => {
                        let mut y = Buf::new(&x.dims);
                        forward_into(
                            &parts.kernels,
                            &parts.lens,
                            &x.data,
                            &parts.packed,
                            &x.dims,
                            &mut y.data,
                        )?;
                        let saved = if train {
                            Saved::ActFused { x, parts }
                        } else {
                            Saved::Identity
                        };
                        (Arc::new(y), saved)
                    }
                    None => {
                        // No kernels (or disabled): the formula through
                        // candle, with a local graph for the backward.
                        let xv = Var::from_tensor(&x.tensor()?)?;
                        let yt = act.forward_formula(xv.as_tensor())?;
                        let y = Buf {
                            data: yt.flatten_all()?.to_vec1()?,
                            dims: x.dims.clone(),
                        };
                        let saved = if train {
                            Saved::ActFormula {
                                x: xv,
                                y: yt,
                                act: *i,
                            }
                        } else {
                            Saved::Identity
                        };
                        (Arc::new(y), saved)
                    }
                }
            }
            Layer::Residual { body, shortcut } => {
                let mut short_tape = Vec::new();
                let mut body_tape = Vec::new();
                let short =
                    self.seq_forward(shortcut, x.clone(), rng, train.then_some(&mut short_tape))?;
                let main = self.seq_forward(body, x, rng, train.then_some(&mut body_tape))?;
                let mut y = Buf::unwrap(main);
                add_assign(&mut y.data, &short.data);
                let saved = Saved::Residual {
                    body: body_tape,
                    shortcut: short_tape,
                };
                (Arc::new(y), saved)
            }
            Layer::Lrn { .. } | Layer::Concat(_) | Layer::Dense(_) => {
                return Err(Error::Config(
                    "the CPU path does not run LRN, concat or dense layers".into(),
                ));
            }
        })
    }

    /// Backward through `layers` from the gradient of their output; returns
    /// the gradient of their input. Without `need_input` the first layer may
    /// skip computing it (the network's input), and what is returned then
    /// is not a gradient.
    fn seq_backward(
        &self,
        layers: &[Layer],
        tape: Vec<Saved>,
        mut dy: Buf,
        grads: &mut GradStore,
        need_input: bool,
    ) -> Result<Buf> {
        for (i, (layer, saved)) in layers.iter().zip(tape).enumerate().rev() {
            dy = self.layer_backward(layer, saved, dy, grads, need_input || i > 0)?;
        }
        Ok(dy)
    }

    fn layer_backward(
        &self,
        layer: &Layer,
        saved: Saved,
        dy: Buf,
        grads: &mut GradStore,
        need_dx: bool,
    ) -> Result<Buf> {
        Ok(match (layer, saved) {
            (Layer::Conv { weight, bias, .. }, Saved::Conv { x, geom }) => {
                let w = weight.as_tensor();
                let mut dx = Buf::new(if need_dx { &x.dims } else { &[0] });
                let mut dw = Buf::new(w.dims());
                let mut db = bias.as_ref().map(|_| Buf::new(&[geom.cout]));
                read(w, |w| {
                    conv_backward(
                        &geom,
                        &x.data,
                        w,
                        &dy.data,
                        need_dx.then_some(dx.data.as_mut_slice()),
                        &mut dw.data,
                        db.as_mut().map(|d| d.data.as_mut_slice()),
                    )
                })?;
                self.put(grads, w, dw)?;
                if let (Some(b), Some(db)) = (bias, db) {
                    self.put(grads, b.as_tensor(), db)?;
                }
                dx
            }
            (Layer::BatchNorm(bn), Saved::BatchNorm { x, mean, inv_std }) => {
                let (dx, dgamma, dbeta) = batch_norm_backward(bn, &x, &mean, &inv_std, &dy)?;
                self.put(grads, bn.gamma.as_tensor(), dgamma)?;
                self.put(grads, bn.beta.as_tensor(), dbeta)?;
                dx
            }
            (
                Layer::Pool(_),
                Saved::MaxPool {
                    argmax,
                    geom,
                    x_dims,
                },
            ) => {
                let mut dx = Buf::zeros(&x_dims);
                let (pin, pout) = (geom.h * geom.w, geom.oh * geom.ow);
                par_planes(&mut dx.data, pin, |p, plane| {
                    let (g, idx) = (&dy.data[p * pout..][..pout], &argmax[p * pout..][..pout]);
                    for (&gv, &i) in g.iter().zip(idx) {
                        plane[i as usize] += gv;
                    }
                });
                dx
            }
            (Layer::Pool(_), Saved::AvgPool { geom, x_dims }) => {
                let mut dx = Buf::zeros(&x_dims);
                let (pin, pout) = (geom.h * geom.w, geom.oh * geom.ow);
                par_planes(&mut dx.data, pin, |p, plane| {
                    let g = &dy.data[p * pout..][..pout];
                    for oy in 0..geom.oh {
                        for ox in 0..geom.ow {
                            let (y0, y1, x0, x1) = geom.window(oy, ox);
                            let share = (f64::from(g[oy * geom.ow + ox])
                                / geom.divisor(y0, y1, x0, x1))
                                as f32;
                            for y in y0..y1 {
                                for v in &mut plane[y * geom.w + x0..y * geom.w + x1] {
                                    *v += share;
                                }
                            }
                        }
                    }
                });
                dx
            }
            (Layer::GlobalAvgPool, Saved::GlobalAvgPool { x_dims }) => {
                let mut dx = Buf::new(&x_dims);
                let l: usize = x_dims[2..].iter().product();
                for (plane, g) in dx.data.chunks_mut(l.max(1)).zip(&dy.data) {
                    plane.fill(g / l.max(1) as f32);
                }
                dx
            }
            (Layer::Dropout { .. }, Saved::Dropout { mask }) => {
                let mut dx = dy;
                dx.data.iter_mut().zip(&mask).for_each(|(v, m)| *v *= m);
                dx
            }
            (_, Saved::Identity) => dy,
            (Layer::Flatten, Saved::Reshape { x_dims }) => {
                let mut dx = dy;
                dx.dims = x_dims;
                dx
            }
            (Layer::Linear { weight, bias }, Saved::Linear { x }) => {
                let w = weight.as_tensor();
                let (out_f, in_f) = w.dims2()?;
                let n = x.dims[0];
                let threads = rayon::current_num_threads();
                let mut dw = Buf::new(&[out_f, in_f]);
                matmul(
                    &mut dw.data,
                    Mat::rm(out_f, in_f),
                    &dy.data,
                    Mat::rm(n, out_f).t(),
                    &x.data,
                    Mat::rm(n, in_f),
                    false,
                    threads,
                );
                let mut dx = Buf::new(&x.dims);
                read(w, |w| {
                    matmul(
                        &mut dx.data,
                        Mat::rm(n, in_f),
                        &dy.data,
                        Mat::rm(n, out_f),
                        w,
                        Mat::rm(out_f, in_f),
                        false,
                        threads,
                    )
                })?;
                self.put(grads, w, dw)?;
                if let Some(b) = bias {
                    let mut db = Buf::zeros(&[out_f]);
                    for row in dy.data.chunks(out_f) {
                        add_assign(&mut db.data, row);
                    }
                    self.put(grads, b.as_tensor(), db)?;
                }
                dx
            }
            (Layer::Act(_), Saved::ActFused { x, parts }) => {
                let mut dx = Buf::new(&x.dims);
                let gp = backward_into(
                    &parts.kernels,
                    &parts.lens,
                    &x.data,
                    &parts.packed,
                    &dy.data,
                    &x.dims,
                    &mut dx.data,
                )?;
                for (at, len, t) in &parts.trained {
                    let mut g = Buf::new(&[*len]);
                    g.data.copy_from_slice(&gp[*at..*at + *len]);
                    self.put(grads, t, g)?;
                }
                dx
            }
            (Layer::Act(_), Saved::ActFormula { x, y, act }) => {
                let local = y.mul(&dy.tensor()?)?.sum_all()?.backward()?;
                let dx = local
                    .get(x.as_tensor())
                    .ok_or_else(|| Error::Config("activation formula lost its input".into()))?;
                for p in self.acts[act].trained_vars() {
                    if let Some(g) = local.get(p.as_tensor()) {
                        grads.insert(p.as_tensor(), g.detach());
                    }
                }
                Buf {
                    data: dx.flatten_all()?.to_vec1()?,
                    dims: dy.dims.clone(),
                }
            }
            (
                Layer::Residual { body, shortcut },
                Saved::Residual {
                    body: bt,
                    shortcut: st,
                },
            ) => {
                // Both branches need the whole gradient; an empty shortcut
                // (identity) passes it straight through.
                let short = self.seq_backward(shortcut, st, Buf::copy_of(&dy), grads, true)?;
                let mut dx = self.seq_backward(body, bt, dy, grads, true)?;
                add_assign(&mut dx.data, &short.data);
                dx
            }
            _ => {
                return Err(Error::Config(
                    "CPU path: a layer's saved state does not match the layer".into(),
                ));
            }
        })
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

impl Model {
    /// Stores `grad` (shaped like `param`) as `param`'s gradient. The
    /// tensor handed out is the same one every step (its storage swapped
    /// with `grad`'s, whose old storage goes back to the free list), so
    /// gradients cost no allocation; a [`GradStore`] is valid until the
    /// next step.
    fn put(&self, grads: &mut GradStore, param: &Tensor, mut grad: Buf) -> Result<()> {
        let mut cache = self
            .grad_cache
            .lock()
            .map_err(|_| Error::Config("gradient cache poisoned by a panic".into()))?;
        let t = match cache.get(&param.id()) {
            Some(t) => t.clone(),
            None => {
                let t = Tensor::zeros(param.shape(), DType::F32, &Device::Cpu)?;
                cache.insert(param.id(), t.clone());
                t
            }
        };
        let op = SwapIn(RefCell::new(std::mem::take(&mut grad.data)));
        t.inplace_op1(&op)?;
        grad.data = op.0.into_inner();
        grads.insert(param, t);
        Ok(())
    }
}

/// The batch as a buffer (copied once from the input tensor).
fn input_buf(x: &Tensor) -> Result<Buf> {
    let x = x.to_dtype(DType::F32)?;
    let mut b = Buf::new(x.dims());
    read(&x.contiguous()?, |v| b.data.copy_from_slice(v))?;
    Ok(b)
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

fn add_assign(dst: &mut [f32], src: &[f32]) {
    if dst.len() >= PAR_MIN {
        dst.par_chunks_mut(PAR_MIN)
            .zip(src.par_chunks(PAR_MIN))
            .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(a, b)| *a += b));
    } else {
        dst.iter_mut().zip(src).for_each(|(a, b)| *a += b);
    }
}

/// Calls `f(plane_index, plane)` for every `plane`-sized chunk of `data`,
/// in groups of planes across rayon's threads.
fn par_planes(data: &mut [f32], plane: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let plane = plane.max(1);
    let per = (PAR_MIN / plane).max(1);
    data.par_chunks_mut(per * plane)
        .enumerate()
        .for_each(|(c, chunk)| {
            for (i, p) in chunk.chunks_mut(plane).enumerate() {
                f(c * per + i, p);
            }
        });
}

/// Max pooling of every plane; returns each output's argmax (first
/// maximum, NaN wins, as the custom op and the generic path). Window
/// bounds are computed once per row and column, not per cell.
fn max_pool_forward(g: &PoolGeom, x: &[f32], y: &mut [f32]) -> Scratch<u32> {
    let (pin, pout) = (g.h * g.w, g.oh * g.ow);
    let rows: Vec<(usize, usize)> = (0..g.oh)
        .map(|oy| {
            let (y0, y1, _, _) = g.window(oy, 0);
            (y0, y1)
        })
        .collect();
    let cols: Vec<(usize, usize)> = (0..g.ow)
        .map(|ox| {
            let (_, _, x0, x1) = g.window(0, ox);
            (x0, x1)
        })
        .collect();
    let mut argmax = Scratch::<u32>::any(y.len());
    let per = (PAR_MIN / pin.max(1)).max(1);
    // The common 2x2/2 pooling without padding: every window is whole.
    let pool2x2 = g.kernel == (2, 2) && g.stride == (2, 2) && g.pad == (0, 0, 0, 0);
    y.par_chunks_mut(per * pout.max(1))
        .zip(argmax.par_chunks_mut(per * pout.max(1)))
        .enumerate()
        .for_each(|(c, (ys, idx))| {
            for (i, (yp, ip)) in ys.chunks_mut(pout).zip(idx.chunks_mut(pout)).enumerate() {
                let plane = &x[(c * per + i) * pin..][..pin];
                if pool2x2 {
                    max_pool_2x2(g, plane, yp, ip);
                    continue;
                }
                for (oy, &(y0, y1)) in rows.iter().enumerate() {
                    for (ox, &(x0, x1)) in cols.iter().enumerate() {
                        let mut best = y0 * g.w + x0;
                        let mut best_v = plane[best];
                        for yy in y0..y1 {
                            let base = yy * g.w + x0;
                            for (dx, &v) in plane[base..yy * g.w + x1].iter().enumerate() {
                                let at = base + dx;
                                // Branch-free select: window values are
                                // unordered, a branch would mispredict.
                                let better = v > best_v || (v.is_nan() && !best_v.is_nan());
                                best = if better { at } else { best };
                                best_v = if better { v } else { best_v };
                            }
                        }
                        yp[oy * g.ow + ox] = best_v;
                        ip[oy * g.ow + ox] = best as u32;
                    }
                }
            }
        });
    argmax
}

/// [`max_pool_forward`] of one plane for a 2x2 window with stride 2 and no
/// padding: the same first-maximum rule over the window in row order.
fn max_pool_2x2(g: &PoolGeom, plane: &[f32], y: &mut [f32], idx: &mut [u32]) {
    for oy in 0..g.oh {
        let (r0, r1) = (2 * oy * g.w, (2 * oy + 1) * g.w);
        let (yr, ir) = (&mut y[oy * g.ow..][..g.ow], &mut idx[oy * g.ow..][..g.ow]);
        for (ox, (yv, iv)) in yr.iter_mut().zip(ir.iter_mut()).enumerate() {
            let c = 2 * ox;
            let (mut best, mut best_v) = (r0 + c, plane[r0 + c]);
            for at in [r0 + c + 1, r1 + c, r1 + c + 1] {
                let v = plane[at];
                let better = v > best_v || (v.is_nan() && !best_v.is_nan());
                best = if better { at } else { best };
                best_v = if better { v } else { best_v };
            }
            *yv = best_v;
            *iv = best as u32;
        }
    }
}

fn avg_pool_forward(g: &PoolGeom, x: &[f32], y: &mut [f32]) {
    let (pin, pout) = (g.h * g.w, g.oh * g.ow);
    par_planes(y, pout, |p, yp| {
        let plane = &x[p * pin..][..pin];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let (y0, y1, x0, x1) = g.window(oy, ox);
                let mut acc = 0f64;
                for yy in y0..y1 {
                    for v in &plane[yy * g.w + x0..yy * g.w + x1] {
                        acc += f64::from(*v);
                    }
                }
                yp[oy * g.ow + ox] = (acc / g.divisor(y0, y1, x0, x1)) as f32;
            }
        }
    });
}

/// Batch norm over `[N, C, ...]`: batch statistics in train mode (and the
/// running update, as the candle path), running statistics in eval mode.
fn batch_norm_forward(bn: &BatchNorm, x: Arc<Buf>, train: bool) -> Result<(Buf, Saved)> {
    let (n, c, l) = x.ncl();
    let m = n * l;
    let gamma: Vec<f32> = bn.gamma.as_tensor().to_vec1()?;
    let beta: Vec<f32> = bn.beta.as_tensor().to_vec1()?;
    let (mean, var) = if train {
        let stats: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let planes = || (0..n).map(|i| &x.data[(i * c + ch) * l..][..l]);
                let s: f64 = planes().map(|p| f64::from(lane_sum(p, |v| v))).sum();
                let mean = s / m.max(1) as f64;
                let mf = mean as f32;
                let s2: f64 = planes()
                    .map(|p| f64::from(lane_sum(p, |v| (v - mf) * (v - mf))))
                    .sum();
                (mean, s2 / m.max(1) as f64)
            })
            .collect();
        let mean: Vec<f32> = stats.iter().map(|s| s.0 as f32).collect();
        let var: Vec<f32> = stats.iter().map(|s| s.1 as f32).collect();
        // Running statistics: the unbiased variance, as the candle path.
        let unbias = if m > 1 {
            m as f64 / (m - 1) as f64
        } else {
            1.0
        };
        let mo = bn.momentum;
        let rm: Vec<f32> = bn.running_mean.as_tensor().to_vec1()?;
        let rv: Vec<f32> = bn.running_var.as_tensor().to_vec1()?;
        let new_rm: Vec<f32> = rm
            .iter()
            .zip(&mean)
            .map(|(r, b)| (mo * f64::from(*r) + (1.0 - mo) * f64::from(*b)) as f32)
            .collect();
        let new_rv: Vec<f32> = rv
            .iter()
            .zip(&var)
            .map(|(r, b)| (mo * f64::from(*r) + (1.0 - mo) * unbias * f64::from(*b)) as f32)
            .collect();
        bn.running_mean
            .set(&Tensor::from_vec(new_rm, c, &Device::Cpu)?)?;
        bn.running_var
            .set(&Tensor::from_vec(new_rv, c, &Device::Cpu)?)?;
        (mean, var)
    } else {
        (
            bn.running_mean.as_tensor().to_vec1()?,
            bn.running_var.as_tensor().to_vec1()?,
        )
    };
    let inv_std: Vec<f32> = var
        .iter()
        .map(|v| (1.0 / (f64::from(*v) + bn.eps).sqrt()) as f32)
        .collect();
    let mut y = Buf::new(&x.dims);
    par_planes(&mut y.data, l, |p, out| {
        let ch = p % c;
        let scale = gamma[ch] * inv_std[ch];
        let shift = beta[ch] - mean[ch] * scale;
        for (o, v) in out.iter_mut().zip(&x.data[p * l..][..l]) {
            *o = v * scale + shift;
        }
    });
    let saved = if train {
        Saved::BatchNorm { x, mean, inv_std }
    } else {
        Saved::Identity
    };
    Ok((y, saved))
}

/// `(dx, dgamma, dbeta)`: `dx = gamma * inv_std / M * (M * dy - sum(dy) -
/// xhat * sum(dy * xhat))`, `dgamma = sum(dy * xhat)`, `dbeta = sum(dy)`
/// per channel.
fn batch_norm_backward(
    bn: &BatchNorm,
    x: &Buf,
    mean: &[f32],
    inv_std: &[f32],
    dy: &Buf,
) -> Result<(Buf, Buf, Buf)> {
    let (n, c, l) = x.ncl();
    let m = (n * l).max(1) as f32;
    let gamma: Vec<f32> = bn.gamma.as_tensor().to_vec1()?;
    let sums: Vec<(f32, f32)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mut sd, mut sdx) = (0f64, 0f64);
            let (mu, is) = (mean[ch], inv_std[ch]);
            for i in 0..n {
                let at = (i * c + ch) * l;
                let (g, v) = (&dy.data[at..at + l], &x.data[at..at + l]);
                sd += f64::from(lane_sum(g, |g| g));
                sdx += f64::from(lane_dot(g, v, |g, v| g * ((v - mu) * is)));
            }
            (sd as f32, sdx as f32)
        })
        .collect();
    let mut dx = Buf::new(&x.dims);
    par_planes(&mut dx.data, l, |p, out| {
        let ch = p % c;
        let (sd, sdx) = sums[ch];
        let k = gamma[ch] * inv_std[ch] / m;
        let at = p * l;
        for ((o, &g), &v) in out
            .iter_mut()
            .zip(&dy.data[at..at + l])
            .zip(&x.data[at..at + l])
        {
            let xhat = (v - mean[ch]) * inv_std[ch];
            *o = k * (m * g - sd - xhat * sdx);
        }
    });
    let mut dgamma = Buf::new(&[c]);
    let mut dbeta = Buf::new(&[c]);
    for ((g, b), s) in dgamma.data.iter_mut().zip(&mut dbeta.data).zip(&sums) {
        (*g, *b) = (s.1, s.0);
    }
    Ok((dx, dgamma, dbeta))
}

/// `sum(f(v))` over a slice with 16 independent partial sums, so the loop
/// vectorises (a single f32 accumulator is a serial dependency chain).
#[inline]
fn lane_sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = xs.chunks_exact(16);
    let rest: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// `sum(f(a, b))` over two slices of equal length, as [`lane_sum`].
#[inline]
fn lane_dot(xs: &[f32], ys: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0f32; 16];
    let (cx, cy) = (xs.chunks_exact(16), ys.chunks_exact(16));
    let rest: f32 = cx
        .remainder()
        .iter()
        .zip(cy.remainder())
        .map(|(&a, &b)| f(a, b))
        .sum();
    for (a16, b16) in cx.zip(cy) {
        for ((acc, &a), &b) in acc.iter_mut().zip(a16).zip(b16) {
            *acc += f(a, b);
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// Mean softmax cross-entropy of `logits: [N, K]` against class indices,
/// the number of rows whose first maximum is the label, and the gradient
/// `(softmax - onehot) / N`.
fn softmax_cross_entropy(logits: &Buf, labels: &[u32]) -> Result<(f32, u64, Buf)> {
    let &[n, k] = logits.dims.as_slice() else {
        return Err(Error::Config(format!(
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

#[cfg(test)]
mod tests {
    use super::*;
    use acbench_dsl::ir::{Padding, Pool2d};

    /// Both max-pool loops (2x2/2 and general) against the pooling op's own
    /// first-maximum rule, with ties and NaN.
    #[test]
    fn max_pool_matches_the_pool_op_rule() -> Result<()> {
        let (h, w) = (6, 8);
        let mut x: Vec<f32> = (0..3 * h * w).map(|v| ((v * 37) % 11) as f32).collect();
        x[5] = f32::NAN;
        for (k, s, pad) in [(2, 2, 0), (3, 2, 1), (2, 1, 0)] {
            let p = Pool2d {
                kind: PoolKind::Max,
                kernel: (k, k),
                stride: (s, s),
                padding: Padding {
                    top: pad,
                    bottom: pad,
                    left: pad,
                    right: pad,
                },
                count_include_pad: false,
            };
            let g = PoolGeom::new(&p, h, w)?;
            let mut y = vec![0f32; 3 * g.oh * g.ow];
            let idx = max_pool_forward(&g, &x, &mut y);
            for plane in 0..3 {
                let xs = &x[plane * h * w..][..h * w];
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let at = plane * g.oh * g.ow + oy * g.ow + ox;
                        let want = g.argmax(xs, oy, ox);
                        assert_eq!(idx[at] as usize, want, "k{k} s{s} p{pad} ({oy},{ox})");
                        assert_eq!(y[at].to_bits(), xs[want].to_bits());
                    }
                }
            }
        }
        Ok(())
    }
}
