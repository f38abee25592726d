//! The whole report as JSON, for scripts and later comparison.

use super::Exporter;
use crate::{Report, ReportError};

/// Pretty-printed JSON of [`Report`].
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonExporter;

impl Exporter for JsonExporter {
    fn extension(&self) -> &'static str {
        "json"
    }

    fn render(&self, report: &Report) -> Result<String, ReportError> {
        let mut s = serde_json::to_string_pretty(report)?;
        s.push('\n');
        Ok(s)
    }
}

#[cfg(test)]
mod tests;
