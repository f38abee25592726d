//! [`conv_forward`] and [`conv_backward`] as candle custom ops, for the
//! CPU path through candle's autograd.

use super::*;
use crate::ops::Real;
use crate::ops::custom::{Input, InputGrads, Kernel, Op, Output};

/// The CPU path through candle's autograd: [`conv_forward`] as a custom op
/// whose backward is [`conv_backward`].
pub fn conv2d_cpu(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    c: &Conv2d,
) -> Result<Tensor> {
    let geom = ConvGeom::new(x.dims(), weight.dims(), c)?;
    let (x, weight) = (x.contiguous()?, weight.contiguous()?);
    match bias {
        Some(b) => x.apply_op3(&weight, &b.contiguous()?, Op(ConvOp(geom))),
        None => x.apply_op2(&weight, Op(ConvOp(geom))),
    }
}

/// `(x, weight[, bias]) -> y`.
struct ConvOp(ConvGeom);

impl ConvOp {
    fn fwd<T: WithDType>(&self, x: Input<'_>, w: Input<'_>, b: Option<Input<'_>>) -> Output {
        let g = &self.0;
        let mut y = vec![T::zero(); g.n * g.y_image()];
        let b = match b {
            Some((s, l)) => Some(storage_slice::<T>(s, l)?),
            None => None,
        };
        conv_forward(
            g,
            storage_slice(x.0, x.1)?,
            storage_slice(w.0, w.1)?,
            b,
            &mut y,
        );
        Ok((T::to_cpu_storage_owned(y), Shape::from(g.y_dims().to_vec())))
    }

    /// `(dx, dw, db)` from [`ConvBwd`]'s packed `[dw | db | dx]` result.
    fn grads(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: bool,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 3]> {
        let g = &self.0;
        let op = ConvBwd {
            geom: g.clone(),
            dx: x.track_op(),
            db: bias,
        };
        let needs_dx = op.dx;
        let packed = grad.contiguous()?.apply_op3_no_bwd(x, w, &Op(op))?;
        let wl = g.w_len();
        let dw = packed.narrow(0, 0, wl)?.reshape(w.shape())?;
        let db = if bias {
            Some(packed.narrow(0, wl, g.cout)?)
        } else {
            None
        };
        let at = wl + if bias { g.cout } else { 0 };
        let dx = if needs_dx {
            Some(
                packed
                    .narrow(0, at, g.n * g.x_image())?
                    .reshape(x.shape())?,
            )
        } else {
            None
        };
        Ok([dx, Some(dw), db])
    }
}

impl Kernel<2> for ConvOp {
    const NAME: &'static str = "acbench-conv2d";
    const WHAT: &'static str = "convolution";

    fn forward<T: Real>(&self, [x, w]: [Input<'_>; 2]) -> Output {
        self.fwd::<T>(x, w, None)
    }

    fn backward<T: Real>(&self, [x, w]: [&Tensor; 2], grad: &Tensor) -> InputGrads<2> {
        let [dx, dw, _] = self.grads(x, w, false, grad)?;
        Ok([dx, dw])
    }
}

impl Kernel<3> for ConvOp {
    const NAME: &'static str = "acbench-conv2d-bias";
    const WHAT: &'static str = "convolution";

    fn forward<T: Real>(&self, [x, w, b]: [Input<'_>; 3]) -> Output {
        self.fwd::<T>(x, w, Some(b))
    }

    fn backward<T: Real>(&self, [x, w, _]: [&Tensor; 3], grad: &Tensor) -> InputGrads<3> {
        self.grads(x, w, true, grad)
    }
}

/// `(dy, x, weight) -> [dw | db | dx]` flattened: one pass computes all
/// three (only what the forward's inputs need).
struct ConvBwd {
    geom: ConvGeom,
    /// Whether the input needs a gradient (not for the network's input).
    dx: bool,
    /// Whether there is a bias.
    db: bool,
}

impl Kernel<3> for ConvBwd {
    const NAME: &'static str = "acbench-conv2d-bwd";
    const WHAT: &'static str = "convolution backward";

    fn forward<T: Real>(&self, [dy, x, w]: [Input<'_>; 3]) -> Output {
        let g = &self.geom;
        let (wl, bl) = (g.w_len(), if self.db { g.cout } else { 0 });
        let xl = if self.dx { g.n * g.x_image() } else { 0 };
        let mut out = vec![T::zero(); wl + bl + xl];
        let (dw, rest) = out.split_at_mut(wl);
        let (db, dx) = rest.split_at_mut(bl);
        conv_backward(
            g,
            storage_slice(x.0, x.1)?,
            storage_slice(w.0, w.1)?,
            storage_slice(dy.0, dy.1)?,
            self.dx.then_some(dx),
            dw,
            self.db.then_some(db),
        );
        let len = out.len();
        Ok((T::to_cpu_storage_owned(out), Shape::from(len)))
    }
}
