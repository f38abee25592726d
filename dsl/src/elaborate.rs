//! Elaboration: evaluate arguments, expand blocks and `repeat`, name every
//! node and infer every shape, producing the [`ir`](crate::ir).

use std::collections::HashMap;

use crate::ast::{Arg, BinOp, Def, Expr, ExprKind, Stmt, StmtKind};
use crate::error::{Error, ErrorKind, Source};
use crate::ir::{Conv2d, Network, Node, Op, Pool2d, PoolKind, Shape, Span, Value};
use crate::layers::{self, PadSpec, padding, window_axis};
use crate::module::Module;

/// Most nodes (layers and composites) in one network.
pub const MAX_NODES: usize = 100_000;
/// Most elaboration steps (statements visited, loop iterations); bounds the
/// time spent on loops that produce nothing, such as nested empty `repeat`s.
pub const MAX_STEPS: usize = 2_000_000;
/// Deepest chain of block calls.
pub const MAX_CALL_DEPTH: usize = 64;
/// Largest channel count, spatial size, kernel, stride, padding or repeat count.
pub const MAX_DIM: usize = 1 << 24;
/// Most scalars in one example's activation (`c*h*w`).
pub const MAX_NUMEL: usize = 1 << 40;
/// Most trainable scalars in one layer.
pub const MAX_LAYER_PARAMS: usize = 1 << 40;
/// Most trainable scalars in one network.
pub const MAX_TOTAL_PARAMS: usize = 1 << 50;
/// Most bytes in all node paths together: long names nested deep in many
/// nodes could otherwise take gigabytes.
pub const MAX_PATH_BYTES: usize = 64 << 20;

type Env = Vec<(String, Value)>;

/// Output length, padding before and padding after, along one axis.
type Axis = (usize, usize, usize);

/// One block call on the way to the statement being elaborated.
struct Frame {
    block: String,
    call: Span,
}

pub(crate) struct Elab<'m> {
    module: &'m Module,
    src: &'m Source,
    frames: Vec<Frame>,
    nodes: usize,
    steps: usize,
    params: usize,
    path_bytes: usize,
}

/// Per-body counters that number nodes of each kind (`conv0`, `conv1`, ...).
#[derive(Default)]
struct Counters(HashMap<String, usize>);

impl Counters {
    fn next(&mut self, prefix: &str, kind: &str) -> String {
        let n = self.0.entry(kind.to_string()).or_insert(0);
        let name = format!("{kind}{n}");
        *n += 1;
        if prefix.is_empty() {
            name
        } else {
            format!("{prefix}.{name}")
        }
    }
}

/// Where statements of one body go and under which name.
struct Scope<'a> {
    env: &'a Env,
    prefix: &'a str,
}

impl<'m> Elab<'m> {
    pub(crate) fn new(module: &'m Module) -> Self {
        Elab {
            module,
            src: module.source(),
            frames: Vec::new(),
            nodes: 0,
            steps: 0,
            params: 0,
            path_bytes: 0,
        }
    }

    /// An error at `span`, labelled also at every block call leading to it.
    fn err(
        &self,
        kind: ErrorKind,
        message: impl Into<String>,
        span: Span,
        label: impl Into<String>,
    ) -> Error {
        self.in_frames(Error::new(kind, message, self.src).label(span, label))
    }

    /// Adds a label at every block call leading to the current statement.
    fn in_frames(&self, mut e: Error) -> Error {
        for f in self.frames.iter().rev().take(8) {
            e = e.label(f.call, format!("in this call of `{}`", f.block));
        }
        e
    }

