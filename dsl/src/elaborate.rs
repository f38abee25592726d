//! Elaboration: expand blocks and `repeat`, name every node, lower each
//! layer call (see [`layers`]) and infer every shape,
//! producing the [`ir`](crate::ir).

use crate::options::CompileOptions;
use std::collections::HashMap;

use crate::ast::{Arg, Def, File, Param, Stmt, StmtKind};
use crate::bind::bind_values;
use crate::error::{Error, ErrorKind, Source, quoted};
use crate::eval::{Ctx, Env, Frame};
use crate::ir::{Conv2d, Network, Node, Op, Shape, Span, Value};
use crate::layers::{self, Call};
use crate::limits::{
    MAX_CALL_DEPTH, MAX_DIM, MAX_LAYER_PARAMS, MAX_NODES, MAX_NUMEL, MAX_PATH_BYTES, MAX_STEPS,
    MAX_TOTAL_PARAMS,
};

/// The elaboration of one network: the file's blocks, the block calls on
/// the way to the current statement, and the counts that the limits bound.
pub(crate) struct Elab<'m> {
    file: &'m File,
    src: &'m Source,
    options: &'m CompileOptions,
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
    pub(crate) fn new(file: &'m File, src: &'m Source, options: &'m CompileOptions) -> Self {
        Elab {
            file,
            src,
            options,
            frames: Vec::new(),
            nodes: 0,
            steps: 0,
            params: 0,
            path_bytes: 0,
        }
    }

    /// The environment of a network's or block's parameters, in order: each
    /// one's given value, else its default evaluated over the parameters
    /// before it, else an arity error with the message `missing` makes from
    /// its name and `label` beside it.
    fn param_env(
        &self,
        params: &[Param],
        given: impl IntoIterator<Item = Option<Value>>,
        missing: impl Fn(&str) -> String,
        label: &str,
    ) -> Result<Env, Error> {
        let mut env: Env = Vec::new();
        for (p, given) in params.iter().zip(given) {
            let v = match (given, &p.default) {
                (Some(v), _) => v,
                (None, Some(d)) => self.cx().eval(d, &env)?,
                (None, None) => {
                    let message = missing(&p.name.name);
                    return Err(self.cx().err(ErrorKind::Arity, message, p.name.span, label));
                }
            };
            env.push((p.name.name.clone(), v));
        }
        Ok(env)
    }

    /// Makes errors that label the block calls leading to the current statement.
    fn cx(&self) -> Ctx<'_> {
        Ctx::new(self.src, &self.frames)
    }

    /// The error for going over one of the limits in [`crate::limits`].
    fn over_limit(&self, message: String, span: Span, label: &str) -> Error {
        self.cx().err(ErrorKind::Limit, message, span, label)
    }

    pub(crate) fn network(
        &mut self,
        def: &Def,
        args: &[(String, Value)],
        input: Option<&Stmt>,
    ) -> Result<Network, Error> {
        for (name, _) in args {
            if !def.params.iter().any(|p| &p.name.name == name) {
                let help = if def.params.is_empty() {
                    format!("network `{}` takes no arguments", def.name.name)
                } else {
                    let valid = quoted(def.params.iter().map(|p| p.name.name.as_str()));
                    format!("valid arguments: {valid}")
                };
                return Err(self
                    .cx()
                    .err(
                        ErrorKind::UnknownArgument,
                        format!("network `{}` has no argument `{name}`", def.name.name),
                        def.name.span,
                        "network defined here",
                    )
                    .help(help));
            }
        }
        let given = def.params.iter().map(|p| {
            args.iter()
                .rev()
                .find(|(n, _)| n == &p.name.name)
                .map(|(_, v)| v.clone())
        });
        let network = &def.name.name;
        let missing = |p: &str| format!("network `{network}` needs a value for `{p}`");
        let env = self.param_env(&def.params, given, missing, "no default")?;
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
            return Err(self.cx().err(
                    ErrorKind::Shape,
                    format!("network `{}` has no input shape", def.name.name),
                    def.name.span,
                    "declared here",
                )
                .help("start its body with `input(channels, size, size)`, or put `input 3x32x32` at the top of the file"));
        };
        let mut values = Vec::new();
        for d in dims {
            let v = self.cx().eval(d, &env)?;
            values.push(self.cx().dim(&v, d.span, "input dimension", 1)?);
        }
        let input_shape = match values[..] {
            [n] => Shape::Flat(n),
            [c, h, w] => Shape::Image { c, h, w },
            _ => {
                return Err(self.cx().err(
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
            return Err(self.over_limit(
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
            return Err(self.over_limit(
                format!("node paths take more than {MAX_PATH_BYTES} bytes"),
                node.span,
                "while adding this",
            ));
        }
        if self.nodes > MAX_NODES {
            return Err(self.over_limit(
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
            _ => Err(self.over_limit(
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
            StmtKind::Input(_) => Err(self.cx().err(
                ErrorKind::Syntax,
                "`input` is only allowed at the top of a file or as the first statement of a network",
                stmt.span,
                "unexpected `input`",
            )),
            StmtKind::Repeat { count, body } => {
                let n = self.cx().eval(count, scope.env)?;
                let n = self.cx().dim(&n, count.span, "repeat count", 0)?;
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
                    return Err(self.cx().err(ErrorKind::Shape, "concat needs at least one branch", stmt.span, "empty concat"));
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
                let n = self.cx().eval(count, scope.env)?;
                let n = self.cx().dim(&n, count.span, "dense layer count", 0)?;
                let mut layers = Vec::new();
                let mut cur = input;
                for i in 0..n {
                    self.step(stmt.span)?;
                    let lpath = format!("{path}.layer{i}");
                    let mut lshape = cur;
                    let mut nodes = Vec::new();
                    self.body(body, &Scope { env: scope.env, prefix: &lpath }, &mut Counters::default(), &mut lshape, &mut nodes)?;
                    cur = self.concat_shapes(cur, lshape, stmt.span, stmt.span).map_err(|_| {
                        self.cx().err(
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
                if let Some(layer) = layers::layer(&name.name) {
                    let bound = bind_values(&self.cx(), &name.name, &layer.sig.names(), args, scope.env)?;
                    let path = counters.next(scope.prefix, layer.sig.name);
                    let input = *shape;
                    let call = Call {
                        cx: self.cx(),
                        layer: layer.sig.name,
                        span: stmt.span,
                        input,
                        slot: slot.as_ref().map(|s| s.name.as_str()),
                        args: &bound,
                        options: self.options,
                    };
                    let (op, output) = (layer.lower)(&call)?;
                    self.count_params(&op, stmt.span)?;
                    *shape = output;
                    self.push_node(Node { path, span: stmt.span, input, output, op }, out)
                } else if let Some(def) = self.file.block(&name.name) {
                    self.call_block(def, args, stmt, scope, counters, shape, out)
                } else {
                    Err(self.cx().err(ErrorKind::UnknownLayer, format!("unknown layer `{}`", name.name), name.span, "not a layer or block"))
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
            return Err(self.cx().err(
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
            return Err(self.cx().err(
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
        let params: Vec<&str> = def.params.iter().map(|p| p.name.name.as_str()).collect();
        let bound = bind_values(&self.cx(), &def.name.name, &params, args, scope.env)?;
        let path = counters.next(scope.prefix, &def.name.name);
        self.frames.push(Frame {
            block: def.name.name.clone(),
            call: stmt.span,
        });
        let result = (|| {
            let given = bound.into_iter().map(|g| g.map(|(v, _)| v));
            let block = &def.name.name;
            let missing = |p: &str| format!("missing argument `{p}` of block `{block}`");
            let env = self.param_env(&def.params, given, missing, "required here")?;
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
            (Shape::Image { h: h1, w: w1, .. }, Shape::Image { h: h2, w: w2, .. }) => Err(self.cx().err(
                    ErrorKind::Shape,
                    format!("concat branches disagree: {h1}x{w1} vs {h2}x{w2}"),
                    b_span,
                    format!("this branch gives {b}"),
                )
                .label(a_span, format!("this one gives {a}"))),
            _ => Err(self.cx().err(
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
            _ => Err(self.over_limit(
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
            return Err(self.cx().err(ErrorKind::Shape, format!("residual body turns {input} into {output}"), span, "shapes must match")
                .help("only feature maps get an automatic 1x1 projection; vectors must keep their size"));
        };
        let stride = |i: usize, o: usize| {
            let s = i.div_ceil(o);
            (o <= i && i.div_ceil(s) == o).then_some(s)
        };
        let (Some(sh), Some(sw)) = (stride(hi, ho), stride(wi, wo)) else {
            return Err(self.cx().err(
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
            // A `bn` with its default arguments.
            let call = Call {
                cx: self.cx(),
                layer: layers::BN.sig.name,
                span,
                input: mid,
                slot: None,
                args: &[],
                options: self.options,
            };
            let (op, _) = (layers::BN.lower)(&call)?;
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
        match op.own_param_count() {
            Some(n) if n <= MAX_LAYER_PARAMS => {
                self.params += n;
                if self.params > MAX_TOTAL_PARAMS {
                    return Err(self.over_limit(
                        format!("network has more than {MAX_TOTAL_PARAMS} parameters"),
                        span,
                        "while adding this",
                    ));
                }
                Ok(())
            }
            _ => Err(self.over_limit(
                format!("layer has more than {MAX_LAYER_PARAMS} parameters"),
                span,
                "too large",
            )),
        }
    }
}

fn body_has_bn(nodes: &[Node]) -> bool {
    nodes.iter().any(|n| {
        matches!(n.op, Op::BatchNorm { .. }) || n.children().iter().any(|c| body_has_bn(c))
    })
}
