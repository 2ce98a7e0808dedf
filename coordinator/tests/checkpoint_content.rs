//! Checkpoint laundering over the real protocol: a hand-made worker uploads
//! checkpoints whose progress record (the `spikecv.progress` entry of a
//! safetensors header, written here by hand) contradicts its declaration or
//! the metrics it reported. Each is refused with INVALID_ARGUMENT naming the
//! field; the honest record is taken, the figures it was checked against
//! cannot be reported otherwise after, the next worker downloads it, and
//! once another attempt stores other figures for its epochs it is dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod net_support;

use net_support::{Joined, join, lease_slots, metrics, start};
use serde_json::json;
use sha2::{Digest, Sha256};
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::job::EpochMetrics;
use spikecv_common::proto::client::WorkerClient;
use spikecv_common::proto::{
    Assignment, CheckpointChunk, DownloadCheckpointRequest, ReleaseRequest, ReportEpochRequest,
};
use spikecv_coordinator::auth::AuthConfig;
use tonic::Code;

async fn lease_one(client: &mut WorkerClient, who: &Joined, name: &str) -> Assignment {
    let r = lease_slots(client, who, name, "fp-A", 1).await;
    assert_eq!(r.assignments.len(), 1);
    r.assignments.into_iter().next().unwrap()
}

/// The job key a worker writes for `a` (worker/src/train/mod.rs `job_key`:
/// variant, seed, fold, protocol, simulation, training, split, net, init).
fn job_key(a: &Assignment) -> serde_json::Value {
    let config = ExperimentConfig::from_toml_str(&a.config_toml).unwrap();
    let split = a.split.as_ref().unwrap();
    json!({
        "variant": a.variant,
        "seed": a.seed,
        "fold": a.fold,
        "protocol": a.protocol,
        "simulation": config.simulation,
        "training": config.training,
        "split": {"train": split.train, "val": split.val, "test": split.test},
        "net": {"classes": 19},
        "init": false,
    })
}

/// A progress record of `epoch` epochs whose best is `best_epoch` with
/// `best_test` test accuracy.
fn record(
    key: &serde_json::Value,
    epoch: u32,
    epochs: &[EpochMetrics],
    best: &EpochMetrics,
) -> serde_json::Value {
    json!({
        "format": 1,
        "job_key": key.to_string(),
        "epoch": epoch,
        "optimizer_step": 10,
        "lr": 0.001,
        "train_seconds": 1.0,
        "epochs": epochs,
        "best": {
            "epoch": best.epoch,
            "val_loss": best.val_loss,
            "val_accuracy": best.val_accuracy,
            "test_loss": best.test_loss.unwrap(),
            "test_accuracy": best.test_accuracy.unwrap(),
            "confusion": [],
        },
    })
}

/// A safetensors file (the format's layout: an 8-byte little-endian header
/// length, the JSON header, the tensor bytes) with one 4-byte tensor and the
/// progress record in its metadata.
fn checkpoint_file(progress: &serde_json::Value) -> Vec<u8> {
    let header = json!({
        "__metadata__": {"spikecv.progress": progress.to_string()},
        "model.w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
    })
    .to_string();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&1.0f32.to_le_bytes());
    out
}

async fn upload(
    client: &mut WorkerClient,
    who: &Joined,
    attempt: &str,
    epoch: u32,
    bytes: Vec<u8>,
) -> tonic::Result<()> {
    let chunk = CheckpointChunk {
        attempt_id: attempt.to_owned(),
        epoch,
        sha256: hex::encode(Sha256::digest(&bytes)),
        size: bytes.len() as u64,
        data: bytes,
        worker: who.creds(),
    };
    client
        .upload_checkpoint(tokio_stream::iter(vec![chunk]))
        .await
        .map(|_| ())
}

/// Metrics of epoch 1 as the selected epoch reports them (test evaluated).
fn selected(epoch: u32) -> EpochMetrics {
    EpochMetrics {
        test_loss: Some(0.9),
        test_accuracy: Some(0.25),
        ..metrics(epoch)
    }
}

