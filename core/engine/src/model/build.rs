//! Building a [`Model`] from an elaborated network: every IR node becomes
//! a [`Layer`] holding its own parameters, named by the node's path
//! (`cba0.conv0.weight`, `basic1.act0.a`).
//!
//! Initialisation follows PyTorch's defaults so that a side-by-side run with
//! PyTorch starts from the same distribution: convolution and linear weights
//! *and* biases are drawn from `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` (what
//! `kaiming_uniform_(a=sqrt(5))` and PyTorch's bias init reduce to), with
//! `fan_in = in_channels/groups * kh * kw` or `in_features`; batch norm starts
//! at gamma = 1, beta = 0, running mean 0 and variance 1. All draws come from
//! the run seed's [`Stream::Init`] in construction order (candle's own RNG
//! cannot be seeded), so the same seed gives bit-identical weights.

use acbench_dsl::ir::{Network, Node, Op, Shape};
use candle_core::{DType, Device, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{BatchNorm, Layer, Model};
use crate::activation::{ActBindings, ActLayer, Registry};
use crate::error::{Error, Result};
use crate::ops;
use crate::params::{Param, ParamKind};
use crate::rng::{Seed, Stream};

/// What building needs besides the current node.
struct Builder<'a> {
    registry: &'a Registry,
    bindings: &'a ActBindings,
    device: &'a Device,
    dtype: DType,
    rng: ChaCha8Rng,
    params: Vec<Param>,
    buffers: Vec<(String, Var)>,
    acts: Vec<ActLayer>,
}

impl Model {
    /// Builds `net` in f32 with every act slot bound per `bindings`.
    pub fn build(
        net: &Network,
        registry: &Registry,
        bindings: &ActBindings,
        device: &Device,
        seed: Seed,
    ) -> Result<Self> {
        Self::build_with_dtype(net, registry, bindings, device, seed, DType::F32)
    }

    /// [`Model::build`] in another float dtype (f64 for gradient checks).
    /// Initial values are drawn in f32 and converted, so they do not depend on the dtype.
    pub fn build_with_dtype(
        net: &Network,
        registry: &Registry,
        bindings: &ActBindings,
        device: &Device,
        seed: Seed,
        dtype: DType,
    ) -> Result<Self> {
        if !dtype.is_float() {
            return Err(Error::Internal(format!(
                "a model needs a float dtype, not {dtype:?}"
            )));
        }
        bindings.check(net, registry)?;
        // Its parameters at least must fit, or allocating them aborts the
        // process (or wakes the OOM killer); a caller that knows the batch
        // and the optimiser checks the whole run first (`memory::check`).
        crate::memory::check_parameters(net, dtype.size_in_bytes())?;
        let mut b = Builder {
            registry,
            bindings,
            device,
            dtype,
            rng: seed.stream(Stream::Init),
            params: Vec::new(),
            buffers: Vec::new(),
            acts: Vec::new(),
        };
        let layers = b.seq(&net.body)?;
        Ok(Self {
            network: net.clone(),
            layers,
            params: b.params,
            buffers: b.buffers,
            acts: b.acts,
            dtype,
            device: device.clone(),
            cpu_path: true,
            grad_cache: Default::default(),
        })
    }
}

