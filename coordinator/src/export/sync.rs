//! Brings one MLflow run up to date with its [`RunPlan`], sending only what
//! differs from what the run already holds, so that exporting again changes
//! nothing that has not changed:
//!
//! - params are logged once (MLflow refuses a changed value; a job's params
//!   follow from its identity, so a difference is reported as an error);
//! - tags are set when their value differs;
//! - summary metrics (step 0) are logged again only when their latest value
//!   differs;
//! - epochs are appended: the run's tags record how many epochs were exported
//!   and a SHA-256 of them; when the job's epochs no longer start with those
//!   (it was retried from epoch 0), the run is deleted and written again, so
//!   a run's history never mixes two attempts;
//! - artifacts are uploaded when their SHA-256 differs from the one recorded.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use spikecv_common::experiment::job::EpochMetrics;

use super::payload::{
    EXPERIMENT_TAG, JOB_TAG, MAX_TAG_BYTES, PARENT_TAG, Point, ROLE_TAG, RunPlan, clip,
    epoch_points,
};
use super::rest::{Client, RestError};

/// Tag: how many epochs the run holds.
pub const EPOCHS_TAG: &str = "spikecv.epochs_exported";
/// Tag: SHA-256 of those epochs' metrics as JSON.
pub const DIGEST_TAG: &str = "spikecv.epochs_digest";

/// MLflow's limits on one `runs/log-batch` request.
const BATCH_ITEMS: usize = 1000;
const BATCH_PARAMS: usize = 100;
const BATCH_TAGS: usize = 100;

/// A run as the tracking server holds it (from `runs/search` or `runs/create`).
#[derive(Debug, Clone, Default)]
pub struct Existing {
    /// Run id.
    pub id: String,
    /// MLflow status.
    pub status: String,
    /// End time (Unix ms), if set.
    pub end_ms: Option<i64>,
    /// Where its artifacts go.
    pub artifact_uri: String,
    /// Params by key.
    pub params: BTreeMap<String, String>,
    /// Tags by key.
    pub tags: BTreeMap<String, String>,
    /// Latest value of each metric.
    pub metrics: BTreeMap<String, f64>,
}

impl Existing {
    /// Reads a run object (`{"info": ..., "data": ...}`) of MLflow's API.
    pub fn from_json(run: &Value) -> Option<Self> {
        let info = run.get("info")?;
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let pairs = |k: &str| -> BTreeMap<String, String> {
            run.pointer(&format!("/data/{k}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| Some((text(p, "key")?, text(p, "value")?)))
                .collect()
        };
        let metrics = run
            .pointer("/data/metrics")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| Some((text(m, "key")?, m.get("value")?.as_f64()?)))
            .collect();
        Some(Self {
            id: text(info, "run_id").or_else(|| text(info, "run_uuid"))?,
            status: text(info, "status").unwrap_or_default(),
            end_ms: info.get("end_time").and_then(Value::as_i64),
            artifact_uri: text(info, "artifact_uri").unwrap_or_default(),
            params: pairs("params"),
            tags: pairs("tags"),
            metrics,
        })
    }
}

/// What an export did to one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The run did not exist.
    Created,
    /// The run existed and something was sent.
    Updated,
    /// The run already held everything.
    Unchanged,
    /// The run's epochs were rewritten (a retried job): deleted and created again.
    Replaced,
}

/// Why a run could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A call failed.
    #[error(transparent)]
    Rest(#[from] RestError),
    /// The run already has a param with another value (MLflow params are immutable).
    #[error(
        "MLflow run {run} already has param {key} = {logged:?}, the export has {now:?}; params cannot change (delete the run in MLflow to export it again)"
    )]
    ParamConflict {
        /// The run.
        run: String,
        /// The param.
        key: String,
        /// The value MLflow holds.
        logged: String,
        /// The value the export would log.
        now: String,
    },
    /// `runs/create` answered without a run.
    #[error("MLflow runs/create answered without a run id")]
    NoRunCreated,
}

/// Where the runs go and what they belong to.
#[derive(Debug)]
pub struct Context<'a> {
    /// The tracking server.
    pub client: &'a Client,
    /// MLflow experiment id.
    pub experiment_id: &'a str,
    /// spikecv experiment id (the [`EXPERIMENT_TAG`]).
    pub spikecv_experiment: &'a str,
    /// Timestamp of the metrics logged now (Unix ms).
    pub now_ms: i64,
}

