//! Text to syntax tree: the pest parser of `acnet.pest`, readable syntax
//! errors, and the guards that keep hostile input from exhausting the stack.

use std::sync::LazyLock;

use pest::Parser;
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};

use crate::ast::{Arg, BinOp, Def, Expr, ExprKind, File, Ident, Param, Stmt, StmtKind};
use crate::error::{Error, ErrorKind, Source};
use crate::ir::Span;

/// Largest model file accepted (bytes).
pub const MAX_SOURCE_BYTES: usize = 1 << 20;
/// Deepest nesting of `(` and `{` accepted; the syntax tree is built and
/// walked recursively, so nesting must be bounded before pest sees the text.
pub const MAX_NESTING: usize = 64;
/// Most operands in one expression (evaluation recurses over its tree).
pub const MAX_EXPR_OPERANDS: usize = 256;

#[derive(pest_derive::Parser)]
#[grammar = "acnet.pest"]
struct AcnetParser;

static PRATT: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
        .op(Op::infix(Rule::mul, Assoc::Left)
            | Op::infix(Rule::div, Assoc::Left)
            | Op::infix(Rule::rem, Assoc::Left))
});

/// Parses a whole file into its syntax tree, or returns the syntax errors.
pub(crate) fn parse_file(src: &Source) -> Result<File, Vec<Error>> {
    let text: &str = &src.text;
    if text.len() > MAX_SOURCE_BYTES {
        return Err(vec![
            Error::new(
                ErrorKind::Limit,
                format!(
                    "model file is {} bytes; at most {MAX_SOURCE_BYTES} are accepted",
                    text.len()
                ),
                src,
            )
            .label(Span { start: 0, end: 0 }, "file starts here"),
        ]);
    }
    check_nesting(src)?;
    // Error detail makes pest record the literal tokens (`}`, `=`, ...) it
    // expected, which the rule list alone does not name.
    pest::set_error_detail(true);
    let mut pairs =
        AcnetParser::parse(Rule::file, text).map_err(|e| vec![syntax_error(src, &e)])?;
    let file = pairs.next().map(|p| p.into_inner());
    let mut builder = Builder {
        src,
        errors: Vec::new(),
    };
    let mut out = File::default();
    for item in file.into_iter().flatten() {
        match item.as_rule() {
            Rule::input_decl => out.inputs.push(builder.input(item)),
            Rule::block_def => out.blocks.push(builder.def(item)),
            Rule::network_def => out.networks.push(builder.def(item)),
            _ => {}
        }
    }
    if builder.errors.is_empty() {
        Ok(out)
    } else {
        Err(builder.errors)
    }
}

/// Rejects nesting deeper than [`MAX_NESTING`] before pest parses (pest and
/// the tree builder both recurse on nesting).
fn check_nesting(src: &Source) -> Result<(), Vec<Error>> {
    let bytes = src.text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(vec![
                        Error::new(
                            ErrorKind::Limit,
                            format!("nesting deeper than {MAX_NESTING} levels"),
                            src,
                        )
                        .label(
                            Span {
                                start: i,
                                end: i + 1,
                            },
                            "too deep",
                        ),
                    ]);
                }
            }
            b')' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

fn describe(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::EOI => "end of file",
        Rule::input_decl | Rule::kw_input => "`input`",
        Rule::block_def | Rule::kw_block => "`block`",
        Rule::network_def | Rule::kw_network => "`network`",
        Rule::params => "parameter list",
        Rule::param => "parameter",
        Rule::body => "`{`",
        Rule::repeat_stmt | Rule::kw_repeat => "`repeat`",
        Rule::residual_stmt | Rule::kw_residual => "`residual`",
        Rule::concat_stmt | Rule::kw_concat => "`concat`",
        Rule::branch | Rule::kw_branch => "`branch`",
        Rule::dense_stmt | Rule::kw_dense => "`dense`",
        Rule::call => "layer or block name",
        Rule::ident => "name",
        Rule::slot => "`@slot`",
        Rule::args => "argument list",
        Rule::arg | Rule::kwarg => "argument",
        Rule::expr | Rule::operand | Rule::neg => "expression",
        Rule::float | Rule::uint => "number",
        Rule::boolean => "`true` or `false`",
        Rule::add | Rule::sub | Rule::mul | Rule::div | Rule::rem => "operator",
        Rule::dims_x => "dimensions such as `3x32x32`",
        Rule::dims_paren => "`(`",
        _ => return None,
    })
}

