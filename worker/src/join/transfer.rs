//! Checkpoint transfer: upload (client streaming, 1 MiB chunks, sha256 on the
//! last one) and download (server streaming, checked against the sha256, written
//! to a temporary file and renamed into place).

use std::path::Path;

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
        }
    });
    let r = client.upload_checkpoint(tokio_stream::iter(chunks)).await?;
    Ok(r.into_inner().bytes)
}

/// Downloads the checkpoint of the job `attempt_id` runs into `dest`.
pub async fn download(
    client: &mut WorkerClient,
    who: WorkerCredentials,
    attempt_id: &str,
    dest: &Path,
) -> Result<u64, Status> {
    let mut stream = client
        .download_checkpoint(DownloadCheckpointRequest {
            attempt_id: attempt_id.to_owned(),
            worker: Some(who),
        })
        .await?
        .into_inner();
    let mut hasher = Sha256::new();
    let mut data = Vec::new();
    let mut expected = String::new();
    while let Some(chunk) = stream.message().await? {
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
    Ok(data.len() as u64)
}
