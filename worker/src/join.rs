//! `worker join`: connect to a coordinator and register this worker's slots.

use spikecv_common::proto::coordinator_client::CoordinatorClient;
use spikecv_common::proto::{PROTOCOL_VERSION, RegisterRequest, Slot};

use crate::devices::{DeviceError, DeviceSpec, cuda_device_count, parse_gpus};

/// Validated settings of `worker join`.
#[derive(Debug, Clone)]
pub struct JoinConfig {
    /// The coordinator's URL.
    pub coordinator: String,
    /// One entry per slot (a device appears `jobs_per_gpu` times).
    pub slots: Vec<DeviceSpec>,
    /// This worker's name.
    pub name: String,
}

/// Why `worker join` could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// A flag was wrong.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// `--jobs-per-gpu` was zero.
    #[error("--jobs-per-gpu must be at least 1")]
    ZeroJobsPerGpu,
    /// The coordinator's URL could not be parsed or reached.
    #[error("cannot connect to coordinator {url}: {source}")]
    Connect {
        /// The URL tried.
        url: String,
        /// What went wrong.
        source: tonic::transport::Error,
    },
    /// The coordinator refused a call.
    #[error("coordinator refused {call}: {status}")]
    Refused {
        /// The RPC.
        call: &'static str,
        /// Its status.
        status: tonic::Status,
    },
}

impl JoinConfig {
    /// Builds the config from flags, checking devices against this machine.
    pub fn new(
        coordinator: String,
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
            coordinator,
            slots,
            name,
        })
    }
}

/// This machine's host name, or "unknown".
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Connects and registers; returns the id the coordinator gave this worker.
pub async fn register(config: &JoinConfig) -> Result<String, JoinError> {
    let mut client = CoordinatorClient::connect(config.coordinator.clone())
        .await
        .map_err(|source| JoinError::Connect {
            url: config.coordinator.clone(),
            source,
        })?;
    let request = RegisterRequest {
        protocol_version: PROTOCOL_VERSION,
        worker_name: config.name.clone(),
        host: host_name(),
        slots: config
            .slots
            .iter()
            .map(|d| Slot {
                device: d.to_string(),
                device_name: String::new(),
                memory_bytes: 0,
            })
            .collect(),
        data_fingerprint: String::new(),
    };
    let response = client
        .register(request)
        .await
        .map_err(|status| JoinError::Refused {
            call: "Register",
            status,
        })?;
    Ok(response.into_inner().worker_id)
}
