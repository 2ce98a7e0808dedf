//! The export to an MLflow tracking server: finds (or creates) the MLflow
//! experiment by name, finds the runs an earlier export wrote for this spikecv
//! experiment (by their `spikecv.experiment_id`, `spikecv.role` and
//! `spikecv.job_id` tags, through `runs/search`), then brings the parent run
//! (the report's aggregates) and one child run per job up to date
//! ([`super::sync`]). Exporting again finds the same runs: no duplicates.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::payload::{EXPERIMENT_TAG, JOB_TAG, ROLE_TAG, RunPlan};
use super::rest::{Client, RestError};
use super::sync::{Context, Existing, Outcome, SyncError, sync_run};

/// Runs asked for per `runs/search` page.
const PAGE: u32 = 1000;

/// Why the export to MLflow failed.
#[derive(Debug, thiserror::Error)]
pub enum MlflowError {
    /// A call failed.
    #[error(transparent)]
    Rest(#[from] RestError),
    /// A run could not be brought up to date.
    #[error("{what}: {source}")]
    Sync {
        /// Which run (`the parent run`, `job <id>`).
        what: String,
        /// Why.
        source: SyncError,
    },
    /// The MLflow experiment of that name was deleted.
    #[error(
        "MLflow experiment {name:?} (id {id}) is deleted; restore it (`mlflow experiments restore --experiment-id {id}`) or choose another name with --mlflow-experiment"
    )]
    DeletedExperiment {
        /// Its name.
        name: String,
        /// Its id.
        id: String,
    },
    /// An answer lacked a field the export needs.
    #[error("MLflow {endpoint} answered without {field}")]
    Missing {
        /// The endpoint.
        endpoint: &'static str,
        /// The field.
        field: &'static str,
    },
}

/// What one export did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// MLflow experiment id.
    pub experiment_id: String,
    /// The parent run's id.
    pub parent_run_id: String,
    /// Job runs created.
    pub created: usize,
    /// Job runs that existed and were updated.
    pub updated: usize,
    /// Job runs that already held everything.
    pub unchanged: usize,
    /// Job runs deleted and written again (their job was retried from epoch 0).
    pub replaced: usize,
}

impl ExportSummary {
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Created => self.created += 1,
            Outcome::Updated => self.updated += 1,
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Replaced => self.replaced += 1,
        }
    }
}

/// The id of the MLflow experiment `name`, created when missing.
pub fn ensure_experiment(client: &Client, name: &str) -> Result<String, MlflowError> {
    match client.get::<Value>("experiments/get-by-name", &[("experiment_name", name)]) {
        Ok(answer) => {
            let e = answer.get("experiment").ok_or(MlflowError::Missing {
                endpoint: "experiments/get-by-name",
                field: "experiment",
            })?;
            let id = e
                .get("experiment_id")
                .and_then(Value::as_str)
                .ok_or(MlflowError::Missing {
                    endpoint: "experiments/get-by-name",
                    field: "experiment.experiment_id",
                })?
                .to_owned();
            if e.get("lifecycle_stage").and_then(Value::as_str) == Some("deleted") {
                return Err(MlflowError::DeletedExperiment {
                    name: name.to_owned(),
                    id,
                });
            }
            Ok(id)
        }
        Err(e) if e.is_not_found() => {
            let answer: Value = client.post("experiments/create", &json!({ "name": name }))?;
            tracing::info!(experiment = name, "MLflow experiment created");
            answer
                .get("experiment_id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or(MlflowError::Missing {
                    endpoint: "experiments/create",
                    field: "experiment_id",
                })
        }
        Err(e) => Err(e.into()),
    }
}

/// Every active run of MLflow experiment `experiment_id` tagged with
/// `spikecv_experiment`.
pub fn runs_of(
    client: &Client,
    experiment_id: &str,
    spikecv_experiment: &str,
) -> Result<Vec<Existing>, MlflowError> {
    // Filter on the server when the id needs no quoting; always check here.
    let plain = spikecv_experiment
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
    let mut runs = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({"experiment_ids": [experiment_id], "max_results": PAGE});
        if plain {
            body["filter"] = json!(format!("tags.`{EXPERIMENT_TAG}` = '{spikecv_experiment}'"));
        }
        if let Some(t) = &token {
            body["page_token"] = json!(t);
        }
        let answer: Value = client.post("runs/search", &body)?;
        let page = answer.get("runs").and_then(Value::as_array);
        runs.extend(page.into_iter().flatten().filter_map(Existing::from_json));
        token = answer
            .get("next_page_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    runs.retain(|r| r.tags.get(EXPERIMENT_TAG).map(String::as_str) == Some(spikecv_experiment));
    Ok(runs)
}

/// Writes `parent` and `jobs` as runs of MLflow experiment `mlflow_experiment`
/// (created when missing), updating the runs an earlier export wrote.
pub fn export(
    client: &Client,
    mlflow_experiment: &str,
    spikecv_experiment: &str,
    parent: &RunPlan,
    jobs: &[RunPlan],
    now_ms: i64,
) -> Result<ExportSummary, MlflowError> {
    let experiment_id = ensure_experiment(client, mlflow_experiment)?;
    let existing = runs_of(client, &experiment_id, spikecv_experiment)?;
    let mut parent_run: Option<&Existing> = None;
    let mut job_runs: BTreeMap<&str, &Existing> = BTreeMap::new();
    for run in &existing {
        let role = run.tags.get(ROLE_TAG).map(String::as_str);
        let kept = match (role, run.tags.get(JOB_TAG)) {
            (Some("aggregate"), _) => parent_run.replace(run).is_none(),
            (Some("job"), Some(job)) => job_runs.insert(job, run).is_none(),
            _ => true,
        };
        if !kept {
            tracing::warn!(run = %run.id, "two MLflow runs stand for the same spikecv run; one is updated, the other left as it is");
        }
    }
    let ctx = Context {
        client,
        experiment_id: &experiment_id,
        spikecv_experiment,
        now_ms,
    };
    let (parent_run_id, _) =
        sync_run(&ctx, parent_run, parent, None).map_err(|source| MlflowError::Sync {
            what: "the parent run".into(),
            source,
        })?;
    let mut summary = ExportSummary {
        experiment_id: experiment_id.clone(),
        parent_run_id: parent_run_id.clone(),
        ..ExportSummary::default()
    };
    for (i, plan) in jobs.iter().enumerate() {
        let found = job_runs.get(plan.job_id.as_str()).copied();
        let (_, outcome) = sync_run(&ctx, found, plan, Some(&parent_run_id)).map_err(|source| {
            MlflowError::Sync {
                what: format!("job {}", plan.job_id),
                source,
            }
        })?;
        summary.count(outcome);
        if (i + 1) % 500 == 0 {
            tracing::info!(done = i + 1, of = jobs.len(), "job runs exported");
        }
    }
    Ok(summary)
}
