//! Layer arguments bound by name into a struct per layer.
//!
//! [`layer_args!`] declares a layer's argument struct: each field with its
//! doc, how it is read ([`ArgType`]) and its default, in positional order.
//! From that one list it derives the layer's
//! [`LayerSig`](crate::layers::call::LayerSig) (names and defaults, for the
//! checks before elaboration and the documentation's table) and the
//! struct's `bind`, which reads the evaluated arguments into the fields.

use crate::error::{Error, ErrorKind};
use crate::eval::{Ctx, describe};
use crate::ir::{Span, Value};
use crate::layers::window::PadSpec;

/// How one kind of argument is read from its value. The type named beside
/// a field in [`layer_args!`] is its reader; the field holds [`Self::Out`].
pub(crate) trait ArgType {
    /// What the field holds.
    type Out;
    /// What its default is written as (`pad = 0` for explicit padding).
    type Lit;
    /// Reads a given argument `name` written at `span`.
    fn read(cx: &Ctx<'_>, name: &str, value: &Value, span: Span) -> Result<Self::Out, Error>;
    /// The field's value when the call leaves it out; `call` is the call's span.
    fn default(lit: Self::Lit, call: Span) -> Self::Out;
}

/// An integer from `MIN` to [`MAX_DIM`](crate::MAX_DIM).
pub(crate) struct AtLeast<const MIN: usize>;

/// A size, stride or count: an integer from 1 to [`MAX_DIM`](crate::MAX_DIM).
pub(crate) type Positive = AtLeast<1>;

/// An integer from 0 to [`MAX_DIM`](crate::MAX_DIM).
pub(crate) type NonNegative = AtLeast<0>;

/// A number; integers read as floats.
pub(crate) struct Number;

/// `true` or `false`.
pub(crate) struct Flag;

/// Padding: an explicit non-negative integer, `same` or `valid`.
pub(crate) struct Pad;

/// As a reader, `Spanned<R>` reads as `R` and keeps where the value was
/// written (the call, for a default), for checks that come after binding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Spanned<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

/// The default of an argument that the caller gives for the whole compile
/// ([`CompileOptions`](crate::CompileOptions)), written `= Preset`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Preset;

/// As a reader, `OrPreset<R>` reads as `R`; left out, it is `None`, and the
/// layer takes the caller's value.
pub(crate) struct OrPreset<R>(std::marker::PhantomData<R>);

impl<R: ArgType> ArgType for OrPreset<R> {
    type Out = Option<R::Out>;
    type Lit = Preset;
    fn read(cx: &Ctx<'_>, name: &str, value: &Value, span: Span) -> Result<Self::Out, Error> {
        R::read(cx, name, value, span).map(Some)
    }
    fn default(_: Preset, _: Span) -> Self::Out {
        None
    }
}

/// The error for argument `name` holding `value` where it `must` be
/// something else (`must` reads "`x` must be {must}").
fn wrong_type(cx: &Ctx<'_>, name: &str, value: &Value, span: Span, must: &str) -> Error {
    cx.err(
        ErrorKind::Type,
        format!("`{name}` must be {must}, found {}", describe(value)),
        span,
        format!("expected {must}"),
    )
}

/// A reader whose default is written as the value itself.
pub(crate) trait Plain {
    /// What the field holds, and its default.
    type Value;
    /// As [`ArgType::read`].
    fn read(cx: &Ctx<'_>, name: &str, value: &Value, span: Span) -> Result<Self::Value, Error>;
}

impl<R: Plain> ArgType for R {
    type Out = R::Value;
    type Lit = R::Value;
    fn read(cx: &Ctx<'_>, name: &str, value: &Value, span: Span) -> Result<R::Value, Error> {
        <R as Plain>::read(cx, name, value, span)
    }
    fn default(lit: R::Value, _: Span) -> R::Value {
        lit
    }
}

impl<const MIN: usize> Plain for AtLeast<MIN> {
    type Value = usize;
    fn read(cx: &Ctx<'_>, name: &str, value: &Value, span: Span) -> Result<usize, Error> {
        cx.dim(value, span, &format!("`{name}`"), MIN)
    }
}

impl Plain for Number {
    type Value = f64;
    fn read(cx: &Ctx<'_>, name: &str, value: &Value, span: Span) -> Result<f64, Error> {
        match value {
            Value::Int(i) => Ok(*i as f64),
            Value::Float(x) => Ok(*x),
            _ => Err(wrong_type(cx, name, value, span, "a number")),
        }
    }
}

impl Plain for Flag {
    type Value = bool;
    fn read(cx: &Ctx<'_>, name: &str, value: &Value, span: Span) -> Result<bool, Error> {
        match value {
            Value::Bool(b) => Ok(*b),
            _ => Err(wrong_type(cx, name, value, span, "`true` or `false`")),
        }
    }
}

impl ArgType for Pad {
    type Out = PadSpec;
    type Lit = usize;
    fn read(cx: &Ctx<'_>, name: &str, value: &Value, span: Span) -> Result<PadSpec, Error> {
        match value {
            Value::Word(w) if w == "same" => Ok(PadSpec::Same),
            Value::Word(w) if w == "valid" => Ok(PadSpec::Valid),
            Value::Int(_) => Ok(PadSpec::Explicit(<NonNegative as Plain>::read(
                cx, name, value, span,
            )?)),
            _ => Err(wrong_type(
                cx,
                name,
                value,
                span,
                "an integer, `same` or `valid`",
            )),
        }
    }
    fn default(lit: usize, _: Span) -> PadSpec {
        PadSpec::Explicit(lit)
    }
}

impl<R: ArgType> ArgType for Spanned<R> {
    type Out = Spanned<R::Out>;
    type Lit = R::Lit;
    fn read(cx: &Ctx<'_>, name: &str, value: &Value, span: Span) -> Result<Self::Out, Error> {
        Ok(Spanned {
            value: R::read(cx, name, value, span)?,
            span,
        })
    }
    fn default(lit: R::Lit, call: Span) -> Self::Out {
        Spanned {
            value: R::default(lit, call),
            span: call,
        }
    }
}

/// Declares a layer's argument struct, its
/// [`LayerSig`](crate::layers::call::LayerSig) (`SIG`) and
/// `bind(&Call) -> Result<Self, Error>`.
///
/// ```text
/// layer_args! {
///     /// Arguments of `maxpool`.
///     "maxpool" => struct MaxPoolArgs {
///         /// Window height and width.
///         k: Positive,
///         /// Step between windows.
///         stride: Positive = k,
///     }
/// }
/// ```
///
/// Fields are positional parameters in the order written. A field without
/// `= default` is required; a default may use earlier fields (`stride = k`)
/// and is shown as written in messages and docs.
macro_rules! layer_args {
    (
        $(#[$attr:meta])*
        $layer:literal => struct $args:ident {
            $(
                $(#[$field_attr:meta])*
                $field:ident: $reader:ty $(= $default:expr)?
            ),* $(,)?
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, PartialEq)]
        pub(crate) struct $args {
            $(
                $(#[$field_attr])*
                pub(crate) $field: <$reader as $crate::layers::args::ArgType>::Out,
            )*
        }

        impl $args {
            /// The layer's name and arguments, derived from the fields.
            pub(crate) const SIG: $crate::layers::call::LayerSig = $crate::layers::call::LayerSig {
                name: $layer,
                args: &[$(
                    $crate::layers::call::ArgSig {
                        name: stringify!($field),
                        default: $crate::layers::args::layer_args!(@shown $($default)?),
                    }
                ),*],
            };

            /// Reads the call's arguments, evaluated and in the order of
            /// [`Self::SIG`]; those left out take their defaults.
            pub(crate) fn bind(call: &$crate::layers::call::Call<'_>) -> Result<Self, $crate::error::Error> {
                let mut given = call.args.iter();
                $(
                    let $field = match given.next().and_then(Option::as_ref) {
                        Some((value, span)) => <$reader as $crate::layers::args::ArgType>::read(
                            &call.cx,
                            stringify!($field),
                            value,
                            *span,
                        )?,
                        None => $crate::layers::args::layer_args!(
                            @default call, $reader, $field $(, $default)?
                        ),
                    };
                )*
                Ok($args { $($field),* })
            }
        }
    };
    (@shown) => { None };
    (@shown $default:expr) => { Some(stringify!($default)) };
    (@default $call:ident, $reader:ty, $field:ident) => {
        return Err($call.missing(stringify!($field)))
    };
    (@default $call:ident, $reader:ty, $field:ident, $default:expr) => {
        <$reader as $crate::layers::args::ArgType>::default($default, $call.span)
    };
}
pub(crate) use layer_args;
