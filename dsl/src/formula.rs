//! The activation formula language.
//!
//! An activation states its function as a one-line formula of `x` and its
//! parameter names, e.g. `max(a * x + c, b * x + d)`:
//!
//! - numbers (`1`, `0.5`, `1e-3`), `x`, parameter names;
//! - `+ - * /`, unary minus, parentheses, the usual precedence;
//! - comparisons `< <= > >= == !=`, allowed only as the first argument of
//!   `where(cond, a, b)`;
//! - calls `max(u, v)`, `min(u, v)`, `abs`, `exp`, `log`, `sigmoid`, `tanh`,
//!   `relu`.
//!
//! [`parse`] resolves names to parameter indices and checks that conditions
//! and values are used where each belongs, so an engine can lower the
//! resulting [`Expr`] without further checks. `max(u, v)` is defined to give
//! its whole gradient to `u` on ties (and `min` likewise): engines must not
//! lower it to a tie-splitting maximum (candle's and PyTorch's `maximum`
//! split ties evenly). AReLU, `max(a*x + c, b*x + d)`, starts at
//! a = b = 1, c = d = 0, where its two arguments tie for every input; a
//! maximum that splits ties would give a and b (and c and d) the same
//! gradient at every step, so they would stay equal and the function
//! linear forever. Sending the tie to `u`, as the authors' TensorFlow code
//! does, moves a and c first and breaks the symmetry.

use pest::Parser as _;
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;

/// The grammar lives in `formula.pest`; typing and name resolution are done
/// here so that their errors can name the offending identifier.
mod grammar {
    #[derive(pest_derive::Parser)]
    #[grammar = "formula.pest"]
    pub struct FormulaParser;
}
use grammar::{FormulaParser, Rule};

/// A value-producing expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// The activation's input.
    X,
    /// A parameter, by its index in the `params` slice given to [`parse`].
    Param(usize),
    /// A numeric literal.
    Num(f64),
    /// Unary minus.
    Neg(Box<Expr>),
    /// `lhs op rhs`.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// A one-argument function.
    Call(Func, Box<Expr>),
    /// `max(u, v)`: on ties the whole gradient goes to `u`.
    Max(Box<Expr>, Box<Expr>),
    /// `min(u, v)`: on ties the whole gradient goes to `u`.
    Min(Box<Expr>, Box<Expr>),
    /// `where(cond, a, b)`: `a` where `cond` holds, `b` elsewhere.
    Where(Box<Cond>, Box<Expr>, Box<Expr>),
}

/// An arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

/// A one-argument function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// `abs(u)`
    Abs,
    /// `exp(u)`
    Exp,
    /// `log(u)` (natural logarithm)
    Log,
    /// `sigmoid(u) = 1 / (1 + exp(-u))`
    Sigmoid,
    /// `tanh(u)`
    Tanh,
    /// `relu(u) = max(u, 0)`
    Relu,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl CmpOp {
    /// Applies the comparison to two numbers (for constant folding).
    pub fn holds(self, lhs: f64, rhs: f64) -> bool {
        match self {
            CmpOp::Lt => lhs < rhs,
            CmpOp::Le => lhs <= rhs,
            CmpOp::Gt => lhs > rhs,
            CmpOp::Ge => lhs >= rhs,
            CmpOp::Eq => lhs == rhs,
            CmpOp::Ne => lhs != rhs,
        }
    }
}

/// A condition: the first argument of `where`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cond {
    /// The comparison.
    pub op: CmpOp,
    /// Left operand.
    pub lhs: Expr,
    /// Right operand.
    pub rhs: Expr,
}

/// A formula that does not parse or does not type-check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at column {column}")]
pub struct FormulaError {
    /// 1-based column (in characters) where the problem starts.
    pub column: usize,
    /// What is wrong, without the position.
    pub message: String,
}

/// Names callable in formulas, for error messages.
const FUNCTIONS: &str = "max, min, abs, exp, log, sigmoid, tanh, relu, where";

/// Parses `src` with the given parameter names (`x` always means the input,
/// even if a parameter had that name).
pub fn parse(src: &str, params: &[&str]) -> Result<Expr, FormulaError> {
    let mut pairs = FormulaParser::parse(Rule::formula, src).map_err(|e| syntax_error(src, &e))?;
    let formula = pairs.next().ok_or_else(|| FormulaError {
        column: 1,
        message: "empty formula".into(),
    })?;
    let expr = formula.into_inner().next().ok_or_else(|| FormulaError {
        column: 1,
        message: "empty formula".into(),
    })?;
    let cx = Ctx { src, params };
    match cx.expr(expr)? {
        Typed::Value(e) => Ok(e),
        Typed::Cond(_, col) => Err(FormulaError {
            column: col,
            message: "a comparison is not a value; use it inside where(cond, a, b)".into(),
        }),
    }
}

