//! Deterministic replay, the lease side (docs/semantics.md, "Verified
//! results"): which succeeded jobs are replayed, which worker may replay
//! one, and what a run's credentials are.
//!
//! - **Sampling.** An experiment with `[protocol] verify` keeps a random
//!   secret in the store; a job of it is replayed when
//!   [`spikecv_common::experiment::verify::sampled`] says so for that secret
//!   and its id. The decision is taken when the original succeeds (or, for a
//!   job reused from an earlier experiment, when the verifying experiment is
//!   submitted); every run of the job is recorded (`job_runs`).
//! - **Who replays.** A worker whose id and credential differ from those of
//!   every earlier run of the job (a worker on the shared token counts as the
//!   one credential `shared`; a run resumed from another worker's checkpoint
//!   counts that worker's too), that is not suspect and has the job's data.
//!   A slot whose registered manifest, with the job's switches and data,
//!   agrees bit for bit with the original's gets it at once; any other slot
//!   once the run has been wanted for [`DEFAULT_REPLAY_WAIT_SECONDS`] (the
//!   comparison is then within the tolerance).
//! - **Training scripts** (docs/trainers.md): a script's result is replayed
//!   only when the worker that produced it declares the script
//!   deterministic (else it stays unverified at once), and only by a worker
//!   that declares the same script (same SHA-256) deterministic.
//! - **The replay** trains from epoch 0 (no checkpoint is handed out, and its
//!   config writes none); its attempt does not count against the job's
//!   `max_attempts` and never changes the job's state or figures until the
//!   comparison decides ([`super::replay_ops`]).

use rusqlite::Connection;
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::manifest::Provenance;
use spikecv_common::experiment::plan::JobId;
use spikecv_common::experiment::sections::DEFAULT_EPOCH_TIMEOUT_S;
use spikecv_common::experiment::trainer::TrainerInfo;
use spikecv_common::experiment::verify::sampled;

use super::SchedulerError;
use super::types::{Assignment, AttemptId, SlotInfo, WorkerId};
use crate::states::VerifyState;
use crate::store::jobs::{self, JobRow};
use crate::store::verify_rows::{self, RunRecord};
use crate::store::worker_rows::{self, WorkerRow};
use crate::store::{credential_rows, lease_writes};

type Result<T> = std::result::Result<T, SchedulerError>;

/// How long a wanted run waits for a slot whose manifest agrees bit for bit
/// with the original's before any other eligible slot may take it.
pub const DEFAULT_REPLAY_WAIT_SECONDS: u32 = 600;

/// Replays of a job that may fail or be lost before it is left unverified.
pub(super) const MAX_FAILED_REPLAYS: u32 = 5;

/// The credential a worker calls with: its own name, or `shared`.
pub(super) fn credential_of(conn: &Connection, worker: &WorkerId) -> Result<String> {
    Ok(credential_rows::credential(conn, &worker.0)?
        .map_or_else(|| "shared".to_owned(), |c| c.name))
}

/// The credentials a result of `attempt` (run by `worker`) came from: its
/// worker's, and those of the workers whose checkpoints it resumed.
pub(super) fn credentials_of_run(
    conn: &Connection,
    attempt: AttemptId,
    worker: &WorkerId,
) -> Result<Vec<String>> {
    let mut out = vec![credential_of(conn, worker)?];
    let mut at = attempt;
    // A chain of resumes is at most the job's attempts long; bound it anyway.
    for _ in 0..1000 {
        let Some((previous, by)) = verify_rows::resumed_from(conn, at)? else {
            break;
        };
        let c = credential_of(conn, &by)?;
        if !out.contains(&c) {
            out.push(c);
        }
        at = previous;
    }
    Ok(out)
}

/// A random secret for an experiment's sampling rule, as hex.
pub(super) fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// The original run of a succeeded `job`: the one recorded, or (a job that
/// succeeded before it was verified) one made from the job's row and its
/// succeeded attempt, recorded now. `None` when the job has no result.
pub(super) fn original_run(conn: &Connection, job: &JobRow) -> Result<Option<RunRecord>> {
    let runs = verify_rows::runs_of(conn, job.id.as_str())?;
    if let Some(first) = runs.into_iter().find(|r| !r.replay) {
        return Ok(Some(first));
    }
    let (Some(text), Some(attempt)) = (
        job.result_json.as_deref(),
        verify_rows::succeeded_attempt(conn, &job.id)?,
    ) else {
        return Ok(None);
    };
    let Ok(result) = serde_json::from_str(text) else {
        return Ok(None);
    };
    let (attempt, worker, finished_ms) = attempt;
    let run = RunRecord {
        attempt,
        job: job.id.as_str().to_owned(),
        worker_name: verify_rows::worker_name(conn, &worker)?.unwrap_or_else(|| worker.0.clone()),
        credentials: credentials_of_run(conn, attempt, &worker)?,
        worker,
        replay: false,
        result,
        provenance: verify_rows::job_provenance(conn, &job.id)?,
        comparisons: Vec::new(),
        finished_ms,
    };
    verify_rows::insert_run(conn, &run)?;
    Ok(Some(run))
}

