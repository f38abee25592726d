//! A trainable candle model built from an elaborated network ([`Network`]).
//!
//! Every IR node becomes a [`Layer`] holding its own parameters, named by
//! the node's path (`cba0.conv0.weight`, `basic1.act0.a`). The model keeps
//! the IR so results can name layers and slots.
//!
//! Initialisation follows PyTorch's defaults so that a side-by-side run with
//! PyTorch starts from the same distribution: convolution and linear weights
//! *and* biases are drawn from `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` (what
//! `kaiming_uniform_(a=sqrt(5))` and PyTorch's bias init reduce to), with
//! `fan_in = in_channels/groups * kh * kw` or `in_features`; batch norm starts
//! at gamma = 1, beta = 0, running mean 0 and variance 1. All draws come from
//! the run seed's [`Stream::Init`] in construction order (candle's own RNG
//! cannot be seeded), so the same seed gives bit-identical weights.

use acbench_dsl::ir::{Conv2d, Network, Node, Op, Pool2d, Shape};
use candle_core::{DType, Device, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::activation::{ActBindings, ActLayer, Registry};
use crate::error::{Error, Result};
use crate::ops;
use crate::params::{Param, ParamKind};
use crate::rng::{Seed, Stream};

mod cpu;

/// Training (batch statistics, dropout) or evaluation (running statistics,
/// no dropout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Batch norm uses and updates batch statistics; dropout is active.
    Train,
    /// Batch norm uses running statistics; dropout is the identity.
    Eval,
}

/// The parameters of one `act` node, for results and plots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActSlotValues {
    /// Node path (`stage2.basic0.act1`).
    pub path: String,
    /// Slot name from `act@slot`, if any.
    pub slot: Option<String>,
    /// Bound activation.
    pub activation: String,
    /// `(parameter, values)`: one value per layer-wise parameter, one per
    /// channel for per-channel ones; fixed parameters included.
    pub params: Vec<(String, Vec<f32>)>,
}

/// Batch-norm state: trainable scale and shift, running statistics that are
/// updated in place (not trainable, so not in [`Model::params`]).
#[derive(Debug)]
struct BatchNorm {
    gamma: Var,
    beta: Var,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    momentum: f64,
}

/// One built node.
#[derive(Debug)]
enum Layer {
    Conv {
        spec: Conv2d,
        weight: Var,
        bias: Option<Var>,
    },
    BatchNorm(BatchNorm),
    Lrn {
        radius: usize,
        alpha: f64,
        beta: f64,
        bias: f64,
    },
    Pool(Pool2d),
    GlobalAvgPool,
    Dropout {
        rate: f64,
    },
    Flatten,
    Linear {
        weight: Var,
        bias: Option<Var>,
    },
    /// Index into [`Model::acts`].
    Act(usize),
    Residual {
        body: Vec<Layer>,
        shortcut: Vec<Layer>,
    },
    Concat(Vec<Vec<Layer>>),
    Dense(Vec<Vec<Layer>>),
}