/// 1-based character column of byte offset `pos` (formulas are one line, but
/// a newline restarts the count so multi-line input still points correctly).
fn column(src: &str, pos: usize) -> usize {
    let before = src.get(..pos).unwrap_or(src);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    before[line_start..].chars().count() + 1
}

fn rule_name(rule: &Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::EOI => "end of formula",
        Rule::expr | Rule::sum | Rule::product | Rule::unary | Rule::primary => "an expression",
        Rule::number => "a number",
        Rule::ident | Rule::call => "a name",
        Rule::neg => "`-`",
        Rule::cmp_op => "a comparison",
        Rule::add_op => "`+` or `-`",
        Rule::mul_op => "`*` or `/`",
        Rule::formula | Rule::WHITESPACE => return None,
    })
}

fn syntax_error(src: &str, e: &pest::error::Error<Rule>) -> FormulaError {
    let pos = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let found = src.get(pos..).and_then(|r| r.chars().next());
    let found = match found {
        Some(c) => format!("`{c}`"),
        None => "end of formula".to_owned(),
    };
    let message = match &e.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            if positives.contains(&Rule::EOI) && found != "end of formula" {
                format!("unexpected {found} after a complete expression (trailing input)")
            } else {
                let mut names: Vec<&str> = positives.iter().filter_map(rule_name).collect();
                names.dedup();
                if names.is_empty() {
                    format!("unexpected {found}")
                } else {
                    format!("expected {}, found {found}", names.join(" or "))
                }
            }
        }
        ErrorVariant::CustomError { message } => message.clone(),
    };
    FormulaError {
        column: column(src, pos),
        message,
    }
}

/// An expression before it is known to be used as a value or a condition.
enum Typed {
    Value(Expr),
    /// A comparison, and the column of its operator.
    Cond(Cond, usize),
}

struct Ctx<'a> {
    src: &'a str,
    params: &'a [&'a str],
}

