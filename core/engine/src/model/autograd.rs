//! The model through candle's autograd: every layer as candle ops (the
//! custom ops of [`crate::ops`] on the CPU, their generic versions on other
//! devices). This is the path for other dtypes and devices, and the
//! reference the CPU path is tested against.

use candle_core::Tensor;

use super::{Layer, Mode, Model};
use crate::error::Result;
use crate::ops;

impl Model {
    pub(super) fn run(
        &self,
        layers: &[Layer],
        mut x: Tensor,
        mode: &mut Mode<'_>,
    ) -> Result<Tensor> {
        for layer in layers {
            x = self.apply(layer, x, mode)?;
        }
        Ok(x)
    }

    fn apply(&self, layer: &Layer, x: Tensor, mode: &mut Mode<'_>) -> Result<Tensor> {
        Ok(match layer {
            Layer::Conv { spec, weight, bias } => {
                ops::conv::conv2d(&x, weight, bias.as_ref().map(|b| b.as_tensor()), spec)?
            }
            Layer::BatchNorm(bn) => match mode {
                Mode::Train(_) => {
                    let (y, mean, var) =
                        ops::norm::batch_norm_train(&x, &bn.gamma, &bn.beta, bn.eps)?;
                    // Detached: the running statistics are not trained.
                    ops::norm::update_running_vars(
                        &bn.running_mean,
                        &bn.running_var,
                        &mean.detach(),
                        &var.detach(),
                        x.elem_count() / x.dim(1)?,
                        bn.momentum,
                    )?;
                    y
                }
                Mode::Eval | Mode::Diagnose(_) => ops::norm::batch_norm_eval(
                    &x,
                    &bn.gamma,
                    &bn.beta,
                    bn.running_mean.as_tensor(),
                    bn.running_var.as_tensor(),
                    bn.eps,
                )?,
            },
            Layer::Lrn(p) => ops::lrn::lrn(&x, p)?,
            Layer::Pool(p) => ops::pool::pool2d(&x, p)?,
            Layer::GlobalAvgPool => ops::pool::global_avg_pool(&x)?,
            Layer::Dropout { rate } => match mode {
                Mode::Eval | Mode::Diagnose(_) => x,
                Mode::Train(_) if *rate <= 0.0 => x,
                Mode::Train(rng) => {
                    let mut mask = vec![0f32; x.elem_count()];
                    ops::dropout::fill_mask(rng, *rate, &mut mask);
                    let mask =
                        Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
                    x.mul(&mask)?
                }
            },
            Layer::Flatten => x.flatten_from(1)?,
            Layer::Linear { weight, bias } => {
                let y = x.matmul(&weight.as_tensor().t()?)?;
                match bias {
                    Some(b) => y.broadcast_add(b.as_tensor())?,
                    None => y,
                }
            }
            Layer::Act(i) => {
                let y = self.acts[*i].forward(&x)?;
                if let Mode::Diagnose(found) = mode
                    && found.is_none()
                    && all_finite(&x)?
                    && !all_finite(&y)?
                {
                    **found = Some(self.acts[*i].describe_non_finite());
                }
                y
            }
            Layer::Residual { body, shortcut } => {
                let short = self.run(shortcut, x.clone(), mode)?;
                let main = self.run(body, x, mode)?;
                (main + short)?
            }
            Layer::Concat(branches) => {
                let outs = branches
                    .iter()
                    .map(|b| self.run(b, x.clone(), mode))
                    .collect::<Result<Vec<_>>>()?;
                Tensor::cat(&outs, 1)?
            }
            Layer::Dense(layers) => {
                let mut x = x;
                for l in layers {
                    let y = self.run(l, x.clone(), mode)?;
                    x = Tensor::cat(&[x, y], 1)?;
                }
                x
            }
        })
    }
}

/// Whether every value of `t` is finite.
fn all_finite(t: &Tensor) -> Result<bool> {
    let v = t
        .flatten_all()?
        .to_dtype(candle_core::DType::F64)?
        .to_vec1::<f64>()?;
    Ok(v.iter().all(|x| x.is_finite()))
}
