//! Sweep errors: a script error names `file:line:col` and shows the line.

use std::path::{Path, PathBuf};

use miette::{Diagnostic, NamedSource, SourceSpan};
use rhai::{EvalAltResult, ParseError, Position};

/// A located script error: `file:line:col: message`, with the line shown.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{location}: {message}")]
pub struct ScriptError {
    /// `file:line:col`, or the file alone when rhai gives no position.
    pub location: String,
    /// What went wrong.
    pub message: String,
    /// The script, for the caret.
    #[source_code]
    source_code: NamedSource<String>,
    /// Where in it.
    #[label("here")]
    span: Option<SourceSpan>,
}

/// Why a sweep stopped. Every run finished before the error stays in the
/// ledger (each run commits as it ends).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The script failed to parse, raised an error, or hit a sandbox limit
    /// (boxed: it carries the script's text).
    #[error(transparent)]
    Script(Box<ScriptError>),
    /// The script file cannot be read.
    #[error("cannot read sweep {}: {source}", path.display())]
    Io {
        /// The script.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A folder the sweep may read from does not exist.
    #[error("{what} {}: {source}", path.display())]
    Read {
        /// `--allow-read`, or the sweep's folder.
        what: String,
        /// The folder.
        path: PathBuf,
        /// Why it cannot be used.
        source: std::io::Error,
    },
    /// A `--set` that is not `name=value`.
    #[error("--set `{raw}`: {message}")]
    Set {
        /// The flag as given.
        raw: String,
        /// Why.
        message: String,
    },
    /// The ledger failed (outside any script call).
    #[error(transparent)]
    Ledger(#[from] acbench_ledger::LedgerError),
}

/// Why a script function (`suite`, `run`, `table`, ...) failed. The script
/// sees it as a runtime error at the call, named after the function.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// What the script passed cannot be used (a spec that does not
    /// resolve, an unknown option), or the sweep's wall-clock limit passed.
    #[error("{0}")]
    Script(String),
    /// A file the script named cannot be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] acbench_ledger::LedgerError),
    /// The report engine failed.
    #[error(transparent)]
    Report(#[from] acbench_reports::ReportError),
}

impl From<String> for CallError {
    fn from(message: String) -> Self {
        Self::Script(message)
    }
}

// By hand: miette's derive cannot forward to a boxed diagnostic.
impl Diagnostic for SweepError {
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        match self {
            SweepError::Script(e) => e.source_code(),
            _ => None,
        }
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        match self {
            SweepError::Script(e) => e.labels(),
            _ => None,
        }
    }
}

impl SweepError {
    /// An error of `script` (with text `text`) at `pos`.
    pub fn at(script: &Path, text: &str, pos: Position, message: String) -> Self {
        let (location, span) = match (pos.line(), pos.position()) {
            (Some(line), col) => {
                let col = col.unwrap_or(1);
                (
                    format!("{}:{line}:{col}", script.display()),
                    offset(text, line, col).map(|o| SourceSpan::new(o.into(), 1)),
                )
            }
            (None, _) => (script.display().to_string(), None),
        };
        Self::Script(Box::new(ScriptError {
            location,
            message,
            source_code: NamedSource::new(script.display().to_string(), text.to_owned()),
            span,
        }))
    }

    /// A parse error of the script.
    pub fn parse(script: &Path, text: &str, err: &ParseError) -> Self {
        Self::at(
            script,
            text,
            err.position(),
            format!("syntax error: {}", err.err_type()),
        )
    }

    /// A runtime error (or a sandbox limit) of the script: located at the
    /// innermost place rhai knows, since an error inside a script function
    /// is more useful at the line that raised it than at the call.
    pub fn eval(script: &Path, text: &str, err: &EvalAltResult, max_operations: u64) -> Self {
        let inner = err.unwrap_inner();
        let pos = if inner.position().is_none() {
            err.position()
        } else {
            inner.position()
        };
        let message = match inner {
            EvalAltResult::ErrorRuntime(d, _) | EvalAltResult::ErrorTerminated(d, _) => {
                d.to_string()
            }
            EvalAltResult::ErrorTooManyOperations(_) => format!(
                "the script ran more than {max_operations} operations (an endless loop?); \
                 this limit keeps a sweep from hanging"
            ),
            // rhai's errors are not Clone, so its " (line L, position C)"
            // suffix is cut from the text instead of taken from the value.
            other => {
                let text = other.to_string();
                let suffix = format!(" ({})", other.position());
                text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
            }
        };
        Self::at(script, text, pos, message)
    }

    /// The one-line form (`file:line:col: message`).
    pub fn headline(&self) -> String {
        self.to_string()
    }
}

/// Byte offset of 1-based `line`, `col` (in characters) in `text`.
fn offset(text: &str, line: usize, col: usize) -> Option<usize> {
    let mut start = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let within: usize = l
                .chars()
                .take(col.saturating_sub(1))
                .map(char::len_utf8)
                .sum();
            return Some(start + within.min(l.len().saturating_sub(1)));
        }
        start += l.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_count_characters_within_the_line() {
        let text = "let a = 1;\nlet é = oops;\n";
        assert_eq!(offset(text, 2, 1), Some(11));
        assert_eq!(offset(text, 2, 9), Some(11 + "let é = ".len()));
        assert_eq!(offset(text, 5, 1), None);
    }
}
