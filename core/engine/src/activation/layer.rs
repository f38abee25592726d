//! One `act` node of a built model: an activation with its own parameters,
//! computed by the plugin's fused kernels or by its lowered formula.

use std::sync::Arc;

use acbench_plugin_api::ParamScope;
use candle_core::{DType, Device, Tensor, Var};

use super::lower::{Val, eval};
use super::{ActSpec, CompiledActivation, KnownActivations, Registry};
use crate::error::{Error, Result};
use crate::ops::filled;
use crate::params::{Param, ParamKind};
use crate::plugin::Kernels;

/// The value an activation parameter has in one act node.
#[derive(Debug, Clone)]
enum ParamValue {
    /// A fixed per-layer value, folded into the ops as a scalar.
    Scalar(f64),
    /// A fixed per-channel value, `[C]`.
    Fixed(Tensor),
    /// A trainable value, `[1]` or `[C]`.
    Trained(Var),
}

/// One `act` node of a model: an activation with its own parameters.
#[derive(Debug, Clone)]
pub struct ActLayer {
    /// Node path (`stage2.basic0.act1`).
    pub path: String,
    /// Slot name from `act@slot`.
    pub slot: Option<String>,
    act: Arc<CompiledActivation>,
    params: Vec<(String, ParamValue)>,
    /// Use the plugin's kernels where they apply (see [`Registry::set_fused`]).
    fused: bool,
}

/// An activation's fused kernels and current parameter values, packed for
/// calls on raw slices (see [`ActLayer::fused_parts`]).
pub(crate) struct FusedParts {
    /// The plugin's kernels.
    pub kernels: Kernels,
    /// Length of each parameter in `packed` (1 or the channel count).
    pub lens: Vec<usize>,
    /// Every parameter's values back to back, in the kernel's order.
    pub packed: Vec<f32>,
    /// Trainable parameters: offset and length in `packed`, and the
    /// variable's tensor (whose gradient that range is).
    pub trained: Vec<(usize, usize, Tensor)>,
}

impl ActLayer {
    /// What a diagnosis says of this slot when it made NaN or infinity
    /// from finite inputs ([`crate::model::Model::diagnose_non_finite`]).
    pub(crate) fn describe_non_finite(&self) -> String {
        let from = self
            .act
            .plugin
            .as_ref()
            .map_or_else(String::new, |p| format!(" from plugin {}", p.display()));
        format!(
            "act slot `{}`: activation `{}`{from} turned finite inputs into NaN or infinity",
            self.path, self.act.def.name
        )
    }