fn syntax_error(src: &Source, e: &pest::error::Error<Rule>) -> Error {
    let pos = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let mut expected: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !expected.contains(&s) {
            expected.push(s);
        }
    };
    if let ErrorVariant::ParsingError { positives, .. } = &e.variant {
        for r in positives {
            if let Some(d) = describe(*r) {
                push(d.to_string());
            }
        }
    }
    if let Some(attempts) = e.parse_attempts() {
        // `ParsingToken` is not exported by pest; its `Display` is the token
        // text. Keywords, closers and separators are worth naming; other
        // tokens (whitespace, comment starters, letters of names) are noise.
        for t in attempts.expected_tokens() {
            let token = t.to_string();
            let keyword = [
                "input", "block", "network", "repeat", "residual", "concat", "branch", "dense",
            ];
            if [")", "}", "{", ",", "="].contains(&token.as_str())
                || keyword.contains(&token.as_str())
            {
                push(format!("`{token}`"));
            }
        }
    }
    let text: &str = &src.text;
    let found = match text.get(pos..).and_then(|rest| rest.chars().next()) {
        None => "end of file".to_string(),
        Some(c) => {
            let rest = &text[pos..];
            let word: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if word.is_empty() {
                format!("`{}`", c.escape_debug())
            } else {
                format!("`{word}`")
            }
        }
    };
    let message = if expected.is_empty() {
        format!("syntax error: unexpected {found}")
    } else {
        format!(
            "syntax error: expected {}, found {found}",
            join_or(&expected)
        )
    };
    let pos = pos.min(text.len());
    let span = match text[pos..].chars().next() {
        Some(c) => Span {
            start: pos,
            end: pos + c.len_utf8(),
        },
        // At the end of the file, point at the last thing written instead
        // of an empty span after it.
        None => {
            let last = text.trim_end().char_indices().last();
            last.map_or(
                Span {
                    start: pos,
                    end: pos,
                },
                |(i, c)| Span {
                    start: i,
                    end: i + c.len_utf8(),
                },
            )
        }
    };
    let label = if span.start < pos {
        "file ends after this"
    } else {
        "unexpected here"
    };
    Error::new(ErrorKind::Syntax, message, src).label(span, label)
}

/// `a`, `a or b`, `a, b or c`.
pub(crate) fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn span_of(pair: &Pair<'_, Rule>) -> Span {
    let s = pair.as_span();
    Span {
        start: s.start(),
        end: s.end(),
    }
}

struct Builder<'s> {
    src: &'s Source,
    errors: Vec<Error>,
}

impl Builder<'_> {
    fn ident(&self, pair: Pair<'_, Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_string(),
            span: span_of(&pair),
        }
    }

    fn def(&mut self, pair: Pair<'_, Rule>) -> Def {
        let span = span_of(&pair);
        let mut name = Ident {
            name: String::new(),
            span,
        };
        let mut params = Vec::new();
        let mut body = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::ident => name = self.ident(p),
                Rule::params => {
                    for param in p.into_inner() {
                        let mut inner = param.into_inner();
                        if let Some(n) = inner.next() {
                            let default = inner.next().map(|e| self.expr(e));
                            params.push(Param {
                                name: self.ident(n),
                                default,
                            });
                        }
                    }
                }
                Rule::body => body = self.body(p),
                _ => {}
            }
        }
        Def {
            name,
            params,
            body,
            span,
        }
    }

    fn body(&mut self, pair: Pair<'_, Rule>) -> Vec<Stmt> {
        pair.into_inner().map(|s| self.stmt(s)).collect()
    }

    fn input(&mut self, pair: Pair<'_, Rule>) -> Stmt {
        let span = span_of(&pair);
        let mut dims = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::dims_x => {
                    for d in p.into_inner() {
                        dims.push(self.int_literal(d));
                    }
                }
                Rule::dims_paren => {
                    for e in p.into_inner() {
                        dims.push(self.expr(e));
                    }
                }
                _ => {}
            }
        }
        Stmt {
            kind: StmtKind::Input(dims),
            span,
        }
    }

    fn stmt(&mut self, pair: Pair<'_, Rule>) -> Stmt {
        let span = span_of(&pair);
        let rule = pair.as_rule();
        let mut inner = pair.clone().into_inner().filter(|p| {
            !matches!(
                p.as_rule(),
                Rule::kw_repeat
                    | Rule::kw_residual
                    | Rule::kw_concat
                    | Rule::kw_dense
                    | Rule::kw_branch
            )
        });
        let kind = match rule {
            Rule::input_decl => return self.input(pair),
            Rule::repeat_stmt | Rule::dense_stmt => {
                let count = match inner.next() {
                    Some(e) => self.expr(e),
                    None => Expr {
                        kind: ExprKind::Int(0),
                        span,
                    },
                };
                let body = inner.next().map(|b| self.body(b)).unwrap_or_default();
                if rule == Rule::repeat_stmt {
                    StmtKind::Repeat { count, body }
                } else {
                    StmtKind::Dense { count, body }
                }
            }
            Rule::residual_stmt => StmtKind::Residual {
                body: inner.next().map(|b| self.body(b)).unwrap_or_default(),
            },
            Rule::concat_stmt => {
                let mut branches = Vec::new();
                for br in inner {
                    let bspan = span_of(&br);
                    let body = br
                        .into_inner()
                        .find(|p| p.as_rule() == Rule::body)
                        .map(|b| self.body(b))
                        .unwrap_or_default();
                    branches.push((bspan, body));
                }
                StmtKind::Concat { branches }
            }
            _ => {
                let mut name = Ident {
                    name: String::new(),
                    span,
                };
                let mut slot = None;
                let mut args = Vec::new();
                for p in inner {
                    match p.as_rule() {
                        Rule::ident => name = self.ident(p),
                        Rule::slot => slot = p.into_inner().next().map(|i| self.ident(i)),
                        Rule::args => {
                            for a in p.into_inner() {
                                args.push(self.arg(a));
                            }
                        }
                        _ => {}
                    }
                }
                StmtKind::Call { name, slot, args }
            }
        };
        Stmt { kind, span }
    }

    fn arg(&mut self, pair: Pair<'_, Rule>) -> Arg {
        let span = span_of(&pair);
        let Some(inner) = pair.into_inner().next() else {
            return Arg {
                name: None,
                value: Expr {
                    kind: ExprKind::Int(0),
                    span,
                },
                span,
            };
        };
        if inner.as_rule() == Rule::kwarg {
            let mut kv = inner.into_inner();
            let name = kv.next().map(|n| self.ident(n));
            let value = match kv.next() {
                Some(e) => self.expr(e),
                None => Expr {
                    kind: ExprKind::Int(0),
                    span,
                },
            };
            Arg { name, value, span }
        } else {
            Arg {
                name: None,
                value: self.expr(inner),
                span,
            }
        }
    }

    fn int_literal(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let span = span_of(&pair);
        let kind = match pair.as_str().parse::<i64>() {
            Ok(v) => ExprKind::Int(v),
            Err(_) => {
                self.errors.push(
                    Error::new(
                        ErrorKind::Overflow,
                        format!("integer `{}` is too large", pair.as_str()),
                        self.src,
                    )
                    .label(span, "larger than 9223372036854775807"),
                );
                ExprKind::Int(0)
            }
        };
        Expr { kind, span }
    }

    fn expr(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let span = span_of(&pair);
        let operands = pair
            .clone()
            .into_inner()
            .filter(|p| p.as_rule() == Rule::operand)
            .count();
        if operands > MAX_EXPR_OPERANDS {
            self.errors.push(
                Error::new(
                    ErrorKind::Limit,
                    format!("expression has {operands} operands; at most {MAX_EXPR_OPERANDS} are allowed"),
                    self.src,
                )
                .label(span, "too long"),
            );
            return Expr {
                kind: ExprKind::Int(0),
                span,
            };
        }
        // The Pratt parser's closures cannot borrow `self` mutably, so errors
        // found inside are collected in a local list and moved over afterwards.
        let mut errors = Vec::new();
        let src = self.src;
        let e = PRATT
            .map_primary(|operand| build_operand(src, operand, &mut errors))
            .map_infix(|lhs, op, rhs| {
                let bin = match op.as_rule() {
                    Rule::add => BinOp::Add,
                    Rule::sub => BinOp::Sub,
                    Rule::mul => BinOp::Mul,
                    Rule::div => BinOp::Div,
                    _ => BinOp::Rem,
                };
                let span = Span {
                    start: lhs.span.start,
                    end: rhs.span.end,
                };
                Expr {
                    kind: ExprKind::Bin(bin, Box::new(lhs), Box::new(rhs)),
                    span,
                }
            })
            .parse(pair.into_inner());
        self.errors.append(&mut errors);
        e
    }
}

