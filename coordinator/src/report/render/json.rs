//! The JSON report: the [`Report`] structure serialised with serde, layout
//! version [`SCHEMA_VERSION`](crate::report::compute::report::SCHEMA_VERSION). The schema is
//! documented field by field in `docs/report-schema.md`; accuracies are
//! fractions in [0, 1], absent values are `null`.

use serde::Serialize;

use crate::report::compute::report::Report;

/// The report with its methods paragraph beside its computed fields.
#[derive(Serialize)]
struct WithMethods<'a> {
    #[serde(flatten)]
    report: &'a Report,
    methods: String,
}

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
    let with = WithMethods {
        report,
        methods: super::methods::methods_text(report),
    };
    let mut text = serde_json::to_string_pretty(&with).map_err(|source| JsonError {
        experiment: report.experiment.id.clone(),
        source,
    })?;
    text.push('\n');
    Ok(text)
}