impl Ctx<'_> {
    fn col(&self, pair: &Pair<'_, Rule>) -> usize {
        column(self.src, pair.as_span().start())
    }

    fn err(&self, pair: &Pair<'_, Rule>, message: String) -> FormulaError {
        FormulaError {
            column: self.col(pair),
            message,
        }
    }

    fn value(&self, pair: Pair<'_, Rule>) -> Result<Expr, FormulaError> {
        let col = self.col(&pair);
        match self.expr(pair)? {
            Typed::Value(e) => Ok(e),
            Typed::Cond(_, _) => Err(FormulaError {
                column: col,
                message: "a comparison is not a value; use it inside where(cond, a, b)".into(),
            }),
        }
    }

    fn expr(&self, pair: Pair<'_, Rule>) -> Result<Typed, FormulaError> {
        match pair.as_rule() {
            Rule::expr => {
                let mut inner = pair.into_inner();
                let first = inner.next().ok_or_else(|| internal("empty expr"))?;
                let lhs = self.value(first)?;
                match (inner.next(), inner.next()) {
                    (Some(op), Some(rhs)) => {
                        let col = self.col(&op);
                        let op = match op.as_str() {
                            "<" => CmpOp::Lt,
                            "<=" => CmpOp::Le,
                            ">" => CmpOp::Gt,
                            ">=" => CmpOp::Ge,
                            "==" => CmpOp::Eq,
                            _ => CmpOp::Ne,
                        };
                        let rhs = self.value(rhs)?;
                        Ok(Typed::Cond(Cond { op, lhs, rhs }, col))
                    }
                    _ => Ok(Typed::Value(lhs)),
                }
            }
            Rule::sum | Rule::product => {
                let mut inner = pair.into_inner();
                let first = inner.next().ok_or_else(|| internal("empty term"))?;
                let mut acc = self.value(first)?;
                while let (Some(op), Some(rhs)) = (inner.next(), inner.next()) {
                    let op = match op.as_str() {
                        "+" => BinOp::Add,
                        "-" => BinOp::Sub,
                        "*" => BinOp::Mul,
                        _ => BinOp::Div,
                    };
                    acc = Expr::Binary(op, Box::new(acc), Box::new(self.value(rhs)?));
                }
                Ok(Typed::Value(acc))
            }
            Rule::unary => {
                let mut negs = 0usize;
                let mut operand = None;
                for p in pair.into_inner() {
                    if p.as_rule() == Rule::neg {
                        negs += 1;
                    } else {
                        operand = Some(p);
                    }
                }
                let operand = operand.ok_or_else(|| internal("unary without operand"))?;
                let mut e = self.value(operand)?;
                for _ in 0..negs {
                    e = Expr::Neg(Box::new(e));
                }
                Ok(Typed::Value(e))
            }
            Rule::number => {
                let v: f64 = pair
                    .as_str()
                    .parse()
                    .map_err(|_| self.err(&pair, format!("invalid number `{}`", pair.as_str())))?;
                Ok(Typed::Value(Expr::Num(v)))
            }
            Rule::ident => {
                let name = pair.as_str();
                if name == "x" {
                    return Ok(Typed::Value(Expr::X));
                }
                match self.params.iter().position(|p| *p == name) {
                    Some(i) => Ok(Typed::Value(Expr::Param(i))),
                    None => {
                        let known = if self.params.is_empty() {
                            "the activation has no parameters (only `x`)".to_owned()
                        } else {
                            format!("parameters are {}", self.params.join(", "))
                        };
                        Err(FormulaError {
                            column: self.col(&pair),
                            message: format!("unknown name `{name}`; {known}"),
                        })
                    }
                }
            }
            Rule::call => self.call(pair).map(Typed::Value),
            _ => Err(internal("unexpected rule")),
        }
    }

    fn call(&self, pair: Pair<'_, Rule>) -> Result<Expr, FormulaError> {
        let mut inner = pair.into_inner();
        let name_pair = inner.next().ok_or_else(|| internal("call without name"))?;
        let name = name_pair.as_str();
        let args: Vec<Pair<'_, Rule>> = inner.collect();
        let arity = match name {
            "max" | "min" => 2,
            "where" => 3,
            "abs" | "exp" | "log" | "sigmoid" | "tanh" | "relu" => 1,
            _ => {
                return Err(self.err(
                    &name_pair,
                    format!("unknown function `{name}`; functions are {FUNCTIONS}"),
                ));
            }
        };
        if args.len() != arity {
            let plural = if arity == 1 { "" } else { "s" };
            return Err(self.err(
                &name_pair,
                format!(
                    "`{name}` takes {arity} argument{plural}, got {}",
                    args.len()
                ),
            ));
        }
        let mut args = args.into_iter();
        let mut next = || args.next().ok_or_else(|| internal("argument count"));
        if name == "where" {
            let cond_pair = next()?;
            let cond = match self.expr(cond_pair.clone())? {
                Typed::Cond(c, _) => c,
                Typed::Value(_) => {
                    return Err(self.err(
                        &cond_pair,
                        "the first argument of `where` must be a comparison such as `x >= 0`, \
                         not a value"
                            .into(),
                    ));
                }
            };
            let a = self.value(next()?)?;
            let b = self.value(next()?)?;
            return Ok(Expr::Where(Box::new(cond), Box::new(a), Box::new(b)));
        }
        let u = Box::new(self.value(next()?)?);
        Ok(match name {
            "max" => Expr::Max(u, Box::new(self.value(next()?)?)),
            "min" => Expr::Min(u, Box::new(self.value(next()?)?)),
            "abs" => Expr::Call(Func::Abs, u),
            "exp" => Expr::Call(Func::Exp, u),
            "log" => Expr::Call(Func::Log, u),
            "sigmoid" => Expr::Call(Func::Sigmoid, u),
            "tanh" => Expr::Call(Func::Tanh, u),
            _ => Expr::Call(Func::Relu, u),
        })
    }
}

/// A grammar/walker mismatch: cannot happen for any input, reported rather
/// than panicking.
fn internal(what: &str) -> FormulaError {
    FormulaError {
        column: 1,
        message: format!("internal formula parser error: {what}"),
    }
}

