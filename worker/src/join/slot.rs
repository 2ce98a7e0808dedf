//! One leased attempt in one slot: fetch its checkpoint, train in the slot's
//! process (driven from a dedicated OS thread), stream epochs and checkpoints
//! to the coordinator, then report the outcome (complete, fail, release, or
//! nothing when the lease is gone). A crash of the slot's process or a sticky
//! device error in it costs this attempt only (a transient failure); the
//! slot's next job starts a fresh process.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::cv::FoldSplit;
use spikecv_common::experiment::error::ConfigError;
use spikecv_common::experiment::job::JobResult;
use spikecv_common::proto::limits::{MAX_ERROR_BYTES, truncate};
use spikecv_common::proto::{
    Assignment, CompleteRequest, FailRequest, ReleaseRequest, ReportEpochRequest,
};
use tonic::Status;

use super::child::{ChildError, ChildLaunch, SlotChild};
use super::observer::{PendingCheckpoint, SlotEvent, SlotObserver};
use super::retry::{SERVER_ERROR_TRIES, is_fenced, with_bounded_retry, with_retry};
use super::script::{Runner, ScriptLaunch, runner_of};
use super::state::{AttemptHandle, Shared, StopReason};
use super::transfer;
use crate::devices::DeviceSpec;
use crate::settings::ProcessSettings;
use crate::slot_child::wire::{ChildJob, ChildOutcome};
use crate::train::{JobSpec, checkpoint_path};
use spikecv_common::experiment::manifest::Provenance;

/// Why an assignment could not even start training.
#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error("experiment config sent by the coordinator: {0}")]
    Config(#[from] spikecv_common::experiment::error::ConfigError),
    #[error("assignment field split is missing")]
    NoSplit,
    #[error("cannot prepare job folder {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A claimed slot: freed when dropped, so a job that panics (and unwinds
/// its task) or is aborted cannot leak its slot.
struct SlotGuard {
    shared: Arc<Shared>,
    index: usize,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.shared.free_slot(self.index);
        tracing::debug!(slot = self.index, "slot free");
    }
}

/// Runs an assignment to its end and frees the slot.
pub async fn run(
    shared: Arc<Shared>,
    index: usize,
    device: DeviceSpec,
    a: Assignment,
    handle: Arc<AttemptHandle>,
) {
    let _slot = SlotGuard {
        shared: shared.clone(),
        index,
    };
    tracing::info!(attempt = %a.attempt_id, job = %a.job_id, variant = %a.variant, seed = a.seed, fold = a.fold, %device, resume = a.has_checkpoint, "job leased");
    run_inner(&shared, index, device, a, &handle).await;
}

/// Hands back an assignment this worker cannot run.
pub fn release_unstarted(shared: Arc<Shared>, attempt_id: String) {
    tokio::spawn(async move {
        let _ = report_release(&shared, &attempt_id).await;
    });
}

