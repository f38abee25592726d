//! [`conv_forward`] and [`conv_backward`] as candle custom ops, for the
//! CPU path through candle's autograd.

use super::*;

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
        Some(b) => x.apply_op3(&weight, &b.contiguous()?, ConvOp(geom)),
        None => x.apply_op2(&weight, ConvOp(geom)),
    }
}

/// `(x, weight[, bias]) -> y`.
struct ConvOp(ConvGeom);

type Input<'a> = (&'a CpuStorage, &'a Layout);

impl ConvOp {
    fn fwd<T: WithDType>(
        &self,
        x: Input<'_>,
        w: Input<'_>,
        b: Option<Input<'_>>,
    ) -> Result<(CpuStorage, Shape)> {
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

    fn dispatch(
        &self,
        x: Input<'_>,
        w: Input<'_>,
        b: Option<Input<'_>>,
    ) -> Result<(CpuStorage, Shape)> {
        match x.0 {
            CpuStorage::F32(_) => self.fwd::<f32>(x, w, b),
            CpuStorage::F64(_) => self.fwd::<f64>(x, w, b),
            _ => bail!("convolution supports f32 and f64 tensors only"),
        }
    }

    /// `(dx, dw, db)` from [`ConvBwd`]'s packed `[dw | db | dx]` result.
    fn grads(&self, x: &Tensor, w: &Tensor, bias: bool, grad: &Tensor) -> Result<Grads3> {
        let g = &self.0;
        let op = ConvBwd {
            geom: g.clone(),
            dx: x.track_op(),
            db: bias,
        };
        let packed = grad.contiguous()?.apply_op3_no_bwd(x, w, &op)?;
        let wl = g.w_len();
        let dw = packed.narrow(0, 0, wl)?.reshape(w.shape())?;
        let db = if bias {
            Some(packed.narrow(0, wl, g.cout)?)
        } else {
            None
        };
        let at = wl + if bias { g.cout } else { 0 };
        let dx = if op.dx {
            Some(
                packed
                    .narrow(0, at, g.n * g.x_image())?
                    .reshape(x.shape())?,
            )
        } else {
            None
        };
        Ok((dx, Some(dw), db))
    }
}

type Grads3 = (Option<Tensor>, Option<Tensor>, Option<Tensor>);

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        "acbench-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.dispatch((s1, l1), (s2, l2), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.grads(x, w, false, grad)?;
        Ok((dx, dw))
    }
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        "acbench-conv2d-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.dispatch((s1, l1), (s2, l2), Some((s3, l3)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<Grads3> {
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

impl ConvBwd {
    fn run<T: WithDType>(
        &self,
        dy: (&CpuStorage, &Layout),
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
    ) -> Result<(CpuStorage, Shape)> {
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

impl CustomOp3 for ConvBwd {
    fn name(&self) -> &'static str {
        "acbench-conv2d-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        match s1 {
            CpuStorage::F32(_) => self.run::<f32>((s1, l1), (s2, l2), (s3, l3)),
            CpuStorage::F64(_) => self.run::<f64>((s1, l1), (s2, l2), (s3, l3)),
            _ => bail!("convolution supports f32 and f64 tensors only"),
        }
    }
}
