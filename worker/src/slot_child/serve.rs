//! The slot process's side (`worker slot-child`): sets libtorch's switches
//! once, then trains the jobs its parent sends, one at a time, on its main
//! thread, reporting epochs and checkpoints and waiting for the parent's
//! answer at each.

use std::io::{BufReader, Write};
use std::path::Path;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, channel};

use spikecv_common::dataset::Dataset;
use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::error::ConfigError;
use spikecv_common::experiment::job::{EpochMetrics, JobResult};

use super::fault::{Fault, FaultKind, STICKY_MESSAGE};
use super::wire::{ChildJob, ChildOutcome, FromChild, ToChild, WireError, receive, send};
use crate::cache::Budget;
use crate::devices::DeviceSpec;
use crate::lif::fused::LifKernels;
use crate::settings::{ProcessSettings, SettingsError, effective};
use crate::train::{Control, JobSpec, Observer, TrainError, checkpoint_path, run_job};

/// Flags of the hidden `worker slot-child` command (set by `worker join`).
#[derive(Debug, clap::Args)]
pub struct SlotChildArgs {
    /// The slot's device.
    #[arg(long)]
    pub device: DeviceSpec,
    /// cuDNN convolutions may use TF32 (`true` or `false`).
    #[arg(long, action = clap::ArgAction::Set)]
    pub tf32: bool,
    /// Deterministic algorithms (`true` or `false`).
    #[arg(long, action = clap::ArgAction::Set)]
    pub deterministic: bool,
    /// The device's frame cache budget in GiB, or `auto`.
    #[arg(long, default_value = "auto", value_parser = crate::cache::parse_budget)]
    pub frame_cache_gib: Budget,
    /// How many slots share the device's frame cache budget.
    #[arg(long, default_value_t = 1)]
    pub frame_cache_share: usize,
}

/// Why a slot process ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum SlotChildError {
    /// libtorch's switches could not be set.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The parent's pipe failed.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// Runs the slot process until its parent closes its stdin (or a sticky
/// device error ends it).
pub fn serve(args: &SlotChildArgs, lif_kernels: LifKernels) -> Result<(), SlotChildError> {
    let mut out = std::io::stdout();
    crate::cache::set_budget(args.frame_cache_gib);
    crate::cache::set_share(args.frame_cache_share);
    let settings = ProcessSettings {
        tf32: args.tf32,
        deterministic: args.deterministic,
    };
    match settings.apply().and_then(|()| effective()) {
        Ok(settings) => send(&mut out, &FromChild::Ready { settings })?,
        Err(e) => {
            send(
                &mut out,
                &FromChild::Unusable {
                    message: e.to_string(),
                },
            )?;
            return Err(e.into());
        }
    }
    let inbox = spawn_reader();
    let fault = Fault::from_env();
    while let Some(message) = inbox.recv() {
        let ToChild::Run { job } = message else {
            tracing::warn!(?message, "slot process: a message out of turn; ignored");
            continue;
        };
        let outcome = run_one(&job, args.device, lif_kernels, &mut out, &inbox, fault);
        let sticky = matches!(outcome, ChildOutcome::Failed { sticky: true, .. });
        send(&mut out, &FromChild::Done { outcome })?;
        if sticky {
            tracing::warn!("a sticky device error poisoned this process; it exits");
            break;
        }
    }
    Ok(())
}

/// The parent's messages, as the reader thread passed them on.
struct Inbox(Mutex<Receiver<ToChild>>);

impl Inbox {
    /// The next message (`None` once the reader thread is gone).
    fn recv(&self) -> Option<ToChild> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .recv()
            .ok()
    }
}

/// Reads the parent's messages on a thread of their own; when the parent
/// closes the pipe (it is done with this process, or it died) the process
/// exits at once.
fn spawn_reader() -> Inbox {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut input = BufReader::new(std::io::stdin());
        loop {
            match receive::<_, ToChild>(&mut input) {
                Ok(Some(m)) => {
                    if tx.send(m).is_err() {
                        return;
                    }
                }
                Ok(None) => std::process::exit(0),
                Err(e) => {
                    tracing::error!(error = %e, "slot process: unreadable message from the parent; exiting");
                    std::process::exit(i32::from(spikecv_common::exit::FAILURE));
                }
            }
        }
    });
    Inbox(Mutex::new(rx))
}

/// The job spec of a message (a config error is the job's, not the process's).
fn job_spec(
    job: &ChildJob,
    device: DeviceSpec,
    lif_kernels: LifKernels,
) -> Result<JobSpec, ConfigError> {
    let config = ExperimentConfig::from_toml_str(&job.config_toml)?;
    let variant: Variant = job.variant.parse()?;
    Ok(JobSpec {
        config,
        variant,
        seed: job.seed,
        fold: job.fold,
        split: job.split.clone(),
        device,
        out_dir: job.out_dir.clone(),
        init: None,
        lif_kernels,
        data_fingerprint: job.data_fingerprint.clone(),
    })
}