async fn run_inner(
    shared: &Arc<Shared>,
    index: usize,
    device: DeviceSpec,
    a: Assignment,
    handle: &Arc<AttemptHandle>,
) {
    let attempt = a.attempt_id.clone();
    let spec = match prepare(shared, device, &a) {
        Ok(spec) => spec,
        Err(e) => {
            report_fail(shared, &attempt, &e.to_string(), true).await;
            return;
        }
    };
    let runner = runner_of(shared, &spec);
    if let Runner::Missing(name) = &runner {
        tracing::warn!(attempt = %attempt, job = %a.job_id, trainer = %name, "the job's experiment names a trainer this worker was not started with (the coordinator should not have leased it); handing it back");
        let _ = report_release(shared, &attempt).await;
        return;
    }
    let ckpt = checkpoint_path(&spec.out_dir);
    if a.has_checkpoint && !fetch_checkpoint(shared, &attempt, &a.job_id, &ckpt).await {
        return;
    }

    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let pending: Arc<Mutex<Option<PendingCheckpoint>>> = Arc::default();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let observer = SlotObserver::new(handle.clone(), tx, pending.clone());
    let job = ChildJob {
        config_toml: a.config_toml.clone(),
        variant: a.variant.clone(),
        seed: spec.seed,
        fold: spec.fold,
        split: spec.split.clone(),
        out_dir: spec.out_dir.clone(),
        data_dir: shared.config.data_dir.clone(),
        data_fingerprint: shared.registration.data_fingerprint.clone(),
    };
    let place = ChildPlace {
        launch: shared.child_launch(),
        device,
        share: shared.slots_on(device),
        settings: ProcessSettings::of(&spec.config.training),
    };
    let builder = std::thread::Builder::new().name(format!("train-{attempt}"));
    let thread = if let Runner::Script(trainer) = runner {
        // A script runs beside the slot's process, which stays for the
        // slot's next native job.
        let launch = ScriptLaunch::new(shared, index, *trainer, spec, &a.job_id, &attempt);
        builder.spawn(move || {
            let mut observer = observer;
            let _ = done_tx.send((Ok(launch.run(&mut observer)), None));
        })
    } else {
        let old = shared.take_child(index);
        builder.spawn(move || {
            let mut observer = observer;
            let _ = done_tx.send(run_in_child(old, &place, job, &mut observer));
        })
    };
    if let Err(e) = thread {
        report_fail(
            shared,
            &attempt,
            &format!("cannot start training thread: {e}"),
            false,
        )
        .await;
        return;
    }

    let fenced = forward_events(shared, &attempt, handle, rx, &pending).await;
    let (outcome, child) = match done_rx.await {
        Ok(r) => r,
        Err(_) => {
            report_fail(shared, &attempt, "training thread panicked", false).await;
            return;
        }
    };
    if let Some(child) = child {
        shared.put_child(index, child);
    }
    if fenced || handle.stop_reason() == StopReason::Drop {
        return;
    }
    report_outcome(shared, &attempt, index, device, &ckpt, outcome).await;
}

/// Reports how an attempt ended (a crash or a sticky error: a transient
/// failure; the slot's next job starts a fresh process).
async fn report_outcome(
    shared: &Arc<Shared>,
    attempt: &str,
    index: usize,
    device: DeviceSpec,
    ckpt: &Path,
    outcome: Result<ChildOutcome, ChildError>,
) {
    match outcome {
        Ok(ChildOutcome::Complete { result, provenance }) => {
            report_complete(shared, attempt, &result, &provenance, device).await;
            // The weights and metrics stay; the resume checkpoint (weights,
            // optimiser state and best copy, ~150 MB for the reference model) is
            // of no further use once the result is in.
            if let Err(e) = std::fs::remove_file(ckpt)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %ckpt.display(), error = %e, "cannot remove a finished job's checkpoint");
            }
        }
        Ok(ChildOutcome::Stopped { epoch }) => {
            tracing::info!(attempt = %attempt, epoch, "stopped; handing the job back");
            let _ = report_release(shared, attempt).await;
        }
        Ok(ChildOutcome::Failed {
            message,
            deterministic,
            sticky,
        }) => {
            if sticky {
                tracing::warn!(attempt = %attempt, slot = index, "a sticky device error ended the slot's process; the next job starts a fresh one");
            }
            report_fail(shared, attempt, &message, deterministic && !sticky).await;
        }
        // A crash costs this attempt only: a transient failure, and a
        // fresh process for the slot's next job.
        Err(e) => {
            tracing::warn!(attempt = %attempt, slot = index, error = %e, "the slot's process failed; the next job starts a fresh one");
            report_fail(shared, attempt, &format!("training process: {e}"), false).await;
        }
    }
}

