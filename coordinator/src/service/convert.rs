//! Conversions between the protobuf messages and the scheduler's types, done at
//! the edge so the scheduler never sees a prost type.

use spikecv_common::experiment::manifest::{Manifest, Provenance};
use spikecv_common::proto as pb;
use spikecv_common::proto::limits::{
    MAX_DEVICE_BYTES, MAX_FINGERPRINT_BYTES, MAX_FREE_SLOTS, MAX_ID_BYTES, MAX_NAME_BYTES,
    MAX_RUNNING, MAX_SLOTS,
};
use spikecv_common::proto::trainer::trainers_from_proto;
use tonic::Status;

use crate::scheduler::{
    Assignment, AttemptId, Credentials, Progress, SlotInfo, StatusSnapshot, WorkerId,
    WorkerRegistration, WorkerSecret,
};

/// `Ok` when `value` is at most `max` bytes long; else INVALID_ARGUMENT naming `field`.
pub fn check_len(field: &str, value: &str, max: usize) -> Result<(), Status> {
    if value.len() > max {
        return Err(Status::invalid_argument(format!(
            "{field} is {} bytes long; the limit is {max}",
            value.len()
        )));
    }
    Ok(())
}

/// [`check_len`], and no control characters (names and ids reach terminals,
/// CSV and Markdown); else INVALID_ARGUMENT naming `field`.
pub fn check_name(field: &str, value: &str, max: usize) -> Result<(), Status> {
    check_len(field, value, max)?;
    spikecv_common::names::check_no_control(value)
        .map_err(|m| Status::invalid_argument(format!("{field}: {m}")))
}

/// `Ok` when `items` has at most `max` entries; else INVALID_ARGUMENT naming `field`.
fn check_count<T>(field: &str, items: &[T], max: usize) -> Result<(), Status> {
    if items.len() > max {
        return Err(Status::invalid_argument(format!(
            "{field} has {} entries; the limit is {max}",
            items.len()
        )));
    }
    Ok(())
}

/// The credentials an attempt call carries (`call` names it in the error).
pub fn credentials_from_proto(
    call: &str,
    c: Option<&pb::WorkerCredentials>,
) -> Result<Credentials, Status> {
    let c = c.ok_or_else(|| {
        Status::invalid_argument(format!("{call}: worker credentials are missing"))
    })?;
    check_name("worker.worker_id", &c.worker_id, MAX_ID_BYTES)?;
    check_name("worker.secret", &c.secret, MAX_ID_BYTES)?;
    Ok(Credentials {
        worker: WorkerId(c.worker_id.clone()),
        secret: WorkerSecret::presented(&c.secret),
    })
}

/// The id and secret a lease or heartbeat carries; `None` when the id is empty
/// (a worker that has not registered: the call registers it).
pub fn worker_from_proto(id: &str, secret: &str) -> Result<Option<Credentials>, Status> {
    check_name("worker_id", id, MAX_ID_BYTES)?;
    check_name("worker_secret", secret, MAX_ID_BYTES)?;
    Ok((!id.is_empty()).then(|| Credentials {
        worker: WorkerId(id.to_owned()),
        secret: WorkerSecret::presented(secret),
    }))
}

/// The free slots of a lease request, after their length limits.
pub fn free_slots_from_proto(free: Vec<String>) -> Result<Vec<String>, Status> {
    check_count("free_slots", &free, MAX_FREE_SLOTS)?;
    for d in &free {
        check_name("free_slots[]", d, MAX_DEVICE_BYTES)?;
    }
    Ok(free)
}

/// The worker's registration, after checking its protocol version and the
/// length limits of its strings.
pub fn registration_from_proto(r: &pb::RegisterRequest) -> Result<WorkerRegistration, Status> {
    check_name("registration.worker_name", &r.worker_name, MAX_NAME_BYTES)?;
    check_name("registration.host", &r.host, MAX_NAME_BYTES)?;
    check_name(
        "registration.data_fingerprint",
        &r.data_fingerprint,
        MAX_FINGERPRINT_BYTES,
    )?;
    check_count("registration.slots", &r.slots, MAX_SLOTS)?;
    for slot in &r.slots {
        check_name(
            "registration.slots[].device",
            &slot.device,
            MAX_DEVICE_BYTES,
        )?;
        check_name(
            "registration.slots[].device_name",
            &slot.device_name,
            MAX_NAME_BYTES,
        )?;
    }
    if r.protocol_version != pb::PROTOCOL_VERSION {
        return Err(Status::failed_precondition(format!(
            "worker {:?} speaks protocol version {}, this coordinator speaks {}",
            r.worker_name,
            r.protocol_version,
            pb::PROTOCOL_VERSION
        )));
    }
    if r.worker_name.trim().is_empty() {
        return Err(Status::invalid_argument(
            "registration: worker_name is empty",
        ));
    }
    let trainers = trainers_from_proto(&r.trainers)
        .map_err(|m| Status::invalid_argument(format!("registration.trainers: {m}")))?;
    Ok(WorkerRegistration {
        trainers,
        name: r.worker_name.clone(),
        host: r.host.clone(),
        slots: r
            .slots
            .iter()
            .map(|s| {
                Ok(SlotInfo {
                    device: s.device.clone(),
                    device_name: s.device_name.clone(),
                    memory_bytes: s.memory_bytes,
                    manifest: manifest_from_proto(
                        "registration.slots[].manifest",
                        s.manifest.as_ref(),
                    )?,
                })
            })
            .collect::<Result<_, Status>>()?,
        data_fingerprint: r.data_fingerprint.clone(),
    })
}

