//! `worker join`: dial a coordinator, lease jobs for every free slot, train each
//! in its slot's own process ([`crate::slot_child`], driven from an OS thread
//! of this one), and report epochs, checkpoints and results.
//!
//! The pull loop asks for work whenever a slot is free; a separate heartbeat task
//! keeps the leases alive. Lost connections are retried with capped exponential
//! backoff while training goes on; a job whose lease was given away (the
//! coordinator lists it under `cancel`, or refuses a report as fenced) is
//! dropped. On shutdown (SIGTERM, Ctrl-C) running jobs stop at the next epoch
//! boundary, their checkpoints are uploaded and the jobs released.

pub mod child;
mod heartbeat;
mod observer;
mod retry;
mod script;
mod slot;
mod state;
mod transfer;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use spikecv_common::experiment::manifest::Manifest;
use spikecv_common::proto::client::{ClientError, ClientOptions};
use spikecv_common::proto::{LeaseRequest, PROTOCOL_VERSION, RegisterRequest, Slot};

use crate::devices::{DeviceError, DeviceSpec, cuda_device_count, parse_gpus};
pub use crate::host::host_name;
use crate::lif::fused::LifKernels;
pub use retry::Backoff;
use state::{Shared, StopReason};

/// Validated settings of `worker join`.
#[derive(Debug, Clone)]
pub struct JoinConfig {
    /// How to reach the coordinator (URL, token, TLS).
    pub client: ClientOptions,
    /// One entry per slot (a device appears `jobs_per_gpu` times).
    pub slots: Vec<DeviceSpec>,
    /// This worker's name.
    pub name: String,
    /// Data set root used for every job (default: each experiment's `[data] root`).
    pub data_dir: Option<PathBuf>,
    /// Where jobs write their files (`<work_dir>/<job id>/`).
    pub work_dir: PathBuf,
    /// Exit when the coordinator says every job is finished.
    pub exit_when_done: bool,
    /// Longest wait between reconnection attempts.
    pub max_backoff: Duration,
    /// A checkpoint download that takes longer is abandoned (the job trains
    /// from epoch 0).
    pub checkpoint_download_timeout: Duration,
    /// Which kernels run the LIF layers of every job (`worker --lif-kernels`).
    pub lif_kernels: LifKernels,
    /// The frame cache budget of each device (`--frame-cache-gib`), split
    /// evenly between the slot processes on it.
    pub frame_cache: crate::cache::Budget,
    /// The `worker` binary the slot processes run (default: this process's).
    pub child_program: Option<PathBuf>,
    /// CPU tensors of the slot processes left to the C allocator.
    pub system_allocator: bool,
    /// The training scripts this worker runs and their grace period
    /// (`--trainer`, `--trainers`, `--trainer-grace-seconds`).
    pub trainers: crate::trainer::TrainerSettings,
}