/// SHA-256 (hex) of epochs as JSON.
pub fn epochs_digest(epochs: &[EpochMetrics]) -> String {
    hex::encode(Sha256::digest(
        serde_json::to_vec(epochs).unwrap_or_default(),
    ))
}

/// How many of `plan`'s epochs `run` already holds, or `None` when the run's
/// epochs are not a prefix of the plan's.
fn epochs_held(run: &Existing, plan: &RunPlan) -> Option<usize> {
    let n = match run.tags.get(EPOCHS_TAG) {
        None => 0,
        Some(v) => v.parse().ok()?,
    };
    let held = plan.epochs.get(..n)?;
    match run.tags.get(DIGEST_TAG) {
        None if n == 0 => Some(0),
        Some(d) if *d == epochs_digest(held) => Some(n),
        _ => None,
    }
}

/// The tags that identify a run as the plan's.
fn identity_tags(ctx: &Context<'_>, plan: &RunPlan, parent: Option<&str>) -> Vec<(String, String)> {
    let mut tags = vec![
        (ROLE_TAG.to_owned(), plan.role.to_owned()),
        (EXPERIMENT_TAG.to_owned(), ctx.spikecv_experiment.to_owned()),
        ("mlflow.runName".to_owned(), plan.name.clone()),
    ];
    if !plan.job_id.is_empty() {
        tags.push((JOB_TAG.to_owned(), plan.job_id.clone()));
    }
    if let Some(p) = parent {
        tags.push((PARENT_TAG.to_owned(), p.to_owned()));
    }
    tags
}

fn create(ctx: &Context<'_>, plan: &RunPlan, parent: Option<&str>) -> Result<Existing, SyncError> {
    let tags: Vec<Value> = identity_tags(ctx, plan, parent)
        .into_iter()
        .map(|(key, value)| json!({"key": key, "value": value}))
        .collect();
    let answer: Value = ctx.client.post(
        "runs/create",
        &json!({
            "experiment_id": ctx.experiment_id,
            "run_name": plan.name,
            "start_time": plan.start_ms,
            "tags": tags,
        }),
    )?;
    let run = answer
        .get("run")
        .and_then(Existing::from_json)
        .ok_or(SyncError::NoRunCreated)?;
    Ok(run)
}

/// Brings the run `found` (or a new one) up to date with `plan`, as a child of
/// `parent` when given; returns the run id and what was done.
pub fn sync_run(
    ctx: &Context<'_>,
    found: Option<&Existing>,
    plan: &RunPlan,
    parent: Option<&str>,
) -> Result<(String, Outcome), SyncError> {
    let (run, mut outcome) = match found {
        Some(run) if epochs_held(run, plan).is_some() => (run.clone(), Outcome::Unchanged),
        Some(old) => {
            tracing::info!(run = %old.id, job = %plan.job_id, "the job's epochs were rewritten (retried); its MLflow run is replaced");
            let _: Value = ctx.client.post("runs/delete", &json!({"run_id": old.id}))?;
            (create(ctx, plan, parent)?, Outcome::Replaced)
        }
        None => (create(ctx, plan, parent)?, Outcome::Created),
    };
    let held = epochs_held(&run, plan).unwrap_or(0);

    let mut params = Vec::new();
    for (key, value) in &plan.params {
        match run.params.get(key) {
            Some(logged) if logged == value => {}
            Some(logged) => {
                return Err(SyncError::ParamConflict {
                    run: run.id.clone(),
                    key: key.clone(),
                    logged: logged.clone(),
                    now: value.clone(),
                });
            }
            None => params.push((key.clone(), value.clone())),
        }
    }

    let mut metrics: Vec<Point> = plan
        .summary
        .iter()
        .filter(|p| run.metrics.get(&p.key) != Some(&p.value))
        .cloned()
        .collect();
    metrics.extend(plan.epochs[held..].iter().flat_map(epoch_points));

    let mut desired: BTreeMap<String, String> = plan.tags.clone();
    desired.extend(identity_tags(ctx, plan, parent));
    desired.insert(EPOCHS_TAG.into(), plan.epochs.len().to_string());
    desired.insert(DIGEST_TAG.into(), epochs_digest(&plan.epochs));
    for (name, bytes) in &plan.artifacts {
        let key = format!("spikecv.artifact.{}", name.replace('.', "_"));
        let uploaded = format!("uploaded, sha256 {}", hex::encode(Sha256::digest(bytes)));
        if run.tags.get(&key) == Some(&uploaded) {
            continue;
        }
        let value = match proxied_path(&run.artifact_uri) {
            Some(root) => {
                ctx.client.put_artifact(&format!("{root}/{name}"), bytes)?;
                uploaded
            }
            None => clip(
                &format!(
                    "not uploaded: the run's artifact URI {} is not served by the tracking server (run `mlflow server` with --serve-artifacts, the default)",
                    run.artifact_uri
                ),
                MAX_TAG_BYTES,
            ),
        };
        desired.insert(key, value);
    }
    let tags: Vec<(String, String)> = desired
        .into_iter()
        .filter(|(k, v)| run.tags.get(k) != Some(v))
        .collect();

    let mut sent = log_batches(ctx, &run.id, params, metrics, tags)?;
    if run.status != plan.status || (plan.end_ms.is_some() && run.end_ms != plan.end_ms) {
        let mut body = json!({"run_id": run.id, "status": plan.status});
        if let Some(end) = plan.end_ms {
            body["end_time"] = json!(end);
        }
        let _: Value = ctx.client.post("runs/update", &body)?;
        sent = true;
    }
    if sent && outcome == Outcome::Unchanged {
        outcome = Outcome::Updated;
    }
    Ok((run.id, outcome))
}

