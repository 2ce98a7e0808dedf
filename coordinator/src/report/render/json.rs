//! The JSON report: the [`Report`] structure serialised with serde, layout
//! version [`SCHEMA_VERSION`](crate::report::compute::report::SCHEMA_VERSION). The schema is
//! documented field by field in `docs/report-schema.md`; accuracies are
//! fractions in [0, 1], absent values are `null`.

use crate::report::compute::report::Report;

/// A report that could not be serialised (only non-finite numbers can cause it).
#[derive(Debug, thiserror::Error)]
#[error("cannot write the JSON report of experiment {experiment}: {source}")]
pub struct JsonError {
    /// The experiment id.
    pub experiment: String,
    /// serde_json's error.
    pub source: serde_json::Error,
}

/// Renders the report as pretty-printed JSON (with a final newline).
pub fn render_json(report: &Report) -> Result<String, JsonError> {
    let mut text = serde_json::to_string_pretty(report).map_err(|source| JsonError {
        experiment: report.experiment.id.clone(),
        source,
    })?;
    text.push('\n');
    Ok(text)
}
