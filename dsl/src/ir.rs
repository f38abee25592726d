//! The elaborated network: what a `.acnet` file means once every block is
//! expanded, every argument evaluated and every shape inferred.
//!
//! The IR is the contract between the language (`acbench-dsl`) and the engine
//! (`acbench-engine`): the engine turns each [`Node`] into candle tensors and
//! never looks at source text again. Every node carries a stable, unique
//! [`Node::path`] (`stage2.basic0.conv1`) that names its parameters in the
//! ledger, in plots and in results.

use serde::Serialize;

/// Byte range in the source file that produced a node (for diagnostics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// Shape of one example flowing between layers (the batch dimension excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Shape {
    /// A feature map: channels x height x width.
    Image {
        /// Channels.
        c: usize,
        /// Height.
        h: usize,
        /// Width.
        w: usize,
    },
    /// A feature vector.
    Flat(usize),
}

impl Shape {
    /// Number of scalars in one example.
    pub fn numel(&self) -> usize {
        match *self {
            Shape::Image { c, h, w } => c * h * w,
            Shape::Flat(n) => n,
        }
    }

    /// Channels of a feature map, or features of a vector: the axis that
    /// per-channel parameters (batch norm, per-channel activations) live on.
    pub fn channels(&self) -> usize {
        match *self {
            Shape::Image { c, .. } => c,
            Shape::Flat(n) => n,
        }
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shape::Image { c, h, w } => write!(f, "{c}x{h}x{w}"),
            Shape::Flat(n) => write!(f, "{n}"),
        }
    }
}

/// Explicit zero (or, for max pooling, minus infinity) padding on each side.
/// Asymmetric because TensorFlow's `SAME` padding is asymmetric for strided
/// windows (the extra row/column goes to the bottom/right).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Padding {
    /// Rows added above.
    pub top: usize,
    /// Rows added below.
    pub bottom: usize,
    /// Columns added on the left.
    pub left: usize,
    /// Columns added on the right.
    pub right: usize,
}

/// A 2-D convolution (cross-correlation, as in every framework).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conv2d {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel height and width.
    pub kernel: (usize, usize),
    /// Stride (rows, columns).
    pub stride: (usize, usize),
    /// Padding already resolved from `same`/`valid`/numbers.
    pub padding: Padding,
    /// Dilation (rows, columns).
    pub dilation: (usize, usize),
    /// Groups; `in_channels` and `out_channels` are both multiples of it.
    pub groups: usize,
    /// Whether the convolution has a bias.
    pub bias: bool,
}

impl Conv2d {
    /// Number of trainable scalars.
    pub fn param_count(&self) -> usize {
        self.checked_param_count().unwrap_or(usize::MAX)
    }

    /// Number of trainable scalars, or `None` when it overflows.
    fn checked_param_count(&self) -> Option<usize> {
        self.out_channels
            .checked_mul(self.in_channels.checked_div(self.groups)?)?
            .checked_mul(self.kernel.0)?
            .checked_mul(self.kernel.1)?
            .checked_add(if self.bias { self.out_channels } else { 0 })
    }
}

/// Max or average pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PoolKind {
    /// Maximum over the window; padded cells never win.
    Max,
    /// Mean over the window.
    Avg,
}

/// A pooling window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pool2d {
    /// Max or average.
    pub kind: PoolKind,
    /// Window height and width.
    pub kernel: (usize, usize),
    /// Stride (rows, columns).
    pub stride: (usize, usize),
    /// Padding already resolved.
    pub padding: Padding,
    /// For average pooling: whether padded cells count in the divisor
    /// (PyTorch's default) or not (TensorFlow's `SAME`).
    pub count_include_pad: bool,
}

/// What a node computes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Op {
    /// 2-D convolution.
    Conv2d(Conv2d),
    /// Batch normalisation over the channel axis (of an image or a vector).
    BatchNorm {
        /// Channels (or features).
        channels: usize,
        /// Added to the variance (TensorFlow's default is 1e-3).
        eps: f64,
        /// Running statistics: `running = momentum * running + (1 - momentum) * batch`.
        momentum: f64,
    },
    /// Local response normalisation across channels, TensorFlow's convention:
    /// `x / (bias + alpha * sum_{|j-i| <= radius} x_j^2)^beta` (alpha is
    /// *not* divided by the window size).
    Lrn {
        /// Half-width of the channel window.
        radius: usize,
        /// Scale of the sum of squares.
        alpha: f64,
        /// Exponent.
        beta: f64,
        /// Additive constant.
        bias: f64,
    },
    /// Max or average pooling.
    Pool(Pool2d),
    /// Mean over height and width: `CxHxW -> C`.
    GlobalAvgPool,
    /// Dropout; `rate` is the probability of *dropping* a unit (PyTorch's
    /// convention; TensorFlow 1.x code passes the keep probability).
    Dropout {
        /// Drop probability in [0, 1).
        rate: f64,
    },
    /// `CxHxW -> C*H*W`.
    Flatten,
    /// Fully connected layer.
    Linear {
        /// Input features.
        in_features: usize,
        /// Output features.
        out_features: usize,
        /// Whether it has a bias.
        bias: bool,
    },
    /// An activation placeholder; a suite or the CLI binds it to an
    /// activation function, which gets its own parameters at this path.
    Act {
        /// Slot name from `act@slot`, if any; unnamed slots take the default binding.
        slot: Option<String>,
    },
    /// `body(x) + shortcut(x)`; `shortcut` is empty for the identity, or a
    /// 1x1 projection (conv, plus batch norm when the body has one) inserted
    /// when the body changes the shape.
    Residual {
        /// Main branch.
        body: Vec<Node>,
        /// Shortcut branch (empty = identity).
        shortcut: Vec<Node>,
    },
    /// Branches run on the same input, outputs concatenated along channels.
    Concat {
        /// One node list per branch.
        branches: Vec<Vec<Node>>,
    },
    /// Dense connectivity (DenseNet): for each layer in turn,
    /// `x = concat(x, layer(x))` along channels.
    Dense {
        /// One node list per dense layer.
        layers: Vec<Vec<Node>>,
    },
}

