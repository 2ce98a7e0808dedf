//! Checkpoints written off the training thread, for CUDA jobs: the tensors are
//! copied to pinned host memory without blocking (a non-blocking copy to the
//! CPU lands in pinned memory in libtorch), an event is recorded after the
//! copies, and a thread waits for the event and writes the file as
//! [`Checkpoint::save`] does (safetensors, fsync, rename). The training thread
//! goes on queueing work meanwhile; a write waits for the one before it, and
//! every write's error is returned (by the next [`CheckpointWriter::submit`]
//! or by [`CheckpointWriter::wait`]). The CPU keeps the synchronous
//! [`Checkpoint::save`]: a copy of every tensor would cost it time and memory.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use tch::{Device, Tensor};

use super::{Checkpoint, CheckpointError};
use crate::cuda_host::DeviceEvent;

/// A write in progress.
#[derive(Debug)]
struct Pending {
    path: PathBuf,
    thread: JoinHandle<Result<(), CheckpointError>>,
}

/// Writes one job's checkpoints in the background, one at a time.
#[derive(Debug, Default)]
pub struct CheckpointWriter {
    pending: Option<Pending>,
}

fn failed(path: &Path, message: impl Into<String>) -> CheckpointError {
    CheckpointError::Writer {
        path: path.to_owned(),
        message: message.into(),
    }
}

impl CheckpointWriter {
    /// A writer with nothing in progress.
    pub fn new() -> CheckpointWriter {
        CheckpointWriter::default()
    }

    /// Waits for the write in progress, then starts writing `checkpoint` to
    /// `path`: its tensors copied to host memory (without blocking from a GPU:
    /// an event recorded on `device`'s current stream of this thread tells the
    /// writing thread when the copies are done). Returns the path of the
    /// previous checkpoint once written (`None`: there was none), or its error.
    pub fn submit(
        &mut self,
        checkpoint: Checkpoint,
        path: &Path,
        device: Device,
    ) -> Result<Option<PathBuf>, CheckpointError> {
        let previous = self.wait()?;
        let mut tensors = std::collections::HashMap::with_capacity(checkpoint.tensors.len());
        for (name, t) in checkpoint.tensors {
            let host: Tensor = t
                .f_detach()
                .and_then(|t| t.f_to_device_(Device::Cpu, t.kind(), true, true))
                .map_err(|e| failed(path, format!("copying {name} to the host: {e}")))?;
            tensors.insert(name, host);
        }
        let mut copied = None;
        if let Device::Cuda(index) = device {
            let mut event = DeviceEvent::new().map_err(|e| failed(path, e.to_string()))?;
            event
                .record(index)
                .map_err(|e| failed(path, e.to_string()))?;
            copied = Some(event);
        }
        let host = Checkpoint {
            progress: checkpoint.progress,
            tensors,
        };
        let target = path.to_owned();
        let thread = std::thread::Builder::new()
            .name("checkpoint-writer".into())
            .spawn(move || {
                if let Some(mut event) = copied {
                    event
                        .synchronize()
                        .map_err(|e| failed(&target, e.to_string()))?;
                }
                host.save(&target)
            })
            .map_err(|e| failed(path, format!("cannot start the writing thread: {e}")))?;
        self.pending = Some(Pending {
            path: path.to_owned(),
            thread,
        });
        Ok(previous)
    }

    /// Whether a write has ended (written or failed) and not been collected.
    pub fn is_done(&self) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|p| p.thread.is_finished())
    }

    /// Waits for the write in progress: its path once written, `None` when
    /// there was none, or its error.
    pub fn wait(&mut self) -> Result<Option<PathBuf>, CheckpointError> {
        let Some(pending) = self.pending.take() else {
            return Ok(None);
        };
        match pending.thread.join() {
            Ok(result) => result.map(|()| Some(pending.path)),
            Err(_) => Err(failed(&pending.path, "the writing thread panicked")),
        }
    }
}

