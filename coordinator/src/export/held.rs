//! What the coordinator holds of a job's output files, for the job's MLflow run.
//!
//! A worker writes `final.safetensors`, `best.safetensors`, `metrics.json`,
//! `config.toml` and its TensorBoard events into its own
//! `<work-dir>/<job folder>/`; none of them travels to the coordinator. The
//! coordinator's checkpoint files (`state.checkpoints/`) hold only unfinished
//! jobs' resume points and are deleted when a job ends. What it does hold is
//! the job's result as the worker reported it (`jobs.result_json`: the
//! `result` part of `metrics.json`: selection, figures, confusion matrix and
//! every epoch), exported as `result.json`. The run's tags say so for the rest.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension};

use crate::store::read_only::FromStoreError;

/// File name of the stored result uploaded as an artifact.
pub const RESULT_ARTIFACT: &str = "result.json";

/// A job's stored result JSON (`jobs.result_json`), once it succeeded.
pub fn stored_result(conn: &Connection, job: &str) -> Result<Option<String>, FromStoreError> {
    Ok(conn
        .prepare_cached("SELECT result_json FROM jobs WHERE id = ?1")?
        .query_row([job], |r| r.get::<_, Option<String>>(0))
        .optional()?
        .flatten())
}

/// The folder a worker gives the job under its `--work-dir` (the job id with
/// every character but ASCII letters, digits, `-` and `_` made `_`, as
/// `worker/src/join/slot.rs` names it).
pub fn job_folder(job: &str) -> String {
    job.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// What a job's run says and carries about the job's files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    /// Tags saying where each file is.
    pub tags: BTreeMap<String, String>,
    /// Files the coordinator can give: (file name, bytes).
    pub artifacts: Vec<(String, Vec<u8>)>,
}

/// The tags saying where a job's files are, and the artifacts the coordinator
/// can give (its stored result, when it has one).
pub fn held_files(job: &str, result_json: Option<String>) -> Held {
    let folder = job_folder(job);
    let mut tags = BTreeMap::new();
    tags.insert("spikecv.job_folder".to_owned(), folder.clone());
    tags.insert(
        "spikecv.artifact.final_safetensors".to_owned(),
        format!(
            "not held by the coordinator: the worker keeps it as <work-dir>/{folder}/final.safetensors"
        ),
    );
    let metrics = match &result_json {
        Some(_) => format!(
            "not held by the coordinator: the worker keeps it as <work-dir>/{folder}/metrics.json; \
             {RESULT_ARTIFACT} is its `result` part as the worker reported it"
        ),
        None => format!(
            "not held by the coordinator: the worker writes it as <work-dir>/{folder}/metrics.json when the job succeeds"
        ),
    };
    tags.insert("spikecv.artifact.metrics_json".to_owned(), metrics);
    let artifacts = result_json
        .map(|text| vec![(RESULT_ARTIFACT.to_owned(), text.into_bytes())])
        .unwrap_or_default();
    Held { tags, artifacts }
}
