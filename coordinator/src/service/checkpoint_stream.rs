//! Checkpoint uploads and downloads as streams between the network and files,
//! within the [`CheckpointLimits`] (an upload below the minimum rate over a
//! window, or whose lease has ended, is abandoned): upload chunks are
//! written on blocking threads (never the scheduler thread, which only
//! records or looks up the file); downloads are read with async file reads,
//! so a client that does not read holds no thread, only a small queue, and
//! is dropped after the idle timeout.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use spikecv_common::proto as pb;
use tonic::{Status, Streaming};

use super::upload_gate::{CheckpointLimits, UploadTicket};
use super::upload_pace::{TooSlow, UploadPace};
use crate::checkpoints::{CheckpointDir, ChunkReader, StagedCheckpoint, StagingFile};
use crate::scheduler::{AttemptId, CheckpointRecord, SchedulerError, SchedulerHandle};

/// A stream of checkpoint chunks to a worker.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::CheckpointChunk, Status>> + Send>>;

/// Chunks in flight between the file reader and the network, per download.
const DOWNLOAD_QUEUE: usize = 4;

fn internal(what: &str, e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "{what}");
    Status::internal(format!("{what}: {e}"))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    what: &'static str,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| internal(what, e))?
        .map_err(|e| internal(what, e))
}

/// The next chunk of an upload, or DEADLINE_EXCEEDED when none comes within
/// `idle`.
pub async fn next_chunk(
    stream: &mut Streaming<pb::CheckpointChunk>,
    idle: Duration,
    attempt: Option<AttemptId>,
) -> Result<Option<pb::CheckpointChunk>, Status> {
    match tokio::time::timeout(idle, stream.message()).await {
        Ok(r) => r,
        Err(_) => Err(idle_status(idle, attempt)),
    }
}

/// The refusal of an upload that sent nothing for `idle`.
fn idle_status(idle: Duration, attempt: Option<AttemptId>) -> Status {
    let whose = attempt.map_or_else(String::new, |a| format!(" of attempt {a}"));
    tracing::warn!(attempt = ?attempt, seconds = idle.as_secs_f64(), "checkpoint upload idle; abandoned");
    Status::deadline_exceeded(format!(
        "checkpoint upload{whose}: no chunk for {:.0} s (--checkpoint-idle-timeout-seconds); abandoned",
        idle.as_secs_f64()
    ))
}

/// The refusal of an upload larger than `max` bytes.
pub fn over_limit(attempt: AttemptId, max: u64) -> Status {
    Status::resource_exhausted(format!(
        "checkpoint of attempt {attempt} exceeds the limit of {max} bytes (--max-checkpoint-mib)"
    ))
}

/// A new `.part` file in `dir` for uploads of `need` bytes, refused with
/// RESOURCE_EXHAUSTED when the file system has less than `need + margin` free.
pub async fn stage(dir: CheckpointDir, need: u64, margin: u64) -> Result<StagingFile, Status> {
    let joined = tokio::task::spawn_blocking(move || {
        let free = dir.free_bytes().map_err(|e| (dir.path().to_owned(), e))?;
        if free < need.saturating_add(margin) {
            return Ok(Err((dir.path().to_owned(), free)));
        }
        dir.stage().map(Ok).map_err(|e| (dir.path().to_owned(), e))
    })
    .await
    .map_err(|e| Status::internal(format!("staging a checkpoint upload: {e}")))?;
    match joined {
        Ok(Ok(staging)) => Ok(staging),
        Ok(Err((dir, free))) => {
            let dir = dir.display();
            tracing::warn!(%dir, free, need, margin, "too little disk space for a checkpoint upload");
            Err(Status::resource_exhausted(format!(
                "{dir} has {free} bytes free, less than the upload's {need} plus a margin of {margin}"
            )))
        }
        Err((dir, e)) => {
            let dir = dir.display();
            tracing::error!(error = %e, %dir, "cannot stage a checkpoint upload");
            Err(Status::internal(format!(
                "cannot stage a checkpoint upload in {dir}: {e}"
            )))
        }
    }
}

