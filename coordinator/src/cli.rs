//! Command-line flags of the `coordinator` binary, turned into validated configs.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// spikecv coordinator: hands out cross-validation jobs (variant × seed × fold)
/// to workers over gRPC, keeps their state in an embedded database and reports
/// mean ± std accuracy.
#[derive(Debug, Parser)]
#[command(name = "coordinator", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The coordinator's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve an experiment to workers over gRPC until Ctrl-C or SIGTERM.
    Serve(ServeArgs),
    /// Add an experiment to a running coordinator (finished jobs are reused).
    Submit(SubmitArgs),
    /// Show a running coordinator's jobs by state, workers, throughput and ETA.
    Status(StatusArgs),
    /// Cancel unfinished jobs of a running coordinator: one job, one
    /// configuration of an experiment, or a whole experiment.
    Cancel(crate::control_cmd::CancelArgs),
    /// Put an experiment's failed (or cancelled) jobs back in the queue.
    Retry(crate::control_cmd::RetryArgs),
    /// Report an experiment's results from the state database (Markdown, JSON
    /// or CSV; with --out, also plots), during a run or after it.
    Report(crate::report::cmd::ReportArgs),
    /// Data set tools: synth, import, slice, frames, inspect, render.
    Data(crate::commands::data::DataArgs),
    /// Print the job matrix (variant × seed × fold) with each job's train/val/test
    /// recordings; nothing is run.
    Plan(crate::plan_cmd::PlanArgs),
    /// Export an experiment to an experiment tracker (MLflow): one run per job
    /// under a parent run with the report's aggregates; again updates the same runs.
    Export(crate::export::ExportArgs),
}

/// Flags of `coordinator serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Experiment to submit at start (TOML); without it the state database's
    /// experiments are served as they are.
    #[arg(long)]
    pub experiment: Option<PathBuf>,
    /// State database (SQLite, created when missing).
    #[arg(long)]
    pub state: PathBuf,
    /// Address to listen on for workers and admin calls.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// File holding the shared token every call must carry (required when
    /// --listen is not a loopback address).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// File holding a separate token for admin calls (submit, cancel, status,
    /// watch); default: the worker token. Required beyond loopback unless
    /// --allow-shared-admin-token is given.
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// Listen beyond loopback without --admin-token-file: the worker token
    /// then also allows admin calls (every worker can submit and cancel).
    #[arg(long)]
    pub allow_shared_admin_token: bool,
    /// PEM certificate chain for TLS (with --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: clients must present a certificate it signed.
    #[arg(long, requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Address of the HTTP listener: the web dashboard (`/`, its JSON API and
    /// live updates under `/api/`) and `GET /metrics` (Prometheus). Off by
    /// default; beyond loopback it needs --token-file, and the dashboard's API
    /// then asks for the (admin) token. `--metrics` is an alias.
    #[arg(long, visible_alias = "metrics")]
    pub http: Option<SocketAddr>,
    /// A host name browsers may use to reach the HTTP listener (repeatable).
    /// Addresses, `localhost` and this machine's host name are always
    /// accepted; a request whose Host header names anything else is refused
    /// (403), which stops DNS-rebinding pages from reading the dashboard.
    #[arg(long = "http-host", value_name = "NAME")]
    pub http_hosts: Vec<String>,
    /// Serve the HTTP listener without TLS on a non-loopback address. With
    /// --tls-cert the HTTP listener speaks HTTPS with the same certificate;
    /// without it, plain HTTP beyond loopback (where the dashboard's login
    /// link and cookie would cross the network in clear) is refused unless
    /// this flag is given.
    #[arg(long)]
    pub allow_plain_http: bool,
    /// Accept experiments whose data set cannot be fingerprinted here (its
    /// root unreadable from the coordinator): workers' data is then not
    /// checked against it. Without this flag such a submission is refused.
    #[arg(long)]
    pub allow_unfingerprinted_data: bool,
    /// Seconds between worker heartbeats.
    #[arg(long, default_value_t = 5)]
    pub heartbeat_seconds: u32,
    /// A lease is lost this many seconds after the worker's last heartbeat.
    #[arg(long, default_value_t = 30)]
    pub lease_timeout_seconds: u32,
    /// Largest checkpoint upload accepted, in MiB; a larger one is refused
    /// (RESOURCE_EXHAUSTED) and its partial file removed.
    #[arg(long, default_value_t = 2048)]
    pub max_checkpoint_mib: u64,
    /// Checkpoint uploads received at the same time, over all workers (at most
    /// one per attempt); more are refused with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = 8)]
    pub max_checkpoint_uploads: usize,
    /// A checkpoint upload that sends nothing, or a download whose worker
    /// reads nothing, for this many seconds is abandoned.
    #[arg(long, default_value_t = 60)]
    pub checkpoint_idle_timeout_seconds: u64,
    /// Free space, in MiB, the state directory's file system must keep beyond
    /// the sizes of the uploads in flight; an upload that would leave less is
    /// refused.
    #[arg(long, default_value_t = 256)]
    pub checkpoint_free_space_margin_mib: u64,
    /// Checkpoint downloads sent at the same time, over all workers (at most
    /// one per attempt); more are refused with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = 16)]
    pub max_checkpoint_downloads: usize,
    /// The slowest checkpoint upload accepted, in KiB/s: an upload must end
    /// within a minute plus its declared size at this rate, else it is
    /// abandoned (DEADLINE_EXCEEDED).
    #[arg(long, default_value_t = 256)]
    pub checkpoint_min_upload_kib_per_s: u64,
    /// Workers registered and not lost at the same time; more registrations
    /// are refused with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = crate::scheduler::DEFAULT_MAX_WORKERS)]
    pub max_workers: usize,
    /// Calls that may wait for the scheduler thread; more are refused at once
    /// with RESOURCE_EXHAUSTED (workers retry them).
    #[arg(long, default_value_t = crate::scheduler::DEFAULT_MAX_QUEUED_CALLS)]
    pub max_queued_calls: usize,
}