    pub(crate) fn network(
        &mut self,
        def: &Def,
        args: &[(String, Value)],
        input: Option<&Stmt>,
    ) -> Result<Network, Error> {
        for (name, _) in args {
            if !def.params.iter().any(|p| &p.name.name == name) {
                let valid: Vec<String> = def
                    .params
                    .iter()
                    .map(|p| format!("`{}`", p.name.name))
                    .collect();
                let help = if valid.is_empty() {
                    format!("network `{}` takes no arguments", def.name.name)
                } else {
                    format!("valid arguments: {}", valid.join(", "))
                };
                return Err(self
                    .err(
                        ErrorKind::UnknownArgument,
                        format!("network `{}` has no argument `{name}`", def.name.name),
                        def.name.span,
                        "network defined here",
                    )
                    .help(help));
            }
        }
        let mut env: Env = Vec::new();
        for p in &def.params {
            let value = if let Some((_, v)) = args.iter().rev().find(|(n, _)| n == &p.name.name) {
                v.clone()
            } else if let Some(d) = &p.default {
                self.eval(d, &env)?
            } else {
                return Err(self.err(
                    ErrorKind::Arity,
                    format!(
                        "network `{}` needs a value for `{}`",
                        def.name.name, p.name.name
                    ),
                    p.name.span,
                    "no default",
                ));
            };
            env.push((p.name.name.clone(), value));
        }
        let (input_stmt, body) = match def.body.first() {
            Some(
                s @ Stmt {
                    kind: StmtKind::Input(_),
                    ..
                },
            ) => (Some(s), &def.body[1..]),
            _ => (input, &def.body[..]),
        };
        let Some(Stmt {
            kind: StmtKind::Input(dims),
            span: input_span,
        }) = input_stmt
        else {
            return Err(self
                .err(
                    ErrorKind::Shape,
                    format!("network `{}` has no input shape", def.name.name),
                    def.name.span,
                    "declared here",
                )
                .help("start its body with `input(channels, size, size)`, or put `input 3x32x32` at the top of the file"));
        };
        let mut values = Vec::new();
        for d in dims {
            let v = self.eval(d, &env)?;
            values.push(self.dim(&v, d.span, "input dimension", 1)?);
        }
        let input_shape = match values[..] {
            [n] => Shape::Flat(n),
            [c, h, w] => Shape::Image { c, h, w },
            _ => {
                return Err(self.err(
                    ErrorKind::Arity,
                    format!("input takes 1 or 3 dimensions, found {}", values.len()),
                    *input_span,
                    "expected `CxHxW` or a feature count",
                ));
            }
        };
        self.check_numel(input_shape, *input_span)?;
        let mut shape = input_shape;
        let mut nodes = Vec::new();
        let mut counters = Counters::default();
        self.body(
            body,
            &Scope {
                env: &env,
                prefix: "",
            },
            &mut counters,
            &mut shape,
            &mut nodes,
        )?;
        Ok(Network {
            name: def.name.name.clone(),
            args: env,
            input: input_shape,
            output: shape,
            body: nodes,
        })
    }

