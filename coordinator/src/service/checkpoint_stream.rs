//! Checkpoint uploads and downloads as streams between the network and files:
//! chunks are written and read on blocking threads, never on the scheduler
//! thread, which only records or looks up the file.

use std::pin::Pin;

use futures::Stream;
use spikecv_common::proto as pb;
use tonic::{Status, Streaming};

use super::MAX_CHECKPOINT_BYTES;
use crate::checkpoints::{ChunkReader, StagedCheckpoint, StagingFile};
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

/// Receives the rest of an upload whose `first` chunk has been read into
/// `staging`; checks the size bound and the sent SHA-256. Returns the synced
/// file, ready to be recorded.
pub async fn receive(
    attempt: AttemptId,
    first: pb::CheckpointChunk,
    mut stream: Streaming<pb::CheckpointChunk>,
    mut staging: StagingFile,
) -> Result<StagedCheckpoint, Status> {
    let mut sent_sha = first.sha256.clone();
    let mut chunk = Some(first);
    while let Some(c) = chunk {
        if staging.size() + c.data.len() as u64 > MAX_CHECKPOINT_BYTES as u64 {
            return Err(Status::resource_exhausted(format!(
                "checkpoint of attempt {attempt} exceeds {MAX_CHECKPOINT_BYTES} bytes"
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
        chunk = stream.message().await?;
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

/// Streams the checkpoint file of `record` in `chunk`-byte pieces; the last
/// piece carries the SHA-256. A missing file ends the stream with NOT_FOUND, a
/// short or altered one with DATA_LOSS, instead of sending wrong bytes (the
/// worker then trains from epoch 0).
pub fn send(attempt: AttemptId, record: CheckpointRecord, chunk: usize) -> ChunkStream {
    let (tx, rx) = tokio::sync::mpsc::channel(DOWNLOAD_QUEUE);
    tokio::task::spawn_blocking(move || {
        let mut reader = match ChunkReader::open(&record.path, record.size, &record.sha256, chunk) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(Status::not_found(format!(
                    "checkpoint {} cannot be opened: {e}",
                    record.path.display()
                ))));
                return;
            }
        };
        let mut sent = 0u64;
        loop {
            let item = match reader.next_chunk() {
                Ok(Some(data)) => {
                    sent += data.len() as u64;
                    Ok(pb::CheckpointChunk {
                        attempt_id: attempt.to_string(),
                        epoch: record.epoch,
                        data,
                        sha256: if sent == record.size {
                            record.sha256.clone()
                        } else {
                            String::new()
                        },
                        worker: None,
                    })
                }
                Ok(None) => return,
                Err(e) => Err(Status::data_loss(e.to_string())),
            };
            let failed = item.is_err();
            // A closed channel: the worker went away; stop reading.
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