/// Trains one job and says how it ended.
fn run_one<W: Write + Send>(
    job: &ChildJob,
    device: DeviceSpec,
    lif_kernels: LifKernels,
    out: &mut W,
    inbox: &Inbox,
    fault: Option<Fault>,
) -> ChildOutcome {
    let spec = match job_spec(job, device, lif_kernels) {
        Ok(spec) => spec,
        Err(e) => {
            return ChildOutcome::Failed {
                message: format!("experiment config sent by the coordinator: {e}"),
                deterministic: true,
                sticky: false,
            };
        }
    };
    let mut observer = ChildObserver {
        out,
        inbox,
        fault,
        spec: &spec,
        epochs_done: 0,
        injected_sticky: false,
    };
    let resumed = checkpoint_path(&spec.out_dir).is_file();
    let mut result = train(&spec, job.data_dir.as_deref(), &mut observer);
    // A checkpoint that does not load (torn, another shape, another format)
    // only costs the epochs it held: train from epoch 0.
    if resumed
        && observer.epochs_done == 0
        && result.as_ref().is_err_and(unloadable_checkpoint)
        && std::fs::remove_file(checkpoint_path(&spec.out_dir)).is_ok()
    {
        if let Err(e) = &result {
            tracing::warn!(error = %e, "the checkpoint does not load; training from epoch 0");
        }
        result = train(&spec, job.data_dir.as_deref(), &mut observer);
    }
    if let Err(TrainError::OutOfMemory { cuda: true, .. }) = &result {
        release_device_memory();
    }
    if let Some(bytes) = crate::allocator::release_free_pages() {
        tracing::debug!(bytes, "host heap's free pages given back after the job");
    }
    if observer.injected_sticky {
        return ChildOutcome::Failed {
            message: STICKY_MESSAGE.to_owned(),
            deterministic: false,
            sticky: true,
        };
    }
    outcome(result, &spec)
}

/// The message for a job's end.
fn outcome(result: Result<JobResult, TrainError>, spec: &JobSpec) -> ChildOutcome {
    match result {
        Ok(result) => ChildOutcome::Complete {
            result: Box::new(result),
            provenance: Box::new(crate::train::outputs::provenance(spec)),
        },
        Err(TrainError::Stopped { epoch }) => ChildOutcome::Stopped { epoch },
        Err(e) => ChildOutcome::Failed {
            message: e.to_string(),
            deterministic: e.is_deterministic(),
            sticky: e.is_sticky_device_error(),
        },
    }
}

/// Whether a training error before the first epoch says the resumed
/// checkpoint could not be loaded into the job's network and optimiser.
fn unloadable_checkpoint(e: &TrainError) -> bool {
    matches!(
        e,
        TrainError::Checkpoint(_) | TrainError::OptimizerState { .. } | TrainError::Weights(_)
    )
}

/// After out of memory on a GPU (the job's tensors are dropped by then): gives
/// the blocks libtorch keeps cached back to the card, so the other slots of
/// the GPU and the job's retry find the memory free. The attempt is then
/// reported as a transient failure ([`TrainError::is_deterministic`]).
fn release_device_memory() {
    match crate::cuda_host::empty_cache() {
        Ok(()) => tracing::info!(
            "out of memory on the GPU: its cached blocks given back; the job will be retried"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot empty the CUDA cache after out of memory"),
    }
}

/// Opens the data set and trains.
fn train(
    spec: &JobSpec,
    data_dir: Option<&Path>,
    observer: &mut dyn Observer,
) -> Result<JobResult, TrainError> {
    let root = data_dir.unwrap_or(&spec.config.data.root);
    let data = Dataset::open(root)?;
    run_job(spec, &data, observer)
}

/// Reports a job's progress to the parent and waits for its answers.
struct ChildObserver<'a, W: Write> {
    out: &'a mut W,
    inbox: &'a Inbox,
    fault: Option<Fault>,
    spec: &'a JobSpec,
    epochs_done: u32,
    injected_sticky: bool,
}

impl<W: Write> ChildObserver<'_, W> {
    /// Waits for the parent's answer to an epoch; the parent gone means stop.
    fn control(&mut self) -> Control {
        loop {
            match self.inbox.recv() {
                Some(ToChild::Control { stop }) => {
                    return if stop {
                        Control::Stop
                    } else {
                        Control::Continue
                    };
                }
                Some(other) => {
                    tracing::warn!(message = ?other, "slot process: expected an epoch's answer")
                }
                None => return Control::Stop,
            }
        }
    }
}

impl<W: Write + Send> Observer for ChildObserver<'_, W> {
    fn on_epoch(&mut self, m: &EpochMetrics) -> Control {
        self.epochs_done += 1;
        if let Some(f) = self.fault
            && f.fires(self.spec.fold, self.spec.seed, m.epoch, &self.spec.out_dir)
        {
            f.strike();
            if f.kind == FaultKind::Sticky {
                self.injected_sticky = true;
                return Control::Stop;
            }
        }
        let message = FromChild::Epoch {
            metrics: Box::new(m.clone()),
        };
        if let Err(e) = send(self.out, &message) {
            tracing::warn!(error = %e, "slot process: cannot report an epoch; stopping");
            return Control::Stop;
        }
        self.control()
    }

    fn on_checkpoint(&mut self, path: &Path) {
        if self.injected_sticky {
            return;
        }
        let message = FromChild::Checkpoint {
            path: path.to_owned(),
        };
        if send(self.out, &message).is_err() {
            return;
        }
        loop {
            match self.inbox.recv() {
                Some(ToChild::Ack) | None => return,
                Some(other) => {
                    tracing::warn!(message = ?other, "slot process: expected a checkpoint's answer")
                }
            }
        }
    }

    fn on_epoch_start(&mut self, epoch: u32, epochs: u32) {
        let _ = send(self.out, &FromChild::EpochStart { epoch, epochs });
    }
}
