//! The parent's side of a slot process ([`crate::slot_child`]): starts
//! `worker slot-child` for a slot with a job's process-wide settings, hands
//! it jobs, and passes its epochs and checkpoints to the slot's observer.
//! Blocking I/O: it runs on the slot's training thread.

use std::io::BufReader;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};

use crate::cache::Budget;
use crate::devices::DeviceSpec;
use crate::lif::fused::LifKernels;
use crate::settings::{ProcessSettings, Switches};
use crate::slot_child::wire::{
    ChildJob, ChildOutcome, FromChild, ToChild, WireError, receive, send,
};
use crate::train::{Control, Observer};

/// How the slot processes of a worker are started.
#[derive(Debug, Clone)]
pub struct ChildLaunch {
    /// The `worker` binary (this one, unless a test says otherwise).
    pub program: PathBuf,
    /// `--system-allocator` is passed on.
    pub system_allocator: bool,
    /// `--lif-kernels` is passed on.
    pub lif_kernels: LifKernels,
    /// The frame cache budget of each device (`--frame-cache-gib`).
    pub frame_cache: Budget,
}

/// A slot process that could not be started or stopped answering.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// The process could not be started.
    #[error("cannot start the slot process {program}: {source}")]
    Spawn {
        /// The binary.
        program: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The process said it cannot run jobs.
    #[error("the slot process cannot set itself up: {0}")]
    Unusable(String),
    /// The process ended without finishing the job (a crash, a signal).
    #[error("the slot process died ({status})")]
    Died {
        /// How it ended.
        status: String,
    },
    /// The pipe failed or carried something else than the protocol.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// One running slot process.
pub struct SlotChild {
    process: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    settings: ProcessSettings,
    effective: Switches,
}

impl std::fmt::Debug for SlotChild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotChild")
            .field("pid", &self.process.id())
            .field("settings", &self.settings)
            .finish()
    }
}

impl Drop for SlotChild {
    fn drop(&mut self) {
        // An idle process exits when its stdin closes; one that is not idle
        // is of no further use.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// How an exit status reads in a report.
fn describe(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("killed by signal {signal}");
        }
    }
    match status.code() {
        Some(code) => format!("exit status {code}"),
        None => "no exit status".to_owned(),
    }
}

impl SlotChild {
    /// Starts a slot process for `device` (one of `share` slots on it) with
    /// `settings`, and waits until it has set them.
    pub fn start(
        launch: &ChildLaunch,
        device: DeviceSpec,
        share: usize,
        settings: ProcessSettings,
    ) -> Result<Self, ChildError> {
        let mut command = Command::new(&launch.program);
        if launch.system_allocator {
            command.arg("--system-allocator");
        }
        let budget = match launch.frame_cache {
            Budget::Auto => "auto".to_owned(),
            Budget::Bytes(b) => format!("{:?}", b as f64 / f64::from(1u32 << 30)),
        };
        if let Some(kernels) = clap::ValueEnum::to_possible_value(&launch.lif_kernels) {
            command.arg("--lif-kernels").arg(kernels.get_name());
        }
        command
            .arg("slot-child")
            .arg("--device")
            .arg(device.to_string())
            .arg("--tf32")
            .arg(settings.tf32.to_string())
            .arg("--deterministic")
            .arg(settings.deterministic.to_string())
            .arg("--frame-cache-gib")
            .arg(budget)
            .arg("--frame-cache-share")
            .arg(share.max(1).to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let spawn = |source| ChildError::Spawn {
            program: launch.program.clone(),
            source,
        };
        // A process group of its own: a Ctrl-C in the worker's terminal
        // reaches the worker, which stops the job at its epoch boundary and
        // hands it back, instead of killing the training mid-epoch.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut process = command.spawn().map_err(spawn)?;
        let (Some(stdin), Some(stdout)) = (process.stdin.take(), process.stdout.take()) else {
            let _ = process.kill();
            let _ = process.wait();
            return Err(spawn(std::io::Error::other("no pipes to the slot process")));
        };
        let mut child = SlotChild {
            process,
            stdin,
            stdout: BufReader::new(stdout),
            settings,
            effective: Switches {
                tf32: settings.tf32,
                deterministic: settings.deterministic,
                cudnn_deterministic: false,
                cudnn_benchmark: false,
            },
        };
        match child.next()? {
            FromChild::Ready { settings } => {
                child.effective = settings;
                tracing::info!(pid = child.process.id(), %device, ?settings, "slot process started");
                Ok(child)
            }
            FromChild::Unusable { message } => Err(ChildError::Unusable(message)),
            other => Err(ChildError::Unusable(format!(
                "expected its settings, got {other:?}"
            ))),
        }
    }

    /// The settings the process was started with.
    pub fn settings(&self) -> ProcessSettings {
        self.settings
    }

    /// libtorch's switches as the process reported them.
    pub fn effective(&self) -> Switches {
        self.effective
    }

    /// The next message; the process's end (reaped) when the pipe closed.
    fn next(&mut self) -> Result<FromChild, ChildError> {
        match receive(&mut self.stdout)? {
            Some(m) => Ok(m),
            None => {
                let status = self
                    .process
                    .wait()
                    .map_or_else(|e| format!("cannot wait for it: {e}"), describe);
                Err(ChildError::Died { status })
            }
        }
    }

    /// Trains `job` in the process, passing its progress to `observer`.
    pub fn run(
        &mut self,
        job: ChildJob,
        observer: &mut dyn Observer,
    ) -> Result<ChildOutcome, ChildError> {
        send(&mut self.stdin, &ToChild::Run { job: Box::new(job) })?;
        loop {
            match self.next()? {
                FromChild::EpochStart { epoch, epochs } => observer.on_epoch_start(epoch, epochs),
                FromChild::Epoch { metrics } => {
                    let stop = observer.on_epoch(&metrics) == Control::Stop;
                    send(&mut self.stdin, &ToChild::Control { stop })?;
                }
                FromChild::Checkpoint { path } => {
                    observer.on_checkpoint(&path);
                    send(&mut self.stdin, &ToChild::Ack)?;
                }
                FromChild::Done { outcome } => return Ok(outcome),
                other @ (FromChild::Ready { .. } | FromChild::Unusable { .. }) => {
                    tracing::warn!(message = ?other, "slot process: a message out of turn; ignored")
                }
            }
        }
    }
}
