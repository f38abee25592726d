//! The languages of acbench.
//!
//! - `.acnet` model files: parsed with a pest grammar (`acnet.pest`),
//!   checked, elaborated (blocks expanded, arguments evaluated) and
//!   shape-checked into the [`ir`] before any tensor exists. Errors are miette
//!   diagnostics with `file:line:col` and a caret.
//! - activation formulas ([`formula`]): the small expression language in
//!   which an activation states its function of `x` and its parameters.
//!
//! # The `.acnet` language
//!
//! ```text
//! # comments start with `#` or `//`
//! block cba(c, k=3, s=1) { conv(c, k, stride=s, pad=same) bn act }
//! block basic(c, s=1) { residual { cba(c, s=s) conv(c, 3, pad=same) bn } act }
//! network small(classes=10, channels=3, size=32) {
//!   input(channels, size, size)
//!   cba(64) repeat 2 { basic(64) } basic(128, s=2)
//!   gap linear(classes)
//! }
//! ```
//!
//! - **Definitions.** `block NAME(p1, p2=default, ...) { ... }` and
//!   `network NAME(p=default, ...) { ... }`; defaults may use earlier
//!   parameters (`block b(c, mid=c/4)`). A file may hold several networks:
//!   [`Module::elaborate`] picks one by name, or the last one.
//! - **Input.** `input 3x32x32`, `input 784` or `input(channels, size, size)`,
//!   either at the top of the file (shared by all networks, evaluated with the
//!   network's arguments) or as the first statement of a network (which wins).
//! - **Statements.** Layer and block calls with positional and keyword
//!   arguments (`conv(64, 3, stride=2, pad=same)`), bare calls (`bn act gap`),
//!   `act@slot`, `repeat N { }`, `residual { }`, `concat { branch { } ... }`
//!   and `dense N { }`.
//! - **Expressions.** Integers, floats (`0.5`, `1e-3`), `true`/`false`, the
//!   words `same` and `valid`, names of the enclosing block's or network's
//!   parameters, `+ - * / %`, one unary minus per operand, parentheses. Two
//!   integers give an integer: `/` and `%` round toward minus infinity (as
//!   Python's `//` and `%`, so `7/2 == 3`); a float operand makes a float.
//!   Overflow and division by zero are errors.
//!
//! # Layers
//!
//! | call | shapes | notes |
//! |---|---|---|
//! | `conv(c, k=3, stride=1, pad=0, groups=1, bias=true, dilation=1)` | CxHxW → cxH'xW' | `pad`: integer, `same` (TensorFlow SAME: output `ceil(in/stride)`, total padding `max((out-1)*stride + (k-1)*dilation + 1 - in, 0)`, the odd one at the bottom/right) or `valid` (0) |
//! | `bn(eps=1e-3, momentum=Preset)` | any | over channels (or features of a vector); `momentum` left out is the caller's [`CompileOptions::bn_momentum`] (TensorFlow's 0.99 by default) |
//! | `lrn(radius=2, alpha=1e-4, beta=0.75, bias=1.0)` | CxHxW | TensorFlow's convention (alpha not divided by the window) |
//! | `maxpool(k, stride=k, pad=0)`, `avgpool(k, stride=k, pad=0, count_pad=false)` | CxHxW | `pad` as for conv; an explicit pad may be at most half the window |
//! | `gap` | CxHxW → C | global average pool |
//! | `dropout(p)` | any | `p` is the probability of **dropping** (TensorFlow 1.x code passes the keep probability: `keep_prob=0.8` is `dropout(0.2)`) |
//! | `flatten` | CxHxW → C·H·W | on a vector it changes nothing (`gap flatten linear(n)` works) |
//! | `linear(n, bias=true)` | N → n | on a feature map it is an error asking for `flatten` or `gap`: an implicit flatten would hide a large weight matrix |
//! | `act`, `act@slot` | any | activation placeholder; the slot name lets a suite bind it separately |
//!
//! `residual { body }` adds the input to the body's output. When the body
//! changes the shape, a 1x1 projection conv is inserted on the shortcut, with
//! the stride that maps the input's spatial size onto the output's (`s` with
//! `ceil(in/s) == out`) and the output's channels, followed by a batch norm
//! when the body contains one (the conv then has no bias). Bodies that grow
//! the feature map, or change a vector's size, are errors. `concat` joins its
//! branches along channels (their spatial sizes must agree; an empty branch
//! is the identity). `dense N { body }` runs the body N times, each time
//! doing `x = concat(x, body(x))`.
//!
//! # Node paths
//!
//! Every node has a stable, unique dotted path. Within one body, nodes are
//! numbered per kind in source order: `conv0 bn0 act0 conv1 bn1 act1`. A
//! block call is named `<block><k>` (`cba0`, `cba1`) and holds its body's
//! nodes under that prefix (`cba1.conv0`); blocks leave no node of their own
//! in the IR. `repeat` unrolls into the enclosing body and continues its
//! counters. `residual<k>` holds its body (`residual0.conv0`) and its
//! projection (`residual0.proj.conv`, `residual0.proj.bn`); `concat<k>` holds
//! `concat0.branch<i>.…`, and `dense<k>` holds `dense0.layer<i>.…`. Paths at
//! the top of a network have no prefix (`linear0`).
//!
//! # Limits
//!
//! Hostile input cannot hang or exhaust memory: files are at most
//! [`MAX_SOURCE_BYTES`], nesting at most [`MAX_NESTING`] brackets,
//! expressions at most [`MAX_EXPR_OPERANDS`] operands, networks at most
//! [`MAX_NODES`] nodes and [`MAX_STEPS`] elaboration steps, block calls at
//! most [`MAX_CALL_DEPTH`] deep, sizes at most [`MAX_DIM`], node paths at
//! most [`MAX_PATH_BYTES`] in all; arithmetic overflow is an error.

mod ast;
mod bind;
mod elaborate;
mod error;
mod eval;
pub mod formula;
pub mod ir;
mod layers;
mod limits;
mod module;
mod options;
mod syntax;

pub use error::{Diagnostics, Error, ErrorKind, MAX_ERRORS};
pub use limits::{
    MAX_CALL_DEPTH, MAX_DIM, MAX_LAYER_PARAMS, MAX_NODES, MAX_NUMEL, MAX_PATH_BYTES, MAX_STEPS,
    MAX_TOTAL_PARAMS,
};
pub use module::{
    Module, NetworkSig, ParamSig, compile_file, compile_file_with, parse, parse_value,
};
pub use options::CompileOptions;
pub use syntax::{MAX_EXPR_OPERANDS, MAX_NESTING, MAX_SOURCE_BYTES};

#[cfg(test)]
mod tests;