/// Downloads the attempt's checkpoint to `ckpt`; `false` when the job is
/// over already (dropped, or reported as failed).
async fn fetch_checkpoint(shared: &Arc<Shared>, attempt: &str, job_id: &str, ckpt: &Path) -> bool {
    let limit = shared.config.checkpoint_download_timeout;
    let mut tries = 0;
    let got = loop {
        let r = call(shared, "DownloadCheckpoint", |mut c| {
            let (attempt, ckpt) = (attempt.to_owned(), ckpt.to_path_buf());
            let who = shared.credentials();
            async move { transfer::download(&mut c, who, &attempt, &ckpt, limit).await }
        })
        .await;
        match r {
            // A torn transfer: try again a few times.
            Err(s) if s.code() == tonic::Code::DataLoss && tries < 3 => tries += 1,
            other => break other,
        }
    };
    match resume_plan(&got) {
        Resume::FromCheckpoint => {
            tracing::info!(attempt = %attempt, job = %job_id, detail = %reason(&got), "checkpoint downloaded")
        }
        Resume::DropJob => {
            tracing::info!(attempt = %attempt, reason = %reason(&got), "lease gone before start; dropping the job");
            return false;
        }
        // The coordinator's copy is gone, damaged, too big or too slow to
        // come: a checkpoint only saves time (training is deterministic),
        // so start from epoch 0.
        Resume::FromEpochZero => {
            tracing::warn!(attempt = %attempt, job = %job_id, reason = %reason(&got), "checkpoint unusable; training from epoch 0");
            if let Err(e) = std::fs::remove_file(ckpt)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                report_fail(
                    shared,
                    attempt,
                    &format!("removing {}: {e}", ckpt.display()),
                    false,
                )
                .await;
                return false;
            }
        }
        Resume::Fail => {
            report_fail(
                shared,
                attempt,
                &format!("checkpoint download: {}", reason(&got)),
                false,
            )
            .await;
            return false;
        }
    }
    true
}

/// Forwards a training thread's events to the coordinator until the thread
/// drops its sender (it has finished); `true` when the lease was given away.
async fn forward_events(
    shared: &Arc<Shared>,
    attempt: &str,
    handle: &Arc<AttemptHandle>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<SlotEvent>,
    pending: &Mutex<Option<PendingCheckpoint>>,
) -> bool {
    let mut fenced = false;
    // The last epoch this attempt has reported.
    let mut reported = 0;
    while let Some(event) = rx.recv().await {
        if fenced || handle.stop_reason() == StopReason::Drop {
            continue;
        }
        let r = match event {
            SlotEvent::Epoch(m) => {
                reported = reported.max(m.epoch);
                let request = ReportEpochRequest {
                    attempt_id: attempt.to_owned(),
                    metrics: Some(m.to_proto()),
                    worker: Some(shared.credentials()),
                };
                call(shared, "ReportEpoch", |mut c| {
                    let request = request.clone();
                    async move { c.report_epoch(request).await.map(|r| r.into_inner().cancel) }
                })
                .await
                .map(|cancel| {
                    if cancel {
                        handle.request_stop(StopReason::Drop);
                    }
                })
            }
            SlotEvent::Checkpoint => {
                // The coordinator takes a checkpoint only after its epoch's
                // report: a newer one that overtook its epoch (a script's
                // lines come at once) waits for the Checkpoint event sent
                // after that epoch.
                let latest = {
                    let mut slot = pending
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    match slot.as_ref() {
                        Some(c) if c.epoch > reported => None,
                        _ => slot.take(),
                    }
                };
                match latest {
                    Some(ckpt) => with_bounded_retry(
                        "UploadCheckpoint",
                        shared.config.max_backoff,
                        || false,
                        SERVER_ERROR_TRIES,
                        || {
                            let mut c = shared.client.clone();
                            let (attempt, ckpt) = (attempt.to_owned(), ckpt.clone());
                            let who = shared.credentials();
                            async move { transfer::upload(&mut c, who, &attempt, &ckpt).await }
                        },
                    )
                    .await
                    .map(|bytes| tracing::debug!(attempt = %attempt, bytes, "checkpoint uploaded")),
                    None => Ok(()),
                }
            }
        };
        if let Err(s) = r {
            if is_fenced(&s) {
                tracing::info!(attempt = %attempt, message = s.message(), "the lease was given away; dropping the job");
                fenced = true;
                handle.request_stop(StopReason::Drop);
            } else {
                tracing::warn!(attempt = %attempt, code = ?s.code(), message = s.message(), "report refused");
            }
        }
    }
    fenced
}

/// Where a job runs: the slot's device, how its process is started, and the
/// process-wide settings the job needs.
struct ChildPlace {
    launch: ChildLaunch,
    device: DeviceSpec,
    share: usize,
    settings: ProcessSettings,
}

