//! Requests of `Cancel` and `Retry` into scheduler terms, with their fields
//! checked (INVALID_ARGUMENT naming the field).

use spikecv_common::experiment::job::JobStatus;
use spikecv_common::experiment::plan::JobId;
use spikecv_common::proto as pb;
use tonic::Status;

use crate::scheduler::CancelTarget;

/// Longest id, name or label a control request may carry.
pub const MAX_KEY_BYTES: usize = 1024;

fn key(field: &str, value: String) -> Result<Option<String>, Status> {
    if value.len() > MAX_KEY_BYTES {
        return Err(Status::invalid_argument(format!(
            "{field}: {} bytes, at most {MAX_KEY_BYTES}",
            value.len()
        )));
    }
    spikecv_common::names::check_no_control(&value)
        .map_err(|m| Status::invalid_argument(format!("{field}: {m}")))?;
    Ok((!value.is_empty()).then_some(value))
}

/// What a `CancelRequest` names: a job, or an experiment (and configuration).
pub fn cancel_target_from_proto(r: pb::CancelRequest) -> Result<CancelTarget, Status> {
    let job = key("job_id", r.job_id)?;
    let experiment = key("experiment", r.experiment)?;
    let configuration = key("configuration", r.configuration)?;
    match (job, experiment, configuration) {
        (Some(job), None, None) => Ok(CancelTarget::Job(JobId::new(job))),
        (None, Some(experiment), configuration) => Ok(CancelTarget::Experiment {
            experiment,
            configuration,
        }),
        (Some(_), _, _) => Err(Status::invalid_argument(
            "job_id: give a job, or an experiment (and configuration), not both",
        )),
        (None, None, Some(_)) => Err(Status::invalid_argument(
            "configuration: needs the experiment it belongs to",
        )),
        (None, None, None) => Err(Status::invalid_argument(
            "job_id or experiment: nothing to cancel was named",
        )),
    }
}

/// The experiment and the states a `RetryRequest` puts back in the queue.
pub fn retry_from_proto(r: pb::RetryRequest) -> Result<(String, Vec<JobStatus>), Status> {
    let experiment = key("experiment", r.experiment)?
        .ok_or_else(|| Status::invalid_argument("experiment: required"))?;
    let states: Vec<JobStatus> = [
        (r.failed, JobStatus::Failed),
        (r.cancelled, JobStatus::Cancelled),
        (r.pruned, JobStatus::Pruned),
    ]
    .into_iter()
    .filter_map(|(asked, state)| asked.then_some(state))
    .collect();
    if states.is_empty() {
        return Err(Status::invalid_argument(
            "failed, cancelled or pruned: say which jobs to put back in the queue",
        ));
    }
    Ok((experiment, states))
}