impl Builder<'_> {
    fn seq(&mut self, nodes: &[Node]) -> Result<Vec<Layer>> {
        nodes.iter().map(|n| self.node(n)).collect()
    }

    /// `U(-bound, bound)` values drawn from the init stream, as a Var of `shape`.
    fn uniform(&mut self, shape: &[usize], bound: f32) -> Result<Var> {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| self.rng.random_range(-bound..=bound))
            .collect();
        Ok(Var::from_tensor(
            &Tensor::from_vec(v, shape, self.device)?.to_dtype(self.dtype)?,
        )?)
    }

    fn constant(&self, value: f64, len: usize) -> Result<Var> {
        Ok(Var::from_tensor(&ops::filled(
            value,
            &[len],
            self.dtype,
            self.device,
        )?)?)
    }

    fn param(&mut self, node: &Node, name: &str, var: &Var, kind: ParamKind) {
        self.params.push(Param {
            name: format!("{}.{name}", node.path),
            var: var.clone(),
            kind,
        });
    }

    fn node(&mut self, node: &Node) -> Result<Layer> {
        check_node(node)?;
        Ok(match &node.op {
            Op::Conv2d(c) => {
                if c.groups == 0 || c.in_channels % c.groups != 0 || c.out_channels % c.groups != 0
                {
                    return Err(Error::Config(format!(
                        "{}: {} input and {} output channels do not split into {} groups",
                        node.path, c.in_channels, c.out_channels, c.groups
                    )));
                }
                let fan_in = c.in_channels / c.groups * c.kernel.0 * c.kernel.1;
                let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
                let weight = self.uniform(
                    &[
                        c.out_channels,
                        c.in_channels / c.groups,
                        c.kernel.0,
                        c.kernel.1,
                    ],
                    bound,
                )?;
                self.param(node, "weight", &weight, ParamKind::Weight);
                let bias = if c.bias {
                    let b = self.uniform(&[c.out_channels], bound)?;
                    self.param(node, "bias", &b, ParamKind::Bias);
                    Some(b)
                } else {
                    None
                };
                Layer::Conv {
                    spec: c.clone(),
                    weight,
                    bias,
                }
            }
            Op::BatchNorm {
                channels,
                eps,
                momentum,
            } => {
                let gamma = self.constant(1.0, *channels)?;
                let beta = self.constant(0.0, *channels)?;
                self.param(node, "gamma", &gamma, ParamKind::Norm);
                self.param(node, "beta", &beta, ParamKind::Norm);
                let running_mean = self.constant(0.0, *channels)?;
                let running_var = self.constant(1.0, *channels)?;
                self.buffers
                    .push((format!("{}.running_mean", node.path), running_mean.clone()));
                self.buffers
                    .push((format!("{}.running_var", node.path), running_var.clone()));
                Layer::BatchNorm(BatchNorm {
                    gamma,
                    beta,
                    running_mean,
                    running_var,
                    eps: *eps,
                    momentum: *momentum,
                })
            }
            Op::Lrn {
                radius,
                alpha,
                beta,
                bias,
            } => Layer::Lrn(ops::lrn::Lrn {
                radius: *radius,
                alpha: *alpha,
                beta: *beta,
                bias: *bias,
            }),
            Op::Pool(p) => {
                if let Shape::Image { h, w, .. } = node.input {
                    ops::pool::PoolGeom::new(p, h, w)
                        .map_err(|e| Error::Config(format!("{}: {e}", node.path)))?;
                }
                Layer::Pool(p.clone())
            }
            Op::GlobalAvgPool => Layer::GlobalAvgPool,
            Op::Dropout { rate } => {
                if !(0.0..1.0).contains(rate) {
                    return Err(Error::Config(format!(
                        "{}: dropout rate {rate} is not in [0, 1)",
                        node.path
                    )));
                }
                Layer::Dropout { rate: *rate }
            }
            Op::Flatten => Layer::Flatten,
            Op::Linear {
                in_features,
                out_features,
                bias,
            } => {
                let bound = 1.0 / (*in_features.max(&1) as f32).sqrt();
                let weight = self.uniform(&[*out_features, *in_features], bound)?;
                self.param(node, "weight", &weight, ParamKind::Weight);
                let bias = if *bias {
                    let b = self.uniform(&[*out_features], bound)?;
                    self.param(node, "bias", &b, ParamKind::Bias);
                    Some(b)
                } else {
                    None
                };
                Layer::Linear { weight, bias }
            }
            Op::Act { slot } => {
                let spec = self.bindings.resolve(slot.as_deref()).ok_or_else(|| {
                    Error::Binding(format!("no activation bound for `{}`", node.path))
                })?;
                let (layer, params) = ActLayer::new(
                    &node.path,
                    slot.as_deref(),
                    self.registry,
                    spec,
                    node.input.channels(),
                    self.dtype,
                    self.device,
                )?;
                self.params.extend(params);
                self.acts.push(layer);
                Layer::Act(self.acts.len() - 1)
            }
            Op::Residual { body, shortcut } => Layer::Residual {
                body: self.seq(body)?,
                shortcut: self.seq(shortcut)?,
            },
            Op::Concat { branches } => Layer::Concat(
                branches
                    .iter()
                    .map(|b| self.seq(b))
                    .collect::<Result<_>>()?,
            ),
            Op::Dense { layers } => {
                Layer::Dense(layers.iter().map(|l| self.seq(l)).collect::<Result<_>>()?)
            }
        })
    }
}

/// Checks that a node's parameters agree with the shape entering it (the
/// parser guarantees this; a hand-built or deserialised IR might not), so a
/// mismatch is a build error naming the node rather than a tensor error
/// deep inside a forward pass.
fn check_node(node: &Node) -> Result<()> {
    let mismatch = |what: String| {
        Err(Error::Config(format!(
            "{}: {what}, but its input is {}",
            node.path, node.input
        )))
    };
    match (&node.op, node.input) {
        (Op::Conv2d(c), Shape::Image { c: ch, .. }) if c.in_channels != ch => {
            mismatch(format!("convolution expects {} channels", c.in_channels))
        }
        (Op::Conv2d(_) | Op::Pool(_) | Op::GlobalAvgPool, Shape::Flat(_)) => {
            mismatch("layer needs a feature map".to_owned())
        }
        (Op::Linear { in_features, .. }, input) if input != Shape::Flat(*in_features) => {
            mismatch(format!("linear layer expects {in_features} features"))
        }
        (Op::BatchNorm { channels, .. }, input) if input.channels() != *channels => {
            mismatch(format!("batch norm expects {channels} channels"))
        }
        _ => Ok(()),
    }
}
