//! Command-line flags of the `worker` binary.

use clap::{Parser, Subcommand};

use crate::lif::fused::LifKernels;

/// spikecv worker: trains the STBP spiking CNN on SL-Animals-DVS style data with
/// libtorch, one cross-validation job per GPU slot (or on the CPU).
#[derive(Debug, Parser)]
#[command(name = "worker", version)]
pub struct Cli {
    /// Leave CPU tensors to the C allocator (glibc's malloc) instead of the
    /// worker's host heap, for comparison and diagnosis: CPU steps about 1.7-1.9x
    /// slower (page faults), a peak about 5 % lower (pages a tensor never
    /// touches are not counted).
    #[arg(long, global = true)]
    pub system_allocator: bool,
    /// Which kernels run the LIF layers: `auto` (the CPU kernels on the CPU;
    /// on a CUDA device the fused kernels once they pass a check against the
    /// tensor path there, else the tensor path), `fused` (always; a failure
    /// is an error) or `tensor` (libtorch operations through time).
    #[arg(long, global = true, value_enum, default_value_t = LifKernels::Auto)]
    pub lif_kernels: LifKernels,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The worker's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Join a coordinator and run the jobs it hands out, one per GPU slot.
    Join(JoinArgs),
    /// Train one job (variant, seed, fold) on this machine, without a coordinator.
    Train(crate::train::command::TrainArgs),
    /// Evaluate saved weights on a data set and print the accuracy.
    Evaluate(crate::train::command::EvaluateArgs),
    /// Train a job of a report again and compare it with the recorded run
    /// (bit for bit where the manifests allow); exits non-zero on a mismatch.
    Reproduce(crate::reproduce::ReproduceArgs),
    /// A slot's training process, started by `worker join` (not for direct use).
    #[command(hide = true)]
    SlotChild(crate::slot_child::SlotChildArgs),
}

/// Flags of `worker join`.
#[derive(Debug, clap::Args)]
pub struct JoinArgs {
    /// The coordinator's gRPC address, e.g. http://head-node:50051 (https:// for TLS).
    #[arg(long)]
    pub coordinator: String,
    /// Devices to run on: `cpu`, `all` (every CUDA device, CPU if none), or `0,1,...`.
    #[arg(long, default_value = "all")]
    pub gpus: String,
    /// Jobs run at once on each device.
    #[arg(long, default_value_t = 1)]
    pub jobs_per_gpu: usize,
    /// A name for this worker (default: host name and process id).
    #[arg(long)]
    pub name: Option<String>,
    /// Data set root for every job (default: each experiment's `[data] root`).
    #[arg(long)]
    pub data: Option<std::path::PathBuf>,
    /// File holding the token this worker presents: its own credential
    /// (from `coordinator worker add` or `worker enrol`) or the coordinator's
    /// shared token.
    #[arg(long)]
    pub token_file: Option<std::path::PathBuf>,
    /// File holding an enrolment token: when --credential-file does not
    /// exist yet, the worker enrols once with it and keeps the credential it
    /// receives there; later starts use that credential.
    #[arg(
        long,
        env = "SPIKECV_ENROLMENT_TOKEN_FILE",
        requires = "credential_file",
        conflicts_with = "token_file"
    )]
    pub enrolment_token_file: Option<std::path::PathBuf>,
    /// Where this worker keeps its own credential (with --enrolment-token-file).
    #[arg(long, env = "SPIKECV_CREDENTIAL_FILE")]
    pub credential_file: Option<std::path::PathBuf>,
    /// Where jobs write their files (one folder per job).
    #[arg(long, default_value = "spikecv-work")]
    pub work_dir: std::path::PathBuf,
    /// Exit (status 0) when the coordinator has no more work.
    #[arg(long)]
    pub exit_when_done: bool,
    /// PEM CA bundle that signed the coordinator's TLS certificate.
    #[arg(long)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// PEM client certificate, for coordinators that require one (with --tls-client-key).
    #[arg(long, requires = "tls_client_key")]
    pub tls_client_cert: Option<std::path::PathBuf>,
    /// PEM key of the client certificate.
    #[arg(long, requires = "tls_client_cert")]
    pub tls_client_key: Option<std::path::PathBuf>,
    /// Longest wait, in seconds, between reconnection attempts.
    #[arg(long, default_value_t = 10.0)]
    pub max_backoff_seconds: f64,
    /// A checkpoint download that has not finished after this many seconds
    /// is abandoned, and the job trains from epoch 0.
    #[arg(long, default_value_t = 900.0)]
    pub checkpoint_download_timeout_seconds: f64,
    /// Memory for the frame cache per device, in GiB (`auto`: half the RAM on
    /// the CPU, half the free memory of a GPU when its cache is built; 0:
    /// off). A data set that does not fit is binned batch by batch instead,
    /// with a warning.
    #[arg(long, default_value = "auto", value_parser = crate::cache::parse_budget)]
    pub frame_cache_gib: crate::cache::Budget,
    /// Training scripts this worker runs.
    #[command(flatten)]
    pub trainers: crate::trainer::registry::TrainerArgs,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use clap::Parser;

    use super::*;

    const TRAIN: [&str; 12] = [
        "worker",
        "train",
        "--config",
        "c.toml",
        "--variant",
        "whole",
        "--seed",
        "0",
        "--fold",
        "0",
        "--out",
        "o",
    ];

    #[test]
    fn host_heap_unless_asked() {
        assert!(!Cli::try_parse_from(TRAIN).unwrap().system_allocator);
        // A global flag: before or after the subcommand.
        let after = TRAIN.iter().copied().chain(["--system-allocator"]);
        assert!(Cli::try_parse_from(after).unwrap().system_allocator);
        let before = ["worker", "--system-allocator"]
            .into_iter()
            .chain(TRAIN.iter().copied().skip(1));
        assert!(Cli::try_parse_from(before).unwrap().system_allocator);
    }

    #[test]
    fn join_takes_trainers_and_a_grace_period() {
        let parsed = Cli::try_parse_from([
            "worker",
            "join",
            "--coordinator",
            "http://c:1",
            "--trainer",
            "a=a.py",
            "--trainer",
            "b=run.sh",
            "--trainers",
            "t.toml",
            "--trainer-grace-seconds",
            "5",
        ])
        .unwrap();
        let Command::Join(args) = parsed.command else {
            panic!("not join")
        };
        assert_eq!(args.trainers.trainer, vec!["a=a.py", "b=run.sh"]);
        assert_eq!(args.trainers.trainers.as_deref(), Some(Path::new("t.toml")));
        assert_eq!(args.trainers.trainer_grace_seconds, 5.0);
        let bare = Cli::try_parse_from(["worker", "join", "--coordinator", "http://c:1"]).unwrap();
        let Command::Join(args) = bare.command else {
            panic!("not join")
        };
        assert!(args.trainers.trainer.is_empty() && args.trainers.trainers.is_none());
        assert_eq!(args.trainers.trainer_grace_seconds, 30.0);
    }
}
