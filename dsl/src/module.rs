//! A parsed and checked `.acnet` file, and the entry points that turn it
//! into an [`ir::Network`](crate::ir::Network).

use crate::options::CompileOptions;
use std::collections::{HashMap, HashSet};

use crate::ast::{Arg, Def, Expr, ExprKind, File, Stmt, StmtKind};
use crate::bind::bind;
use crate::elaborate::Elab;
use crate::error::{Diagnostics, Error, ErrorKind, Source, quoted};
use crate::eval::{Ctx, WORDS};
use crate::ir::{Network, Span, Value};
use crate::layers::{self, LAYERS};

/// A parsed `.acnet` file whose names, calls and arguments have been checked.
/// Shapes and values are checked later, by [`Module::elaborate`], because
/// they depend on the network arguments.
#[derive(Debug, Clone)]
pub struct Module {
    src: Source,
    file: File,
}

/// A network's name and parameters, so that a caller can see which
/// arguments (`classes`, `channels`, `size`, ...) it takes.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSig {
    /// Name from `network NAME(...)`.
    pub name: String,
    /// Parameters in declaration order.
    pub params: Vec<ParamSig>,
}

/// One network parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSig {
    /// Its name.
    pub name: String,
    /// Its default with every other parameter at its default; `None` when
    /// the parameter is required (or its default cannot be evaluated alone).
    pub default: Option<Value>,
}

impl NetworkSig {
    /// Whether the network takes an argument of this name.
    pub fn takes(&self, name: &str) -> bool {
        self.params.iter().any(|p| p.name == name)
    }
}

/// Parses and checks a model file; `file_name` is only used in messages.
///
/// Returns every syntax-independent error at once: unknown layers and blocks,
/// bad argument lists, unknown names, duplicates and recursion.
pub fn parse(source: &str, file_name: &str) -> Result<Module, Diagnostics> {
    let src = Source::new(file_name, source);
    let file = crate::syntax::parse_file(&src).map_err(Diagnostics::new)?;
    let module = Module { src, file };
    let mut errors = Checker {
        m: &module,
        errors: Vec::new(),
    }
    .run();
    if errors.is_empty() {
        Ok(module)
    } else {
        errors.sort_by_key(|e| e.line_col());
        Err(Diagnostics::new(errors))
    }
}

/// Reads, parses and elaborates a model file in one go (see [`parse`] and
/// [`Module::elaborate`]).
pub fn compile_file(
    path: impl AsRef<std::path::Path>,
    network: Option<&str>,
    args: &[(String, Value)],
) -> Result<Network, Diagnostics> {
    compile_file_with(path, network, args, &CompileOptions::default())
}

/// [`compile_file`] with the caller's defaults for what the file leaves out.
pub fn compile_file_with(
    path: impl AsRef<std::path::Path>,
    network: Option<&str>,
    args: &[(String, Value)],
    options: &CompileOptions,
) -> Result<Network, Diagnostics> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics::from(Error::new(
            ErrorKind::Io,
            format!("cannot read `{name}`: {e}"),
            &Source::new(&name, ""),
        ))
    })?;
    parse(&text, &name)?.elaborate_with(network, args, options)
}

/// Reads a command-line value: an integer, a number, `true`/`false`, or else
/// a bare word.
pub fn parse_value(text: &str) -> Value {
    let t = text.trim();
    if let Ok(i) = t.parse::<i64>() {
        Value::Int(i)
    } else if let Some(x) = t.parse::<f64>().ok().filter(|x| x.is_finite()) {
        Value::Float(x)
    } else if t == "true" || t == "false" {
        Value::Bool(t == "true")
    } else {
        Value::Word(t.to_string())
    }
}

impl Module {
    /// File name given to [`parse`].
    pub fn file_name(&self) -> &str {
        &self.src.name
    }

    /// Every network of the file, in order.
    pub fn networks(&self) -> Vec<NetworkSig> {
        self.file
            .networks
            .iter()
            .map(|n| {
                let mut env: Vec<(String, Value)> = Vec::new();
                let mut params = Vec::new();
                let mut ok = true;
                for p in &n.params {
                    let default = match (&p.default, ok) {
                        (Some(d), true) => Ctx::new(&self.src, &[]).eval(d, &env).ok(),
                        _ => None,
                    };
                    match &default {
                        Some(v) => env.push((p.name.name.clone(), v.clone())),
                        // Later defaults may depend on this one.
                        None => ok = false,
                    }
                    params.push(ParamSig {
                        name: p.name.name.clone(),
                        default,
                    });
                }
                NetworkSig {
                    name: n.name.name.clone(),
                    params,
                }
            })
            .collect()
    }

