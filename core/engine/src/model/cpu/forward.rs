//! The CPU path's forward pass: one function per layer type, each returning
//! its output and what its backward needs ([`Saved`]).

use std::sync::Arc;

use acbench_dsl::ir::PoolKind;
use candle_core::{Tensor, Var};
use rand_chacha::ChaCha8Rng;

use super::{Buf, concat_channels, read, values};
use crate::activation::FusedParts;
use crate::error::Result;
use crate::model::{BatchNorm, Layer, Model};
use crate::ops::conv::{ConvGeom, conv_forward};
use crate::ops::fused::forward_into;
use crate::ops::gemm::{Mat, matmul};
use crate::ops::lrn::{Lrn, lrn_forward};
use crate::ops::pool::{PoolGeom, avg_pool_forward, global_avg_pool_forward, max_pool_forward};
use crate::ops::scratch::Scratch;
use crate::ops::slices::{add_assign, mul_assign};
use crate::ops::{dropout, norm};

/// What a layer's backward needs from its forward.
pub(super) enum Saved {
    Conv {
        x: Arc<Buf>,
        geom: ConvGeom,
    },
    BatchNorm {
        x: Arc<Buf>,
        mean: Vec<f32>,
        inv_std: Vec<f32>,
    },
    Lrn {
        x: Arc<Buf>,
        scale: Buf,
        pow: Buf,
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
        mask: Scratch<f32>,
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
    /// Each branch's tape and output channels.
    Concat {
        branches: Vec<(Vec<Saved>, usize)>,
    },
    /// Each layer's tape, the channels it was given and the channels it
    /// added.
    Dense {
        layers: Vec<(Vec<Saved>, usize, usize)>,
    },
}

impl Model {
    pub(super) fn seq_forward(
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
        let keep = |s: Saved| if train { s } else { Saved::Identity };
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
                (Arc::new(y), keep(Saved::Conv { x, geom }))
            }
            Layer::BatchNorm(bn) => {
                let (y, saved) = batch_norm(bn, x, train)?;
                (Arc::new(y), saved)
            }
            Layer::Lrn(p) => {
                let (y, saved) = lrn(p, x)?;
                (Arc::new(y), keep(saved))
            }
            Layer::Pool(p) => {
                let (n, c, _) = x.ncl();
                let geom = PoolGeom::new(p, x.dims[2], x.dims[3])?;
                let mut y = Buf::new(&[n, c, geom.oh, geom.ow]);
                let x_dims = x.dims.clone();
                let saved = match p.kind {
                    PoolKind::Max => {
                        let mut argmax = Scratch::<u32>::any(y.data.len());
                        max_pool_forward(&geom, &x.data, &mut y.data, &mut argmax);
                        Saved::MaxPool {
                            argmax,
                            geom,
                            x_dims,
                        }
                    }
                    PoolKind::Avg => {
                        avg_pool_forward(&geom, &x.data, &mut y.data);
                        Saved::AvgPool { geom, x_dims }
                    }
                };
                (Arc::new(y), keep(saved))
            }
            Layer::GlobalAvgPool => {
                let (n, c, l) = x.ncl();
                let mut y = Buf::new(&[n, c]);
                global_avg_pool_forward(l, &x.data, &mut y.data);
                let x_dims = x.dims.clone();
                (Arc::new(y), keep(Saved::GlobalAvgPool { x_dims }))
            }
            Layer::Dropout { rate } => match rng.as_deref_mut() {
                Some(rng) if *rate > 0.0 => {
                    let mut mask = Scratch::<f32>::any(x.data.len());
                    dropout::fill_mask(rng, *rate, &mut mask);
                    let mut y = Buf::unwrap(x);
                    mul_assign(&mut y.data, &mask);
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
                (Arc::new(y), keep(Saved::Linear { x }))
            }
            Layer::Act(i) => self.act_forward(*i, x, train)?,
            Layer::Residual { body, shortcut } => {
                let mut short_tape = Vec::new();
                let mut body_tape = Vec::new();
                // Shortcut first: the order the autograd path draws dropout in.
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
            Layer::Concat(branches) => {
                let mut outs = Vec::with_capacity(branches.len());
                let mut tapes = Vec::with_capacity(branches.len());
                for b in branches {
                    let mut tape = Vec::new();
                    outs.push(self.seq_forward(b, x.clone(), rng, train.then_some(&mut tape))?);
                    tapes.push(tape);
                }
                let parts: Vec<&Buf> = outs.iter().map(|o| o.as_ref()).collect();
                let y = concat_channels(&parts);
                let branches = tapes
                    .into_iter()
                    .zip(&outs)
                    .map(|(t, o)| (t, o.ncl().1))
                    .collect();
                (Arc::new(y), Saved::Concat { branches })
            }
            Layer::Dense(layers) => {
                let mut x = x;
                let mut saved = Vec::with_capacity(layers.len());
                for l in layers {
                    let mut tape = Vec::new();
                    let y = self.seq_forward(l, x.clone(), rng, train.then_some(&mut tape))?;
                    let cat = concat_channels(&[&x, &y]);
                    saved.push((tape, x.ncl().1, y.ncl().1));
                    x = Arc::new(cat);
                }
                (x, Saved::Dense { layers: saved })
            }
        })
    }