    fn step(&mut self, span: Span) -> Result<(), Error> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(self.err(
                ErrorKind::Limit,
                format!("elaboration takes more than {MAX_STEPS} steps"),
                span,
                "while elaborating this",
            ));
        }
        Ok(())
    }

    fn push_node(&mut self, node: Node, out: &mut Vec<Node>) -> Result<(), Error> {
        self.nodes += 1;
        self.path_bytes += node.path.len();
        if self.path_bytes > MAX_PATH_BYTES {
            return Err(self.err(
                ErrorKind::Limit,
                format!("node paths take more than {MAX_PATH_BYTES} bytes"),
                node.span,
                "while adding this",
            ));
        }
        if self.nodes > MAX_NODES {
            return Err(self.err(
                ErrorKind::Limit,
                format!("network has more than {MAX_NODES} nodes"),
                node.span,
                "while adding this",
            ));
        }
        self.check_numel(node.output, node.span)?;
        out.push(node);
        Ok(())
    }

    fn check_numel(&self, shape: Shape, span: Span) -> Result<(), Error> {
        let numel = match shape {
            Shape::Image { c, h, w } => c.checked_mul(h).and_then(|x| x.checked_mul(w)),
            Shape::Flat(n) => Some(n),
        };
        match numel {
            Some(n) if n <= MAX_NUMEL => Ok(()),
            _ => Err(self.err(
                ErrorKind::Limit,
                format!("shape {shape} has more than {MAX_NUMEL} elements"),
                span,
                "too large",
            )),
        }
    }

    fn body(
        &mut self,
        stmts: &[Stmt],
        scope: &Scope<'_>,
        counters: &mut Counters,
        shape: &mut Shape,
        out: &mut Vec<Node>,
    ) -> Result<(), Error> {
        for s in stmts {
            self.stmt(s, scope, counters, shape, out)?;
        }
        Ok(())
    }

    fn stmt(
        &mut self,
        stmt: &Stmt,
        scope: &Scope<'_>,
        counters: &mut Counters,
        shape: &mut Shape,
        out: &mut Vec<Node>,
    ) -> Result<(), Error> {
        self.step(stmt.span)?;
        match &stmt.kind {
            StmtKind::Input(_) => Err(self.err(
                ErrorKind::Syntax,
                "`input` is only allowed at the top of a file or as the first statement of a network",
                stmt.span,
                "unexpected `input`",
            )),
            StmtKind::Repeat { count, body } => {
                let n = self.eval(count, scope.env)?;
                let n = self.dim(&n, count.span, "repeat count", 0)?;
                for _ in 0..n {
                    self.step(stmt.span)?;
                    self.body(body, scope, counters, shape, out)?;
                }
                Ok(())
            }
            StmtKind::Residual { body } => {
                let path = counters.next(scope.prefix, "residual");
                let input = *shape;
                let mut inner = Vec::new();
                let mut out_shape = input;
                self.body(body, &Scope { env: scope.env, prefix: &path }, &mut Counters::default(), &mut out_shape, &mut inner)?;
                let shortcut = self.projection(&path, stmt.span, input, out_shape, &inner)?;
                *shape = out_shape;
                let node = Node {
                    path,
                    span: stmt.span,
                    input,
                    output: out_shape,
                    op: Op::Residual { body: inner, shortcut },
                };
                self.push_node(node, out)
            }
            StmtKind::Concat { branches } => {
                let path = counters.next(scope.prefix, "concat");
                let input = *shape;
                if branches.is_empty() {
                    return Err(self.err(ErrorKind::Shape, "concat needs at least one branch", stmt.span, "empty concat"));
                }
                let mut outs = Vec::new();
                let mut result: Option<(Shape, Span)> = None;
                for (i, (bspan, body)) in branches.iter().enumerate() {
                    let bpath = format!("{path}.branch{i}");
                    let mut bshape = input;
                    let mut nodes = Vec::new();
                    self.body(body, &Scope { env: scope.env, prefix: &bpath }, &mut Counters::default(), &mut bshape, &mut nodes)?;
                    result = Some(match result {
                        None => (bshape, *bspan),
                        Some((acc, first)) => (self.concat_shapes(acc, bshape, first, *bspan)?, first),
                    });
                    outs.push(nodes);
                }
                let output = result.map_or(input, |(s, _)| s);
                *shape = output;
                self.push_node(Node { path, span: stmt.span, input, output, op: Op::Concat { branches: outs } }, out)
            }
            StmtKind::Dense { count, body } => {
                let path = counters.next(scope.prefix, "dense");
                let input = *shape;
                let n = self.eval(count, scope.env)?;
                let n = self.dim(&n, count.span, "dense layer count", 0)?;
                let mut layers = Vec::new();
                let mut cur = input;
                for i in 0..n {
                    self.step(stmt.span)?;
                    let lpath = format!("{path}.layer{i}");
                    let mut lshape = cur;
                    let mut nodes = Vec::new();
                    self.body(body, &Scope { env: scope.env, prefix: &lpath }, &mut Counters::default(), &mut lshape, &mut nodes)?;
                    cur = self.concat_shapes(cur, lshape, stmt.span, stmt.span).map_err(|_| {
                        self.err(
                            ErrorKind::Shape,
                            format!("dense layer {i} turns {cur} into {lshape}; it must keep the spatial size"),
                            stmt.span,
                            "in this dense block",
                        )
                    })?;
                    self.check_numel(cur, stmt.span)?;
                    layers.push(nodes);
                }
                *shape = cur;
                self.push_node(Node { path, span: stmt.span, input, output: cur, op: Op::Dense { layers } }, out)
            }
            StmtKind::Call { name, slot, args } => {
                if let Some(sig) = layers::layer(&name.name) {
                    let bound = self.bind_values(&name.name, sig.params.iter().map(|p| p.name), args, scope.env)?;
                    let path = counters.next(scope.prefix, sig.name);
                    let input = *shape;
                    let (op, output) = self.layer(sig.name, slot.as_ref().map(|s| s.name.clone()), &bound, stmt.span, input)?;
                    self.count_params(&op, stmt.span)?;
                    *shape = output;
                    self.push_node(Node { path, span: stmt.span, input, output, op }, out)
                } else if let Some(def) = self.module.block(&name.name) {
                    self.call_block(def, args, stmt, scope, counters, shape, out)
                } else {
                    Err(self.err(ErrorKind::UnknownLayer, format!("unknown layer `{}`", name.name), name.span, "not a layer or block"))
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn call_block(
        &mut self,
        def: &Def,
        args: &[Arg],
        stmt: &Stmt,
        scope: &Scope<'_>,
        counters: &mut Counters,
        shape: &mut Shape,
        out: &mut Vec<Node>,
    ) -> Result<(), Error> {
        if self.frames.len() >= MAX_CALL_DEPTH {
            return Err(self.err(
                ErrorKind::Recursion,
                format!("block calls nested deeper than {MAX_CALL_DEPTH}"),
                stmt.span,
                "too deep",
            ));
        }
        if self.frames.iter().any(|f| f.block == def.name.name) {
            let chain: Vec<&str> = self
                .frames
                .iter()
                .map(|f| f.block.as_str())
                .chain([def.name.name.as_str()])
                .collect();
            return Err(self.err(
                ErrorKind::Recursion,
                format!(
                    "block `{}` calls itself: {}",
                    def.name.name,
                    chain.join(" -> ")
                ),
                stmt.span,
                "recursive call",
            ));
        }
        let bound = self.bind_values(
            &def.name.name,
            def.params.iter().map(|p| p.name.name.as_str()),
            args,
            scope.env,
        )?;
        let path = counters.next(scope.prefix, &def.name.name);
        self.frames.push(Frame {
            block: def.name.name.clone(),
            call: stmt.span,
        });
        let result = (|| {
            let mut env: Env = Vec::new();
            for (p, given) in def.params.iter().zip(bound) {
                let v = match (given, &p.default) {
                    (Some((v, _)), _) => v,
                    (None, Some(d)) => self.eval(d, &env)?,
                    (None, None) => {
                        return Err(self.err(
                            ErrorKind::Arity,
                            format!(
                                "missing argument `{}` of block `{}`",
                                p.name.name, def.name.name
                            ),
                            p.name.span,
                            "required here",
                        ));
                    }
                };
                env.push((p.name.name.clone(), v));
            }
            self.body(
                &def.body,
                &Scope {
                    env: &env,
                    prefix: &path,
                },
                &mut Counters::default(),
                shape,
                out,
            )
        })();
        self.frames.pop();
        result
    }

    /// Output of concatenating two results along channels.
    fn concat_shapes(
        &self,
        a: Shape,
        b: Shape,
        a_span: Span,
        b_span: Span,
    ) -> Result<Shape, Error> {
        match (a, b) {
            (Shape::Image { c: c1, h: h1, w: w1 }, Shape::Image { c: c2, h: h2, w: w2 }) if (h1, w1) == (h2, w2) => {
                Ok(Shape::Image { c: self.add_dim(c1, c2, b_span)?, h: h1, w: w1 })
            }
            (Shape::Flat(n1), Shape::Flat(n2)) => Ok(Shape::Flat(self.add_dim(n1, n2, b_span)?)),
            (Shape::Image { h: h1, w: w1, .. }, Shape::Image { h: h2, w: w2, .. }) => Err(self
                .err(
                    ErrorKind::Shape,
                    format!("concat branches disagree: {h1}x{w1} vs {h2}x{w2}"),
                    b_span,
                    format!("this branch gives {b}"),
                )
                .label(a_span, format!("this one gives {a}"))),
            _ => Err(self
                .err(
                    ErrorKind::Shape,
                    format!("concat branches disagree: {a} vs {b} (feature maps and vectors cannot be joined)"),
                    b_span,
                    format!("this branch gives {b}"),
                )
                .label(a_span, format!("this one gives {a}"))),
        }
    }

    fn add_dim(&self, a: usize, b: usize, span: Span) -> Result<usize, Error> {
        match a.checked_add(b) {
            Some(s) if s <= MAX_DIM => Ok(s),
            _ => Err(self.err(
                ErrorKind::Limit,
                format!("more than {MAX_DIM} channels"),
                span,
                "too many channels",
            )),
        }
    }

    /// The shortcut of a residual whose body turns `input` into `output`.
    fn projection(
        &mut self,
        path: &str,
        span: Span,
        input: Shape,
        output: Shape,
        body: &[Node],
    ) -> Result<Vec<Node>, Error> {
        if input == output {
            return Ok(Vec::new());
        }
        let (
            Shape::Image {
                c: ci,
                h: hi,
                w: wi,
            },
            Shape::Image {
                c: co,
                h: ho,
                w: wo,
            },
        ) = (input, output)
        else {
            return Err(self
                .err(ErrorKind::Shape, format!("residual body turns {input} into {output}"), span, "shapes must match")
                .help("only feature maps get an automatic 1x1 projection; vectors must keep their size"));
        };
        let stride = |i: usize, o: usize| {
            let s = i.div_ceil(o);
            (o <= i && i.div_ceil(s) == o).then_some(s)
        };
        let (Some(sh), Some(sw)) = (stride(hi, ho), stride(wi, wo)) else {
            return Err(self
                .err(
                    ErrorKind::Shape,
                    format!("residual body turns {hi}x{wi} into {ho}x{wo}: no 1x1 strided projection matches"),
                    span,
                    "spatial sizes cannot be matched",
                )
                .help("the body may only shrink the feature map by a whole stride"));
        };
        let with_bn = body_has_bn(body);
        let conv = Conv2d {
            in_channels: ci,
            out_channels: co,
            kernel: (1, 1),
            stride: (sh, sw),
            padding: Default::default(),
            dilation: (1, 1),
            groups: 1,
            // A batch norm right after makes a conv bias redundant.
            bias: !with_bn,
        };
        let mut nodes = Vec::new();
        let op = Op::Conv2d(conv);
        self.count_params(&op, span)?;
        let mid = output;
        self.push_node(
            Node {
                path: format!("{path}.proj.conv"),
                span,
                input,
                output: mid,
                op,
            },
            &mut nodes,
        )?;
        if with_bn {
            let op = Op::BatchNorm {
                channels: co,
                eps: 1e-3,
                momentum: 0.99,
            };
            self.count_params(&op, span)?;
            self.push_node(
                Node {
                    path: format!("{path}.proj.bn"),
                    span,
                    input: mid,
                    output: mid,
                    op,
                },
                &mut nodes,
            )?;
        }
        Ok(nodes)
    }

    fn count_params(&mut self, op: &Op, span: Span) -> Result<(), Error> {
        let n = match op {
            Op::Conv2d(c) => c
                .out_channels
                .checked_mul(c.in_channels / c.groups.max(1))
                .and_then(|x| x.checked_mul(c.kernel.0))
                .and_then(|x| x.checked_mul(c.kernel.1))
                .and_then(|x| x.checked_add(if c.bias { c.out_channels } else { 0 })),
            Op::Linear {
                in_features,
                out_features,
                bias,
            } => in_features
                .checked_mul(*out_features)
                .and_then(|x| x.checked_add(if *bias { *out_features } else { 0 })),
            Op::BatchNorm { channels, .. } => channels.checked_mul(2),
            _ => Some(0),
        };
        match n {
            Some(n) if n <= MAX_LAYER_PARAMS => {
                self.params += n;
                if self.params > MAX_TOTAL_PARAMS {
                    return Err(self.err(
                        ErrorKind::Limit,
                        format!("network has more than {MAX_TOTAL_PARAMS} parameters"),
                        span,
                        "while adding this",
                    ));
                }
                Ok(())
            }
            _ => Err(self.err(
                ErrorKind::Limit,
                format!("layer has more than {MAX_LAYER_PARAMS} parameters"),
                span,
                "too large",
            )),
        }
    }

    /// Evaluates call arguments and puts them in parameter order.
    fn bind_values<'p>(
        &mut self,
        callee: &str,
        params: impl Iterator<Item = &'p str>,
        args: &[Arg],
        env: &Env,
    ) -> Result<Vec<Option<(Value, Span)>>, Error> {
        let names: Vec<&str> = params.collect();
        let slots = bind(self.src, callee, &names, args).map_err(|e| self.in_frames(e))?;
        let mut out = Vec::with_capacity(slots.len());
        for slot in slots {
            out.push(match slot {
                Some(a) => Some((self.eval(&a.value, env)?, a.value.span)),
                None => None,
            });
        }
        Ok(out)
    }

    fn layer(
        &mut self,
        name: &str,
        slot: Option<String>,
        a: &[Option<(Value, Span)>],
        span: Span,
        input: Shape,
    ) -> Result<(Op, Shape), Error> {
        let get = |i: usize| a.get(i).and_then(|x| x.as_ref());
        match name {
            "conv" => {
                let (ci, h, w) = self.image(name, input, span)?;
                let c = self.req_dim(get(0), "c", 1, span)?;
                let k = self.opt_dim(get(1), "k", 1, 3)?;
                let stride = self.opt_dim(get(2), "stride", 1, 1)?;
                let pad = self.pad(get(3))?;
                let groups = self.opt_dim(get(4), "groups", 1, 1)?;
                let bias = self.opt_bool(get(5), "bias", true)?;
                let dilation = self.opt_dim(get(6), "dilation", 1, 1)?;
                if ci % groups != 0 || c % groups != 0 {
                    let gspan = get(4).map_or(span, |g| g.1);
                    return Err(self.err(
                        ErrorKind::Value,
                        format!("groups={groups} must divide both input channels ({ci}) and output channels ({c})"),
                        gspan,
                        "does not divide",
                    ));
                }
                let (rows, cols) = self.window(name, (h, w), k, stride, dilation, pad, span)?;
                let conv = Conv2d {
                    in_channels: ci,
                    out_channels: c,
                    kernel: (k, k),
                    stride: (stride, stride),
                    padding: padding((rows.1, rows.2), (cols.1, cols.2)),
                    dilation: (dilation, dilation),
                    groups,
                    bias,
                };
                Ok((
                    Op::Conv2d(conv),
                    Shape::Image {
                        c,
                        h: rows.0,
                        w: cols.0,
                    },
                ))
            }
            "bn" => {
                let eps = self.opt_float(get(0), "eps", 1e-3)?;
                let momentum = self.opt_float(get(1), "momentum", 0.99)?;
                if eps <= 0.0 {
                    return Err(self.value_err("eps must be positive", get(0), span));
                }
                if !(0.0..1.0).contains(&momentum) {
                    return Err(self.value_err("momentum must be in [0, 1)", get(1), span));
                }
                Ok((
                    Op::BatchNorm {
                        channels: input.channels(),
                        eps,
                        momentum,
                    },
                    input,
                ))
            }
            "lrn" => {
                self.image(name, input, span)?;
                let radius = self.opt_dim(get(0), "radius", 0, 2)?;
                let alpha = self.opt_float(get(1), "alpha", 1e-4)?;
                let beta = self.opt_float(get(2), "beta", 0.75)?;
                let bias = self.opt_float(get(3), "bias", 1.0)?;
                Ok((
                    Op::Lrn {
                        radius,
                        alpha,
                        beta,
                        bias,
                    },
                    input,
                ))
            }
            "maxpool" | "avgpool" => {
                let (c, h, w) = self.image(name, input, span)?;
                let k = self.req_dim(get(0), "k", 1, span)?;
                let stride = self.opt_dim(get(1), "stride", 1, k)?;
                let pad = self.pad(get(2))?;
                let count_pad = if name == "avgpool" {
                    self.opt_bool(get(3), "count_pad", false)?
                } else {
                    false
                };
                if let PadSpec::Explicit(p) = pad
                    && p.saturating_mul(2) > k
                {
                    return Err(self.value_err(
                        &format!("pool padding {p} is more than half the {k}x{k} window"),
                        get(2),
                        span,
                    ));
                }
                let (rows, cols) = self.window(name, (h, w), k, stride, 1, pad, span)?;
                let pool = Pool2d {
                    kind: if name == "maxpool" {
                        PoolKind::Max
                    } else {
                        PoolKind::Avg
                    },
                    kernel: (k, k),
                    stride: (stride, stride),
                    padding: padding((rows.1, rows.2), (cols.1, cols.2)),
                    count_include_pad: count_pad,
                };
                Ok((
                    Op::Pool(pool),
                    Shape::Image {
                        c,
                        h: rows.0,
                        w: cols.0,
                    },
                ))
            }
            "gap" => {
                let (c, _, _) = self.image(name, input, span)?;
                Ok((Op::GlobalAvgPool, Shape::Flat(c)))
            }
            "dropout" => {
                let p = match get(0) {
                    Some(v) => self.float(v, "p")?,
                    None => {
                        return Err(self.err(
                            ErrorKind::Arity,
                            "dropout needs its drop probability `p`",
                            span,
                            "missing `p`",
                        ));
                    }
                };
                if !(0.0..1.0).contains(&p) {
                    return Err(self
                        .value_err("dropout probability must be in [0, 1)", get(0), span)
                        .help("`p` is the probability of dropping a unit (TensorFlow 1.x code passes the keep probability)"));
                }
                Ok((Op::Dropout { rate: p }, input))
            }
            // On a vector `flatten` changes nothing, so that the common
            // `gap flatten linear(n)` reads as it does in other frameworks.
            "flatten" => Ok((Op::Flatten, Shape::Flat(input.numel()))),
            "linear" => {
                let n = self.req_dim(get(0), "n", 1, span)?;
                let bias = self.opt_bool(get(1), "bias", true)?;
                let Shape::Flat(in_features) = input else {
                    return Err(self
                        .err(
                            ErrorKind::Shape,
                            format!("linear expects a vector, got the feature map {input}"),
                            span,
                            "needs a vector",
                        )
                        .help("add `flatten` (or `gap`) before it"));
                };
                Ok((
                    Op::Linear {
                        in_features,
                        out_features: n,
                        bias,
                    },
                    Shape::Flat(n),
                ))
            }
            _ => Ok((Op::Act { slot }, input)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn window(
        &self,
        layer: &str,
        (h, w): (usize, usize),
        k: usize,
        stride: usize,
        dilation: usize,
        pad: PadSpec,
        span: Span,
    ) -> Result<(Axis, Axis), Error> {
        match (
            window_axis(h, k, stride, dilation, pad),
            window_axis(w, k, stride, dilation, pad),
        ) {
            (Some(r), Some(c)) => Ok((r, c)),
            _ => Err(self.err(
                ErrorKind::Shape,
                format!("{layer} window {k}x{k} is larger than its {h}x{w} input"),
                span,
                format!("input is {h}x{w} here"),
            )),
        }
    }

    fn image(&self, layer: &str, shape: Shape, span: Span) -> Result<(usize, usize, usize), Error> {
        match shape {
            Shape::Image { c, h, w } => Ok((c, h, w)),
            Shape::Flat(n) => Err(self.err(
                ErrorKind::Shape,
                format!("{layer} expects a feature map, got a vector of {n}"),
                span,
                "input is a vector here",
            )),
        }
    }

    fn value_err(&self, message: &str, arg: Option<&(Value, Span)>, span: Span) -> Error {
        self.err(
            ErrorKind::Value,
            message.to_string(),
            arg.map_or(span, |a| a.1),
            "invalid value",
        )
    }

    /// A non-negative integer at least `min` and at most [`MAX_DIM`].
    fn dim(&self, v: &Value, span: Span, what: &str, min: usize) -> Result<usize, Error> {
        let Value::Int(i) = v else {
            return Err(self.err(
                ErrorKind::Type,
                format!("{what} must be an integer, found {}", describe(v)),
                span,
                "expected an integer",
            ));
        };
        if *i < min as i64 {
            let bound = if min == 0 { "non-negative" } else { "positive" };
            return Err(self.err(
                ErrorKind::Value,
                format!("{what} must be {bound}, found {i}"),
                span,
                format!("must be {bound}"),
            ));
        }
        if *i as u64 > MAX_DIM as u64 {
            return Err(self.err(
                ErrorKind::Limit,
                format!("{what} {i} is larger than {MAX_DIM}"),
                span,
                "too large",
            ));
        }
        Ok(*i as usize)
    }

    fn req_dim(
        &self,
        v: Option<&(Value, Span)>,
        name: &str,
        min: usize,
        span: Span,
    ) -> Result<usize, Error> {
        match v {
            Some((v, s)) => self.dim(v, *s, &format!("`{name}`"), min),
            None => Err(self.err(
                ErrorKind::Arity,
                format!("missing argument `{name}`"),
                span,
                "required",
            )),
        }
    }

    fn opt_dim(
        &self,
        v: Option<&(Value, Span)>,
        name: &str,
        min: usize,
        default: usize,
    ) -> Result<usize, Error> {
        match v {
            Some((v, s)) => self.dim(v, *s, &format!("`{name}`"), min),
            None => Ok(default),
        }
    }

    fn float(&self, (v, span): &(Value, Span), name: &str) -> Result<f64, Error> {
        match v {
            Value::Int(i) => Ok(*i as f64),
            Value::Float(x) => Ok(*x),
            _ => Err(self.err(
                ErrorKind::Type,
                format!("`{name}` must be a number, found {}", describe(v)),
                *span,
                "expected a number",
            )),
        }
    }

    fn opt_float(&self, v: Option<&(Value, Span)>, name: &str, default: f64) -> Result<f64, Error> {
        v.map_or(Ok(default), |v| self.float(v, name))
    }

    fn opt_bool(
        &self,
        v: Option<&(Value, Span)>,
        name: &str,
        default: bool,
    ) -> Result<bool, Error> {
        match v {
            None => Ok(default),
            Some((Value::Bool(b), _)) => Ok(*b),
            Some((v, s)) => Err(self.err(
                ErrorKind::Type,
                format!("`{name}` must be `true` or `false`, found {}", describe(v)),
                *s,
                "expected a boolean",
            )),
        }
    }

    fn pad(&self, v: Option<&(Value, Span)>) -> Result<PadSpec, Error> {
        match v {
            None => Ok(PadSpec::Explicit(0)),
            Some((Value::Word(w), _)) if w == "same" => Ok(PadSpec::Same),
            Some((Value::Word(w), _)) if w == "valid" => Ok(PadSpec::Valid),
            Some((v @ Value::Int(_), s)) => Ok(PadSpec::Explicit(self.dim(v, *s, "`pad`", 0)?)),
            Some((v, s)) => Err(self.err(
                ErrorKind::Type,
                format!(
                    "`pad` must be an integer, `same` or `valid`, found {}",
                    describe(v)
                ),
                *s,
                "expected padding",
            )),
        }
    }

    pub(crate) fn eval(&self, e: &Expr, env: &Env) -> Result<Value, Error> {
        eval(e, env, &|kind, msg, span, label| {
            self.err(kind, msg, span, label)
        })
    }
}

fn body_has_bn(nodes: &[Node]) -> bool {
    nodes.iter().any(|n| {
        matches!(n.op, Op::BatchNorm { .. }) || n.children().iter().any(|c| body_has_bn(c))
    })
}

/// How a value reads in messages.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Int(i) => format!("integer {i}"),
        Value::Float(x) => format!("number {x}"),
        Value::Bool(b) => format!("`{b}`"),
        Value::Word(w) => format!("`{w}`"),
    }
}

type MakeErr<'a> = dyn Fn(ErrorKind, String, Span, String) -> Error + 'a;

/// Evaluates an expression. Integers stay integers under `+ - * / %` (`/`
/// and `%` round toward minus infinity, as Python's `//` and `%`); any float
/// operand makes the result a float.
pub(crate) fn eval(e: &Expr, env: &Env, err: &MakeErr<'_>) -> Result<Value, Error> {
    match &e.kind {
        ExprKind::Int(i) => Ok(Value::Int(*i)),
        ExprKind::Float(x) => Ok(Value::Float(*x)),
        ExprKind::Bool(b) => Ok(Value::Bool(*b)),
        ExprKind::Name(n) => {
            if let Some((_, v)) = env.iter().rev().find(|(k, _)| k == n) {
                Ok(v.clone())
            } else if layers::WORDS.contains(&n.as_str()) {
                Ok(Value::Word(n.clone()))
            } else {
                Err(err(
                    ErrorKind::UnknownName,
                    format!("unknown name `{n}`"),
                    e.span,
                    "not an argument in scope".into(),
                ))
            }
        }
        ExprKind::Neg(inner) => match eval(inner, env, err)? {
            Value::Int(i) => i.checked_neg().map(Value::Int).ok_or_else(|| {
                err(
                    ErrorKind::Overflow,
                    "integer overflow".into(),
                    e.span,
                    "overflows".into(),
                )
            }),
            Value::Float(x) => Ok(Value::Float(-x)),
            v => Err(err(
                ErrorKind::Type,
                format!("cannot negate {}", describe(&v)),
                e.span,
                "expected a number".into(),
            )),
        },
        ExprKind::Bin(op, l, r) => {
            let a = eval(l, env, err)?;
            let b = eval(r, env, err)?;
            binary(*op, &a, &b, e.span, r.span, err)
        }
    }
}

fn binary(
    op: BinOp,
    a: &Value,
    b: &Value,
    span: Span,
    rspan: Span,
    err: &MakeErr<'_>,
) -> Result<Value, Error> {
    let overflow = || {
        err(
            ErrorKind::Overflow,
            "integer overflow".into(),
            span,
            "overflows".into(),
        )
    };
    let div_zero = || {
        err(
            ErrorKind::DivisionByZero,
            "division by zero".into(),
            rspan,
            "is zero".into(),
        )
    };
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => {
            let (x, y) = (*x, *y);
            let v = match op {
                BinOp::Add => x.checked_add(y),
                BinOp::Sub => x.checked_sub(y),
                BinOp::Mul => x.checked_mul(y),
                BinOp::Div | BinOp::Rem => {
                    if y == 0 {
                        return Err(div_zero());
                    }
                    let q = x.checked_div(y).ok_or_else(overflow)?;
                    let r = x.checked_rem(y).ok_or_else(overflow)?;
                    // Round toward minus infinity, as Python's `//` and `%` do.
                    let (q, r) = if r != 0 && ((r < 0) != (y < 0)) {
                        (q - 1, r + y)
                    } else {
                        (q, r)
                    };
                    Some(if op == BinOp::Div { q } else { r })
                }
            };
            v.map(Value::Int).ok_or_else(overflow)
        }
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            let x = as_f64(a);
            let y = as_f64(b);
            if matches!(op, BinOp::Div | BinOp::Rem) && y == 0.0 {
                return Err(div_zero());
            }
            let v = match op {
                BinOp::Add => x + y,
                BinOp::Sub => x - y,
                BinOp::Mul => x * y,
                BinOp::Div => x / y,
                BinOp::Rem => x - y * (x / y).floor(),
            };
            if v.is_finite() {
                Ok(Value::Float(v))
            } else {
                Err(err(
                    ErrorKind::Overflow,
                    "number overflow".into(),
                    span,
                    "not finite".into(),
                ))
            }
        }
        _ => {
            let bad = if matches!(a, Value::Int(_) | Value::Float(_)) {
                b
            } else {
                a
            };
            Err(err(
                ErrorKind::Type,
                format!("arithmetic needs numbers, found {}", describe(bad)),
                span,
                "expected numbers".into(),
            ))
        }
    }
}

fn as_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(x) => *x,
        _ => 0.0,
    }
}

