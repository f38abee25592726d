//! Syntax tree of a `.acnet` file, as written (nothing evaluated yet).

use crate::ir::Span;

/// A name with its location.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ident {
    pub(crate) name: String,
    pub(crate) span: Span,
}

/// Binary operators, in the usual precedence (`* / %` over `+ -`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ExprKind {
    Int(i64),
    Float(f64),
    Bool(bool),
    Name(String),
    Neg(Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Expr {
    pub(crate) kind: ExprKind,
    pub(crate) span: Span,
}

/// `name = expr` or a positional `expr`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Arg {
    pub(crate) name: Option<Ident>,
    pub(crate) value: Expr,
    pub(crate) span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StmtKind {
    /// `input 3x32x32` or `input(c, h, w)`: one or three dimensions.
    Input(Vec<Expr>),
    /// A layer or block call; `slot` is the `@name` of `act@name`.
    Call {
        name: Ident,
        slot: Option<Ident>,
        args: Vec<Arg>,
    },
    Repeat {
        count: Expr,
        body: Vec<Stmt>,
    },
    Residual {
        body: Vec<Stmt>,
    },
    Concat {
        branches: Vec<(Span, Vec<Stmt>)>,
    },
    Dense {
        count: Expr,
        body: Vec<Stmt>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stmt {
    pub(crate) kind: StmtKind,
    pub(crate) span: Span,
}

/// A parameter of a block or network, with its default.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Param {
    pub(crate) name: Ident,
    pub(crate) default: Option<Expr>,
}

/// `block` or `network` definition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Def {
    pub(crate) name: Ident,
    pub(crate) params: Vec<Param>,
    pub(crate) body: Vec<Stmt>,
    pub(crate) span: Span,
}

/// A whole file.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct File {
    /// File-level `input` declarations (only one is allowed; checked later).
    pub(crate) inputs: Vec<Stmt>,
    pub(crate) blocks: Vec<Def>,
    pub(crate) networks: Vec<Def>,
}

impl File {
    /// The block of this name.
    pub(crate) fn block(&self, name: &str) -> Option<&Def> {
        self.blocks.iter().find(|b| b.name.name == name)
    }
}
