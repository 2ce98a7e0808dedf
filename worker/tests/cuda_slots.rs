//! GPU checks (feature `cuda-tests`) of what lets several jobs share a GPU:
//! a stream per training thread, pinned staging buffers reused batch after
//! batch, checkpoints copied off the GPU and written in the background, the
//! card's free memory, out-of-memory as a transient failure. (Beside
//! `tests/cuda.rs`, which the fused-kernel work changes at the same time.)
#![cfg(feature = "cuda-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use spikecv_worker::checkpoint::{Checkpoint, CheckpointWriter, FORMAT_VERSION, Progress};
use spikecv_worker::cuda_host;
use spikecv_worker::train::TrainError;
use spikecv_worker::train::step::guarded;
use spikecv_worker::upload::{Role, Staging};
use tch::{Device, Kind, Tensor};

const CUDA: Device = Device::Cuda(0);

#[test]
fn each_training_thread_takes_its_own_stream() {
    assert!(tch::Cuda::is_available(), "no CUDA device");
    let take = || {
        std::thread::spawn(|| {
            let id = cuda_host::use_pool_stream(0).unwrap();
            assert_eq!(cuda_host::current_stream(0).unwrap(), id);
            id
        })
        .join()
        .unwrap()
    };
    let (a, b) = (take(), take());
    assert_ne!(a, 0, "a pool stream, not the default stream");
    assert_ne!(a, b, "two threads, two streams");
    assert_eq!(
        cuda_host::current_stream(0).unwrap(),
        0,
        "this thread kept the default stream"
    );
}

#[test]
fn staged_uploads_reuse_pinned_buffers_and_arrive_intact() {
    assert!(tch::Cuda::is_available(), "no CUDA device");
    cuda_host::use_pool_stream(0).unwrap();
    let mut staging = Staging::pinned();
    for round in 0..6i64 {
        let input = (Tensor::arange(4000 - round, (Kind::Int64, Device::Cpu)).remainder(251))
            .to_kind(Kind::Uint8);
        let labels = Tensor::from_slice(&[round, 18, 0]);
        let on_gpu = staging.upload(Role::Input, &input, CUDA).unwrap();
        let labels_gpu = staging.upload(Role::Labels, &labels, CUDA).unwrap();
        assert_eq!(on_gpu.device(), CUDA);
        assert!(on_gpu.to_device(Device::Cpu).equal(&input), "round {round}");
        assert!(
            labels_gpu.to_device(Device::Cpu).equal(&labels),
            "round {round}"
        );
    }
    assert_eq!(
        staging.allocations(),
        4,
        "two buffers per role, allocated once"
    );
    let (staged, _) = staging
        .stage(Role::Input, &Tensor::ones([8], (Kind::Float, Device::Cpu)))
        .unwrap();
    assert!(staged.is_pinned(CUDA), "staging memory is page-locked");
}

#[test]
fn a_checkpoint_written_from_the_gpu_is_the_file_the_cpu_writes() {
    assert!(tch::Cuda::is_available(), "no CUDA device");
    let dir = tempfile::tempdir().unwrap();
    let progress = Progress {
        format: FORMAT_VERSION,
        job_key: "gpu".into(),
        epoch: 1,
        optimizer_step: 7,
        lr: 1e-3,
        train_seconds: 0.5,
        epochs: Vec::new(),
        best: None,
    };
    let on_gpu: HashMap<String, Tensor> = [
        ("model.w", Tensor::randn([64, 32], (Kind::Float, CUDA))),
        (
            "optim.exp_avg.w",
            Tensor::randn([64, 32], (Kind::Float, CUDA)),
        ),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_owned(), t))
    .collect();
    let on_cpu = on_gpu
        .iter()
        .map(|(n, t)| (n.clone(), t.to_device(Device::Cpu)))
        .collect();
    let (want, got) = (
        dir.path().join("cpu.safetensors"),
        dir.path().join("gpu.safetensors"),
    );
    Checkpoint {
        progress: progress.clone(),
        tensors: on_cpu,
    }
    .save(&want)
    .unwrap();
    let mut writer = CheckpointWriter::new();
    let live: Vec<Tensor> = on_gpu.values().map(Tensor::shallow_clone).collect();
    writer
        .submit(
            Checkpoint {
                progress,
                tensors: on_gpu,
            },
            &got,
            CUDA,
        )
        .unwrap();
    // Training goes on in place meanwhile: the file keeps the values submitted.
    for t in &live {
        let _ = t.shallow_clone().fill_(7.0);
    }
    assert_eq!(writer.wait().unwrap(), Some(got.clone()));
    assert_eq!(std::fs::read(&want).unwrap(), std::fs::read(&got).unwrap());
}

#[test]
fn free_memory_is_read_and_out_of_memory_is_transient() {
    assert!(tch::Cuda::is_available(), "no CUDA device");
    let (free, total) = cuda_host::mem_info(0).unwrap();
    assert!(free <= total && total > 1 << 30, "free {free} of {total}");
    assert_eq!(
        spikecv_worker::cache::cuda_auto_budget(Some(free)),
        free / 2
    );
    let too_big = i64::try_from(total).unwrap(); // floats: four times the card
    let failed = guarded(CUDA, "a training step", || {
        Tensor::empty([too_big], (Kind::Float, CUDA))
    })
    .unwrap_err();
    assert!(
        matches!(failed, TrainError::OutOfMemory { cuda: true, .. }),
        "{failed:?}"
    );
    assert!(!failed.is_deterministic());
    cuda_host::empty_cache().unwrap();
}
