//! Suite errors: every one names the suite file, and the line, column and
//! key when the problem sits at a place in it.

use std::path::{Path, PathBuf};

use miette::{Diagnostic, NamedSource, SourceSpan};

/// Something wrong with a suite, found before any training starts (boxed:
/// it carries the suite's text for the caret).
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.headline)]
pub struct SuiteError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    headline: String,
    source_code: Option<NamedSource<String>>,
    span: Option<SourceSpan>,
    label: String,
    help: Option<String>,
    inner: Option<Box<dyn Diagnostic + Send + Sync>>,
}

// Written by hand: miette's derive cannot take an optional diagnostic source.
impl Diagnostic for SuiteError {
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.0
            .source_code
            .as_ref()
            .map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let span = self.0.span?;
        Some(Box::new(std::iter::once(
            miette::LabeledSpan::new_with_span(Some(self.0.label.clone()), span),
        )))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.0
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }

    fn diagnostic_source(&self) -> Option<&dyn Diagnostic> {
        self.0.inner.as_deref().map(|d| d as &dyn Diagnostic)
    }
}

/// Where in a suite file something is: 1-based line and column, or unknown
/// (a value that came from `--set`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Place {
    /// 1-based line; 0 when unknown.
    pub line: usize,
    /// 1-based column; 0 when unknown.
    pub column: usize,
}

impl Place {
    /// From serde-saphyr's location (line 0 means unknown).
    pub fn from_location(loc: serde_saphyr::Location) -> Self {
        Self {
            line: loc.line() as usize,
            column: loc.column() as usize,
        }
    }

    fn known(self) -> bool {
        self.line > 0
    }
}

/// The file a suite came from, for building located errors.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path as given.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
}

impl SourceFile {
    fn offset(&self, place: Place) -> Option<usize> {
        if !place.known() {
            return None;
        }
        let mut offset = 0;
        for (i, line) in self.text.split_inclusive('\n').enumerate() {
            if i + 1 == place.line {
                let col: usize = line
                    .chars()
                    .take(place.column.saturating_sub(1))
                    .map(char::len_utf8)
                    .sum();
                return Some(offset + col.min(line.len()));
            }
            offset += line.len();
        }
        None
    }

    /// An error at `place` about `key`: `file:line:col: key: message` (no
    /// key part when `key` is empty, e.g. for YAML errors that name it).
    pub fn error_at(&self, place: Place, key: &str, message: impl Into<String>) -> SuiteError {
        let message = message.into();
        let location = if place.known() {
            format!("{}:{}:{}", self.path.display(), place.line, place.column)
        } else {
            format!("{} (value from --set)", self.path.display())
        };
        let span = self.offset(place).map(|start| {
            let rest = &self.text[start..];
            let len = rest
                .find(['\n', ',', '}', ']'])
                .unwrap_or(rest.len())
                .max(1);
            SourceSpan::new(start.into(), len.min(rest.len().max(1)))
        });
        let headline = if key.is_empty() {
            format!("{location}: {message}")
        } else {
            format!("{location}: `{key}`: {message}")
        };
        SuiteError(Box::new(Inner {
            headline,
            source_code: span
                .map(|_| NamedSource::new(self.path.display().to_string(), self.text.clone())),
            span,
            label: message,
            help: None,
            inner: None,
        }))
    }

    /// An error about the whole file (no particular place).
    pub fn error(&self, key: &str, message: impl Into<String>) -> SuiteError {
        SuiteError::unlocated(format!(
            "{}: `{key}`: {}",
            self.path.display(),
            message.into()
        ))
    }
}

impl SuiteError {
    /// An error with no place in the file to point at.
    fn unlocated(headline: String) -> Self {
        Self(Box::new(Inner {
            headline,
            source_code: None,
            span: None,
            label: String::new(),
            help: None,
            inner: None,
        }))
    }

    /// A file that cannot be read.
    pub fn io(path: &Path, err: &std::io::Error) -> Self {
        Self::unlocated(format!("cannot read suite {}: {err}", path.display()))
    }

    /// A broken invariant of acbench itself, found while resolving a suite:
    /// a bug, not a mistake in the suite.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::unlocated(format!(
            "internal error (a bug in acbench; please report it): {message}"
        ))
    }

    /// Adds a hint.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.0.help = Some(help.into());
        self
    }

    /// Attaches the diagnostic that caused this one (e.g. a model file's).
    pub fn caused_by(mut self, inner: impl Diagnostic + Send + Sync + 'static) -> Self {
        self.0.inner = Some(Box::new(inner));
        self
    }

    /// The one-line description, with file, line, column and key.
    pub fn headline(&self) -> &str {
        &self.0.headline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn located_errors_name_file_line_column_and_key() {
        let src = SourceFile {
            path: "s.yaml".into(),
            text: "epochs: 2\nmodels:\n  - nope.acnet\n".into(),
        };
        let e = src.error_at(Place { line: 3, column: 5 }, "models[0]", "no such file");
        assert_eq!(e.headline(), "s.yaml:3:5: `models[0]`: no such file");
        assert_eq!(
            e.0.span.map(|s| s.offset()),
            Some(src.text.find("nope").expect("present"))
        );
        let e = src.error_at(Place::default(), "epochs", "must be at least 1");
        assert_eq!(
            e.headline(),
            "s.yaml (value from --set): `epochs`: must be at least 1"
        );
        assert!(e.0.span.is_none());
    }
}
