//! A built-in layer as elaboration sees it: its signature ([`LayerSig`]),
//! the rule that lowers a call of it ([`Layer`]), and one call with its
//! arguments evaluated ([`Call`]).

use crate::bind::Given;
use crate::error::{Error, ErrorKind};
use crate::eval::Ctx;
use crate::ir::{Op, Shape, Span};

/// One argument of a built-in layer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ArgSig {
    pub(crate) name: &'static str,
    /// The default as written beside its field (`3`, `k`, `1e-3`), or
    /// `None` when the argument is required.
    pub(crate) default: Option<&'static str>,
}

/// A built-in layer's name and arguments, positional order first. Layers
/// with arguments get theirs from `layer_args!`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayerSig {
    pub(crate) name: &'static str,
    pub(crate) args: &'static [ArgSig],
}

impl LayerSig {
    /// A layer that takes no arguments.
    pub(crate) const fn bare(name: &'static str) -> Self {
        LayerSig { name, args: &[] }
    }

    /// The argument names, in positional order.
    pub(crate) fn names(&self) -> Vec<&'static str> {
        self.args.iter().map(|a| a.name).collect()
    }

    /// The arguments without a default.
    pub(crate) fn required(&self) -> impl Iterator<Item = &'static str> {
        self.args
            .iter()
            .filter(|a| a.default.is_none())
            .map(|a| a.name)
    }

    /// How a call reads in the documentation: `conv(c, k=3, ...)`, `gap`.
    #[cfg(test)]
    pub(crate) fn signature(&self) -> String {
        if self.args.is_empty() {
            return self.name.to_string();
        }
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| match a.default {
                Some(d) => format!("{}={d}", a.name),
                None => a.name.to_string(),
            })
            .collect();
        format!("{}({})", self.name, args.join(", "))
    }
}

/// A built-in layer: its signature and how a call of it is elaborated.
pub(crate) struct Layer {
    pub(crate) sig: LayerSig,
    /// The call's op and output shape, or the error in its arguments or
    /// shapes.
    pub(crate) lower: fn(&Call<'_>) -> Result<(Op, Shape), Error>,
}

/// One call of a built-in layer, its arguments evaluated.
pub(crate) struct Call<'a> {
    /// Makes the call's errors.
    pub(crate) cx: Ctx<'a>,
    /// The layer's name.
    pub(crate) layer: &'static str,
    /// The call statement.
    pub(crate) span: Span,
    /// The shape entering the layer.
    pub(crate) input: Shape,
    /// The `@slot` of `act@slot`.
    pub(crate) slot: Option<&'a str>,
    /// One slot per argument of the layer's signature, in its order.
    pub(crate) args: &'a [Option<Given>],
    /// The caller's defaults for arguments left out (`bn`'s momentum).
    pub(crate) options: &'a crate::options::CompileOptions,
}

impl Call<'_> {
    /// An argument's value outside its range; `span` is where it was written.
    pub(crate) fn value_err(&self, message: impl Into<String>, span: Span) -> Error {
        self.cx
            .err(ErrorKind::Value, message, span, "invalid value")
    }

    /// A required argument left out (the checks before elaboration catch
    /// this first).
    pub(crate) fn missing(&self, name: &str) -> Error {
        self.cx.err(
            ErrorKind::Arity,
            format!("missing argument `{name}`"),
            self.span,
            "required",
        )
    }

    /// The input's channels, height and width; an error on a vector.
    pub(crate) fn image(&self) -> Result<(usize, usize, usize), Error> {
        match self.input {
            Shape::Image { c, h, w } => Ok((c, h, w)),
            Shape::Flat(n) => Err(self.cx.err(
                ErrorKind::Shape,
                format!("{} expects a feature map, got a vector of {n}", self.layer),
                self.span,
                "input is a vector here",
            )),
        }
    }
}
