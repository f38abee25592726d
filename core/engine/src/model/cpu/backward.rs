//! The CPU path's backward pass: from the gradient of a layer's output and
//! what its forward kept, the gradient of its input and of its parameters.

use super::forward::Saved;
use super::{Buf, Grads, read, split_channels, values};
use crate::error::{Error, Result};
use crate::model::{Layer, Model};
use crate::ops::conv::conv_backward;
use crate::ops::fused::backward_into;
use crate::ops::gemm::{Mat, matmul};
use crate::ops::lrn::lrn_backward;
use crate::ops::norm;
use crate::ops::pool::{avg_pool_backward, global_avg_pool_backward, max_pool_backward};
use crate::ops::slices::{add_assign, mul_assign};

impl Model {
    /// Backward through `layers` from the gradient of their output; returns
    /// the gradient of their input. Without `need_input` the first layer may
    /// skip computing it (the network's input), and what is returned then
    /// is not a gradient.
    pub(super) fn seq_backward(
        &self,
        layers: &[Layer],
        tape: Vec<Saved>,
        mut dy: Buf,
        grads: &mut Grads<'_>,
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
        grads: &mut Grads<'_>,
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
                        need_dx.then_some(&mut *dx.data),
                        &mut dw.data,
                        db.as_mut().map(|d| &mut *d.data),
                    )
                })?;
                grads.put(w, dw)?;
                if let (Some(b), Some(db)) = (bias, db) {
                    grads.put(b.as_tensor(), db)?;
                }
                dx
            }
            (Layer::BatchNorm(bn), Saved::BatchNorm { x, mean, inv_std }) => {
                let gamma = values(bn.gamma.as_tensor())?;
                let mut dx = Buf::new(&x.dims);
                let (dgamma, dbeta) = norm::backward(
                    &x.data,
                    x.ncl(),
                    &gamma,
                    &mean,
                    &inv_std,
                    &dy.data,
                    true,
                    &mut dx.data,
                );
                let c = gamma.len();
                let small = |v: Vec<f32>| Buf {
                    data: crate::ops::scratch::Scratch::from_vec(v),
                    dims: vec![c],
                };
                grads.put(bn.gamma.as_tensor(), small(dgamma))?;
                grads.put(bn.beta.as_tensor(), small(dbeta))?;
                dx
            }
            (Layer::Lrn(p), Saved::Lrn { x, scale, pow }) => {
                let mut dx = Buf::new(&x.dims);
                lrn_backward(
                    p,
                    x.ncl(),
                    &x.data,
                    &scale.data,
                    &pow.data,
                    &dy.data,
                    &mut dx.data,
                );
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
                let mut dx = Buf::new(&x_dims);
                max_pool_backward(&geom, &argmax, &dy.data, &mut dx.data);
                dx
            }
            (Layer::Pool(_), Saved::AvgPool { geom, x_dims }) => {
                let mut dx = Buf::new(&x_dims);
                avg_pool_backward(&geom, &dy.data, &mut dx.data);
                dx
            }
            (Layer::GlobalAvgPool, Saved::GlobalAvgPool { x_dims }) => {
                let mut dx = Buf::new(&x_dims);
                global_avg_pool_backward(dx.ncl().2, &dy.data, &mut dx.data);
                dx
            }
            (Layer::Dropout { .. }, Saved::Dropout { mask }) => {
                let mut dx = dy;
                mul_assign(&mut dx.data, &mask);
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
                grads.put(w, dw)?;
                if let Some(b) = bias {
                    let mut db = Buf::zeros(&[out_f]);
                    for row in dy.data.chunks(out_f) {
                        add_assign(&mut db.data, row);
                    }
                    grads.put(b.as_tensor(), db)?;
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
                    grads.put(t, g)?;
                }
                dx
            }
            (Layer::Act(_), Saved::ActFormula { x, y, act }) => {
                let local = y.mul(&dy.tensor()?)?.sum_all()?.backward()?;
                let dx = local
                    .get(x.as_tensor())
                    .ok_or_else(|| Error::Internal("activation formula lost its input".into()))?;
                for p in self.acts[act].trained_vars() {
                    if let Some(g) = local.get(p.as_tensor()) {
                        grads.store.insert(p.as_tensor(), g.detach());
                    }
                }
                let mut dx = Buf::from_tensor(dx)?;
                dx.dims.clone_from(&dy.dims);
                dx
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
            (Layer::Concat(branches), Saved::Concat { branches: saved }) => {
                let channels: Vec<usize> = saved.iter().map(|s| s.1).collect();
                let parts = split_channels(&dy, &channels);
                drop(dy);
                let mut dx: Option<Buf> = None;
                for ((layers, (tape, _)), part) in branches.iter().zip(saved).zip(parts) {
                    let d = self.seq_backward(layers, tape, part, grads, need_dx)?;
                    match dx.as_mut() {
                        Some(acc) if need_dx => add_assign(&mut acc.data, &d.data),
                        Some(_) => {}
                        None => dx = Some(d),
                    }
                }
                dx.ok_or_else(|| Error::Internal("a concat without branches".into()))?
            }
            (Layer::Dense(layers), Saved::Dense { layers: saved }) => {
                // Layer k saw x_k and added y_k: x_{k+1} = [x_k, y_k]. Going
                // back, x_k's gradient is its part of x_{k+1}'s plus what
                // flows back through layer k.
                let mut dx = dy;
                for (k, (l, (tape, cx, cy))) in layers.iter().zip(saved).enumerate().rev() {
                    let mut parts = split_channels(&dx, &[cx, cy]).into_iter();
                    drop(dx);
                    let (Some(mut d_x), Some(d_y)) = (parts.next(), parts.next()) else {
                        return Err(Error::Internal("dense backward lost a part".into()));
                    };
                    let need = need_dx || k > 0;
                    let through = self.seq_backward(l, tape, d_y, grads, need)?;
                    if need {
                        add_assign(&mut d_x.data, &through.data);
                    }
                    dx = d_x;
                }
                dx
            }
            _ => {
                return Err(Error::Internal(
                    "CPU path: a layer's saved state does not match the layer".into(),
                ));
            }
        })
    }
}