fn build_operand(src: &Source, operand: Pair<'_, Rule>, errors: &mut Vec<Error>) -> Expr {
    let span = span_of(&operand);
    let mut negate = false;
    let mut result = Expr {
        kind: ExprKind::Int(0),
        span,
    };
    for p in operand.into_inner() {
        let pspan = span_of(&p);
        let kind = match p.as_rule() {
            Rule::neg => {
                negate = true;
                continue;
            }
            Rule::uint => match p.as_str().parse::<i64>() {
                Ok(v) => ExprKind::Int(v),
                Err(_) => {
                    errors.push(
                        Error::new(
                            ErrorKind::Overflow,
                            format!("integer `{}` is too large", p.as_str()),
                            src,
                        )
                        .label(pspan, "larger than 9223372036854775807"),
                    );
                    ExprKind::Int(0)
                }
            },
            Rule::float => match p.as_str().parse::<f64>() {
                Ok(v) if v.is_finite() => ExprKind::Float(v),
                _ => {
                    errors.push(
                        Error::new(
                            ErrorKind::Overflow,
                            format!("number `{}` is too large", p.as_str()),
                            src,
                        )
                        .label(pspan, "not a finite number"),
                    );
                    ExprKind::Float(0.0)
                }
            },
            Rule::boolean => ExprKind::Bool(p.as_str() == "true"),
            Rule::ident => ExprKind::Name(p.as_str().to_string()),
            Rule::expr => {
                // A parenthesised sub-expression: recurse through a builder
                // of its own (nesting is bounded by `check_nesting`).
                let mut b = Builder {
                    src,
                    errors: Vec::new(),
                };
                let inner = b.expr(p);
                errors.append(&mut b.errors);
                inner.kind
            }
            _ => continue,
        };
        result = Expr { kind, span: pspan };
    }
    if negate {
        Expr {
            kind: ExprKind::Neg(Box::new(result)),
            span,
        }
    } else {
        result
    }
}
