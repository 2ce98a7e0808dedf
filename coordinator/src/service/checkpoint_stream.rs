//! Checkpoint uploads and downloads as streams between the network and files,
//! within the [`CheckpointLimits`]: upload chunks are written on blocking
//! threads (never the scheduler thread, which only records or looks up the
//! file); downloads are read with async file reads, so a client that does not
//! read holds no thread, only a small queue, and is dropped after the idle
//! timeout.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use spikecv_common::proto as pb;
use tonic::{Status, Streaming};

use super::upload_gate::{CheckpointLimits, UploadTicket};
use crate::checkpoints::{CheckpointDir, ChunkReader, StagedCheckpoint, StagingFile};
use crate::scheduler::{AttemptId, CheckpointRecord};

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
        Err(_) => {
            let whose = attempt.map_or_else(String::new, |a| format!(" of attempt {a}"));
            tracing::warn!(attempt = ?attempt, seconds = idle.as_secs_f64(), "checkpoint upload idle; abandoned");
            Err(Status::deadline_exceeded(format!(
                "checkpoint upload{whose}: no chunk for {:.0} s (--checkpoint-idle-timeout-seconds); abandoned",
                idle.as_secs_f64()
            )))
        }
    }
}

/// The refusal of an upload larger than `max` bytes.
pub fn over_limit(attempt: AttemptId, max: u64) -> Status {
    Status::resource_exhausted(format!(
        "checkpoint of attempt {attempt} exceeds the limit of {max} bytes (--max-checkpoint-mib)"
    ))
}

/// The refusal of an upload that did not end within its total `deadline`.
pub fn too_slow(
    attempt: AttemptId,
    declared: u64,
    deadline: Duration,
    limits: &CheckpointLimits,
) -> Status {
    tracing::warn!(%attempt, declared, seconds = deadline.as_secs_f64(), "checkpoint upload too slow; abandoned");
    Status::deadline_exceeded(format!(
        "checkpoint upload of attempt {attempt}: {declared} bytes not received within {:.0} s \
         ({:.0} s plus the size at {} bytes/s, the minimum rate); abandoned",
        deadline.as_secs_f64(),
        limits.upload_grace.as_secs_f64(),
        limits.min_upload_rate
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

/// Receives the rest of an upload whose `first` chunk has been read into
/// `staging`, within `limits` and the `declared` size;
/// checks the sent SHA-256. Returns the synced file, ready to be recorded. On
/// any error the staged file is removed (with `staging`).
pub async fn receive(
    attempt: AttemptId,
    first: pb::CheckpointChunk,
    mut stream: Streaming<pb::CheckpointChunk>,
    mut staging: StagingFile,
    limits: &CheckpointLimits,
    declared: u64,
) -> Result<StagedCheckpoint, Status> {
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
        let data = c.data;
        staging = blocking(
            move || staging.write(&data).map(|()| staging),
            "writing a checkpoint upload",
        )
        .await?;
        chunk = next_chunk(&mut stream, limits.idle_timeout, Some(attempt)).await?;
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