/// Why `worker join` could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// A `--gpus` value was wrong.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// `--jobs-per-gpu` was zero.
    #[error("--jobs-per-gpu must be at least 1")]
    ZeroJobsPerGpu,
    /// The client could not be set up (URL, TLS or token file).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The data set given with `--data` could not be opened or fingerprinted.
    #[error("data set {path}: {source}")]
    Data {
        /// The root.
        path: PathBuf,
        /// Why.
        source: Box<spikecv_common::dataset::error::DataError>,
    },
    /// A `--trainer`, `--trainers` or `--trainer-grace-seconds` value is
    /// unusable.
    #[error(transparent)]
    Trainers(#[from] crate::trainer::registry::RegistryError),
    /// The work folder could not be created.
    #[error("cannot create work folder {path}: {source}")]
    WorkDir {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Enrolling with an enrolment token failed (refused, unreachable, or
    /// the credential file could not be written).
    #[error(transparent)]
    Enrol(#[from] spikecv_common::proto::enrol::EnrolError),
    /// The coordinator refused this worker for good (protocol version, data set
    /// fingerprint, token).
    #[error("coordinator refused {call}: {}: {}", status.code(), status.message())]
    Refused {
        /// The RPC.
        call: &'static str,
        /// Its status.
        status: Box<tonic::Status>,
    },
}

/// A refused enrolment or an unusable token file is for good; an
/// unreachable coordinator or an unwritable credential file may pass.
fn enrol_exit_code(e: &spikecv_common::proto::enrol::EnrolError) -> u8 {
    use spikecv_common::exit;
    use spikecv_common::proto::enrol::EnrolError;
    match e {
        EnrolError::Call { status, .. } if status.code() == tonic::Code::Unavailable => {
            exit::FAILURE
        }
        EnrolError::Call { .. } | EnrolError::Client(_) | EnrolError::Exists { .. } => {
            exit::REFUSED
        }
        EnrolError::Write { .. } => exit::FAILURE,
    }
}

impl JoinError {
    /// The process exit code for this error ([`spikecv_common::exit`]): a
    /// coordinator's refusal or unusable flags are [`exit::REFUSED`], the
    /// rest [`exit::FAILURE`].
    pub fn exit_code(&self) -> u8 {
        use spikecv_common::exit;
        match self {
            JoinError::Refused { .. }
            | JoinError::Device(_)
            | JoinError::ZeroJobsPerGpu
            | JoinError::Trainers(_)
            | JoinError::Client(_) => exit::REFUSED,
            JoinError::Enrol(e) => enrol_exit_code(e),
            JoinError::Data { .. } | JoinError::WorkDir { .. } => exit::FAILURE,
        }
    }
}

impl JoinConfig {
    /// Builds the config from flags, checking devices against this machine.
    pub fn new(
        client: ClientOptions,
        gpus: &str,
        jobs_per_gpu: usize,
        name: Option<String>,
    ) -> Result<Self, JoinError> {
        if jobs_per_gpu == 0 {
            return Err(JoinError::ZeroJobsPerGpu);
        }
        let devices = parse_gpus(gpus, cuda_device_count())?;
        let slots = devices
            .iter()
            .flat_map(|d| std::iter::repeat_n(*d, jobs_per_gpu))
            .collect();
        let name = name.unwrap_or_else(|| format!("{}-{}", host_name(), std::process::id()));
        Ok(Self {
            client,
            slots,
            name,
            data_dir: None,
            work_dir: PathBuf::from("spikecv-work"),
            exit_when_done: false,
            max_backoff: Duration::from_secs(10),
            checkpoint_download_timeout: Duration::from_secs(900),
            lif_kernels: LifKernels::default(),
            frame_cache: crate::cache::Budget::Auto,
            child_program: None,
            system_allocator: false,
            trainers: crate::trainer::TrainerSettings::default(),
        })
    }
}

/// How `join` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    /// Shut down on request; running jobs were handed back.
    Shutdown,
    /// The coordinator has no more work (`--exit-when-done`).
    AllDone,
}

/// The registration this worker sends (with every lease and heartbeat, too).
fn registration(
    config: &JoinConfig,
    fingerprint: String,
    manifests: &[Manifest],
) -> RegisterRequest {
    RegisterRequest {
        protocol_version: PROTOCOL_VERSION,
        worker_name: config.name.clone(),
        host: host_name(),
        slots: config
            .slots
            .iter()
            .zip(manifests)
            .map(|(d, m)| Slot {
                device: d.to_string(),
                device_name: match d {
                    DeviceSpec::Cpu => "cpu".to_owned(),
                    DeviceSpec::Cuda(_) => m.device_model.clone(),
                },
                memory_bytes: 0,
                manifest: Some(m.for_job(m.switches, &fingerprint).to_proto()),
            })
            .collect(),
        data_fingerprint: fingerprint,
        trainers: config
            .trainers
            .registry
            .infos()
            .iter()
            .map(|t| t.to_proto())
            .collect(),
    }
}

/// Fingerprints `--data` (empty without it), on a blocking thread.
async fn data_fingerprint(config: &JoinConfig) -> Result<String, JoinError> {
    let Some(dir) = config.data_dir.clone() else {
        return Ok(String::new());
    };
    let fp = tokio::task::spawn_blocking(move || {
        spikecv_common::dataset::Dataset::open(&dir)
            .and_then(|d| d.fingerprint())
            .map_err(|source| JoinError::Data {
                path: dir,
                source: Box::new(source),
            })
    })
    .await;
    match fp {
        Ok(r) => r,
        Err(e) => Err(JoinError::WorkDir {
            path: config.work_dir.clone(),
            source: std::io::Error::other(e.to_string()),
        }),
    }
}

/// Runs the worker until `shutdown` resolves (then hands running jobs back) or,
/// with `exit_when_done`, until the coordinator runs out of work.
pub async fn join(
    config: JoinConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<JoinOutcome, JoinError> {
    std::fs::create_dir_all(&config.work_dir).map_err(|source| JoinError::WorkDir {
        path: config.work_dir.clone(),
        source,
    })?;
    let fingerprint = data_fingerprint(&config).await?;
    let devices = config.slots.clone();
    // Reads the binary once to hash it: off the runtime's threads.
    let manifests = tokio::task::spawn_blocking(move || {
        devices
            .into_iter()
            .map(crate::manifest::slot_manifest)
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| JoinError::WorkDir {
        path: config.work_dir.clone(),
        source: std::io::Error::other(format!("describing the slots: {e}")),
    })?;
    let client = config.client.worker_client()?;
    let shared = Arc::new(Shared::new(
        config.clone(),
        client,
        registration(&config, fingerprint, &manifests),
    ));
    shared.register().await?;
    let trainers: Vec<String> = config
        .trainers
        .registry
        .infos()
        .into_iter()
        .map(|t| t.name)
        .collect();
    tracing::info!(worker_id = %shared.worker_id(), slots = config.slots.len(), ?trainers, "registered");

    {
        let shared = shared.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!(
                "shutting down: running jobs stop at the next epoch boundary and are handed back"
            );
            shared.begin_shutdown();
        });
    }
    let heartbeat = tokio::spawn(heartbeat::run(shared.clone()));
    let outcome = lease_loop(&shared).await;
    heartbeat.abort();
    shared.end_children();
    outcome
}

async fn lease_loop(shared: &Arc<Shared>) -> Result<JoinOutcome, JoinError> {
    let mut backoff = Backoff::new(shared.config.max_backoff);
    loop {
        if shared.is_shutting_down() {
            shared.stop_all(StopReason::Release);
            shared.wait_idle().await;
            return Ok(JoinOutcome::Shutdown);
        }
        let free = if shared.is_draining() {
            Vec::new()
        } else {
            shared.free_devices()
        };
        let request = LeaseRequest {
            worker_id: shared.worker_id(),
            registration: Some(shared.registration.clone()),
            free_slots: free,
            running: shared.progress(),
            worker_secret: shared.worker_secret(),
        };
        let mut client = shared.client.clone();
        let wait = match client.lease(request).await {
            Ok(response) => {
                backoff.reset();
                let r = response.into_inner();
                shared.apply_control(
                    &r.worker_id,
                    &r.worker_secret,
                    &r.cancel,
                    r.drain,
                    r.heartbeat_seconds,
                );
                let got = r.assignments.len();
                for assignment in r.assignments {
                    match shared.claim_slot(&assignment) {
                        Some((index, device, handle)) => {
                            tokio::spawn(slot::run(
                                shared.clone(),
                                index,
                                device,
                                assignment,
                                handle,
                            ));
                        }
                        None => {
                            // More work than slots: hand it back at once.
                            tracing::warn!(attempt = %assignment.attempt_id, "no free slot for a lease; releasing it");
                            slot::release_unstarted(shared.clone(), assignment.attempt_id);
                        }
                    }
                }
                if r.all_done && shared.config.exit_when_done && shared.running_count() == 0 {
                    tracing::info!("the coordinator has no more work; exiting");
                    return Ok(JoinOutcome::AllDone);
                }
                if got > 0 && shared.free_slots() > 0 {
                    Duration::ZERO
                } else {
                    shared.poll_interval()
                }
            }
            Err(status) if retry::is_transient(&status) => {
                let d = backoff.next_delay();
                tracing::warn!(code = ?status.code(), message = status.message(), retry_in = ?d, "lease failed; coordinator unreachable?");
                d
            }
            // The coordinator no longer takes this identity (its secret
            // changed, its row was replaced): register afresh instead of
            // exiting. Attempts leased under the old identity are refused
            // from now on and dropped by their slots.
            Err(status) if status.code() == tonic::Code::PermissionDenied => {
                let d = backoff.next_delay();
                tracing::warn!(message = status.message(), retry_in = ?d, "the coordinator refused this worker's identity; registering again");
                shared.forget_identity();
                d
            }
            Err(status) => {
                shared.begin_shutdown();
                shared.stop_all(StopReason::Drop);
                shared.wait_idle().await;
                return Err(JoinError::Refused {
                    call: "Lease",
                    status: Box::new(status),
                });
            }
        };
        shared.wait_for_change(wait).await;
    }
}

/// `worker join` from its flags (and `worker --lif-kernels`): runs until
/// SIGTERM/Ctrl-C (a second one exits at once) or, with `--exit-when-done`,
/// until the work is done.
pub async fn run_command(
    args: crate::cli::JoinArgs,
    lif_kernels: LifKernels,
    system_allocator: bool,
) -> Result<JoinOutcome, JoinError> {
    // Checked before anything starts: a missing script is refused at once.
    let trainers = crate::trainer::TrainerSettings::from_args(&args.trainers)?;
    let mut client = ClientOptions {
        url: args.coordinator,
        token: None,
        tls_ca: args.tls_ca,
        tls_identity: args.tls_client_cert.zip(args.tls_client_key),
        tls_domain: None,
    };
    client.token = match (
        &args.token_file,
        &args.enrolment_token_file,
        &args.credential_file,
    ) {
        (Some(path), _, _) => Some(spikecv_common::proto::client::read_token_file(path)?),
        (None, Some(enrolment), Some(credential)) => {
            let hint = args.name.clone().unwrap_or_default();
            let token = spikecv_common::proto::enrol::credential_or_enrol(
                &client, enrolment, credential, &hint,
            );
            Some(token.await?)
        }
        _ => None,
    };
    let mut config = JoinConfig::new(client, &args.gpus, args.jobs_per_gpu, args.name)?;
    config.data_dir = args.data;
    config.work_dir = args.work_dir;
    config.exit_when_done = args.exit_when_done;
    config.lif_kernels = lif_kernels;
    config.frame_cache = args.frame_cache_gib;
    config.system_allocator = system_allocator;
    config.trainers = trainers;
    config.max_backoff = Duration::from_secs_f64(args.max_backoff_seconds.clamp(0.2, 3600.0));
    if let Ok(limit) = Duration::try_from_secs_f64(
        args.checkpoint_download_timeout_seconds
            .clamp(1.0, 86_400.0),
    ) {
        config.checkpoint_download_timeout = limit;
    }
    join(config, async {
        shutdown_signal().await;
        tokio::spawn(async {
            shutdown_signal().await;
            tracing::warn!("second signal: exiting without handing jobs back");
            crate::trainer::process::kill_all();
            std::process::exit(130);
        });
    })
    .await
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_registration_names_the_trainers() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("train.py");
        std::fs::write(&script, "pass\n").unwrap();
        let client = ClientOptions {
            url: "http://127.0.0.1:9".into(),
            token: None,
            tls_ca: None,
            tls_identity: None,
            tls_domain: None,
        };
        let mut config = JoinConfig::new(client, "cpu", 1, Some("t".into())).unwrap();
        assert!(
            registration(&config, String::new(), &[Manifest::default()])
                .trainers
                .is_empty()
        );
        let flag = format!("stbp={}", script.display());
        config.trainers.registry =
            crate::trainer::Registry::build(&[flag], None, &"python3".into()).unwrap();
        let r = registration(&config, String::new(), &[Manifest::default()]);
        assert_eq!(r.trainers.len(), 1);
        assert_eq!(r.trainers[0].name, "stbp");
        assert_eq!(
            r.trainers[0].script_sha256,
            crate::manifest::file_sha256(&script).unwrap()
        );
        assert!(!r.trainers[0].deterministic);
    }
}