/// A manifest as sent (`None` when absent); every text field at most
/// [`MAX_NAME_BYTES`] long without control characters, else INVALID_ARGUMENT
/// naming `field` and the manifest's field.
pub fn manifest_from_proto(
    field: &str,
    m: Option<&pb::Manifest>,
) -> Result<Option<Manifest>, Status> {
    let Some(m) = m else {
        return Ok(None);
    };
    let manifest = Manifest::from_proto(m);
    for (name, value) in manifest.fields() {
        check_name(&format!("{field}.{name}"), &value, MAX_NAME_BYTES)?;
    }
    Ok(Some(manifest))
}

/// A Complete's provenance: its manifest and the final weights' hash (empty,
/// or 64 lowercase hex digits); `None` from a worker that sent no manifest.
pub fn provenance_from_proto(r: &pb::CompleteRequest) -> Result<Option<Provenance>, Status> {
    let hash = &r.weights_sha256;
    let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
    if !hash.is_empty() && (hash.len() != 64 || !hash.chars().all(hex)) {
        return Err(Status::invalid_argument(
            "Complete: weights_sha256 is not 64 lowercase hex digits",
        ));
    }
    Ok(
        manifest_from_proto("Complete: manifest", r.manifest.as_ref())?.map(|manifest| {
            Provenance {
                manifest,
                weights_sha256: hash.clone(),
            }
        }),
    )
}

/// The registration a lease or heartbeat must carry.
pub fn required_registration(
    r: Option<&pb::RegisterRequest>,
) -> Result<WorkerRegistration, Status> {
    registration_from_proto(r.ok_or_else(|| Status::invalid_argument("registration is missing"))?)
}

/// An attempt id as sent by a worker.
pub fn attempt_from_proto(s: &str) -> Result<AttemptId, Status> {
    check_name("attempt_id", s, MAX_ID_BYTES)?;
    s.parse()
        .map_err(|_| Status::invalid_argument(format!("attempt id {s:?} is not a number")))
}

/// Progress reports of running attempts.
pub fn progress_from_proto(p: &[pb::AttemptProgress]) -> Result<Vec<Progress>, Status> {
    check_count("running", p, MAX_RUNNING)?;
    p.iter()
        .map(|a| {
            Ok(Progress {
                attempt: attempt_from_proto(&a.attempt_id)?,
                epoch: a.epoch,
                of: a.epochs,
            })
        })
        .collect()
}

/// A job handed to a worker.
pub fn assignment_to_proto(a: &Assignment) -> pb::Assignment {
    pb::Assignment {
        attempt_id: a.attempt.to_string(),
        job_id: a.job.as_str().to_owned(),
        experiment_id: a.experiment.0.clone(),
        config_toml: a.config_toml.clone(),
        variant: a.variant.as_str().to_owned(),
        seed: a.seed,
        fold: a.fold,
        split: Some(pb::Split {
            train: a.split.train.clone(),
            val: a.split.val.clone(),
            test: a.split.test.clone(),
        }),
        has_checkpoint: a.has_checkpoint(),
        device: a.device.clone(),
        protocol: a.protocol.as_str().to_owned(),
    }
}

/// The status screen's data.
pub fn status_to_proto(s: &StatusSnapshot) -> pb::StatusResponse {
    let c = &s.counts;
    let jobs = c
        .by_state()
        .into_iter()
        .map(|(state, n)| pb::JobCount {
            state: state.to_owned(),
            count: u64::from(n),
        })
        .collect();
    let workers = s
        .workers
        .iter()
        .map(|w| pb::WorkerSummary {
            worker_id: w.id.0.clone(),
            name: w.name.clone(),
            host: w.host.clone(),
            state: w.state.as_str().to_owned(),
            slots: u32::try_from(w.slots.len()).unwrap_or(u32::MAX),
            running: u32::try_from(w.running.len()).unwrap_or(u32::MAX),
            last_seen_seconds: (s.now_ms - w.last_seen_ms).max(0) as f64 / 1000.0,
            suspect: w.suspect.clone().unwrap_or_default(),
        })
        .collect();
    pb::StatusResponse {
        jobs,
        workers,
        jobs_per_hour: f64::from(s.succeeded_last_hour),
        eta_seconds: s.eta_seconds,
        total_jobs: u64::from(c.total()),
        waiting_for_trainers: s
            .waiting_for_trainers
            .iter()
            .map(|(trainer, jobs)| pb::TrainerWait {
                trainer: trainer.clone(),
                jobs: *jobs,
            })
            .collect(),
    }
}