/// What an upload is held to while it is received.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The attempt whose checkpoint it is.
    pub attempt: AttemptId,
    /// The size its first chunk declared.
    pub declared: u64,
    /// The limits (size, idle timeout, minimum rate and its window).
    pub limits: CheckpointLimits,
    /// The scheduler, asked at the end of each window whether the attempt
    /// is still current.
    pub sched: SchedulerHandle,
}

impl Upload {
    /// The refusal of an upload that brought too little in its last window.
    fn too_slow(&self, slow: TooSlow) -> Status {
        let attempt = self.attempt;
        tracing::warn!(%attempt, bytes = slow.bytes, wanted = slow.wanted, "checkpoint upload below the minimum rate; abandoned");
        Status::deadline_exceeded(format!(
            "checkpoint upload of attempt {attempt}: {} bytes in the last {:.1} s, below the minimum rate of {} bytes/s \
             ({} bytes; --checkpoint-min-upload-kib-per-s over --checkpoint-rate-window-seconds); abandoned",
            slow.bytes,
            slow.window.as_secs_f64(),
            self.limits.min_upload_rate,
            slow.wanted,
        ))
    }

    /// `Ok` while the attempt is its job's current one (or the scheduler
    /// cannot say now); else the upload is abandoned with
    /// FAILED_PRECONDITION (its lease expired, it was released, its worker
    /// removed, its job cancelled or finished).
    async fn check_lease(&self) -> Result<(), Status> {
        let attempt = self.attempt;
        match self.sched.call(move |s| s.check_current(attempt)).await {
            Ok(_) => Ok(()),
            Err(e @ (SchedulerError::Fenced { .. } | SchedulerError::UnknownAttempt { .. })) => {
                tracing::warn!(%attempt, reason = %e, "checkpoint upload of an attempt no longer current; abandoned");
                Err(Status::failed_precondition(format!(
                    "checkpoint upload of attempt {attempt}: the attempt's lease ended ({e}); abandoned"
                )))
            }
            // The scheduler busy or its store failing says nothing about
            // the lease: the next window asks again.
            Err(e) => {
                tracing::debug!(%attempt, error = %e, "the lease of an upload could not be checked this window");
                Ok(())
            }
        }
    }

    /// Waits for the next chunk while checking the pace and the lease at
    /// the end of every window; DEADLINE_EXCEEDED when no chunk comes for
    /// the idle timeout or a window falls below the minimum rate.
    async fn next(
        &self,
        stream: &mut Streaming<pb::CheckpointChunk>,
        pace: &mut UploadPace,
        windows: &mut tokio::time::Interval,
    ) -> Result<Option<pb::CheckpointChunk>, Status> {
        let idle = self.limits.idle_timeout;
        let idle_until = tokio::time::Instant::now() + idle;
        loop {
            tokio::select! {
                biased;
                message = tokio::time::timeout_at(idle_until, stream.message()) => {
                    return match message {
                        Ok(r) => r,
                        Err(_) => Err(idle_status(idle, Some(self.attempt))),
                    };
                }
                at = windows.tick() => {
                    pace.end_window(at.into_std()).map_err(|slow| self.too_slow(slow))?;
                    self.check_lease().await?;
                }
            }
        }
    }
}