/// Runs `job` in the slot's process, reusing `old` when its settings are the
/// job's (else a fresh process); gives back how the job ended and the
/// process when it can run the slot's next job.
fn run_in_child(
    old: Option<SlotChild>,
    place: &ChildPlace,
    job: ChildJob,
    observer: &mut SlotObserver,
) -> (Result<ChildOutcome, ChildError>, Option<SlotChild>) {
    let reusable = match old {
        Some(c) if c.settings() == place.settings => Some(c),
        Some(c) => {
            tracing::info!(old = ?c.settings(), new = ?place.settings, "the next job needs other process-wide settings; restarting the slot's process");
            None
        }
        None => None,
    };
    let mut child = match reusable {
        Some(c) => c,
        None => match SlotChild::start(&place.launch, place.device, place.share, place.settings) {
            Ok(c) => c,
            Err(e) => return (Err(e), None),
        },
    };
    match child.run(job, observer) {
        Ok(outcome @ ChildOutcome::Failed { sticky: true, .. }) => (Ok(outcome), None),
        Ok(outcome) => (Ok(outcome), Some(child)),
        Err(e) => (Err(e), None),
    }
}

/// What a leased job does after fetching its checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resume {
    /// Resume from the downloaded checkpoint.
    FromCheckpoint,
    /// Train from epoch 0 (no usable checkpoint).
    FromEpochZero,
    /// The lease is gone: drop the job without a report.
    DropJob,
    /// Report the attempt as failed (transiently).
    Fail,
}

/// The plan after a checkpoint download ended with `got`.
fn resume_plan(got: &transfer::DownloadResult) -> Resume {
    match got {
        Ok(Ok(_)) => Resume::FromCheckpoint,
        Ok(Err(_abandoned)) => Resume::FromEpochZero,
        // NOT_FOUND is an unknown attempt (fenced); a checkpoint that is torn
        // or gone is DATA_LOSS.
        Err(s) if is_fenced(s) => Resume::DropJob,
        Err(s) if s.code() == tonic::Code::DataLoss => Resume::FromEpochZero,
        Err(_) => Resume::Fail,
    }
}

/// Why a download did not give a checkpoint, for the log.
fn reason(got: &transfer::DownloadResult) -> String {
    match got {
        Ok(Ok(bytes)) => format!("{bytes} bytes downloaded"),
        Ok(Err(abandoned)) => format!("download abandoned: {abandoned}"),
        Err(s) => format!("{:?}: {}", s.code(), s.message()),
    }
}

