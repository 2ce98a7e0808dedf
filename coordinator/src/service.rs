//! The gRPC services, thin: each handler converts the protobuf request at the
//! edge, calls the scheduler (on its own thread, see [`actor`]) and converts the
//! answer back. Scheduler errors map to status codes: not the attempt's owner,
//! wrong worker secret → PERMISSION_DENIED; fenced, fingerprint mismatch →
//! FAILED_PRECONDITION; unknown worker/attempt/job →
//! NOT_FOUND; bad request → INVALID_ARGUMENT; store failure → INTERNAL.

pub mod actor;
mod checkpoint_stream;
pub mod control;
pub mod convert;
mod credentials;
mod submit;
pub mod upload_gate;
pub mod upload_pace;
pub use submit::{FingerprintError, fingerprint_of};
pub use upload_gate::{CheckpointLimits, Direction, UploadGate, UploadRefused};

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::Stream;
use spikecv_common::experiment::job::{EpochMetrics, JobResult};
use spikecv_common::proto as pb;
use spikecv_common::proto::admin_server::Admin;
use spikecv_common::proto::coordinator_server::Coordinator;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

pub use actor::status_of;
use convert::{
    assignment_to_proto, attempt_from_proto, check_len, check_name, credentials_from_proto,
    free_slots_from_proto, progress_from_proto, provenance_from_proto, registration_from_proto,
    required_registration, status_to_proto, worker_from_proto,
};
use spikecv_common::proto::limits::{MAX_DEVICE_BYTES, MAX_ERROR_BYTES, MAX_NAME_BYTES};

use crate::credentials::{Caller, CredentialBook};
use crate::scheduler::{
    Credentials, FailOutcome, FailureClass, Scheduler, SchedulerError, SchedulerHandle, WorkerId,
    WorkerRegistration, WorkerSecret,
};
use crate::status_cache::{self, StatusCache};

/// Bytes per checkpoint chunk sent to workers.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Calls served, per kind, for `/metrics`.
#[derive(Debug, Default)]
pub struct RpcCounters {
    /// Lease calls.
    pub leases: AtomicU64,
    /// Assignments handed out.
    pub assignments: AtomicU64,
    /// Heartbeat calls.
    pub heartbeats: AtomicU64,
    /// Completed attempts accepted.
    pub completed: AtomicU64,
    /// Reports refused as fenced.
    pub fenced: AtomicU64,
    /// Checkpoint bytes received.
    pub checkpoint_bytes_in: AtomicU64,
    /// Checkpoint bytes sent.
    pub checkpoint_bytes_out: AtomicU64,
}

/// Both gRPC services (worker and admin) over one scheduler.
#[derive(Debug, Clone)]
pub struct CoordinatorService {
    sched: SchedulerHandle,
    heartbeat_seconds: u32,
    counters: Arc<RpcCounters>,
    status_cache: StatusCache,
    allow_unfingerprinted_data: bool,
    uploads: UploadGate,
    downloads: UploadGate,
    book: CredentialBook,
}

impl CoordinatorService {
    /// A service over the scheduler thread behind `sched`; `Watch` and
    /// `/metrics` read status snapshots at most [`status_cache::DEFAULT_MAX_AGE`] old.
    pub fn new(sched: SchedulerHandle, heartbeat_seconds: u32) -> Self {
        let status_cache = StatusCache::new(sched.clone(), status_cache::DEFAULT_MAX_AGE);
        Self {
            sched,
            heartbeat_seconds,
            counters: Arc::default(),
            status_cache,
            allow_unfingerprinted_data: false,
            uploads: UploadGate::new(CheckpointLimits::default()),
            downloads: UploadGate::for_direction(CheckpointLimits::default(), Direction::Download),
            book: CredentialBook::default(),
        }
    }

    /// The workers' credentials and enrolment tokens the worker service accepts.
    pub fn credential_book(&self) -> &CredentialBook {
        &self.book
    }

    /// Reads the accepted credentials and enrolment tokens from the store
    /// into the book (at start, and after every change).
    pub async fn reload_credentials(&self) -> Result<(), SchedulerError> {
        let known = self.sched.call(|s| s.known_tokens()).await?;
        self.book.load(known);
        Ok(())
    }

    /// The same service with other limits on checkpoint transfers.
    #[must_use]
    pub fn with_checkpoint_limits(mut self, limits: CheckpointLimits) -> Self {
        self.downloads = UploadGate::for_direction(limits.clone(), Direction::Download);
        self.uploads = UploadGate::new(limits);
        self
    }