impl Drop for CheckpointWriter {
    /// A job that ends early still leaves its last checkpoint whole (or not
    /// renamed into place) before it returns.
    fn drop(&mut self) {
        let _ = self.wait();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use tch::Kind;

    use super::*;
    use crate::checkpoint::{FORMAT_VERSION, Progress};

    fn checkpoint(scale: f64) -> Checkpoint {
        let opts = (Kind::Float, Device::Cpu);
        let tensors = HashMap::from([
            (
                "model.w".to_owned(),
                Tensor::arange(12, opts).view([3, 4]) * scale,
            ),
            (
                "optim.exp_avg.w".to_owned(),
                Tensor::ones([5], opts) * scale,
            ),
            ("best.w".to_owned(), Tensor::from_slice(&[1i64, -2, 3])),
        ]);
        Checkpoint {
            progress: Progress {
                format: FORMAT_VERSION,
                job_key: "job".into(),
                epoch: 3,
                optimizer_step: 30,
                lr: 1e-3,
                train_seconds: 1.5,
                epochs: Vec::new(),
                best: None,
            },
            tensors,
        }
    }

    #[test]
    fn writes_the_file_the_synchronous_save_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (sync_path, async_path) = (
            dir.path().join("a.safetensors"),
            dir.path().join("b.safetensors"),
        );
        checkpoint(2.0).save(&sync_path).unwrap();
        let mut writer = CheckpointWriter::new();
        assert_eq!(
            writer
                .submit(checkpoint(2.0), &async_path, Device::Cpu)
                .unwrap(),
            None
        );
        assert_eq!(writer.wait().unwrap(), Some(async_path.clone()));
        let (want, got) = (
            std::fs::read(&sync_path).unwrap(),
            std::fs::read(&async_path).unwrap(),
        );
        assert!(want.len() > 100);
        assert_eq!(want, got);
        assert_eq!(writer.wait().unwrap(), None, "collected once");
    }

    /// The tensors are copied when submitted: changing them afterwards (as
    /// the next training steps do) does not reach the file.
    #[test]
    fn the_file_holds_the_values_at_submission() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        let ckpt = checkpoint(1.0);
        let mut live = ckpt.tensors["model.w"].shallow_clone();
        let mut writer = CheckpointWriter::new();
        writer.submit(ckpt, &path, Device::Cpu).unwrap();
        let _ = live.f_mul_scalar_(100.0).unwrap();
        writer.wait().unwrap();
        let back = Checkpoint::load(&path, "job").unwrap();
        let w = back.tensor("model", "w").unwrap();
        assert!(w.equal(&(Tensor::arange(12, (Kind::Float, Device::Cpu)).view([3, 4]))));
    }

    /// A failed write is the next submit's error (which then starts nothing:
    /// the job ends on it), or the next wait's.
    #[test]
    fn a_failed_write_is_reported_by_the_next_submit_or_wait() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("missing-folder").join("ckpt.safetensors");
        let good = dir.path().join("ckpt.safetensors");
        let mut writer = CheckpointWriter::new();
        writer.submit(checkpoint(1.0), &bad, Device::Cpu).unwrap();
        let err = writer
            .submit(checkpoint(1.0), &good, Device::Cpu)
            .unwrap_err();
        assert!(err.to_string().contains("missing-folder"), "{err}");
        assert_eq!(
            writer.wait().unwrap(),
            None,
            "nothing started after the error"
        );
        assert!(!good.exists());
        writer.submit(checkpoint(1.0), &bad, Device::Cpu).unwrap();
        let err = writer.wait().unwrap_err();
        assert!(err.to_string().contains("missing-folder"), "{err}");
        writer.submit(checkpoint(1.0), &good, Device::Cpu).unwrap();
        assert_eq!(writer.wait().unwrap(), Some(good.clone()));
        assert!(good.exists());
    }
}