impl ServeArgs {
    /// The limits on checkpoint transfers these flags set.
    pub fn checkpoint_limits(&self) -> crate::service::CheckpointLimits {
        crate::service::CheckpointLimits {
            max_bytes: self.max_checkpoint_mib.saturating_mul(1 << 20),
            max_uploads: self.max_checkpoint_uploads.max(1),
            idle_timeout: std::time::Duration::from_secs(
                self.checkpoint_idle_timeout_seconds.max(1),
            ),
            free_space_margin: self
                .checkpoint_free_space_margin_mib
                .saturating_mul(1 << 20),
            max_downloads: self.max_checkpoint_downloads.max(1),
            min_upload_rate: self
                .checkpoint_min_upload_kib_per_s
                .max(1)
                .saturating_mul(1 << 10),
            ..crate::service::CheckpointLimits::default()
        }
    }
}

/// How to reach a running coordinator (shared by `submit` and `status`).
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// The coordinator's URL, e.g. http://head-node:50051 (https:// for TLS).
    #[arg(long)]
    pub coordinator: String,
    /// File holding the admin (or shared) token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// PEM CA bundle that signed the coordinator's certificate.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate (with --tls-client-key).
    #[arg(long, requires = "tls_client_key")]
    pub tls_client_cert: Option<PathBuf>,
    /// PEM key of the client certificate.
    #[arg(long, requires = "tls_client_cert")]
    pub tls_client_key: Option<PathBuf>,
}

/// Flags of `coordinator submit`.
#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// The coordinator to submit to.
    #[command(flatten)]
    pub client: ClientArgs,
    /// The experiment (TOML); a relative `[data] root` is resolved against the
    /// file's folder, as the coordinator sees the file system.
    #[arg(long)]
    pub experiment: PathBuf,
}

/// Flags of `coordinator status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The coordinator to ask.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Refresh the screen until Ctrl-C.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between refreshes with --watch.
    #[arg(long, default_value_t = 2.0)]
    pub interval: f64,
    /// Print one JSON object per snapshot instead of the screen.
    #[arg(long)]
    pub json: bool,
}