/// Builds the job spec and a clean job folder (with only the coordinator's checkpoint).
fn prepare(shared: &Shared, device: DeviceSpec, a: &Assignment) -> Result<JobSpec, SetupError> {
    let config = ExperimentConfig::from_toml_str(&a.config_toml)?;
    let variant: Variant = a.variant.parse().map_err(ConfigError::from)?;
    let split = a.split.as_ref().ok_or(SetupError::NoSplit)?;
    let job_dir: String = a
        .job_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let out_dir = shared.config.work_dir.join(job_dir);
    let io = |source| SetupError::Io {
        path: out_dir.clone(),
        source,
    };
    std::fs::create_dir_all(&out_dir).map_err(io)?;
    // Only the coordinator's checkpoint counts: a local one may be from a lease
    // that was given away.
    match std::fs::remove_file(checkpoint_path(&out_dir)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    Ok(JobSpec {
        config,
        variant,
        seed: a.seed,
        fold: a.fold,
        split: FoldSplit {
            train: split.train.clone(),
            val: split.val.clone(),
            test: split.test.clone(),
        },
        device,
        out_dir,
        init: None,
        lif_kernels: shared.config.lif_kernels,
        data_fingerprint: shared.registration.data_fingerprint.clone(),
    })
}

/// A call repeated while the coordinator is unreachable (forever: training
/// results are worth waiting for; a second Ctrl-C ends the process).
async fn call<T, F, Fut>(shared: &Shared, what: &'static str, mut f: F) -> Result<T, Status>
where
    F: FnMut(spikecv_common::proto::client::WorkerClient) -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    with_retry(
        what,
        shared.config.max_backoff,
        || false,
        || f(shared.client.clone()),
    )
    .await
}

async fn report_complete(
    shared: &Shared,
    attempt: &str,
    result: &JobResult,
    provenance: &Provenance,
    device: DeviceSpec,
) {
    let request = CompleteRequest {
        attempt_id: attempt.to_owned(),
        result: Some(result.to_proto()),
        device: device.to_string(),
        worker: Some(shared.credentials()),
        manifest: Some(provenance.manifest.to_proto()),
        weights_sha256: provenance.weights_sha256.clone(),
    };
    match call(shared, "Complete", |mut c| {
        let request = request.clone();
        async move { c.complete(request).await }
    })
    .await
    {
        Ok(_) => tracing::info!(
            attempt,
            test_accuracy = result.test_accuracy,
            "job complete"
        ),
        Err(s) => {
            tracing::warn!(attempt, code = ?s.code(), message = s.message(), "result refused")
        }
    }
}

async fn report_fail(shared: &Shared, attempt: &str, error: &str, deterministic: bool) {
    tracing::error!(attempt, error, deterministic, "job failed");
    let request = FailRequest {
        attempt_id: attempt.to_owned(),
        // The coordinator refuses longer texts; the head of one says enough.
        error: truncate(error, MAX_ERROR_BYTES),
        deterministic,
        worker: Some(shared.credentials()),
    };
    if let Err(s) = call(shared, "Fail", |mut c| {
        let request = request.clone();
        async move { c.fail(request).await }
    })
    .await
    {
        tracing::warn!(attempt, code = ?s.code(), message = s.message(), "failure report refused");
    }
}

async fn report_release(shared: &Shared, attempt: &str) -> Result<(), Status> {
    let request = ReleaseRequest {
        attempt_id: attempt.to_owned(),
        worker: Some(shared.credentials()),
    };
    let r = call(shared, "Release", |mut c| {
        let request = request.clone();
        async move { c.release(request).await }
    })
    .await;
    match &r {
        Ok(_) => tracing::info!(attempt, "job handed back"),
        Err(s) => {
            tracing::warn!(attempt, code = ?s.code(), message = s.message(), "release refused")
        }
    }
    r.map(|_| ())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use spikecv_common::proto::RegisterRequest;
    use spikecv_common::proto::client::ClientOptions;

    use super::*;
    use crate::join::JoinConfig;
    use transfer::Abandoned;

    #[tokio::test]
    async fn a_job_that_panics_frees_its_slot() {
        let client = ClientOptions {
            url: "http://127.0.0.1:9".into(),
            token: None,
            tls_ca: None,
            tls_identity: None,
            tls_domain: None,
        };
        let config = JoinConfig::new(client, "cpu", 1, Some("t".into())).unwrap();
        let worker_client = config.client.worker_client().unwrap();
        let shared = Arc::new(Shared::new(
            config,
            worker_client,
            RegisterRequest::default(),
        ));
        let a = Assignment {
            attempt_id: "1".into(),
            device: "cpu".into(),
            ..Assignment::default()
        };
        let (index, _, _) = shared.claim_slot(&a).unwrap();
        assert_eq!(shared.free_slots(), 0);
        let held = shared.clone();
        let job = tokio::spawn(async move {
            let _slot = SlotGuard {
                shared: held,
                index,
            };
            panic!("a job panicked");
        });
        assert!(job.await.is_err_and(|e| e.is_panic()));
        assert_eq!(shared.free_slots(), 1, "the panic freed the slot");
    }

    #[test]
    fn an_abandoned_download_trains_from_epoch_zero() {
        let too_big: transfer::DownloadResult =
            Ok(Err(Abandoned::LargerThanDeclared { declared: 10 }));
        let too_slow: transfer::DownloadResult = Ok(Err(Abandoned::TooSlow {
            limit: Duration::from_secs(1),
        }));
        assert_eq!(resume_plan(&too_big), Resume::FromEpochZero);
        assert_eq!(resume_plan(&too_slow), Resume::FromEpochZero);
        assert!(reason(&too_big).contains("10 bytes"));
    }

    #[test]
    fn other_download_outcomes_keep_their_plans() {
        assert_eq!(resume_plan(&Ok(Ok(5))), Resume::FromCheckpoint);
        assert_eq!(
            resume_plan(&Err(Status::data_loss("torn"))),
            Resume::FromEpochZero
        );
        assert_eq!(
            resume_plan(&Err(Status::failed_precondition("fenced"))),
            Resume::DropJob
        );
        assert_eq!(
            resume_plan(&Err(Status::not_found("unknown attempt"))),
            Resume::DropJob
        );
        assert_eq!(resume_plan(&Err(Status::internal("disk"))), Resume::Fail);
    }
}