    /// Expands network `network` (or, with `None`, the file's only or last
    /// network) with the given arguments, checking every value and shape.
    /// Arguments not given take their defaults; an unknown argument name is
    /// an error listing the valid ones.
    pub fn elaborate(
        &self,
        network: Option<&str>,
        args: &[(String, Value)],
    ) -> Result<Network, Diagnostics> {
        self.elaborate_with(network, args, &CompileOptions::default())
    }

    /// [`Module::elaborate`] with the caller's defaults for what the file
    /// leaves out.
    pub fn elaborate_with(
        &self,
        network: Option<&str>,
        args: &[(String, Value)],
        options: &CompileOptions,
    ) -> Result<Network, Diagnostics> {
        let whole = Span { start: 0, end: 0 };
        let def = match network {
            Some(name) => self
                .file
                .networks
                .iter()
                .find(|n| n.name.name == name)
                .ok_or_else(|| {
                    let mut e = Error::new(
                        ErrorKind::UnknownNetwork,
                        format!("no network `{name}` in this file"),
                        &self.src,
                    )
                    .label(whole, "in this file");
                    if !self.file.networks.is_empty() {
                        let names = quoted(self.file.networks.iter().map(|n| n.name.name.as_str()));
                        e = e.help(format!("it defines {names}"));
                    }
                    e
                })?,
            None => self.file.networks.last().ok_or_else(|| {
                Error::new(
                    ErrorKind::UnknownNetwork,
                    "this file defines no network",
                    &self.src,
                )
                .label(whole, "in this file")
                .help("add `network NAME(classes=10) { ... }`")
            })?,
        };
        Ok(Elab::new(&self.file, &self.src, options).network(
            def,
            args,
            self.file.inputs.first(),
        )?)
    }
}

/// Best spelling suggestion for a misspelt name.
fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3) && *d < c.len().max(name.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

struct Checker<'m> {
    m: &'m Module,
    errors: Vec<Error>,
}