#[tokio::test]
async fn a_laundered_or_mislabelled_checkpoint_is_refused_naming_the_field() {
    let server = start(2, "fp-A", AuthConfig::default()).await;
    let mut client = server.worker(None);
    let liar = join(&mut client, "liar", "fp-A").await;
    let a = lease_one(&mut client, &liar, "liar").await;
    client
        .report_epoch(ReportEpochRequest {
            attempt_id: a.attempt_id.clone(),
            metrics: Some(selected(1).to_proto()),
            worker: liar.creds(),
        })
        .await
        .unwrap();
    let key = job_key(&a);
    let honest = record(&key, 1, &[selected(1)], &selected(1));

    // Laundering: `best` claims accuracy 1.0 for the epoch reported as 0.25.
    let laundered_best = EpochMetrics {
        test_accuracy: Some(1.0),
        val_accuracy: Some(1.0),
        ..selected(1)
    };
    let laundered = record(&key, 1, &[selected(1)], &laundered_best);
    // The epochs in the file differ from the reported ones.
    let rewritten = record(
        &key,
        1,
        std::slice::from_ref(&laundered_best),
        &laundered_best,
    );
    // The record says epoch 2 where the upload declares 1.
    let mut ahead = honest.clone();
    ahead["epoch"] = json!(2);
    // Another job's key (seed 7) and another configuration (learning rate).
    let mut other_seed = key.clone();
    other_seed["seed"] = json!(7);
    let other_job = record(&other_seed, 1, &[selected(1)], &selected(1));
    let mut other_lr = key.clone();
    other_lr["training"]["lr"] = json!(0.5);
    let other_config = record(&other_lr, 1, &[selected(1)], &selected(1));
    for (progress, field) in [
        (&laundered, "best"),
        (&rewritten, "epochs"),
        (&ahead, "epoch"),
        (&other_job, "job"),
        (&other_config, "configuration"),
    ] {
        let e = upload(
            &mut client,
            &liar,
            &a.attempt_id,
            1,
            checkpoint_file(progress),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{field}: {e:?}");
        assert!(
            e.message().contains(&format!("progress record's {field}:")),
            "{field}: {}",
            e.message()
        );
    }
    // No refused upload was kept.
    let missing = client
        .download_checkpoint(DownloadCheckpointRequest {
            attempt_id: a.attempt_id.clone(),
            worker: liar.creds(),
        })
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(missing, Some(Code::DataLoss));

    // The honest record is taken; released, the job's next worker gets it.
    let honest_bytes = checkpoint_file(&honest);
    upload(&mut client, &liar, &a.attempt_id, 1, honest_bytes.clone())
        .await
        .unwrap();
    // The figures the record was checked against cannot be changed after:
    // the same report again is taken, other figures for epoch 1 are not.
    let report = |m: EpochMetrics| ReportEpochRequest {
        attempt_id: a.attempt_id.clone(),
        metrics: Some(m.to_proto()),
        worker: liar.creds(),
    };
    client.report_epoch(report(selected(1))).await.unwrap();
    let e = client
        .report_epoch(report(laundered_best.clone()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("other figures"), "{}", e.message());
    client
        .release(ReleaseRequest {
            attempt_id: a.attempt_id.clone(),
            worker: liar.creds(),
        })
        .await
        .unwrap();
    let next = join(&mut client, "next", "fp-A").await;
    let b = lease_one(&mut client, &next, "next").await;
    assert_eq!(b.job_id, a.job_id);
    assert!(b.has_checkpoint);
    let mut stream = client
        .download_checkpoint(DownloadCheckpointRequest {
            attempt_id: b.attempt_id.clone(),
            worker: next.creds(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        got.extend_from_slice(&chunk.data);
    }
    assert_eq!(got, honest_bytes);

    // The next worker trains epoch 1 again with other figures (it could not
    // load the file): the record no longer lists the stored figures, and the
    // checkpoint is dropped.
    client
        .report_epoch(ReportEpochRequest {
            attempt_id: b.attempt_id.clone(),
            metrics: Some(metrics(1).to_proto()),
            worker: next.creds(),
        })
        .await
        .unwrap();
    let gone = client
        .download_checkpoint(DownloadCheckpointRequest {
            attempt_id: b.attempt_id.clone(),
            worker: next.creds(),
        })
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(gone, Some(Code::DataLoss));
    server.stop().await;
}