    /// The same service accepting (`true`) submissions whose data set it
    /// cannot fingerprint; refused with INVALID_ARGUMENT by default.
    #[must_use]
    pub fn with_unfingerprinted_data(mut self, allow: bool) -> Self {
        self.allow_unfingerprinted_data = allow;
        self
    }

    /// The status snapshot shared by `Watch` streams and `/metrics`.
    pub fn status_cache(&self) -> &StatusCache {
        &self.status_cache
    }

    /// The scheduler handle.
    pub fn scheduler(&self) -> &SchedulerHandle {
        &self.sched
    }

    /// Call counters.
    pub fn counters(&self) -> &Arc<RpcCounters> {
        &self.counters
    }

    /// The answer as a gRPC result, counting fenced refusals.
    fn note<T>(&self, r: Result<T, SchedulerError>) -> Result<T, Status> {
        if let Err(SchedulerError::Fenced { .. }) = &r {
            self.counters.fenced.fetch_add(1, Ordering::Relaxed);
        }
        r.map_err(Status::from)
    }
}

/// The worker behind a lease or heartbeat: a known one proves its secret; a
/// caller without an id is registered, and its new secret is returned. A
/// named caller's id and slots are its credential's, whatever it presents.
/// An id this coordinator has no record of (its store was replaced) is kept
/// only where a credential names it: on the shared token the caller is
/// registered afresh and told its new id and secret.
fn enroll(
    s: &mut Scheduler,
    who: &Caller,
    caller: Option<&Credentials>,
    reg: &WorkerRegistration,
) -> Result<(WorkerId, Option<WorkerSecret>), SchedulerError> {
    if let Caller::Named(named) = who {
        let reg = named.registration(reg.clone());
        return match caller {
            Some(c) => {
                named.check_id(&c.worker)?;
                Ok((s.ensure_worker(&c.worker, &c.secret, &reg)?, None))
            }
            None => {
                let r = s.register_as(&named.worker_id(), &reg)?;
                Ok((r.id, Some(r.secret)))
            }
        };
    }
    match caller {
        Some(c) if s.knows_worker(&c.worker)? => {
            Ok((s.ensure_worker(&c.worker, &c.secret, reg)?, None))
        }
        Some(c) => {
            let r = s.register(reg)?;
            tracing::info!(presented = %c.worker, worker = %r.id, "a worker id this coordinator does not know, on the shared token: registered afresh");
            Ok((r.id, Some(r.secret)))
        }
        None => {
            let r = s.register(reg)?;
            Ok((r.id, Some(r.secret)))
        }
    }
}

/// The status of a checkpoint transfer the gate did not admit.
fn refused(e: UploadRefused) -> Status {
    tracing::warn!(reason = %e, "checkpoint transfer refused");
    match e {
        UploadRefused::AttemptBusy { .. } => Status::aborted(e.to_string()),
        UploadRefused::TooMany { .. } => Status::resource_exhausted(e.to_string()),
    }
}

fn expose(secret: Option<WorkerSecret>) -> String {
    secret.map(|s| s.expose().to_owned()).unwrap_or_default()
}

