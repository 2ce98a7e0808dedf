//! Checkpoint transfer: upload (client streaming, 1 MiB chunks, the size on the
//! first one, the sha256 on the last one) and download (server streaming,
//! checked against the sha256, written to a temporary file and renamed into
//! place). A download that sends more than its declared size, or does not
//! finish in time, is abandoned: the job then trains from epoch 0.

use std::path::Path;
use std::time::Duration;

use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use spikecv_common::proto::client::WorkerClient;
use spikecv_common::proto::{CheckpointChunk, DownloadCheckpointRequest, WorkerCredentials};
use tonic::Status;

use super::observer::PendingCheckpoint;

/// Bytes per chunk.
pub const CHUNK: usize = 1 << 20;

/// Uploads a checkpoint for an attempt (the first chunk says who uploads).
pub async fn upload(
    client: &mut WorkerClient,
    who: WorkerCredentials,
    attempt_id: &str,
    ckpt: &PendingCheckpoint,
) -> Result<u64, Status> {
    let sha = hex::encode(Sha256::digest(ckpt.bytes.as_slice()));
    let bytes = ckpt.bytes.clone();
    let n = bytes.len().div_ceil(CHUNK).max(1);
    let attempt_id = attempt_id.to_owned();
    let epoch = ckpt.epoch;
    let chunks = (0..n).map(move |i| {
        let start = i * CHUNK;
        let end = (start + CHUNK).min(bytes.len());
        CheckpointChunk {
            attempt_id: if i == 0 {
                attempt_id.clone()
            } else {
                String::new()
            },
            epoch,
            data: bytes[start..end].to_vec(),
            sha256: if i + 1 == n {
                sha.clone()
            } else {
                String::new()
            },
            worker: (i == 0).then(|| who.clone()),
            size: if i == 0 { bytes.len() as u64 } else { 0 },
        }
    });
    let r = client.upload_checkpoint(tokio_stream::iter(chunks)).await?;
    Ok(r.into_inner().bytes)
}

/// Why a checkpoint download was given up (not worth another try: the job
/// trains from epoch 0 instead, as for a damaged file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Abandoned {
    /// More bytes came than the first chunk declared.
    #[error("the coordinator sent more than the {declared} bytes it declared")]
    LargerThanDeclared {
        /// The declared size.
        declared: u64,
    },
    /// The download did not finish within the limit.
    #[error("not finished within {} s", limit.as_secs_f64())]
    TooSlow {
        /// The limit.
        limit: Duration,
    },
}

/// A download's outcome: the outer error is the coordinator's (retried or
/// refused as any call), the inner one a download given up.
pub type DownloadResult = Result<Result<u64, Abandoned>, Status>;

/// Downloads the checkpoint of the job `attempt_id` runs into `dest`, giving
/// up after `limit`.
pub async fn download(
    client: &mut WorkerClient,
    who: WorkerCredentials,
    attempt_id: &str,
    dest: &Path,
    limit: Duration,
) -> DownloadResult {
    within(limit, async {
        let stream = client
            .download_checkpoint(DownloadCheckpointRequest {
                attempt_id: attempt_id.to_owned(),
                worker: Some(who),
            })
            .await?
            .into_inner();
        receive(stream, dest).await
    })
    .await
}

/// `fetch`, abandoned when it takes longer than `limit`.
pub async fn within(
    limit: Duration,
    fetch: impl std::future::Future<Output = DownloadResult>,
) -> DownloadResult {
    tokio::time::timeout(limit, fetch)
        .await
        .unwrap_or(Ok(Err(Abandoned::TooSlow { limit })))
}

/// Reads a download's chunks into `dest`, checked against the declared size
/// (if the first chunk gives one) and the sha256 of the last chunk.
pub async fn receive(
    mut stream: impl Stream<Item = Result<CheckpointChunk, Status>> + Unpin,
    dest: &Path,
) -> DownloadResult {
    let mut hasher = Sha256::new();
    let mut data = Vec::new();
    let mut expected = String::new();
    let mut declared = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let limit = *declared.get_or_insert(chunk.size);
        if limit > 0 && (data.len() + chunk.data.len()) as u64 > limit {
            return Ok(Err(Abandoned::LargerThanDeclared { declared: limit }));
        }
        hasher.update(&chunk.data);
        data.extend_from_slice(&chunk.data);
        if !chunk.sha256.is_empty() {
            expected = chunk.sha256;
        }
    }
    let actual = hex::encode(hasher.finalize());
    if !actual.eq_ignore_ascii_case(&expected) {
        // A torn transfer: worth another try.
        return Err(Status::data_loss(format!(
            "checkpoint download: sha256 {actual} does not match the coordinator's {expected:?}"
        )));
    }
    let tmp = dest.with_extension("download");
    let io = |e: std::io::Error| Status::internal(format!("writing {}: {e}", tmp.display()));
    tokio::fs::write(&tmp, &data).await.map_err(io)?;
    tokio::fs::rename(&tmp, dest).await.map_err(io)?;
    Ok(Ok(data.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(data: &[u8], size: u64, sha: &str) -> Result<CheckpointChunk, Status> {
        Ok(CheckpointChunk {
            data: data.to_vec(),
            size,
            sha256: sha.to_owned(),
            ..CheckpointChunk::default()
        })
    }

    fn sha(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[tokio::test]
    async fn a_download_within_its_declared_size_is_written() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dest = dir.path().join("ckpt");
        let chunks = vec![chunk(b"abc", 6, ""), chunk(b"def", 0, &sha(b"abcdef"))];
        let r = receive(futures::stream::iter(chunks), &dest).await;
        assert_eq!(r.ok(), Some(Ok(6)));
        assert_eq!(std::fs::read(&dest).ok().as_deref(), Some(&b"abcdef"[..]));
    }

    #[tokio::test]
    async fn a_download_larger_than_declared_is_abandoned_and_nothing_written() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dest = dir.path().join("ckpt");
        // The sha256 would match: only the size gives it away.
        let chunks = vec![chunk(b"abc", 4, ""), chunk(b"def", 0, &sha(b"abcdef"))];
        let r = receive(futures::stream::iter(chunks), &dest).await;
        assert_eq!(
            r.ok(),
            Some(Err(Abandoned::LargerThanDeclared { declared: 4 }))
        );
        assert!(!dest.exists());
        assert!(!dest.with_extension("download").exists());
    }

    #[tokio::test]
    async fn a_download_that_stalls_is_abandoned_after_the_limit() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dest = dir.path().join("ckpt");
        // One chunk, then nothing ever again.
        let stalled =
            futures::stream::iter(vec![chunk(b"abc", 6, "")]).chain(futures::stream::pending());
        let limit = Duration::from_millis(100);
        let started = std::time::Instant::now();
        let r = within(limit, receive(stalled, &dest)).await;
        assert_eq!(r.ok(), Some(Err(Abandoned::TooSlow { limit })));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(!dest.exists());
    }

    #[tokio::test]
    async fn a_torn_download_is_data_loss_so_it_is_tried_again() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dest = dir.path().join("ckpt");
        let chunks = vec![chunk(b"abc", 6, &sha(b"abcdef"))];
        let r = receive(futures::stream::iter(chunks), &dest).await;
        assert_eq!(r.err().map(|s| s.code()), Some(tonic::Code::DataLoss));
        assert!(!dest.exists());
    }
}