impl Op {
    /// Trainable scalars of this op alone, not counting the nodes inside a
    /// composite, or `None` when the count overflows. Elaboration bounds it
    /// with [`MAX_LAYER_PARAMS`](crate::MAX_LAYER_PARAMS).
    pub(crate) fn own_param_count(&self) -> Option<usize> {
        match self {
            Op::Conv2d(c) => c.checked_param_count(),
            Op::BatchNorm { channels, .. } => channels.checked_mul(2),
            Op::Linear {
                in_features,
                out_features,
                bias,
            } => in_features
                .checked_mul(*out_features)?
                .checked_add(if *bias { *out_features } else { 0 }),
            Op::Lrn { .. }
            | Op::Pool(_)
            | Op::GlobalAvgPool
            | Op::Dropout { .. }
            | Op::Flatten
            | Op::Act { .. }
            | Op::Residual { .. }
            | Op::Concat { .. }
            | Op::Dense { .. } => Some(0),
        }
    }
}

/// One layer (or composite) of an elaborated network.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    /// Stable dotted path, unique in the network (`cba0.conv0`, `stage2.basic1.act0`).
    pub path: String,
    /// Where in the source this node came from.
    pub span: Span,
    /// Shape entering the node.
    pub input: Shape,
    /// Shape leaving the node.
    pub output: Shape,
    /// What it computes.
    pub op: Op,
}

impl Node {
    /// Trainable scalars of this node and everything inside it, activation
    /// parameters excluded (they depend on the activation bound later).
    pub fn param_count(&self) -> usize {
        let own = self.op.own_param_count().unwrap_or(usize::MAX);
        self.children()
            .iter()
            .flat_map(|nodes| nodes.iter())
            .fold(own, |n, child| n.saturating_add(child.param_count()))
    }

    /// Direct children lists (empty for plain layers).
    pub fn children(&self) -> Vec<&[Node]> {
        match &self.op {
            Op::Residual { body, shortcut } => vec![body.as_slice(), shortcut.as_slice()],
            Op::Concat { branches } => branches.iter().map(Vec::as_slice).collect(),
            Op::Dense { layers } => layers.iter().map(Vec::as_slice).collect(),
            _ => Vec::new(),
        }
    }
}

/// A fully elaborated, shape-checked network.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Network {
    /// Name from `network NAME(...)`.
    pub name: String,
    /// The argument values it was elaborated with (defaults filled in), in declaration order.
    pub args: Vec<(String, Value)>,
    /// Shape of one input example.
    pub input: Shape,
    /// Shape of one output example (logits).
    pub output: Shape,
    /// The layers, in order.
    pub body: Vec<Node>,
}

impl Network {
    /// Trainable scalars, activation parameters excluded.
    pub fn param_count(&self) -> usize {
        self.body.iter().map(Node::param_count).sum()
    }

    /// Every node in depth-first pre-order (composites before their children).
    pub fn walk(&self) -> Vec<&Node> {
        fn go<'a>(nodes: &'a [Node], out: &mut Vec<&'a Node>) {
            for n in nodes {
                out.push(n);
                for c in n.children() {
                    go(c, out);
                }
            }
        }
        let mut out = Vec::new();
        go(&self.body, &mut out);
        out
    }

    /// Every `act` node, in forward order, with its path and slot name.
    pub fn act_sites(&self) -> Vec<&Node> {
        self.walk()
            .into_iter()
            .filter(|n| matches!(n.op, Op::Act { .. }))
            .collect()
    }
}

/// A value in the language: arguments, defaults and expression results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Value {
    /// Integer.
    Int(i64),
    /// Real number.
    Float(f64),
    /// `true` / `false`.
    Bool(bool),
    /// A bare word such as `same` or `valid`.
    Word(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Word(w) => f.write_str(w),
        }
    }
}