/// After `job` succeeded (or was found succeeded by a verifying
/// experiment): records its original run and, when the keyed rule samples
/// it, wants a replay. A job with a verification state keeps it.
pub(super) fn sample_succeeded(conn: &Connection, job: &JobId, now: i64) -> Result<()> {
    let v = verify_rows::job_verify(conn, job)?;
    let Some(fraction) = v.fraction else {
        return Ok(());
    };
    if v.state.is_some() {
        return Ok(());
    }
    let Some(row) = jobs::job(conn, job)? else {
        return Ok(());
    };
    let Some(original) = original_run(conn, &row)? else {
        return Ok(());
    };
    if let Some(name) = script_trainer(&row) {
        let declared = worker_rows::worker(conn, &original.worker)?
            .is_some_and(|w| w.trainers.iter().any(|t| t.name == name && t.deterministic));
        if !declared {
            verify_rows::set_state(conn, job, Some(VerifyState::Unverified), now)?;
            tracing::warn!(job = %job, trainer = %name, "not replayed: its worker does not declare the trainer deterministic (docs/trainers.md); the result stays unverified");
            return Ok(());
        }
    }
    let Some(secret) = verify_rows::secret_for_job(conn, job)? else {
        return Ok(());
    };
    if sampled(secret.as_bytes(), job.as_str(), fraction) {
        verify_rows::set_state(conn, job, Some(VerifyState::Wanted), now)?;
        tracing::info!(job = %job, "result sampled for replay");
    }
    Ok(())
}

/// The training script `job` runs (its config's `[trainer]`), `None` for the
/// native engine.
fn script_trainer(job: &JobRow) -> Option<String> {
    ExperimentConfig::from_toml_str(&job.config_toml)
        .ok()
        .and_then(|c| c.trainer)
        .filter(|t| !t.is_native())
        .map(|t| t.name)
}

/// Whether worker `w` can replay `job`: always for a native job; for a
/// script's, when `w` registered the trainer deterministic with the script
/// the original ran (when the original said), given back as `Some`.
fn replaying_trainer<'w>(
    w: &'w WorkerRow,
    job: &JobRow,
    original: Option<&Provenance>,
) -> Option<Option<&'w TrainerInfo>> {
    let Some(name) = script_trainer(job) else {
        return Some(None);
    };
    let sha = original.and_then(|p| p.manifest.trainer_sha256.as_deref());
    w.trainers
        .iter()
        .find(|t| t.name == name && t.deterministic && sha.is_none_or(|s| s == t.script_sha256))
        .map(Some)
}

/// Whether a run of `job` on `worker` (credential `credential`) would be
/// one of a credential and worker the job has not run on.
fn is_fresh(runs: &[RunRecord], worker: &WorkerId, credential: &str) -> bool {
    runs.iter()
        .all(|r| r.worker != *worker && !r.credentials.iter().any(|c| c == credential))
}

/// Whether `slot` (running `trainer`, when the job is a script's) would
/// compute the original's bits.
fn slot_agrees(
    slot: Option<&SlotInfo>,
    trainer: Option<&TrainerInfo>,
    original: Option<&Provenance>,
) -> bool {
    let (Some(m), Some(p)) = (slot.and_then(|s| s.manifest.as_ref()), original) else {
        return false;
    };
    let mut here = m.for_job(p.manifest.switches, &p.manifest.data_fingerprint);
    if let Some(t) = trainer {
        here.trainer = Some(t.name.clone());
        here.trainer_sha256 = Some(t.script_sha256.clone());
    }
    here.bitwise_with(&p.manifest)
}

/// The wanted run `worker`'s slot `device` may take now, if any.
pub(super) fn replay_for(
    conn: &Connection,
    w: &WorkerRow,
    device: &str,
    now: i64,
    wait_ms: i64,
) -> Result<Option<JobRow>> {
    let wanted = verify_rows::wanted_runs(conn, &w.data_fingerprint)?;
    if wanted.is_empty() {
        return Ok(None);
    }
    let credential = credential_of(conn, &w.id)?;
    let slot = w.slots.iter().find(|s| s.device == device);
    for (job, _, since) in wanted {
        let runs = verify_rows::runs_of(conn, job.as_str())?;
        if !is_fresh(&runs, &w.id, &credential) {
            continue;
        }
        let original = runs.iter().find(|r| !r.replay);
        let provenance = original.and_then(|r| r.provenance.as_ref());
        let Some(row) = jobs::job(conn, &job)? else {
            continue;
        };
        let Some(trainer) = replaying_trainer(w, &row, provenance) else {
            continue;
        };
        let bitwise = slot_agrees(slot, trainer, provenance);
        if bitwise || now - since >= wait_ms {
            return Ok(Some(row));
        }
    }
    Ok(None)
}

/// The config text a replay trains with: the job's, writing no checkpoints
/// (a replay trains from epoch 0 to the end in one attempt).
fn replay_config(job: &JobRow) -> String {
    match ExperimentConfig::from_toml_str(&job.config_toml) {
        Ok(mut c) => {
            c.training.checkpoint_every = 0;
            c.to_toml_string()
        }
        Err(_) => job.config_toml.clone(),
    }
}

/// Opens a replay attempt of `job` on `worker`'s `device`.
pub(super) fn lease_replay(
    conn: &Connection,
    job: JobRow,
    worker: &WorkerId,
    device: &str,
    now: i64,
    deadline: i64,
) -> Result<Assignment> {
    let timeout_s = job.epoch_timeout_s.unwrap_or(DEFAULT_EPOCH_TIMEOUT_S);
    let attempt = lease_writes::insert_attempt(
        conn,
        &job.id,
        worker,
        device,
        now,
        deadline,
        i64::from(timeout_s) * 1000,
    )?;
    verify_rows::mark_replay(conn, attempt)?;
    tracing::info!(job = %job.id, %attempt, worker = %worker, device = %device, "replay leased");
    Ok(Assignment {
        attempt,
        config_toml: replay_config(&job),
        variant: job.variant,
        seed: job.seed,
        fold: job.fold,
        protocol: job.protocol,
        job: job.id,
        experiment: job.experiment,
        device: device.to_owned(),
        deadline_ms: deadline,
        split: job.split,
        checkpoint_epoch: None,
    })
}