/// Matches call arguments to parameter names: positional first, then by
/// keyword. Checks arity, unknown and duplicate arguments.
pub(crate) fn bind<'a>(
    src: &Source,
    callee: &str,
    params: &[&str],
    args: &'a [Arg],
) -> Result<Vec<Option<&'a Arg>>, Error> {
    let mut slots: Vec<Option<&Arg>> = vec![None; params.len()];
    let mut positional = 0;
    for a in args {
        match &a.name {
            None => {
                if positional >= params.len() {
                    let msg = format!(
                        "`{callee}` takes at most {} positional argument{}, found more",
                        params.len(),
                        if params.len() == 1 { "" } else { "s" }
                    );
                    return Err(
                        Error::new(ErrorKind::Arity, msg, src).label(a.span, "unexpected argument")
                    );
                }
                slots[positional] = Some(a);
                positional += 1;
            }
            Some(name) => {
                let Some(i) = params.iter().position(|p| *p == name.name) else {
                    let valid = if params.is_empty() {
                        "it takes no arguments".to_string()
                    } else {
                        format!(
                            "it takes {}",
                            params
                                .iter()
                                .map(|p| format!("`{p}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    };
                    let msg = format!("`{callee}` has no argument `{}`; {valid}", name.name);
                    return Err(Error::new(ErrorKind::UnknownArgument, msg, src)
                        .label(name.span, "unknown argument"));
                };
                if slots[i].is_some() {
                    let msg = format!("argument `{}` of `{callee}` given twice", name.name);
                    return Err(Error::new(ErrorKind::DuplicateArgument, msg, src)
                        .label(name.span, "given again here"));
                }
                slots[i] = Some(a);
            }
        }
    }
    Ok(slots)
}