/// Receives the rest of an `upload` whose `first` chunk has been read into
/// `staging`, within its limits and declared size, checking its pace and its
/// lease at the end of every rate window; checks the sent SHA-256. Returns
/// the synced file, ready to be recorded. On any error the staged file is
/// removed (with `staging`).
pub async fn receive(
    upload: &Upload,
    first: pb::CheckpointChunk,
    mut stream: Streaming<pb::CheckpointChunk>,
    mut staging: StagingFile,
) -> Result<StagedCheckpoint, Status> {
    let (attempt, declared, limits) = (upload.attempt, upload.declared, &upload.limits);
    let started = tokio::time::Instant::now();
    let window = limits.rate_window.max(Duration::from_millis(1));
    let mut windows = tokio::time::interval_at(started + window, window);
    windows.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pace = UploadPace::new(
        limits.min_upload_rate,
        limits.upload_grace,
        started.into_std(),
    );
    let mut sent_sha = first.sha256.clone();
    let mut chunk = Some(first);
    while let Some(c) = chunk {
        let total = staging.size() + c.data.len() as u64;
        if total > limits.max_bytes {
            tracing::warn!(%attempt, max = limits.max_bytes, "checkpoint upload over the size limit; abandoned");
            return Err(over_limit(attempt, limits.max_bytes));
        }
        if total > declared {
            return Err(Status::invalid_argument(format!(
                "checkpoint of attempt {attempt}: more than its declared {declared} bytes"
            )));
        }
        if !c.sha256.is_empty() {
            sent_sha = c.sha256;
        }
        pace.add(c.data.len());
        let data = c.data;
        staging = blocking(
            move || staging.write(&data).map(|()| staging),
            "writing a checkpoint upload",
        )
        .await?;
        chunk = upload.next(&mut stream, &mut pace, &mut windows).await?;
    }
    if staging.size() != declared {
        return Err(Status::invalid_argument(format!(
            "checkpoint of attempt {attempt}: {} bytes sent, {declared} declared",
            staging.size()
        )));
    }
    let staged = blocking(move || staging.finish(), "syncing a checkpoint upload").await?;
    if !staged.sha256.eq_ignore_ascii_case(sent_sha.trim()) {
        crate::checkpoints::remove_quietly(&staged.path);
        return Err(Status::data_loss(format!(
            "checkpoint of attempt {attempt}: sha256 {} does not match the sent {sent_sha:?}",
            staged.sha256
        )));
    }
    Ok(staged)
}

/// Streams the checkpoint file of `record` in `chunk`-byte pieces; the first
/// piece declares the size, the last carries the SHA-256. A missing file ends
/// the stream with NOT_FOUND, a short or altered one with DATA_LOSS, instead
/// of sending wrong bytes (the worker then trains from epoch 0); a client that
/// takes no chunk for `idle` gets DEADLINE_EXCEEDED (if it ever reads again).
/// The download's `ticket` (its place among the downloads in flight) is held
/// until the file is read to its end or the download is abandoned.
pub fn send(
    attempt: AttemptId,
    record: CheckpointRecord,
    chunk: usize,
    idle: Duration,
    ticket: UploadTicket,
) -> ChunkStream {
    let (tx, rx) = tokio::sync::mpsc::channel(DOWNLOAD_QUEUE);
    // The error that ends the stream, after the chunks already queued.
    let (end_tx, end_rx) = tokio::sync::oneshot::channel::<Status>();
    tokio::spawn(async move {
        let result = feed(&tx, attempt, &record, chunk, idle).await;
        drop(ticket);
        if let Err(status) = result {
            let _ = end_tx.send(status);
        }
    });
    let end = futures::stream::once(end_rx).filter_map(|r| async move { r.ok().map(Err) });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx).chain(end))
}

/// Reads the file into `tx` chunk by chunk; `Ok` also when the client went away.
async fn feed(
    tx: &tokio::sync::mpsc::Sender<Result<pb::CheckpointChunk, Status>>,
    attempt: AttemptId,
    record: &CheckpointRecord,
    chunk: usize,
    idle: Duration,
) -> Result<(), Status> {
    let mut reader = ChunkReader::open(&record.path, record.size, &record.sha256, chunk)
        .await
        .map_err(|e| {
            Status::data_loss(format!(
                "checkpoint {} cannot be opened: {e}",
                record.path.display()
            ))
        })?;
    let mut sent = 0u64;
    while let Some(data) = reader
        .next_chunk()
        .await
        .map_err(|e| Status::data_loss(e.to_string()))?
    {
        let first = sent == 0;
        sent += data.len() as u64;
        let item = pb::CheckpointChunk {
            attempt_id: attempt.to_string(),
            epoch: record.epoch,
            data,
            sha256: if sent == record.size {
                record.sha256.clone()
            } else {
                String::new()
            },
            worker: None,
            size: if first { record.size } else { 0 },
        };
        match tokio::time::timeout(idle, tx.send(Ok(item))).await {
            Ok(Ok(())) => {}
            // The worker went away; stop reading.
            Ok(Err(_)) => return Ok(()),
            Err(_) => {
                tracing::warn!(%attempt, seconds = idle.as_secs_f64(), "checkpoint download not read; abandoned");
                return Err(Status::deadline_exceeded(format!(
                    "checkpoint download of attempt {attempt}: nothing read for {:.0} s; abandoned",
                    idle.as_secs_f64()
                )));
            }
        }
    }
    Ok(())
}
