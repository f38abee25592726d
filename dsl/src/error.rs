//! Diagnostics of the `.acnet` language: one [`Error`] per problem, many
//! collected in [`Diagnostics`]. Both are miette diagnostics that render as
//! `file:line:col` with the offending source underlined.

use std::fmt;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};

use crate::ir::Span;

/// At most this many errors are kept for one file; beyond it the rest are
/// usually consequences of the first ones.
pub const MAX_ERRORS: usize = 50;

/// What went wrong, for callers (and tests) that branch on the kind of error
/// rather than on its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The text does not follow the grammar.
    Syntax,
    /// A call names neither a layer nor a block.
    UnknownLayer,
    /// An expression names something that is not an argument in scope.
    UnknownName,
    /// `elaborate` was asked for a network the file does not define.
    UnknownNetwork,
    /// Too many positional arguments, or a required one missing.
    Arity,
    /// A keyword argument the layer, block or network does not take.
    UnknownArgument,
    /// The same argument given twice.
    DuplicateArgument,
    /// A value of the wrong type (a float where an integer is needed, ...).
    Type,
    /// A value of the right type outside its allowed range.
    Value,
    /// Shapes that do not fit: wrong rank, disagreeing branches, windows
    /// larger than their input, sizes that shrink to nothing.
    Shape,
    /// Integer or float division (or remainder) by zero.
    DivisionByZero,
    /// Arithmetic overflow, or a number too large to represent.
    Overflow,
    /// A block that calls itself, directly or through others.
    Recursion,
    /// Two definitions (or two parameters) with the same name.
    Duplicate,
    /// A size limit that keeps hostile input from exhausting time or memory.
    Limit,
    /// The model file could not be read.
    Io,
}

/// One problem in a model file, with its location. Boxed inside, so that
/// `Result<_, Error>` stays one pointer wide on the elaborator's hot paths.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .0.message)]
pub struct Error(Box<Inner>);

#[derive(Debug, Clone)]
struct Inner {
    kind: ErrorKind,
    message: String,
    src: NamedSource<Arc<str>>,
    labels: Vec<LabeledSpan>,
    help: Option<String>,
    /// Byte offset of the primary label (for [`Error::line_col`]).
    primary: Option<usize>,
    text: Arc<str>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>, source: &Source) -> Self {
        Error(Box::new(Inner {
            kind,
            message: message.into(),
            src: source.named(),
            labels: Vec::new(),
            help: None,
            primary: None,
            text: source.text.clone(),
        }))
    }

    /// Adds the main label; the first one added sets [`Error::line_col`].
    pub(crate) fn label(mut self, span: Span, text: impl Into<String>) -> Self {
        let span = clamp(span, self.0.text.len());
        if self.0.primary.is_none() {
            self.0.primary = Some(span.start);
            self.0.labels.push(LabeledSpan::new_primary_with_span(
                Some(text.into()),
                to_miette(span),
            ));
        } else {
            self.0.labels.push(LabeledSpan::new_with_span(
                Some(text.into()),
                to_miette(span),
            ));
        }
        self
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        self.0.help = Some(help.into());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The message, without location.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The hint shown under the snippet, if any.
    pub fn help_text(&self) -> Option<&str> {
        self.0.help.as_deref()
    }

    /// File name the error refers to.
    pub fn file_name(&self) -> &str {
        self.0.src.name()
    }

    /// 1-based line and column (in characters) of the primary label.
    pub fn line_col(&self) -> Option<(usize, usize)> {
        self.0.primary.map(|offset| line_col(&self.0.text, offset))
    }

    /// Texts of all labels, primary first (call sites follow the error).
    pub fn label_texts(&self) -> Vec<&str> {
        self.0.labels.iter().filter_map(|l| l.label()).collect()
    }
}

impl Diagnostic for Error {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.0.src)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.0.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.0.labels.iter().cloned()))
        }
    }
}

/// One or more errors of one model file. Renders as its first error, with
/// the others attached as related diagnostics.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    errors: Vec<Error>,
}

impl Diagnostics {
    /// Wraps errors; `errors` must not be empty (an empty list renders as a
    /// generic message rather than panicking).
    pub(crate) fn new(mut errors: Vec<Error>) -> Self {
        errors.truncate(MAX_ERRORS);
        Diagnostics { errors }
    }

    /// Every error, in source order where that is known.
    pub fn errors(&self) -> &[Error] {
        &self.errors
    }

    /// The first error.
    pub fn first(&self) -> Option<&Error> {
        self.errors.first()
    }

    /// Every error as `file:line:col: message`, one per line (plain text for
    /// logs and tests; the CLI renders the miette report instead).
    pub fn to_plain_string(&self) -> String {
        let mut out = String::new();
        for e in &self.errors {
            match e.line_col() {
                Some((l, c)) => {
                    out.push_str(&format!("{}:{l}:{c}: {}\n", e.file_name(), e.message()))
                }
                None => out.push_str(&format!("{}: {}\n", e.file_name(), e.message())),
            }
        }
        out
    }
}

impl From<Error> for Diagnostics {
    fn from(e: Error) -> Self {
        Diagnostics::new(vec![e])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.first() {
            Some(e) if self.errors.len() == 1 => write!(f, "{e}"),
            Some(e) => write!(f, "{e} (and {} more errors)", self.errors.len() - 1),
            None => f.write_str("invalid model"),
        }
    }
}

impl std::error::Error for Diagnostics {}

impl Diagnostic for Diagnostics {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.errors.first().and_then(Diagnostic::help)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.errors.first().and_then(|e| e.source_code())
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.errors.first().and_then(|e| e.labels())
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        if self.errors.len() > 1 {
            Some(Box::new(
                self.errors[1..].iter().map(|e| e as &dyn Diagnostic),
            ))
        } else {
            None
        }
    }
}

/// The text of a model file and its name, shared by all its errors.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) name: String,
    pub(crate) text: Arc<str>,
}

impl Source {
    pub(crate) fn new(name: &str, text: &str) -> Self {
        Source {
            name: name.to_string(),
            text: Arc::from(text),
        }
    }

    fn named(&self) -> NamedSource<Arc<str>> {
        NamedSource::new(self.name.clone(), self.text.clone())
    }
}

/// Names as messages list them: `` `a`, `b` ``.
pub(crate) fn quoted<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names
        .into_iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn clamp(span: Span, len: usize) -> Span {
    let start = span.start.min(len);
    Span {
        start,
        end: span.end.clamp(start, len),
    }
}

fn to_miette(span: Span) -> SourceSpan {
    SourceSpan::new(span.start.into(), span.end - span.start)
}

/// 1-based line and character column of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}