use checkpoint_stream::ChunkStream;
type StatusStream = Pin<Box<dyn Stream<Item = Result<pb::StatusResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Coordinator for CoordinatorService {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let who = Caller::of(&request);
        who.worker_call("Register")?;
        let reg = registration_from_proto(request.get_ref())?;
        let name = reg.name.clone();
        let registered = self
            .sched
            .call(move |s| match &who {
                Caller::Named(n) => s.register_as(&n.worker_id(), &n.registration(reg)),
                Caller::Shared | Caller::Enrolment(_) => s.register(&reg),
            })
            .await?;
        tracing::info!(worker = %registered.id, %name, "worker registered");
        Ok(Response::new(pb::RegisterResponse {
            worker_id: registered.id.0,
            heartbeat_seconds: self.heartbeat_seconds,
            worker_secret: registered.secret.expose().to_owned(),
        }))
    }

    async fn lease(
        &self,
        request: Request<pb::LeaseRequest>,
    ) -> Result<Response<pb::LeaseResponse>, Status> {
        let who = Caller::of(&request);
        who.worker_call("Lease")?;
        let r = request.into_inner();
        let reg = required_registration(r.registration.as_ref())?;
        let progress = progress_from_proto(&r.running)?;
        let caller = worker_from_proto(&r.worker_id, &r.worker_secret)?;
        let free = free_slots_from_proto(r.free_slots)?;
        self.counters.leases.fetch_add(1, Ordering::Relaxed);
        let (id, secret, beat, lease) = self
            .sched
            .call(move |s| {
                let (id, secret) = enroll(s, &who, caller.as_ref(), &reg)?;
                let beat = if progress.is_empty() {
                    None
                } else {
                    Some(s.heartbeat(&id, &progress)?)
                };
                let lease = s.lease(&id, &free)?;
                Ok((id, secret, beat, lease))
            })
            .await?;
        self.counters
            .assignments
            .fetch_add(lease.assignments.len() as u64, Ordering::Relaxed);
        let (cancel, beat_drain) = beat.map(|b| (b.cancel, b.drain)).unwrap_or_default();
        Ok(Response::new(pb::LeaseResponse {
            worker_id: id.0,
            assignments: lease.assignments.iter().map(assignment_to_proto).collect(),
            cancel: cancel.iter().map(ToString::to_string).collect(),
            drain: lease.drain || beat_drain,
            all_done: lease.all_done,
            heartbeat_seconds: self.heartbeat_seconds,
            worker_secret: expose(secret),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let who = Caller::of(&request);
        who.worker_call("Heartbeat")?;
        let r = request.into_inner();
        let reg = required_registration(r.registration.as_ref())?;
        let progress = progress_from_proto(&r.running)?;
        let caller = worker_from_proto(&r.worker_id, &r.worker_secret)?;
        self.counters.heartbeats.fetch_add(1, Ordering::Relaxed);
        let (id, secret, beat) = self
            .sched
            .call(move |s| {
                let (id, secret) = enroll(s, &who, caller.as_ref(), &reg)?;
                let beat = s.heartbeat(&id, &progress)?;
                Ok((id, secret, beat))
            })
            .await?;
        Ok(Response::new(pb::HeartbeatResponse {
            worker_id: id.0,
            cancel: beat.cancel.iter().map(ToString::to_string).collect(),
            drain: beat.drain,
            all_done: false,
            worker_secret: expose(secret),
        }))
    }

    async fn report_epoch(
        &self,
        request: Request<pb::ReportEpochRequest>,
    ) -> Result<Response<pb::ReportEpochResponse>, Status> {
        let who = Caller::of(&request);
        let r = request.into_inner();
        let attempt = attempt_from_proto(&r.attempt_id)?;
        let caller = credentials_from_proto("ReportEpoch", r.worker.as_ref())?;
        who.check_worker("ReportEpoch", &caller.worker)?;
        let m = EpochMetrics::from_proto(
            r.metrics
                .as_ref()
                .ok_or_else(|| Status::invalid_argument("ReportEpoch: metrics are missing"))?,
        );
        let r = self
            .sched
            .call(move |s| {
                s.authorize(&caller, attempt)?;
                s.record_epoch(attempt, &m)
            })
            .await;
        let pruned = self.note(r)?;
        Ok(Response::new(pb::ReportEpochResponse { cancel: pruned }))
    }

    async fn upload_checkpoint(
        &self,
        request: Request<Streaming<pb::CheckpointChunk>>,
    ) -> Result<Response<pb::UploadCheckpointResponse>, Status> {
        let limits = self.uploads.limits().clone();
        let who = Caller::of(&request);
        let mut stream = request.into_inner();
        let first = checkpoint_stream::next_chunk(&mut stream, limits.idle_timeout, None)
            .await?
            .ok_or_else(|| Status::invalid_argument("UploadCheckpoint: no chunks"))?;
        let attempt = attempt_from_proto(&first.attempt_id)?;
        let caller = credentials_from_proto("UploadCheckpoint", first.worker.as_ref())?;
        who.check_worker("UploadCheckpoint", &caller.worker)?;
        let epoch = first.epoch;
        let declared = first.size;
        if declared == 0 {
            return Err(Status::invalid_argument(format!(
                "UploadCheckpoint of attempt {attempt}: size (the checkpoint's bytes, declared in the first chunk) is required"
            )));
        }
        if declared > limits.max_bytes {
            return Err(checkpoint_stream::over_limit(attempt, limits.max_bytes));
        }
        // Refuse another worker's or a fenced attempt before receiving megabytes.
        let check = caller.clone();
        let r = self
            .sched
            .call(move |s| {
                s.authorize(&check, attempt)?;
                s.check_upload(attempt, epoch)
            })
            .await;
        self.note(r)?;
        let ticket = self.uploads.admit(attempt, declared).map_err(refused)?;
        // Room for this upload and every other one in flight (all reserved).
        let staging = checkpoint_stream::stage(
            self.sched.checkpoint_dir().clone(),
            self.uploads.reserved_bytes(),
            limits.free_space_margin,
        )
        .await?;
        let upload = checkpoint_stream::Upload {
            attempt,
            declared,
            limits,
            sched: self.sched.clone(),
        };
        let staged = checkpoint_stream::receive(&upload, first, stream, staging).await?;
        let n = staged.size;
        let r = self
            .sched
            .call(move |s| {
                s.authorize(&caller, attempt)?;
                s.commit_checkpoint(attempt, epoch, staged)
            })
            .await;
        drop(ticket);
        self.note(r)?;
        self.counters
            .checkpoint_bytes_in
            .fetch_add(n, Ordering::Relaxed);
        tracing::debug!(%attempt, epoch, bytes = n, "checkpoint stored");
        Ok(Response::new(pb::UploadCheckpointResponse { bytes: n }))
    }

    type DownloadCheckpointStream = ChunkStream;

    async fn download_checkpoint(
        &self,
        request: Request<pb::DownloadCheckpointRequest>,
    ) -> Result<Response<Self::DownloadCheckpointStream>, Status> {
        let attempt = attempt_from_proto(&request.get_ref().attempt_id)?;
        let caller =
            credentials_from_proto("DownloadCheckpoint", request.get_ref().worker.as_ref())?;
        Caller::of(&request).check_worker("DownloadCheckpoint", &caller.worker)?;
        let r = self
            .sched
            .call(move |s| {
                s.authorize(&caller, attempt)?;
                let job = s.check_current(attempt)?;
                let record = s.checkpoint_record(&job)?;
                Ok((job, record))
            })
            .await;
        let (job, record) = self.note(r)?;
        // Held by the stream until its last chunk is sent or it is abandoned.
        let ticket = self.downloads.admit(attempt, 0).map_err(refused)?;
        // The lease promised a checkpoint and it is gone: DATA_LOSS, so the
        // worker trains from epoch 0 (NOT_FOUND would read as an unknown
        // attempt, and the worker would drop a job it still holds).
        let record = record.ok_or_else(|| {
            Status::data_loss(format!("job {} has no checkpoint any more", job.as_str()))
        })?;
        self.counters
            .checkpoint_bytes_out
            .fetch_add(record.size, Ordering::Relaxed);
        Ok(Response::new(checkpoint_stream::send(
            attempt,
            record,
            CHUNK_BYTES,
            self.uploads.limits().idle_timeout,
            ticket,
        )))
    }

    async fn complete(
        &self,
        request: Request<pb::CompleteRequest>,
    ) -> Result<Response<pb::CompleteResponse>, Status> {
        let who = Caller::of(&request);
        let r = request.into_inner();
        let attempt = attempt_from_proto(&r.attempt_id)?;
        let caller = credentials_from_proto("Complete", r.worker.as_ref())?;
        who.check_worker("Complete", &caller.worker)?;
        check_name("device", &r.device, MAX_DEVICE_BYTES)?;
        let result = JobResult::from_proto(
            r.result
                .as_ref()
                .ok_or_else(|| Status::invalid_argument("Complete: result is missing"))?,
        )
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let provenance = provenance_from_proto(&r)?;
        let r = self
            .sched
            .call(move |s| {
                s.authorize(&caller, attempt)?;
                s.complete_with(attempt, &result, provenance.as_ref())
            })
            .await;
        self.note(r)?;
        self.counters.completed.fetch_add(1, Ordering::Relaxed);
        Ok(Response::new(pb::CompleteResponse {}))
    }

    async fn fail(
        &self,
        request: Request<pb::FailRequest>,
    ) -> Result<Response<pb::FailResponse>, Status> {
        let who = Caller::of(&request);
        let r = request.into_inner();
        let attempt = attempt_from_proto(&r.attempt_id)?;
        let caller = credentials_from_proto("Fail", r.worker.as_ref())?;
        who.check_worker("Fail", &caller.worker)?;
        check_len("error", &r.error, MAX_ERROR_BYTES)?;
        let class = if r.deterministic {
            FailureClass::Deterministic
        } else {
            FailureClass::Transient
        };
        let error = spikecv_common::names::scrub_controls(&r.error);
        let r = self
            .sched
            .call(move |s| {
                s.authorize(&caller, attempt)?;
                s.fail(attempt, &error, class)
            })
            .await;
        let outcome = self.note(r)?;
        Ok(Response::new(pb::FailResponse {
            will_retry: outcome == FailOutcome::Retry,
        }))
    }

    async fn release(
        &self,
        request: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::ReleaseResponse>, Status> {
        let attempt = attempt_from_proto(&request.get_ref().attempt_id)?;
        let caller = credentials_from_proto("Release", request.get_ref().worker.as_ref())?;
        Caller::of(&request).check_worker("Release", &caller.worker)?;
        let r = self
            .sched
            .call(move |s| {
                s.authorize(&caller, attempt)?;
                s.release(attempt)
            })
            .await;
        self.note(r)?;
        tracing::info!(%attempt, "attempt released");
        Ok(Response::new(pb::ReleaseResponse {}))
    }

    async fn enrol(
        &self,
        request: Request<pb::EnrolRequest>,
    ) -> Result<Response<pb::EnrolResponse>, Status> {
        credentials::enrol(self, request).await
    }
}

#[tonic::async_trait]
impl Admin for CoordinatorService {
    async fn submit(
        &self,
        request: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        let text = request.into_inner().config_toml;
        let submission = submit::prepare(text, self.allow_unfingerprinted_data).await?;
        let outcome = self.sched.call(move |s| s.submit(&submission)).await?;
        tracing::info!(experiment = %outcome.experiment, new = outcome.jobs_new, reused = outcome.jobs_reused, "experiment submitted");
        Ok(Response::new(pb::SubmitResponse {
            experiment_id: outcome.experiment.0,
            jobs_new: outcome.jobs_new,
            jobs_reused: outcome.jobs_reused,
        }))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let snapshot = self.sched.call(|s| s.status()).await?;
        Ok(Response::new(status_to_proto(&snapshot)))
    }

    type WatchStream = StatusStream;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let ms = match request.get_ref().interval_ms {
            0 => 1000,
            n => n.clamp(100, 3_600_000),
        };
        // Every stream reads the one shared snapshot: a thousand watchers
        // cost the scheduler one status read per second, not a thousand.
        let cache = self.status_cache.clone();
        let ticks = tokio_stream::wrappers::IntervalStream::new(tokio::time::interval(
            Duration::from_millis(u64::from(ms)),
        ));
        let stream = ticks.then(move |_| {
            let cache = cache.clone();
            async move {
                cache
                    .get()
                    .await
                    .map(|snap| status_to_proto(&snap))
                    .map_err(|e| Status::unavailable(e.to_string()))
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn cancel(
        &self,
        request: Request<pb::CancelRequest>,
    ) -> Result<Response<pb::CancelResponse>, Status> {
        let target = control::cancel_target_from_proto(request.into_inner())?;
        let jobs = self.sched.call(move |s| s.cancel_target(&target)).await?;
        Ok(Response::new(pb::CancelResponse {
            cancelled: !jobs.is_empty(),
            job_ids: jobs.into_iter().map(|j| j.as_str().to_owned()).collect(),
        }))
    }

    async fn retry(
        &self,
        request: Request<pb::RetryRequest>,
    ) -> Result<Response<pb::RetryResponse>, Status> {
        let (experiment, states) = control::retry_from_proto(request.into_inner())?;
        let jobs = self
            .sched
            .call(move |s| s.retry(&experiment, &states))
            .await?;
        Ok(Response::new(pb::RetryResponse {
            job_ids: jobs.into_iter().map(|j| j.as_str().to_owned()).collect(),
        }))
    }

    async fn add_worker(
        &self,
        request: Request<pb::AddWorkerRequest>,
    ) -> Result<Response<pb::WorkerCredential>, Status> {
        credentials::add_worker(self, request.into_inner()).await
    }

    async fn list_workers(
        &self,
        _request: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        credentials::list_workers(self).await
    }

    async fn remove_worker(
        &self,
        request: Request<pb::RemoveWorkerRequest>,
    ) -> Result<Response<pb::RemoveWorkerResponse>, Status> {
        credentials::remove_worker(self, request.into_inner()).await
    }

    async fn create_enrolment(
        &self,
        request: Request<pb::CreateEnrolmentRequest>,
    ) -> Result<Response<pb::CreateEnrolmentResponse>, Status> {
        credentials::create_enrolment(self, request.into_inner()).await
    }

    async fn clear_worker(
        &self,
        request: Request<pb::ClearWorkerRequest>,
    ) -> Result<Response<pb::ClearWorkerResponse>, Status> {
        let name = request.into_inner().name;
        convert::check_name("name", &name, MAX_NAME_BYTES)?;
        let n = self.sched.call(move |s| s.clear_suspect(&name)).await?;
        Ok(Response::new(pb::ClearWorkerResponse {
            cleared: u32::try_from(n).unwrap_or(u32::MAX),
        }))
    }
}