    fn act_forward(&self, i: usize, x: Arc<Buf>, train: bool) -> Result<(Arc<Buf>, Saved)> {
        let act = &self.acts[i];
        let (_, c, _) = x.ncl();
        Ok(match act.fused_parts(c)? {
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
                // No kernels (or disabled): the formula through candle, with
                // a local graph for the backward.
                let xv = Var::from_tensor(&x.tensor()?)?;
                let yt = act.forward_formula(xv.as_tensor())?;
                let y = Buf::from_tensor(&yt)?;
                let saved = if train {
                    Saved::ActFormula {
                        x: xv,
                        y: yt,
                        act: i,
                    }
                } else {
                    Saved::Identity
                };
                (Arc::new(y), saved)
            }
        })
    }
}

/// Batch norm over `[N, C, ...]`: batch statistics (and the running
/// update) in train mode, running statistics in eval mode.
fn batch_norm(bn: &BatchNorm, x: Arc<Buf>, train: bool) -> Result<(Buf, Saved)> {
    let dims = x.ncl();
    let (n, c, l) = dims;
    let (mean, var) = if train {
        let (mean, var) = norm::stats(&x.data, dims);
        let t = |v: &[f32]| Tensor::from_slice(v, c, &candle_core::Device::Cpu);
        norm::update_running_vars(
            &bn.running_mean,
            &bn.running_var,
            &t(&mean)?,
            &t(&var)?,
            n * l,
            bn.momentum,
        )?;
        (mean, var)
    } else {
        (
            values(bn.running_mean.as_tensor())?,
            values(bn.running_var.as_tensor())?,
        )
    };
    let inv_std = norm::inv_std(&var, bn.eps);
    let (gamma, beta) = (values(bn.gamma.as_tensor())?, values(bn.beta.as_tensor())?);
    let mut y = Buf::new(&x.dims);
    norm::normalise(&x.data, dims, &gamma, &beta, &mean, &inv_std, &mut y.data);
    let saved = if train {
        Saved::BatchNorm { x, mean, inv_std }
    } else {
        Saved::Identity
    };
    Ok((y, saved))
}

fn lrn(p: &Lrn, x: Arc<Buf>) -> Result<(Buf, Saved)> {
    let mut y = Buf::new(&x.dims);
    let (mut scale, mut pow) = (Buf::new(&x.dims), Buf::new(&x.dims));
    lrn_forward(
        p,
        x.ncl(),
        &x.data,
        &mut y.data,
        &mut scale.data,
        &mut pow.data,
    );
    Ok((y, Saved::Lrn { x, scale, pow }))
}