/// The artifacts proxy's path of an `mlflow-artifacts:` URI
/// (`mlflow-artifacts:/1/<run>/artifacts` or `mlflow-artifacts://host/1/...`),
/// `None` for any other artifact store.
pub fn proxied_path(artifact_uri: &str) -> Option<String> {
    let rest = artifact_uri.strip_prefix("mlflow-artifacts:")?;
    let path = match rest.strip_prefix("//") {
        Some(authority_and_path) => authority_and_path.split_once('/').map_or("", |(_, p)| p),
        None => rest,
    };
    let path = path.trim_matches('/');
    (!path.is_empty()).then(|| path.to_owned())
}

/// Sends params, metrics and tags in `runs/log-batch` requests within
/// MLflow's limits, tags last (so the epoch count is recorded only once the
/// epochs are in); whether anything was sent.
fn log_batches(
    ctx: &Context<'_>,
    run: &str,
    params: Vec<(String, String)>,
    metrics: Vec<Point>,
    tags: Vec<(String, String)>,
) -> Result<bool, SyncError> {
    let pair = |(key, value): (String, String)| json!({"key": key, "value": value});
    let mut params = params.into_iter().map(pair).peekable();
    let mut metrics = metrics
        .into_iter()
        .map(|p| json!({"key": p.key, "value": p.value, "timestamp": ctx.now_ms, "step": p.step}))
        .peekable();
    let mut tags = tags.into_iter().map(pair).peekable();
    let mut sent = false;
    while params.peek().is_some() || metrics.peek().is_some() || tags.peek().is_some() {
        let p: Vec<Value> = params.by_ref().take(BATCH_PARAMS).collect();
        let m: Vec<Value> = metrics.by_ref().take(BATCH_ITEMS - p.len()).collect();
        let t: Vec<Value> = if metrics.peek().is_none() {
            tags.by_ref()
                .take(BATCH_TAGS.min(BATCH_ITEMS - p.len() - m.len()))
                .collect()
        } else {
            Vec::new()
        };
        let _: Value = ctx.client.post(
            "runs/log-batch",
            &json!({"run_id": run, "params": p, "metrics": m, "tags": t}),
        )?;
        sent = true;
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxied_paths() {
        assert_eq!(
            proxied_path("mlflow-artifacts:/1/abc/artifacts").as_deref(),
            Some("1/abc/artifacts")
        );
        assert_eq!(
            proxied_path("mlflow-artifacts://host:5000/1/abc/artifacts").as_deref(),
            Some("1/abc/artifacts")
        );
        assert_eq!(proxied_path("s3://bucket/1/abc/artifacts"), None);
        assert_eq!(proxied_path("/srv/mlruns/1/abc/artifacts"), None);
    }
}