    /// Creates the node's parameters (initial values from the definition,
    /// then `spec`'s overrides); `channels` sizes per-channel parameters.
    /// Returns the layer and its trainable parameters (named `path.param`).
    pub fn new(
        path: &str,
        slot: Option<&str>,
        registry: &Registry,
        spec: &ActSpec,
        channels: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<(Self, Vec<Param>)> {
        registry.check_spec(spec)?;
        let act = registry.get(&spec.activation)?.clone();
        let mut params = Vec::with_capacity(act.def.params.len());
        let mut trainable = Vec::new();
        for p in &act.def.params {
            let init = spec
                .overrides
                .iter()
                .find(|(k, _)| k == &p.name)
                .map_or(p.init, |(_, v)| *v);
            let len = match p.scope {
                ParamScope::Layer => 1,
                ParamScope::Channel => channels,
            };
            let value = if p.trainable {
                let t = Tensor::from_vec(vec![init; len], len, device)?.to_dtype(dtype)?;
                let var = Var::from_tensor(&t)?;
                trainable.push(Param {
                    name: format!("{path}.{}", p.name),
                    var: var.clone(),
                    kind: ParamKind::Activation(p.constraint),
                });
                ParamValue::Trained(var)
            } else if len == 1 {
                ParamValue::Scalar(init)
            } else {
                ParamValue::Fixed(filled(init, &[len], dtype, device)?)
            };
            params.push((p.name.clone(), value));
        }
        Ok((
            Self {
                path: path.to_owned(),
                slot: slot.map(str::to_owned),
                act,
                params,
                fused: registry.fused(),
            },
            trainable,
        ))
    }

    /// The bound activation's name.
    pub fn activation(&self) -> &str {
        &self.act.def.name
    }

    /// Current parameter values, in the definition's order (fixed ones included).
    pub fn values(&self) -> Result<Vec<(String, Vec<f32>)>> {
        self.params
            .iter()
            .map(|(name, v)| {
                let vals = match v {
                    ParamValue::Scalar(s) => vec![*s as f32],
                    ParamValue::Fixed(t) => t.to_dtype(DType::F32)?.to_vec1()?,
                    ParamValue::Trained(var) => var.as_tensor().to_dtype(DType::F32)?.to_vec1()?,
                };
                Ok((name.clone(), vals))
            })
            .collect()
    }

    /// Applies the activation to `x` (`[N, C, H, W]` or `[N, C]`): with the
    /// plugin's fused kernels when it has them, they are enabled and `x` is
    /// an f32 CPU tensor; otherwise through the formula.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.fused && self.fused_applies(x) {
            self.forward_fused(x)
        } else {
            self.forward_formula(x)
        }
    }

    /// Whether [`ActLayer::forward_fused`] can compute `x`.
    pub fn fused_applies(&self, x: &Tensor) -> bool {
        self.act.kernels.is_some()
            && x.device().is_cpu()
            && x.dtype() == DType::F32
            && x.rank() >= 2
            && self.params.iter().all(|(_, v)| match v {
                ParamValue::Scalar(_) => true,
                ParamValue::Fixed(t) => t.dtype() == DType::F32 && t.elem_count() == x.dims()[1],
                ParamValue::Trained(v) => {
                    v.dtype() == DType::F32
                        && (v.elem_count() == 1 || v.elem_count() == x.dims()[1])
                }
            })
    }

    /// Applies the activation with the plugin's fused kernels (an error when
    /// it has none or `x` is not an f32 CPU tensor).
    pub fn forward_fused(&self, x: &Tensor) -> Result<Tensor> {
        let Some(kernels) = &self.act.kernels else {
            return Err(Error::Config(format!(
                "activation `{}` has no fused kernels",
                self.act.def.name
            )));
        };
        let params = self
            .params
            .iter()
            .map(|(_, v)| {
                Ok(match v {
                    ParamValue::Scalar(s) => Tensor::new(&[*s as f32], x.device())?,
                    ParamValue::Fixed(t) => t.clone(),
                    ParamValue::Trained(var) => var.as_tensor().clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(crate::ops::fused::activation(x, &params, kernels)?)
    }

    /// The variables of the trainable parameters, in the definition's order.
    pub(crate) fn trained_vars(&self) -> impl Iterator<Item = &Var> {
        self.params.iter().filter_map(|(_, v)| match v {
            ParamValue::Trained(var) => Some(var),
            _ => None,
        })
    }

    /// What the CPU training path needs to call the fused kernels on raw
    /// f32 slices with `channels` channels: `None` when the fused path does
    /// not apply (no kernels, fused disabled, or parameters not f32 on the
    /// CPU with 1 or `channels` values).
    pub(crate) fn fused_parts(&self, channels: usize) -> Result<Option<FusedParts>> {
        let Some(kernels) = self.act.kernels.as_ref().filter(|_| self.fused) else {
            return Ok(None);
        };
        let mut parts = FusedParts {
            kernels: kernels.clone(),
            lens: Vec::with_capacity(self.params.len()),
            packed: Vec::new(),
            trained: Vec::new(),
        };
        for (_, v) in &self.params {
            let values: Vec<f32> = match v {
                ParamValue::Scalar(s) => vec![*s as f32],
                ParamValue::Fixed(t) => {
                    if t.dtype() != DType::F32 || !t.device().is_cpu() {
                        return Ok(None);
                    }
                    t.to_vec1()?
                }
                ParamValue::Trained(var) => {
                    let t = var.as_tensor();
                    if t.dtype() != DType::F32 || !t.device().is_cpu() {
                        return Ok(None);
                    }
                    parts
                        .trained
                        .push((parts.packed.len(), t.elem_count(), t.clone()));
                    t.flatten_all()?.to_vec1()?
                }
            };
            if values.len() != 1 && values.len() != channels {
                return Ok(None);
            }
            parts.lens.push(values.len());
            parts.packed.extend(values);
        }
        Ok(Some(parts))
    }

    /// Applies the activation by lowering its formula to candle ops (every
    /// device and dtype).
    pub fn forward_formula(&self, x: &Tensor) -> Result<Tensor> {
        // Per-channel values broadcast along axis 1; per-layer `[1]` broadcasts as is.
        let channel_shape: Vec<usize> = (0..x.rank())
            .map(|d| if d == 1 { x.dims()[1] } else { 1 })
            .collect();
        let env = self
            .params
            .iter()
            .map(|(_, v)| {
                Ok(match v {
                    ParamValue::Scalar(s) => Val::S(*s),
                    ParamValue::Fixed(t) => Val::T(t.reshape(channel_shape.as_slice())?),
                    ParamValue::Trained(var) => {
                        let t = var.as_tensor();
                        if t.elem_count() == 1 {
                            Val::T(t.clone())
                        } else {
                            Val::T(t.reshape(channel_shape.as_slice())?)
                        }
                    }
                })
            })
            .collect::<Result<Vec<Val>>>()?;
        match eval(&self.act.expr, x, &env)? {
            Val::T(t) if t.dims() == x.dims() => Ok(t),
            Val::T(t) => Ok(t.broadcast_as(x.shape())?.contiguous()?),
            // A formula that ignores x (e.g. a constant) still maps x's shape.
            Val::S(s) => Ok(filled(s, x.dims(), x.dtype(), x.device())?),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::ops::gradcheck;
    use acbench_plugin_api::{ActivationDef, Constraint, ParamSpec};

    /// An act layer at `blk.act0` in f64 on the CPU, for `spec`.
    pub(in crate::activation) fn layer(
        reg: &Registry,
        spec: &str,
        channels: usize,
    ) -> (ActLayer, Vec<Param>) {
        let spec = ActSpec::parse(spec).expect("spec");
        ActLayer::new(
            "blk.act0",
            None,
            reg,
            &spec,
            channels,
            DType::F64,
            &Device::Cpu,
        )
        .expect("layer")
    }

    /// Every shipped activation: values against the formula's reference
    /// semantics, gradients (x and parameters) against finite differences.
    #[test]
    fn every_activation_values_and_gradients() -> Result<()> {
        let reg = Registry::builtin()?;
        // Parameters moved off their symmetric starts so no formula sits on a kink.
        let specs = [
            "relu",
            "lrelu:s=0.2",
            "prelu:p=0.3",
            "swish:beta=1.4",
            "pelu:a=1.3,b=0.7",
            "frelu:bias=-0.5",
            "sigmoid",
            "tanh",
            "asigmoid:a=1.2,b=0.8,c=0.1,d=-0.2",
            "atanh:a=1.2,b=0.8,c=0.1,d=-0.2",
            "arelu:a=1.2,b=0.4,c=0.1,d=-0.2",
        ];
        // |x| >= 0.3 keeps every kink (x = 0, and AReLU's at x = 0.375) out of reach of eps.
        let xs: Vec<f64> = vec![
            -2.0, -1.1, -0.6, -0.3, 0.3, 0.7, 1.3, 2.2, -0.9, 0.5, 1.7, -1.6,
        ];
        let x = Tensor::from_vec(xs.clone(), (2, 3, 2), &Device::Cpu)?.reshape((2, 3, 1, 2))?;
        for spec in specs {
            let (l, params) = layer(&reg, spec, 3);
            let pvals: Vec<f64> = l.values()?.iter().map(|(_, v)| f64::from(v[0])).collect();
            let y = l.forward(&x)?.flatten_all()?.to_vec1::<f64>()?;
            for (xi, yi) in xs.iter().zip(&y) {
                let want = l.act.expr.eval(*xi, &pvals);
                assert!((want - yi).abs() < 1e-6, "{spec}({xi}) = {yi}, want {want}");
            }
            // Gradient wrt x through the generic checker ...
            gradcheck::check(|a| l.forward(&a[0]), std::slice::from_ref(&x), 1e-6);
            // ... and wrt every trainable parameter by perturbing its Var.
            let w = gradcheck::rand(x.dims(), -1.0, 1.0, 3);
            let loss =
                || -> Result<f64> { Ok(l.forward(&x)?.mul(&w)?.sum_all()?.to_scalar::<f64>()?) };
            let grads = l.forward(&x)?.mul(&w)?.sum_all()?.backward()?;
            for p in &params {
                let base = p.var.as_tensor().to_vec1::<f64>()?;
                let analytic = match grads.get(p.var.as_tensor()) {
                    Some(g) => g.to_vec1::<f64>()?,
                    None => panic!("{spec}: no gradient for {}", p.name),
                };
                for i in 0..base.len() {
                    let at = |d: f64| -> Result<f64> {
                        let mut v = base.clone();
                        v[i] += d;
                        p.var.set(&Tensor::from_vec(v, base.len(), &Device::Cpu)?)?;
                        loss()
                    };
                    let numeric = (at(1e-6)? - at(-1e-6)?) / 2e-6;
                    p.var
                        .set(&Tensor::from_vec(base.clone(), base.len(), &Device::Cpu)?)?;
                    let err = (numeric - analytic[i]).abs() / (1.0 + numeric.abs());
                    assert!(
                        err < 1e-6,
                        "{spec} {}: analytic {} numeric {numeric}",
                        p.name,
                        analytic[i]
                    );
                }
            }
        }
        Ok(())
    }

    #[test]
    fn parameter_kinds_and_fixed_values() -> Result<()> {
        let reg = Registry::builtin()?;
        let (l, params) = layer(&reg, "lrelu:s=0.2", 4);
        assert!(params.is_empty(), "the LReLU slope is fixed");
        assert_eq!(l.values()?, [("s".to_owned(), vec![0.2f32])]);
        let (_, params) = layer(&reg, "pelu", 4);
        let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["blk.act0.a", "blk.act0.b"]);
        assert_eq!(
            params[0].kind,
            ParamKind::Activation(Constraint::Positive(0.1))
        );
        assert_eq!(params[0].var.dims(), [1]);
        Ok(())
    }

    /// Building a layer goes through the same check as a binding or a suite.
    #[test]
    fn unknown_override_lists_valid_parameters() -> Result<()> {
        let reg = Registry::builtin()?;
        let spec = ActSpec::parse("arelu:e=1")?;
        match ActLayer::new("a", None, &reg, &spec, 1, DType::F32, &Device::Cpu) {
            Err(e @ Error::UnknownParameter { .. }) => {
                assert_eq!(
                    e.to_string(),
                    "`arelu` has no parameter `e`; valid: a, b, c, d"
                )
            }
            other => panic!("{other:?}"),
        }
        Ok(())
    }

    #[test]
    fn per_channel_parameters_broadcast_on_images_and_vectors() -> Result<()> {
        let mut reg = Registry::new();
        let mut p = ParamSpec::scalar("p", 0.25);
        p.scope = ParamScope::Channel;
        let mut k = ParamSpec::fixed("k", 2.0);
        k.scope = ParamScope::Channel;
        reg.register(ActivationDef {
            name: "cprelu".into(),
            summary: String::new(),
            params: vec![p, k],
            formula: "k * (relu(x) + p * min(x, 0))".into(),
        })?;
        let (l, params) = layer(&reg, "cprelu", 3);
        assert_eq!(params.len(), 1);
        assert_eq!(params[0].var.dims(), [3]);
        params[0]
            .var
            .set(&Tensor::new(&[0.1f64, 0.2, 0.3], &Device::Cpu)?)?;
        let img = Tensor::new(&[-1f64, -1., -1.], &Device::Cpu)?.reshape((1, 3, 1, 1))?;
        assert_eq!(
            l.forward(&img)?.flatten_all()?.to_vec1::<f64>()?,
            [-0.2, -0.4, -0.6]
        );
        let vec = Tensor::new(&[[-1f64, 2., -1.]], &Device::Cpu)?;
        assert_eq!(
            l.forward(&vec)?.flatten_all()?.to_vec1::<f64>()?,
            [-0.2, 4.0, -0.6]
        );
        let g = l.forward(&img)?.sum_all()?.backward()?;
        let gp = g.get(params[0].var.as_tensor()).map(|t| t.to_vec1::<f64>());
        assert_eq!(gp.transpose()?, Some(vec![-2.0, -2.0, -2.0]));
        Ok(())
    }

    /// From a = b = 1, c = d = 0 both arguments of AReLU's max tie
    /// everywhere; the whole gradient must go to the first, so one step
    /// moves a (and c) but not b (and d).
    #[test]
    fn arelu_leaves_its_linear_start() -> Result<()> {
        let reg = Registry::builtin()?;
        let spec = ActSpec::parse("arelu")?;
        let (l, params) = ActLayer::new("act0", None, &reg, &spec, 2, DType::F32, &Device::Cpu)?;
        let x = Tensor::new(&[-2f32, -0.5, 1.0, 3.0], &Device::Cpu)?.reshape((1, 2, 1, 2))?;
        let target = x.relu()?;
        let loss = l.forward(&x)?.sub(&target)?.sqr()?.sum_all()?;
        let grads = loss.backward()?;
        for p in &params {
            let g = grads
                .get(p.var.as_tensor())
                .map_or(Ok(0.0), |g| g.sum_all()?.to_scalar::<f32>())?;
            p.var.set(&(p.var.as_tensor() - (g as f64) * 0.1)?)?;
        }
        let v = l.values()?;
        let get = |n: &str| v.iter().find(|(k, _)| k == n).map(|(_, v)| v[0]);
        assert_ne!(get("a"), get("b"), "{v:?}");
        assert_eq!(get("b"), Some(1.0));
        assert_eq!(get("d"), Some(0.0));
        assert_ne!(get("c"), Some(0.0));
        Ok(())
    }
}