impl Expr {
    /// Evaluates the formula on plain numbers (reference semantics, used by
    /// tests and kernel checks).
    pub fn eval(&self, x: f64, params: &[f64]) -> f64 {
        match self {
            Expr::X => x,
            Expr::Param(i) => params.get(*i).copied().unwrap_or(f64::NAN),
            Expr::Num(v) => *v,
            Expr::Neg(e) => -e.eval(x, params),
            Expr::Binary(op, l, r) => {
                let (l, r) = (l.eval(x, params), r.eval(x, params));
                match op {
                    BinOp::Add => l + r,
                    BinOp::Sub => l - r,
                    BinOp::Mul => l * r,
                    BinOp::Div => l / r,
                }
            }
            Expr::Call(f, u) => {
                let u = u.eval(x, params);
                match f {
                    Func::Abs => u.abs(),
                    Func::Exp => u.exp(),
                    Func::Log => u.ln(),
                    Func::Sigmoid => 1.0 / (1.0 + (-u).exp()),
                    Func::Tanh => u.tanh(),
                    Func::Relu => u.max(0.0),
                }
            }
            Expr::Max(u, v) => {
                let (u, v) = (u.eval(x, params), v.eval(x, params));
                if u >= v { u } else { v }
            }
            Expr::Min(u, v) => {
                let (u, v) = (u.eval(x, params), v.eval(x, params));
                if u <= v { u } else { v }
            }
            Expr::Where(c, a, b) => {
                if c.op.holds(c.lhs.eval(x, params), c.rhs.eval(x, params)) {
                    a.eval(x, params)
                } else {
                    b.eval(x, params)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABCD: &[&str] = &["a", "b", "c", "d"];

    fn p(src: &str) -> Expr {
        match parse(src, ABCD) {
            Ok(e) => e,
            Err(e) => panic!("{src}: {e}"),
        }
    }

    fn err(src: &str) -> FormulaError {
        match parse(src, ABCD) {
            Ok(e) => panic!("{src} parsed as {e:?}"),
            Err(e) => e,
        }
    }

    fn b(e: Expr) -> Box<Expr> {
        Box::new(e)
    }

    #[test]
    fn precedence_and_associativity() {
        let e = p("a * x + c");
        assert_eq!(
            e,
            Expr::Binary(
                BinOp::Add,
                b(Expr::Binary(BinOp::Mul, b(Expr::Param(0)), b(Expr::X))),
                b(Expr::Param(2))
            )
        );
        // Left associative: (8 - 2) - 1 = 5, 8 / 2 / 2 = 2.
        assert_eq!(p("8 - 2 - 1").eval(0.0, &[]), 5.0);
        assert_eq!(p("8 / 2 / 2").eval(0.0, &[]), 2.0);
        assert_eq!(p("2 + 3 * 4").eval(0.0, &[]), 14.0);
        assert_eq!(p("(2 + 3) * 4").eval(0.0, &[]), 20.0);
        assert_eq!(p("-x * 2").eval(3.0, &[]), -6.0);
        assert_eq!(p("--x").eval(3.0, &[]), 3.0);
        assert_eq!(p("2 - -x").eval(3.0, &[]), 5.0);
    }

    #[test]
    fn numbers() {
        for (s, v) in [
            ("1", 1.0),
            ("0.5", 0.5),
            ("1e-3", 1e-3),
            (".25", 0.25),
            ("2.", 2.0),
            ("3E2", 300.0),
        ] {
            assert_eq!(p(s), Expr::Num(v), "{s}");
        }
    }

    #[test]
    fn calls_and_where() {
        let params = [1.0, 1.0, 0.0, 0.0];
        assert_eq!(p("max(a * x + c, b * x + d)").eval(-2.0, &params), -2.0);
        assert_eq!(p("min(x, 0)").eval(3.0, &params), 0.0);
        assert_eq!(p("relu(x)").eval(-1.0, &params), 0.0);
        assert_eq!(p("abs(x)").eval(-1.5, &params), 1.5);
        assert!((p("sigmoid(x)").eval(0.0, &params) - 0.5).abs() < 1e-15);
        assert!((p("tanh(log(exp(x)))").eval(0.3, &params) - 0.3f64.tanh()).abs() < 1e-15);
        let pelu = p("where(x >= 0, (a / b) * x, a * (exp(min(x, 0) / b) - 1))");
        assert_eq!(pelu.eval(2.0, &params), 2.0);
        assert!((pelu.eval(-1.0, &params) - ((-1f64).exp() - 1.0)).abs() < 1e-15);
        assert_eq!(p("where(x < 0, 1, 0)").eval(0.0, &[]), 0.0);
        assert_eq!(p("where(x <= 0, 1, 0)").eval(0.0, &[]), 1.0);
        assert_eq!(p("where(x > 0, 1, 0)").eval(1.0, &[]), 1.0);
        assert_eq!(p("where(x == 2, 1, 0)").eval(2.0, &[]), 1.0);
        assert_eq!(p("where(x != 2, 1, 0)").eval(2.0, &[]), 0.0);
    }

    #[test]
    fn unknown_name_lists_parameters() {
        let e = err("a * x + q");
        assert_eq!(e.column, 9);
        assert_eq!(e.message, "unknown name `q`; parameters are a, b, c, d");
        assert_eq!(
            e.to_string(),
            "unknown name `q`; parameters are a, b, c, d at column 9"
        );
        let e = parse("y", &[]).err().map(|e| e.message);
        assert_eq!(
            e.as_deref(),
            Some("unknown name `y`; the activation has no parameters (only `x`)")
        );
    }

    #[test]
    fn unknown_function_and_arity() {
        let e = err("x + foo(x)");
        assert_eq!(e.column, 5);
        assert!(
            e.message.starts_with("unknown function `foo`"),
            "{}",
            e.message
        );
        let e = err("max(x)");
        assert_eq!(
            (e.column, e.message.as_str()),
            (1, "`max` takes 2 arguments, got 1")
        );
        let e = err("1 + exp(x, a)");
        assert_eq!(
            (e.column, e.message.as_str()),
            (5, "`exp` takes 1 argument, got 2")
        );
        let e = err("where(x > 0, x)");
        assert_eq!(e.message, "`where` takes 3 arguments, got 2");
    }

    #[test]
    fn conditions_and_values_stay_apart() {
        let e = err("x > 0");
        assert_eq!(e.column, 3);
        assert!(e.message.contains("comparison is not a value"));
        let e = err("1 + (x > 0)");
        assert_eq!(e.column, 6);
        assert!(e.message.contains("comparison is not a value"));
        let e = err("where(x, 1, 0)");
        assert_eq!(e.column, 7);
        assert!(e.message.contains("must be a comparison"));
        let e = err("max(x > 0, 1)");
        assert!(e.message.contains("comparison is not a value"));
    }

    #[test]
    fn syntax_errors_have_columns() {
        let e = err("a * x +");
        assert_eq!(e.column, 8);
        assert!(e.message.starts_with("expected"), "{}", e.message);
        let e = err("x x");
        assert_eq!(e.column, 3);
        assert!(e.message.contains("trailing input"), "{}", e.message);
        let e = err("x < 1 < 2");
        assert_eq!(e.column, 7);
        assert!(e.message.contains("trailing input"), "{}", e.message);
        let e = err("(x + 1");
        assert_eq!(e.column, 7);
        let e = err("");
        assert_eq!(e.column, 1);
        let e = err("x + é");
        assert_eq!(e.column, 5);
    }

    #[test]
    fn shipped_formulas_parse() {
        for (f, ps) in [
            ("max(a * x + c, b * x + d)", ABCD),
            ("b * sigmoid(a * x + c) + d", ABCD),
            ("b * tanh(a * x + c) + d", ABCD),
            ("relu(x) + p * min(x, 0)", &["p"][..]),
            ("max(x, s * x)", &["s"][..]),
            ("x * sigmoid(beta * x)", &["beta"][..]),
            ("relu(x) + bias", &["bias"][..]),
        ] {
            assert!(parse(f, ps).is_ok(), "{f}");
        }
    }

    proptest::proptest! {
        /// Any input gives a formula or an error with a column inside the
        /// input (plus one for "end of formula"), never a panic.
        #[test]
        fn never_panics(src in "[-+*/()<>=!,. 0-9a-zA-Z_eé]{0,40}") {
            if let Err(e) = parse(&src, ABCD) {
                proptest::prop_assert!(e.column >= 1 && e.column <= src.chars().count() + 1);
            }
        }

        /// Formulas assembled from valid pieces always parse.
        #[test]
        fn valid_formulas_parse(
            parts in proptest::collection::vec(
                proptest::sample::select(vec!["x", "a", "1.5", "exp(x)", "max(x, b)", "(c - d)", "where(x <= 0, a, x)"]),
                1..6,
            ),
            ops in proptest::collection::vec(proptest::sample::select(vec![" + ", " - ", " * ", " / "]), 5),
        ) {
            let mut src = parts[0].to_owned();
            for (p, op) in parts[1..].iter().zip(&ops) {
                src.push_str(op);
                src.push_str(p);
            }
            proptest::prop_assert!(parse(&src, ABCD).is_ok(), "{}", src);
        }
    }
}