impl Checker<'_> {
    fn err(&mut self, kind: ErrorKind, msg: String, span: Span, label: &str) -> &mut Error {
        self.errors
            .push(Error::new(kind, msg, &self.m.src).label(span, label));
        let last = self.errors.len() - 1;
        &mut self.errors[last]
    }

    fn run(mut self) -> Vec<Error> {
        let file = &self.m.file;
        if let Some(extra) = file.inputs.get(1) {
            self.err(
                ErrorKind::Duplicate,
                "more than one file-level `input`".into(),
                extra.span,
                "second `input`",
            );
        }
        for input in &file.inputs {
            self.check_input(input, &[]);
        }
        self.check_duplicates(&file.blocks, "block");
        self.check_duplicates(&file.networks, "network");
        for b in &file.blocks {
            if b.name.name.ends_with(|c: char| c.is_ascii_digit()) {
                // Paths append a counter to the block name: `c1` called
                // first would be `c10`, as would `c` called eleventh.
                self.err(
                    ErrorKind::Duplicate,
                    format!("block name `{}` ends in a digit", b.name.name),
                    b.name.span,
                    "node paths append a number to block names",
                );
            }
            if layers::layer(&b.name.name).is_some() {
                self.err(
                    ErrorKind::Duplicate,
                    format!("block `{}` has the name of a built-in layer", b.name.name),
                    b.name.span,
                    "choose another name",
                );
            }
            self.check_def(b, false);
        }
        for n in &file.networks {
            self.check_def(n, true);
        }
        self.check_recursion();
        self.errors
    }

    fn check_duplicates(&mut self, defs: &[Def], what: &str) {
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for d in defs {
            if let Some(first) = seen.get(d.name.name.as_str()) {
                let first = *first;
                let e = self.err(
                    ErrorKind::Duplicate,
                    format!("{what} `{}` is defined twice", d.name.name),
                    d.name.span,
                    "defined again here",
                );
                *e = e.clone().label(first, "first defined here");
            } else {
                seen.insert(&d.name.name, d.name.span);
            }
        }
    }

    fn check_def(&mut self, def: &Def, is_network: bool) {
        let mut scope: Vec<&str> = Vec::new();
        for p in &def.params {
            if scope.contains(&p.name.name.as_str()) {
                self.err(
                    ErrorKind::Duplicate,
                    format!("parameter `{}` is declared twice", p.name.name),
                    p.name.span,
                    "declared again here",
                );
            }
            if let Some(d) = &p.default {
                self.check_expr(d, &scope);
            }
            scope.push(&p.name.name);
        }
        for (i, s) in def.body.iter().enumerate() {
            if let StmtKind::Input(_) = s.kind {
                if !is_network || i > 0 {
                    let msg = if is_network {
                        "`input` must be the first statement of a network"
                    } else {
                        "`input` is not allowed inside a block"
                    };
                    self.err(ErrorKind::Syntax, msg.into(), s.span, "misplaced `input`");
                }
                self.check_input(s, &scope);
            } else {
                self.check_stmt(s, &scope);
            }
        }
    }

    fn check_input(&mut self, s: &Stmt, scope: &[&str]) {
        if let StmtKind::Input(dims) = &s.kind {
            if dims.len() != 1 && dims.len() != 3 {
                self.err(
                    ErrorKind::Arity,
                    format!("input takes 1 or 3 dimensions, found {}", dims.len()),
                    s.span,
                    "expected `CxHxW` or a feature count",
                );
            }
            // A file-level input may use the arguments of whichever network
            // it serves, so its names are checked at elaboration.
            if !scope.is_empty() {
                for d in dims {
                    self.check_expr(d, scope);
                }
            }
        }
    }

    fn check_stmts(&mut self, body: &[Stmt], scope: &[&str]) {
        for s in body {
            if let StmtKind::Input(_) = s.kind {
                self.err(
                    ErrorKind::Syntax,
                    "`input` must be the first statement of a network".into(),
                    s.span,
                    "misplaced `input`",
                );
            } else {
                self.check_stmt(s, scope);
            }
        }
    }

    fn check_stmt(&mut self, s: &Stmt, scope: &[&str]) {
        match &s.kind {
            StmtKind::Input(_) => {}
            StmtKind::Repeat { count, body } | StmtKind::Dense { count, body } => {
                self.check_expr(count, scope);
                self.check_stmts(body, scope);
            }
            StmtKind::Residual { body } => self.check_stmts(body, scope),
            StmtKind::Concat { branches } => {
                if branches.is_empty() {
                    self.err(
                        ErrorKind::Shape,
                        "concat needs at least one branch".into(),
                        s.span,
                        "empty concat",
                    );
                }
                for (_, b) in branches {
                    self.check_stmts(b, scope);
                }
            }
            StmtKind::Call { name, slot, args } => {
                for a in args {
                    self.check_expr(&a.value, scope);
                }
                if let Some(slot) = slot
                    && name.name != "act"
                {
                    self.err(
                        ErrorKind::Syntax,
                        format!("only `act` takes a slot name, not `{}`", name.name),
                        slot.span,
                        "unexpected `@slot`",
                    );
                }
                let params: Vec<&str> = if let Some(l) = layers::layer(&name.name) {
                    l.sig.names()
                } else if let Some(b) = self.m.file.block(&name.name) {
                    b.params.iter().map(|p| p.name.name.as_str()).collect()
                } else {
                    let candidates = LAYERS
                        .iter()
                        .map(|l| l.sig.name)
                        .chain(self.m.file.blocks.iter().map(|b| b.name.name.as_str()));
                    let hint = suggest(&name.name, candidates);
                    let msg = match hint {
                        Some(h) => format!("unknown layer `{}`; did you mean `{h}`?", name.name),
                        None => format!("unknown layer `{}`", name.name),
                    };
                    let e = self.err(
                        ErrorKind::UnknownLayer,
                        msg,
                        name.span,
                        "not a layer or block",
                    );
                    let all: Vec<&str> = LAYERS.iter().map(|l| l.sig.name).collect();
                    *e = e.clone().help(format!(
                        "built-in layers: {}; or define `block {}(...)`",
                        all.join(", "),
                        name.name
                    ));
                    return;
                };
                self.check_args(&name.name, &params, args, s.span);
            }
        }
    }

    fn check_args(&mut self, callee: &str, params: &[&str], args: &[Arg], call: Span) {
        let slots = match bind(&self.m.src, callee, params, args) {
            Ok(slots) => slots,
            Err(e) => {
                self.errors.push(e);
                return;
            }
        };
        let required: Vec<&str> = if let Some(l) = layers::layer(callee) {
            l.sig.required().collect()
        } else if let Some(b) = self.m.file.block(callee) {
            b.params
                .iter()
                .filter(|p| p.default.is_none())
                .map(|p| p.name.name.as_str())
                .collect()
        } else {
            Vec::new()
        };
        for r in required {
            let i = params.iter().position(|p| *p == r);
            if i.is_some_and(|i| slots.get(i).is_some_and(Option::is_none)) {
                self.err(
                    ErrorKind::Arity,
                    format!("`{callee}` needs argument `{r}`"),
                    call,
                    &format!("missing `{r}`"),
                );
            }
        }
    }

    fn check_expr(&mut self, e: &Expr, scope: &[&str]) {
        match &e.kind {
            ExprKind::Name(n) => {
                if !scope.contains(&n.as_str()) && !WORDS.contains(&n.as_str()) {
                    let hint = suggest(n, scope.iter().copied().chain(WORDS.iter().copied()));
                    let msg = match hint {
                        Some(h) => format!("unknown name `{n}`; did you mean `{h}`?"),
                        None => format!("unknown name `{n}`"),
                    };
                    let e = self.err(
                        ErrorKind::UnknownName,
                        msg,
                        e.span,
                        "not an argument in scope",
                    );
                    let help = if scope.is_empty() {
                        "nothing is in scope here".to_string()
                    } else {
                        format!("in scope: {}", quoted(scope.iter().copied()))
                    };
                    *e = e.clone().help(help);
                }
            }
            ExprKind::Neg(x) => self.check_expr(x, scope),
            ExprKind::Bin(_, a, b) => {
                self.check_expr(a, scope);
                self.check_expr(b, scope);
            }
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Bool(_) => {}
        }
    }

    /// Reports every cycle of block calls once, with its call chain.
    fn check_recursion(&mut self) {
        let blocks = &self.m.file.blocks;
        let index: HashMap<&str, usize> = blocks
            .iter()
            .enumerate()
            .map(|(i, b)| (b.name.name.as_str(), i))
            .collect();
        // For each block, the blocks it calls with the span of the first call.
        let edges: Vec<Vec<(usize, Span)>> = blocks
            .iter()
            .map(|b| {
                let mut out = Vec::new();
                calls(&b.body, &mut |name, span| {
                    if let Some(&j) = index.get(name)
                        && !out.iter().any(|(k, _)| *k == j)
                    {
                        out.push((j, span));
                    }
                });
                out
            })
            .collect();
        // Iterative depth-first search: 0 = unvisited, 1 = on stack, 2 = done.
        let mut state = vec![0u8; blocks.len()];
        let mut reported: HashSet<Vec<usize>> = HashSet::new();
        for root in 0..blocks.len() {
            if state[root] != 0 {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
            state[root] = 1;
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                if let Some(&(child, span)) = edges[node].get(*next) {
                    *next += 1;
                    match state[child] {
                        0 => {
                            state[child] = 1;
                            stack.push((child, 0));
                        }
                        1 => {
                            let start = stack.iter().position(|(n, _)| *n == child).unwrap_or(0);
                            let cycle: Vec<usize> =
                                stack[start..].iter().map(|(n, _)| *n).collect();
                            let mut key = cycle.clone();
                            key.sort_unstable();
                            if reported.insert(key) {
                                let chain: Vec<&str> = cycle
                                    .iter()
                                    .chain([&child])
                                    .map(|&i| blocks[i].name.name.as_str())
                                    .collect();
                                let msg = if cycle.len() == 1 {
                                    format!("block `{}` calls itself", blocks[child].name.name)
                                } else {
                                    format!(
                                        "blocks call each other in a cycle: {}",
                                        chain.join(" -> ")
                                    )
                                };
                                let e = Error::new(ErrorKind::Recursion, msg, &self.m.src)
                                    .label(span, "recursive call")
                                    .help("blocks are expanded inline, so they cannot recurse; use `repeat` instead");
                                self.errors.push(e);
                            }
                        }
                        _ => {}
                    }
                } else {
                    state[node] = 2;
                    stack.pop();
                }
            }
        }
    }
}

/// Calls `f` with the name and span of every call in a body, nested bodies included.
fn calls(body: &[Stmt], f: &mut dyn FnMut(&str, Span)) {
    for s in body {
        match &s.kind {
            StmtKind::Call { name, .. } => f(&name.name, s.span),
            StmtKind::Repeat { body, .. }
            | StmtKind::Dense { body, .. }
            | StmtKind::Residual { body } => calls(body, f),
            StmtKind::Concat { branches } => {
                for (_, b) in branches {
                    calls(b, f);
                }
            }
            StmtKind::Input(_) => {}
        }
    }
}