/// A network ready to train: layers, parameters and activation slots.
#[derive(Debug)]
pub struct Model {
    network: Network,
    layers: Vec<Layer>,
    params: Vec<Param>,
    /// Non-trainable state: batch-norm running statistics, named
    /// `path.running_mean` / `path.running_var`, in construction order.
    buffers: Vec<(String, Var)>,
    acts: Vec<ActLayer>,
    dtype: DType,
    device: Device,
    /// Use the hand-written CPU path where it applies (see [`cpu`]).
    cpu_path: bool,
    /// The CPU path's gradient tensors, one per parameter, refilled every
    /// step (see [`cpu`]).
    grad_cache: std::sync::Mutex<std::collections::HashMap<candle_core::TensorId, Tensor>>,
}

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
            return Err(Error::Config(format!(
                "a model needs a float dtype, not {dtype:?}"
            )));
        }
        bindings.check(net, registry)?;
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

    /// Turns the hand-written CPU training path off (or back on). With it
    /// off, every step goes through candle's autograd: slower, and the
    /// reference the CPU path is tested against. It only ever applies to f32
    /// models on the CPU without LRN, concat or dense layers.
    pub fn set_cpu_path(&mut self, on: bool) {
        self.cpu_path = on;
    }

    /// Whether training steps and evaluation take the CPU path.
    pub fn uses_cpu_path(&self) -> bool {
        self.cpu_path_applies()
    }

    /// One training step's forward, softmax cross-entropy against `labels`
    /// (`[N]` class indices) and, when the loss is finite, backward: returns
    /// the mean loss, the number of examples whose largest logit is their
    /// label, and the gradients (`None` for a non-finite loss). Runs on the
    /// CPU path where it applies, else through candle's autograd.
    pub fn train_step(
        &self,
        x: &Tensor,
        labels: &Tensor,
        dropout_rng: &mut ChaCha8Rng,
    ) -> Result<(f32, u64, Option<candle_core::backprop::GradStore>)> {
        if self.cpu_path_applies() {
            let step = self.cpu_step(x, labels, dropout_rng)?;
            return Ok((step.loss, step.correct, step.grads));
        }
        let logits = self.forward(x, Mode::Train, dropout_rng)?;
        let loss = candle_nn::loss::cross_entropy(&logits, labels)?;
        let loss_value = loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        let hits = count_correct(&logits.detach(), labels)?;
        if !loss_value.is_finite() {
            return Ok((loss_value, hits, None));
        }
        Ok((loss_value, hits, Some(loss.backward()?)))
    }

    /// The network this model was built from.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Every trainable parameter, in construction (forward) order.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// Non-trainable state that training changes (batch-norm running
    /// statistics), as `(name, variable)` in construction order: with
    /// [`Model::params`] this is everything a checkpoint must keep.
    pub fn buffers(&self) -> &[(String, Var)] {
        &self.buffers
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The parameters' dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Activation parameters of every act node, in forward order.
    pub fn act_values(&self) -> Result<Vec<ActSlotValues>> {
        self.acts
            .iter()
            .map(|a| {
                Ok(ActSlotValues {
                    path: a.path.clone(),
                    slot: a.slot.clone(),
                    activation: a.activation().to_owned(),
                    params: a.values()?,
                })
            })
            .collect()
    }

    /// Logits `[N, classes]` for a batch `x` of shape `[N, C, H, W]` (or
    /// `[N, features]` for a network with a vector input). `dropout_rng`
    /// draws the dropout masks in [`Mode::Train`]; it is untouched in
    /// [`Mode::Eval`].
    pub fn forward(&self, x: &Tensor, mode: Mode, dropout_rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let dims = x.dims();
        let fits = match self.network.input {
            Shape::Image { c, h, w } => dims.len() == 4 && dims[1..] == [c, h, w],
            Shape::Flat(n) => dims.len() >= 2 && dims[1..].iter().product::<usize>() == n,
        };
        if !fits {
            return Err(Error::DataMismatch(format!(
                "the network takes {} per example, got a batch of shape {dims:?}",
                self.network.input
            )));
        }
        let x = match self.network.input {
            Shape::Flat(_) if dims.len() != 2 => x.flatten_from(1)?,
            _ => x.clone(),
        };
        let x = if x.dtype() == self.dtype {
            x
        } else {
            x.to_dtype(self.dtype)?
        };
        if mode == Mode::Eval && self.cpu_path_applies() {
            return self.cpu_forward_eval(&x);
        }
        self.run(&self.layers, x, mode, dropout_rng)
    }

    fn run(
        &self,
        layers: &[Layer],
        mut x: Tensor,
        mode: Mode,
        rng: &mut ChaCha8Rng,
    ) -> Result<Tensor> {
        for layer in layers {
            x = self.apply(layer, x, mode, rng)?;
        }
        Ok(x)
    }

    fn apply(&self, layer: &Layer, x: Tensor, mode: Mode, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        Ok(match layer {
            Layer::Conv { spec, weight, bias } => {
                ops::conv::conv2d(&x, weight, bias.as_ref().map(|b| b.as_tensor()), spec)?
            }
            Layer::BatchNorm(bn) => match mode {
                Mode::Train => {
                    let (y, mean, var) =
                        ops::norm::batch_norm_train(&x, &bn.gamma, &bn.beta, bn.eps)?;
                    // The running variance is the unbiased estimate (PyTorch's
                    // and TensorFlow's choice); normalisation used the biased one.
                    let n = x.elem_count() / x.dim(1)?;
                    let unbias = if n > 1 {
                        n as f64 / (n - 1) as f64
                    } else {
                        1.0
                    };
                    let m = bn.momentum;
                    let new_mean = (bn.running_mean.as_tensor().affine(m, 0.0)?
                        + mean.detach().affine(1.0 - m, 0.0)?)?;
                    let new_var = (bn.running_var.as_tensor().affine(m, 0.0)?
                        + var.detach().affine((1.0 - m) * unbias, 0.0)?)?;
                    bn.running_mean.set(&new_mean)?;
                    bn.running_var.set(&new_var)?;
                    y
                }
                Mode::Eval => ops::norm::batch_norm_eval(
                    &x,
                    &bn.gamma,
                    &bn.beta,
                    bn.running_mean.as_tensor(),
                    bn.running_var.as_tensor(),
                    bn.eps,
                )?,
            },
            Layer::Lrn {
                radius,
                alpha,
                beta,
                bias,
            } => ops::lrn::lrn(&x, *radius, *alpha, *beta, *bias)?,
            Layer::Pool(p) => ops::pool::pool2d(&x, p)?,
            Layer::GlobalAvgPool => x.mean((2, 3))?,
            Layer::Dropout { rate } => match mode {
                Mode::Eval => x,
                Mode::Train if *rate <= 0.0 => x,
                Mode::Train => {
                    // Inverted dropout: kept units are scaled by 1/(1-rate) so
                    // evaluation needs no rescaling.
                    let keep = (1.0 - rate) as f32;
                    let scale = 1.0 / keep;
                    let mask: Vec<f32> = (0..x.elem_count())
                        .map(|_| {
                            if rng.random::<f32>() < keep {
                                scale
                            } else {
                                0.0
                            }
                        })
                        .collect();
                    let mask =
                        Tensor::from_vec(mask, x.shape(), &self.device)?.to_dtype(x.dtype())?;
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
            Layer::Act(i) => self.acts[*i].forward(&x)?,
            Layer::Residual { body, shortcut } => {
                let short = self.run(shortcut, x.clone(), mode, rng)?;
                let main = self.run(body, x, mode, rng)?;
                (main + short)?
            }
            Layer::Concat(branches) => {
                let outs = branches
                    .iter()
                    .map(|b| self.run(b, x.clone(), mode, rng))
                    .collect::<Result<Vec<_>>>()?;
                Tensor::cat(&outs, 1)?
            }
            Layer::Dense(layers) => {
                let mut x = x;
                for l in layers {
                    let y = self.run(l, x.clone(), mode, rng)?;
                    x = Tensor::cat(&[x, y], 1)?;
                }
                x
            }
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
            } => Layer::Lrn {
                radius: *radius,
                alpha: *alpha,
                beta: *beta,
                bias: *bias,
            },
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

/// Rows of `logits: [N, classes]` whose largest value is at the label.
pub(crate) fn count_correct(logits: &Tensor, labels: &Tensor) -> Result<u64> {
    // u8 comparison results would overflow when summed: widen first.
    let hits = logits.argmax(1)?.eq(labels)?.to_dtype(DType::U32)?;
    Ok(u64::from(hits.sum_all()?.to_scalar::<u32>()?))
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

#[cfg(test)]
mod tests {
    use super::*;
    use acbench_dsl::ir::{Padding, PoolKind, Span};
    use rand::SeedableRng;

    const SPAN: Span = Span { start: 0, end: 0 };

    fn node(path: &str, input: Shape, output: Shape, op: Op) -> Node {
        Node {
            path: path.into(),
            span: SPAN,
            input,
            output,
            op,
        }
    }

    fn img(c: usize, h: usize, w: usize) -> Shape {
        Shape::Image { c, h, w }
    }

    fn conv(cin: usize, cout: usize, k: usize, s: usize, pad: usize, groups: usize) -> Op {
        Op::Conv2d(Conv2d {
            in_channels: cin,
            out_channels: cout,
            kernel: (k, k),
            stride: (s, s),
            padding: Padding {
                top: pad,
                bottom: pad,
                left: pad,
                right: pad,
            },
            dilation: (1, 1),
            groups,
            bias: true,
        })
    }

    fn bn(c: usize) -> Op {
        Op::BatchNorm {
            channels: c,
            eps: 1e-3,
            momentum: 0.9,
        }
    }

    fn act(slot: Option<&str>) -> Op {
        Op::Act {
            slot: slot.map(str::to_owned),
        }
    }

    /// Max pooling 3x3, stride 2, TensorFlow SAME padding (bottom/right).
    fn max_pool_3x3_s2() -> Op {
        Op::Pool(Pool2d {
            kind: PoolKind::Max,
            kernel: (3, 3),
            stride: (2, 2),
            padding: Padding {
                top: 0,
                bottom: 1,
                left: 0,
                right: 1,
            },
            count_include_pad: false,
        })
    }

    /// Average pooling 3x3, stride 1, padding 1 (padding not counted).
    fn avg_pool_3x3_s1() -> Op {
        Op::Pool(Pool2d {
            kind: PoolKind::Avg,
            kernel: (3, 3),
            stride: (1, 1),
            padding: Padding {
                top: 1,
                bottom: 1,
                left: 1,
                right: 1,
            },
            count_include_pad: false,
        })
    }

    /// A small network with every layer type: input 2x6x6, 3 classes.
    fn every_layer_net() -> Network {
        let s4 = img(4, 6, 6);
        let (maxpool, avgpool) = (max_pool_3x3_s2(), avg_pool_3x3_s1());
        Network {
            name: "every".into(),
            args: vec![],
            input: img(2, 6, 6),
            output: Shape::Flat(3),
            body: vec![
                node("conv0", img(2, 6, 6), s4, conv(2, 4, 3, 1, 1, 1)),
                node("bn0", s4, s4, bn(4)),
                node("act0", s4, s4, act(None)),
                node(
                    "lrn0",
                    s4,
                    s4,
                    Op::Lrn {
                        radius: 1,
                        alpha: 0.1,
                        beta: 0.75,
                        bias: 1.0,
                    },
                ),
                node(
                    "res0",
                    s4,
                    s4,
                    Op::Residual {
                        body: vec![
                            node("res0.conv0", s4, s4, conv(4, 4, 3, 1, 1, 2)),
                            node("res0.act0", s4, s4, act(None)),
                        ],
                        shortcut: vec![],
                    },
                ),
                node("pool0", s4, img(4, 3, 3), maxpool),
                node(
                    "cat0",
                    img(4, 3, 3),
                    img(5, 3, 3),
                    Op::Concat {
                        branches: vec![
                            vec![node(
                                "cat0.b0.conv0",
                                img(4, 3, 3),
                                img(2, 3, 3),
                                conv(4, 2, 1, 1, 0, 1),
                            )],
                            vec![
                                node("cat0.b1.pool0", img(4, 3, 3), img(4, 3, 3), avgpool),
                                node(
                                    "cat0.b1.conv0",
                                    img(4, 3, 3),
                                    img(3, 3, 3),
                                    conv(4, 3, 1, 1, 0, 1),
                                ),
                            ],
                        ],
                    },
                ),
                node(
                    "dense0",
                    img(5, 3, 3),
                    img(7, 3, 3),
                    Op::Dense {
                        layers: vec![
                            vec![node(
                                "dense0.l0.conv0",
                                img(5, 3, 3),
                                img(1, 3, 3),
                                conv(5, 1, 3, 1, 1, 1),
                            )],
                            vec![
                                node("dense0.l1.bn0", img(6, 3, 3), img(6, 3, 3), bn(6)),
                                node(
                                    "dense0.l1.conv0",
                                    img(6, 3, 3),
                                    img(1, 3, 3),
                                    conv(6, 1, 1, 1, 0, 1),
                                ),
                            ],
                        ],
                    },
                ),
                node("gap0", img(7, 3, 3), Shape::Flat(7), Op::GlobalAvgPool),
                node(
                    "drop0",
                    Shape::Flat(7),
                    Shape::Flat(7),
                    Op::Dropout { rate: 0.5 },
                ),
                node(
                    "fc0",
                    Shape::Flat(7),
                    Shape::Flat(5),
                    Op::Linear {
                        in_features: 7,
                        out_features: 5,
                        bias: true,
                    },
                ),
                node("fc0.bn", Shape::Flat(5), Shape::Flat(5), bn(5)),
                node("act1", Shape::Flat(5), Shape::Flat(5), act(Some("fc"))),
                node(
                    "fc1",
                    Shape::Flat(5),
                    Shape::Flat(3),
                    Op::Linear {
                        in_features: 5,
                        out_features: 3,
                        bias: false,
                    },
                ),
            ],
        }
    }

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(0)
    }

    /// What the CPU path runs: `every_layer_net` without LRN, concat and
    /// dense, plus a strided residual with a projection shortcut, average
    /// pooling and flatten. Input 2x8x8, 3 classes.
    fn cpu_path_net() -> Network {
        let s4 = img(4, 8, 8);
        let s6 = img(6, 4, 4);
        let (maxpool, avgpool) = (max_pool_3x3_s2(), avg_pool_3x3_s1());
        let mut no_bias = conv(4, 6, 3, 2, 1, 1);
        if let Op::Conv2d(c) = &mut no_bias {
            c.bias = false;
        }
        Network {
            name: "cpu".into(),
            args: vec![],
            input: img(2, 8, 8),
            output: Shape::Flat(3),
            body: vec![
                node("conv0", img(2, 8, 8), s4, conv(2, 4, 3, 1, 1, 1)),
                node("bn0", s4, s4, bn(4)),
                node("act0", s4, s4, act(None)),
                node(
                    "res0",
                    s4,
                    s4,
                    Op::Residual {
                        body: vec![
                            node("res0.conv0", s4, s4, conv(4, 4, 3, 1, 1, 2)),
                            node("res0.act0", s4, s4, act(None)),
                        ],
                        shortcut: vec![],
                    },
                ),
                node(
                    "res1",
                    s4,
                    s6,
                    Op::Residual {
                        body: vec![
                            node("res1.conv0", s4, s6, no_bias),
                            node("res1.bn0", s6, s6, bn(6)),
                        ],
                        shortcut: vec![
                            node("res1.proj", s4, s6, conv(4, 6, 1, 2, 0, 1)),
                            node("res1.projbn", s6, s6, bn(6)),
                        ],
                    },
                ),
                node("act2", s6, s6, act(Some("mid"))),
                node("pool0", s6, img(6, 2, 2), maxpool),
                node("pool1", img(6, 2, 2), img(6, 2, 2), avgpool),
                node("flat", img(6, 2, 2), Shape::Flat(24), Op::Flatten),
                node(
                    "drop0",
                    Shape::Flat(24),
                    Shape::Flat(24),
                    Op::Dropout { rate: 0.5 },
                ),
                node(
                    "fc0",
                    Shape::Flat(24),
                    Shape::Flat(5),
                    Op::Linear {
                        in_features: 24,
                        out_features: 5,
                        bias: true,
                    },
                ),
                node("fc0.bn", Shape::Flat(5), Shape::Flat(5), bn(5)),
                node("act1", Shape::Flat(5), Shape::Flat(5), act(Some("fc"))),
                node(
                    "fc1",
                    Shape::Flat(5),
                    Shape::Flat(3),
                    Op::Linear {
                        in_features: 5,
                        out_features: 3,
                        bias: false,
                    },
                ),
                // Dropout at rate 0 is the identity in train mode too.
                node(
                    "drop1",
                    Shape::Flat(3),
                    Shape::Flat(3),
                    Op::Dropout { rate: 0.0 },
                ),
            ],
        }
    }

    /// Largest `|a - b|` relative to `1 + max |b|` (f32 sums in another order).
    fn close(a: &Tensor, b: &Tensor) -> Result<f32> {
        let a: Vec<f32> = a.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
        let b: Vec<f32> = b.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
        assert_eq!(a.len(), b.len());
        let scale = 1.0 + b.iter().fold(0f32, |m, v| m.max(v.abs()));
        Ok(a.iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
            / scale)
    }

    /// The CPU path against candle's autograd on the same weights and
    /// batch: loss, hits, every parameter's gradient, the batch-norm running
    /// statistics (through eval-mode logits) and eval logits.
    fn cpu_path_matches_autograd(net: &Network, bindings: &[&str], batch: usize) -> Result<()> {
        let fast = build(net, bindings, 5, DType::F32)?;
        let mut slow = build(net, bindings, 5, DType::F32)?;
        slow.set_cpu_path(false);
        assert!(fast.uses_cpu_path() && !slow.uses_cpu_path());
        let Shape::Image { c, h, w } = net.input else {
            panic!("image input")
        };
        let Shape::Flat(classes) = net.output else {
            panic!("flat output")
        };
        let x = Tensor::randn(0f32, 1.0, (batch, c, h, w), &Device::Cpu)?;
        let labels: Vec<u32> = (0..batch as u32).map(|i| i % classes as u32).collect();
        let y = Tensor::from_vec(labels, batch, &Device::Cpu)?;
        let (lf, cf, gf) = fast.train_step(&x, &y, &mut rng())?;
        let (ls, cs, gs) = slow.train_step(&x, &y, &mut rng())?;
        assert!(
            (lf - ls).abs() < 1e-5 * (1.0 + ls.abs()),
            "loss {lf} vs {ls}"
        );
        assert_eq!(cf, cs);
        let (gf, gs) = (gf.expect("finite"), gs.expect("finite"));
        for (pf, ps) in fast.params().iter().zip(slow.params()) {
            let a = gf.get(pf.var.as_tensor()).expect("cpu path gradient");
            let b = gs.get(ps.var.as_tensor()).expect("autograd gradient");
            let err = close(a, b)?;
            assert!(err < 1e-4, "{}: gradient differs by {err}", pf.name);
        }
        let ef = fast.forward(&x, Mode::Eval, &mut rng())?;
        let es = slow.forward(&x, Mode::Eval, &mut rng())?;
        assert!(close(&ef, &es)? < 1e-4, "eval logits differ");
        Ok(())
    }

    #[test]
    fn cpu_path_matches_candle_autograd() -> Result<()> {
        let net = cpu_path_net();
        // Fused kernels (arelu, relu), and a formula-only per-channel
        // activation (the local-graph fallback).
        cpu_path_matches_autograd(&net, &["arelu", "mid=relu", "fc=prelu_channel"], 5)?;
        cpu_path_matches_autograd(&net, &["swish", "mid=atanh", "fc=pelu"], 3)?;
        // One image: the kernels' single-image split.
        cpu_path_matches_autograd(&net, &["relu"], 1)
    }

    #[test]
    fn cpu_path_runs_only_where_it_applies() -> Result<()> {
        assert!(!build(&every_layer_net(), &["relu"], 0, DType::F32)?.uses_cpu_path());
        assert!(!build(&cpu_path_net(), &["relu"], 0, DType::F64)?.uses_cpu_path());
        assert!(build(&cpu_path_net(), &["relu"], 0, DType::F32)?.uses_cpu_path());
        Ok(())
    }

    fn build(net: &Network, bindings: &[&str], seed: u64, dtype: DType) -> Result<Model> {
        let reg = Registry::builtin()?;
        Model::build_with_dtype(
            net,
            &reg,
            &ActBindings::parse(bindings)?,
            &Device::Cpu,
            Seed(seed),
            dtype,
        )
    }

    #[test]
    fn builds_every_layer_type_and_runs_forward_backward() -> Result<()> {
        let net = every_layer_net();
        let model = build(&net, &["arelu", "fc=prelu:p=0.1"], 0, DType::F32)?;
        let counted: usize = model
            .params()
            .iter()
            .filter(|p| !matches!(p.kind, ParamKind::Activation(_)))
            .map(|p| p.var.elem_count())
            .sum();
        assert_eq!(counted, net.param_count());
        assert!(model.params().iter().any(|p| p.name == "res0.act0.a"));
        assert!(model.params().iter().any(|p| p.name == "act1.p"));
        let x = Tensor::randn(0f32, 1., (3, 2, 6, 6), &Device::Cpu)?;
        let y = model.forward(&x, Mode::Train, &mut rng())?;
        assert_eq!(y.dims(), [3, 3]);
        let grads = y.sqr()?.sum_all()?.backward()?;
        for p in model.params() {
            assert!(
                grads.get(p.var.as_tensor()).is_some(),
                "no gradient for {}",
                p.name
            );
        }
        let e = model.forward(&x, Mode::Eval, &mut rng())?;
        assert_eq!(e.dims(), [3, 3]);
        let vals = model.act_values()?;
        let names: Vec<(&str, &str)> = vals
            .iter()
            .map(|v| (v.path.as_str(), v.activation.as_str()))
            .collect();
        assert_eq!(
            names,
            [("act0", "arelu"), ("res0.act0", "arelu"), ("act1", "prelu")]
        );
        assert_eq!(vals[2].params, [("p".to_owned(), vec![0.1f32])]);
        assert_eq!(vals[2].slot.as_deref(), Some("fc"));
        Ok(())
    }

    #[test]
    fn whole_model_gradients_match_finite_differences() -> Result<()> {
        // Dropout is random, so swap it for the identity (rate 0) here.
        let mut net = every_layer_net();
        for n in &mut net.body {
            if let Op::Dropout { rate } = &mut n.op {
                *rate = 0.0;
            }
        }
        let model = build(
            &net,
            &["atanh:a=1.1,b=0.9,c=0.1,d=-0.1", "fc=swish:beta=1.3"],
            3,
            DType::F64,
        )?;
        let x = crate::ops::gradcheck::rand(&[2, 2, 6, 6], -1.0, 1.0, 7);
        let w = crate::ops::gradcheck::rand(&[2, 3], -1.0, 1.0, 8);
        let loss = |m: &Model| -> Result<f64> {
            Ok(m.forward(&x, Mode::Train, &mut rng())?
                .mul(&w)?
                .sum_all()?
                .to_scalar::<f64>()?)
        };
        let grads = model
            .forward(&x, Mode::Train, &mut rng())?
            .mul(&w)?
            .sum_all()?
            .backward()?;
        let eps = 1e-6;
        for p in model.params() {
            let base: Vec<f64> = p.var.as_tensor().flatten_all()?.to_vec1()?;
            let analytic: Vec<f64> = match grads.get(p.var.as_tensor()) {
                Some(g) => g.flatten_all()?.to_vec1()?,
                None => panic!("no gradient for {}", p.name),
            };
            // A few elements per tensor keep the test fast.
            for i in (0..base.len()).step_by(base.len().div_ceil(4)) {
                let at = |d: f64| -> Result<f64> {
                    let mut v = base.clone();
                    v[i] += d;
                    p.var
                        .set(&Tensor::from_vec(v, p.var.shape(), &Device::Cpu)?)?;
                    loss(&model)
                };
                let numeric = (at(eps)? - at(-eps)?) / (2.0 * eps);
                p.var.set(&Tensor::from_vec(
                    base.clone(),
                    p.var.shape(),
                    &Device::Cpu,
                )?)?;
                let err = (numeric - analytic[i]).abs() / (1.0 + numeric.abs());
                assert!(
                    err < 1e-5,
                    "{}[{i}]: analytic {} numeric {numeric}",
                    p.name,
                    analytic[i]
                );
            }
        }
        Ok(())
    }

    #[test]
    fn same_seed_same_weights() -> Result<()> {
        let net = every_layer_net();
        let bits = |m: &Model| -> Result<Vec<Vec<u32>>> {
            m.params()
                .iter()
                .map(|p| {
                    Ok(p.var
                        .as_tensor()
                        .flatten_all()?
                        .to_vec1::<f32>()?
                        .iter()
                        .map(|v| v.to_bits())
                        .collect())
                })
                .collect()
        };
        let a = bits(&build(&net, &["relu"], 42, DType::F32)?)?;
        let b = bits(&build(&net, &["relu"], 42, DType::F32)?)?;
        let c = bits(&build(&net, &["relu"], 43, DType::F32)?)?;
        assert_eq!(a, b);
        assert_ne!(a, c);
        // PyTorch's bound: conv0 has fan_in 2*3*3 = 18.
        let m = build(&net, &["relu"], 42, DType::F32)?;
        let w = m.params()[0]
            .var
            .as_tensor()
            .flatten_all()?
            .to_vec1::<f32>()?;
        let bound = 1.0 / 18f32.sqrt();
        assert!(w.iter().all(|v| v.abs() <= bound));
        assert!(w.iter().any(|v| v.abs() > bound * 0.8));
        Ok(())
    }

    fn tiny(body: Vec<Node>, input: Shape, output: Shape) -> Network {
        Network {
            name: "t".into(),
            args: vec![],
            input,
            output,
            body,
        }
    }

    #[test]
    fn layer_forwards_by_hand() -> Result<()> {
        let dev = Device::Cpu;
        // Linear with known weights: y = W x + b.
        let net = tiny(
            vec![node(
                "fc",
                Shape::Flat(2),
                Shape::Flat(1),
                Op::Linear {
                    in_features: 2,
                    out_features: 1,
                    bias: true,
                },
            )],
            Shape::Flat(2),
            Shape::Flat(1),
        );
        let m = build(&net, &["relu"], 0, DType::F32)?;
        m.params()[0].var.set(&Tensor::new(&[[2f32, -1.]], &dev)?)?;
        m.params()[1].var.set(&Tensor::new(&[0.5f32], &dev)?)?;
        let y = m.forward(&Tensor::new(&[[3f32, 4.]], &dev)?, Mode::Eval, &mut rng())?;
        assert_eq!(y.to_vec2::<f32>()?, [[2.5]]);
        // Global average pool and flatten.
        let net = tiny(
            vec![node("gap", img(2, 2, 2), Shape::Flat(2), Op::GlobalAvgPool)],
            img(2, 2, 2),
            Shape::Flat(2),
        );
        let m = build(&net, &["relu"], 0, DType::F32)?;
        let x =
            Tensor::new(&[1f32, 2., 3., 4., 10., 20., 30., 40.], &dev)?.reshape((1, 2, 2, 2))?;
        assert_eq!(
            m.forward(&x, Mode::Eval, &mut rng())?.to_vec2::<f32>()?,
            [[2.5, 25.0]]
        );
        let net = tiny(
            vec![node("f", img(2, 2, 2), Shape::Flat(8), Op::Flatten)],
            img(2, 2, 2),
            Shape::Flat(8),
        );
        let m = build(&net, &["relu"], 0, DType::F32)?;
        assert_eq!(m.forward(&x, Mode::Eval, &mut rng())?.dims(), [1, 8]);
        // Residual with identity shortcut around an act: relu(x) + x.
        let s = img(1, 1, 2);
        let net = tiny(
            vec![node(
                "r",
                s,
                s,
                Op::Residual {
                    body: vec![node("r.act0", s, s, act(None))],
                    shortcut: vec![],
                },
            )],
            s,
            s,
        );
        let m = build(&net, &["relu"], 0, DType::F32)?;
        let x = Tensor::new(&[-1f32, 2.], &dev)?.reshape((1, 1, 1, 2))?;
        assert_eq!(
            m.forward(&x, Mode::Eval, &mut rng())?
                .flatten_all()?
                .to_vec1::<f32>()?,
            [-1.0, 4.0]
        );
        // Concat and dense of acts: [relu(x), tanh(x)] and [x, relu(x)].
        let s2 = img(2, 1, 2);
        let net = tiny(
            vec![node(
                "c",
                s,
                s2,
                Op::Concat {
                    branches: vec![
                        vec![node("c.a", s, s, act(None))],
                        vec![node("c.b", s, s, act(Some("t")))],
                    ],
                },
            )],
            s,
            s2,
        );
        let m = build(&net, &["relu", "t=tanh"], 0, DType::F32)?;
        let y = m
            .forward(&x, Mode::Eval, &mut rng())?
            .flatten_all()?
            .to_vec1::<f32>()?;
        assert_eq!(y[..2], [0.0, 2.0]);
        assert!((y[2] - (-1f32).tanh()).abs() < 1e-6 && (y[3] - 2f32.tanh()).abs() < 1e-6);
        let net = tiny(
            vec![node(
                "d",
                s,
                s2,
                Op::Dense {
                    layers: vec![vec![node("d.a", s, s, act(None))]],
                },
            )],
            s,
            s2,
        );
        let m = build(&net, &["relu"], 0, DType::F32)?;
        let y = m
            .forward(&x, Mode::Eval, &mut rng())?
            .flatten_all()?
            .to_vec1::<f32>()?;
        assert_eq!(y, [-1.0, 2.0, 0.0, 2.0]);
        Ok(())
    }

    #[test]
    fn batch_norm_running_statistics() -> Result<()> {
        let dev = Device::Cpu;
        let s = Shape::Flat(1);
        let net = tiny(
            vec![node(
                "bn",
                s,
                s,
                Op::BatchNorm {
                    channels: 1,
                    eps: 0.0,
                    momentum: 0.9,
                },
            )],
            s,
            s,
        );
        let m = build(&net, &["relu"], 0, DType::F64)?;
        let x = Tensor::new(&[[1f64], [3.]], &dev)?;
        let y = m.forward(&x, Mode::Train, &mut rng())?;
        assert_eq!(y.flatten_all()?.to_vec1::<f64>()?, [-1.0, 1.0]);
        // running_mean = 0.9*0 + 0.1*2; running_var = 0.9*1 + 0.1*(unbiased 2).
        let Layer::BatchNorm(bn) = &m.layers[0] else {
            panic!("not a batch norm")
        };
        assert!((bn.running_mean.as_tensor().to_vec1::<f64>()?[0] - 0.2).abs() < 1e-12);
        assert!((bn.running_var.as_tensor().to_vec1::<f64>()?[0] - 1.1).abs() < 1e-12);
        let e = m.forward(&Tensor::new(&[[1.2f64]], &dev)?, Mode::Eval, &mut rng())?;
        assert!((e.flatten_all()?.to_vec1::<f64>()?[0] - 1.0 / 1.1f64.sqrt()).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn dropout_is_inverted_seeded_and_off_in_eval() -> Result<()> {
        let s = Shape::Flat(1000);
        let net = tiny(vec![node("d", s, s, Op::Dropout { rate: 0.25 })], s, s);
        let m = build(&net, &["relu"], 0, DType::F32)?;
        let x = Tensor::ones((1, 1000), DType::F32, &Device::Cpu)?;
        let a = m
            .forward(&x, Mode::Train, &mut rng())?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let b = m
            .forward(&x, Mode::Train, &mut rng())?
            .flatten_all()?
            .to_vec1::<f32>()?;
        assert_eq!(a, b);
        assert!(a.iter().all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-6));
        let dropped = a.iter().filter(|&&v| v == 0.0).count();
        assert!((200..300).contains(&dropped), "{dropped} dropped");
        let e = m
            .forward(&x, Mode::Eval, &mut rng())?
            .flatten_all()?
            .to_vec1::<f32>()?;
        assert!(e.iter().all(|&v| v == 1.0));
        Ok(())
    }

    #[test]
    fn binding_errors() -> Result<()> {
        let net = every_layer_net();
        let reg = Registry::builtin()?;
        let err = |specs: &[&str]| -> String {
            match ActBindings::parse(specs)
                .and_then(|b| Model::build(&net, &reg, &b, &Device::Cpu, Seed(0)))
            {
                Ok(_) => panic!("{specs:?} built"),
                Err(e) => e.to_string(),
            }
        };
        assert!(
            err(&["relu", "conv=relu"]).contains("unknown slot `conv`; the network's slots are fc")
        );
        assert!(err(&["lrelu:q=1"]).contains("`lrelu` has no parameter `q`; valid: s"));
        assert!(err(&["nope"]).contains("unknown activation `nope`"));
        assert!(err(&["fc=relu"]).contains("no activation for `act0`"));
        let mut bad = every_layer_net();
        bad.body[0].input = img(3, 6, 6);
        match build(&bad, &["relu", "fc=relu"], 0, DType::F32) {
            Err(Error::Config(m)) => assert!(
                m.starts_with("conv0: convolution expects 2 channels"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        let x = Tensor::zeros((1, 3, 6, 6), DType::F32, &Device::Cpu)?;
        let m = build(&net, &["relu"], 0, DType::F32)?;
        assert!(matches!(
            m.forward(&x, Mode::Eval, &mut rng()),
            Err(Error::DataMismatch(_))
        ));
        Ok(())
    }

    /// Every shipped model file builds and its non-activation parameters
    /// match the IR's count; a forward/backward pass runs on the quick ones
    /// (the others take seconds each on CPU; their layer kinds are covered
    /// by the small networks above).
    #[test]
    fn shipped_models_build_and_run() -> Result<()> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites/models");
        let reg = Registry::builtin()?;
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| Error::Config(e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "acnet"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no models in {}", dir.display());
        for file in files {
            let net = match acbench_dsl::compile_file(&file, None, &[]) {
                Ok(n) => n,
                Err(e) => panic!("{}: {e:?}", file.display()),
            };
            let model = Model::build(
                &net,
                &reg,
                &ActBindings::uniform("arelu"),
                &Device::Cpu,
                Seed(0),
            )?;
            let weights: usize = model
                .params()
                .iter()
                .filter(|p| !matches!(p.kind, ParamKind::Activation(_)))
                .map(|p| p.var.elem_count())
                .sum();
            assert_eq!(weights, net.param_count(), "{}", file.display());
            assert_eq!(model.act_values()?.len(), net.act_sites().len());
            let quick = ["convnet", "alexnet", "googlenet"];
            if !file
                .file_stem()
                .is_some_and(|s| quick.iter().any(|q| s == *q))
            {
                continue;
            }
            let Shape::Image { c, h, w } = net.input else {
                continue;
            };
            let x = Tensor::randn(0f32, 1., (1, c, h, w), &Device::Cpu)?;
            let y = model.forward(&x, Mode::Eval, &mut rng())?;
            assert_eq!(y.dims(), [1, net.output.numel()], "{}", file.display());
            y.sum_all()?.backward()?;
        }
        Ok(())
    }
}
