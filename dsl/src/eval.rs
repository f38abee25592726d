//! Expression evaluation: the values of names in scope, arithmetic on
//! [`Value`]s, and the located errors of both.
//!
//! [`Ctx`] makes every error of elaboration: it knows the source and the
//! block calls that led to the statement at hand, and labels each of them.

use crate::ast::{BinOp, Expr, ExprKind};
use crate::error::{Error, ErrorKind, Source};
use crate::ir::{Span, Value};
use crate::limits::MAX_DIM;

/// The values of the parameters in scope, latest last (a later entry of
/// the same name wins).
pub(crate) type Env = Vec<(String, Value)>;

/// Bare words that are values, not names (`pad=same`).
pub(crate) const WORDS: &[&str] = &["same", "valid"];

/// One block call on the way to the statement being elaborated.
pub(crate) struct Frame {
    /// The called block's name.
    pub(crate) block: String,
    /// The call statement.
    pub(crate) call: Span,
}

/// Where errors point: the source, and the block calls leading to the
/// current statement (innermost last).
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    src: &'a Source,
    frames: &'a [Frame],
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(src: &'a Source, frames: &'a [Frame]) -> Self {
        Ctx { src, frames }
    }

    pub(crate) fn src(&self) -> &'a Source {
        self.src
    }

    /// An error at `span`, labelled also at every block call leading to it.
    pub(crate) fn err(
        &self,
        kind: ErrorKind,
        message: impl Into<String>,
        span: Span,
        label: impl Into<String>,
    ) -> Error {
        self.in_frames(Error::new(kind, message, self.src).label(span, label))
    }

    /// Adds a label at every block call leading to the current statement.
    pub(crate) fn in_frames(&self, mut e: Error) -> Error {
        for f in self.frames.iter().rev().take(8) {
            e = e.label(f.call, format!("in this call of `{}`", f.block));
        }
        e
    }

    /// Evaluates an expression. Integers stay integers under `+ - * / %`
    /// (`/` and `%` round toward minus infinity, as Python's `//` and `%`);
    /// any float operand makes the result a float.
    pub(crate) fn eval(&self, e: &Expr, env: &Env) -> Result<Value, Error> {
        match &e.kind {
            ExprKind::Int(i) => Ok(Value::Int(*i)),
            ExprKind::Float(x) => Ok(Value::Float(*x)),
            ExprKind::Bool(b) => Ok(Value::Bool(*b)),
            ExprKind::Name(n) => {
                if let Some((_, v)) = env.iter().rev().find(|(k, _)| k == n) {
                    Ok(v.clone())
                } else if WORDS.contains(&n.as_str()) {
                    Ok(Value::Word(n.clone()))
                } else {
                    Err(self.err(
                        ErrorKind::UnknownName,
                        format!("unknown name `{n}`"),
                        e.span,
                        "not an argument in scope",
                    ))
                }
            }
            ExprKind::Neg(inner) => match self.eval(inner, env)? {
                Value::Int(i) => i
                    .checked_neg()
                    .map(Value::Int)
                    .ok_or_else(|| self.overflow(e.span)),
                Value::Float(x) => Ok(Value::Float(-x)),
                v => Err(self.err(
                    ErrorKind::Type,
                    format!("cannot negate {}", describe(&v)),
                    e.span,
                    "expected a number",
                )),
            },
            ExprKind::Bin(op, l, r) => {
                let a = self.eval(l, env)?;
                let b = self.eval(r, env)?;
                self.binary(*op, &a, &b, e.span, r.span)
            }
        }
    }

    fn overflow(&self, span: Span) -> Error {
        self.err(ErrorKind::Overflow, "integer overflow", span, "overflows")
    }

    fn binary(
        &self,
        op: BinOp,
        a: &Value,
        b: &Value,
        span: Span,
        rspan: Span,
    ) -> Result<Value, Error> {
        let div_zero = || {
            self.err(
                ErrorKind::DivisionByZero,
                "division by zero",
                rspan,
                "is zero",
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
                        let q = x.checked_div(y).ok_or_else(|| self.overflow(span))?;
                        let r = x.checked_rem(y).ok_or_else(|| self.overflow(span))?;
                        // Round toward minus infinity, as Python's `//` and `%` do.
                        let (q, r) = if r != 0 && ((r < 0) != (y < 0)) {
                            (q - 1, r + y)
                        } else {
                            (q, r)
                        };
                        Some(if op == BinOp::Div { q } else { r })
                    }
                };
                v.map(Value::Int).ok_or_else(|| self.overflow(span))
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
                    Err(self.err(ErrorKind::Overflow, "number overflow", span, "not finite"))
                }
            }
            _ => {
                let bad = if matches!(a, Value::Int(_) | Value::Float(_)) {
                    b
                } else {
                    a
                };
                Err(self.err(
                    ErrorKind::Type,
                    format!("arithmetic needs numbers, found {}", describe(bad)),
                    span,
                    "expected numbers",
                ))
            }
        }
    }

    /// A non-negative integer at least `min` and at most [`MAX_DIM`]: a
    /// size, a count or a padding. `what` names it in messages.
    pub(crate) fn dim(
        &self,
        v: &Value,
        span: Span,
        what: &str,
        min: usize,
    ) -> Result<usize, Error> {
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

fn as_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(x) => *x,
        _ => 0.0,
    }
}
