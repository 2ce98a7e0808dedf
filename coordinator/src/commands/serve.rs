//! `coordinator serve`: opens the state database, submits the experiment given
//! with `--experiment`, runs the scheduler thread, the lease-expiry ticker, the
//! optional HTTP listener (`/metrics` and the web dashboard) and the gRPC
//! server until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::{AuthConfig, Token, TokenError};
use crate::dashboard::{Dashboard, DashboardConfig};
use crate::metrics;
use crate::scheduler::{
    Scheduler, SchedulerError, SchedulerHandle, SchedulerSettings, Submission, SystemClock,
};
use crate::server::{ServeError, ServerOptions, TlsFiles, serve};
use crate::service::CoordinatorService;
use crate::state_lock::{StateLock, StateLockError};

use super::submit::{SubmitError, normalized_config};

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
    /// Also serve the gRPC health service alone, in plain text and without a
    /// token, on this address (for probes that cannot speak TLS, such as
    /// Kubernetes' `grpc:` probes). It answers health checks only.
    #[arg(long)]
    pub health_listen: Option<SocketAddr>,
    /// File holding the shared token every call must carry (required when
    /// --listen is not a loopback address).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// File holding a separate token for admin calls (submit, cancel, status,
    /// watch); default: the worker token. Required beyond loopback unless
    /// --allow-shared-admin-token is given.
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// File holding an enrolment token (made like the other tokens): nodes
    /// presenting it may each enrol once (`worker join --enrolment-token-file`)
    /// and receive a credential of their own. Registered at the first start
    /// with the uses and lifetime below; a restart does not renew them.
    #[arg(long)]
    pub enrolment_token_file: Option<PathBuf>,
    /// Nodes that may enrol with --enrolment-token-file.
    #[arg(long, default_value_t = 16)]
    pub enrolment_uses: u32,
    /// Seconds the enrolment token stays valid from the first start.
    #[arg(long, default_value_t = 86_400)]
    pub enrolment_ttl_seconds: u32,
    /// Jobs each enrolled worker may hold at once.
    #[arg(long, default_value_t = 1)]
    pub enrolment_slots: u32,
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
    /// Hours a dashboard login lasts (its session cookie's lifetime); after
    /// them the page asks to log in again.
    #[arg(long, default_value_t = 12.0, value_parser = positive_hours)]
    pub dashboard_session_hours: f64,
    /// Serve gRPC without TLS on a non-loopback address. Without --tls-cert
    /// and --tls-key, workers' tokens and secrets would cross the network in
    /// clear, so `serve` refuses a non-loopback --listen unless this flag is
    /// given.
    #[arg(long)]
    pub allow_plaintext: bool,
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
    /// The slowest checkpoint upload accepted, in KiB/s: after the grace,
    /// every rate window must bring at least this rate, else the upload is
    /// abandoned (DEADLINE_EXCEEDED) and its place freed.
    #[arg(long, default_value_t = 256)]
    pub checkpoint_min_upload_kib_per_s: u64,
    /// Seconds over which an upload's rate is averaged; at the end of each
    /// window its lease is checked too, and an upload whose lease has ended
    /// (expired, released, worker removed) is abandoned.
    #[arg(long, default_value_t = 20)]
    pub checkpoint_rate_window_seconds: u64,
    /// Seconds at the start of an upload before its rate is checked.
    #[arg(long, default_value_t = 30)]
    pub checkpoint_upload_grace_seconds: u64,
    /// Workers registered and not lost at the same time; more registrations
    /// are refused with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = crate::scheduler::DEFAULT_MAX_WORKERS)]
    pub max_workers: usize,
    /// Of those, workers on the shared worker token (`--token-file`; no
    /// credential of their own) at the same time: the shared token's own
    /// cap, so that its holders cannot fill `--max-workers`.
    #[arg(long, default_value_t = crate::scheduler::DEFAULT_MAX_SHARED_WORKERS)]
    pub max_shared_workers: usize,
    /// Slots a worker on the shared token is kept with at most (the first
    /// ones it declares; a named worker's are its credential's).
    #[arg(long, default_value_t = crate::scheduler::DEFAULT_MAX_SHARED_SLOTS)]
    pub max_shared_slots: usize,
    /// Times a job may be released (handed back by its worker) before each
    /// further release counts as a failure against `protocol.max_attempts`:
    /// a worker that leases and releases the same job in a loop fails it
    /// instead of adding attempts without end.
    #[arg(long, default_value_t = crate::scheduler::DEFAULT_MAX_RELEASES)]
    pub max_releases_per_job: u32,
    /// Under `[protocol] verify`: seconds a wanted replay waits for a slot
    /// whose manifest agrees bit for bit with the original's before any
    /// other eligible worker may take it (compared within the tolerance
    /// then); 0: at once.
    #[arg(long, default_value_t = crate::scheduler::DEFAULT_REPLAY_WAIT_SECONDS)]
    pub replay_wait_seconds: u32,
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
            rate_window: std::time::Duration::from_secs(self.checkpoint_rate_window_seconds.max(1)),
            upload_grace: std::time::Duration::from_secs(self.checkpoint_upload_grace_seconds),
        }
    }
}

/// Parses `--dashboard-session-hours`: a number of hours above zero, at
/// most ten years.
fn positive_hours(text: &str) -> Result<f64, String> {
    let hours: f64 = text
        .trim()
        .parse()
        .map_err(|e| format!("{text:?} is not a number of hours: {e}"))?;
    if !(hours > 0.0 && hours <= 87_600.0) {
        return Err(format!(
            "{text:?}: a session lasts more than 0 and at most 87600 hours"
        ));
    }
    Ok(hours)
}

/// Why `serve` could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeCmdError {
    /// Listening beyond loopback needs a token.
    #[error("refusing to listen on {addr} (not a loopback address) without --token-file")]
    NoToken {
        /// The address.
        addr: std::net::SocketAddr,
    },
    /// Listening beyond loopback with only the worker token: every worker
    /// could then submit and cancel.
    #[error(
        "refusing to listen on {addr} (not a loopback address) without --admin-token-file: \
         the worker token would also be the admin token; give a separate admin token, \
         or --allow-shared-admin-token to accept that"
    )]
    SharedAdminToken {
        /// The address.
        addr: std::net::SocketAddr,
    },
    /// Plain HTTP beyond loopback without --allow-plain-http.
    #[error(
        "refusing to serve plain HTTP on {addr} (not a loopback address): give --tls-cert and \
         --tls-key (the HTTP listener then speaks HTTPS), or --allow-plain-http to accept that \
         the dashboard's login and session cross the network in clear"
    )]
    PlainHttp {
        /// The address.
        addr: std::net::SocketAddr,
    },
    /// Plain gRPC beyond loopback without --allow-plaintext.
    #[error(
        "refusing to serve gRPC without TLS on {addr} (not a loopback address): give --tls-cert \
         and --tls-key, or --allow-plaintext to accept that tokens and worker secrets cross the \
         network in clear"
    )]
    PlainGrpc {
        /// The address.
        addr: std::net::SocketAddr,
    },
    /// A token file was unusable.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The experiment's data set cannot be fingerprinted here.
    #[error(transparent)]
    Fingerprint(#[from] crate::service::FingerprintError),
    /// Another coordinator serves the same state, or its lock file is unusable.
    #[error(transparent)]
    Lock(#[from] StateLockError),
    /// The experiment file was unusable.
    #[error(transparent)]
    Experiment(#[from] SubmitError),
    /// The scheduler or its store failed.
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The scheduler thread could not start.
    #[error("cannot start the scheduler thread: {0}")]
    Thread(std::io::Error),
    /// The gRPC server failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

impl ServeCmdError {
    /// The process exit code ([`spikecv_common::exit`]): a refusal that a
    /// restart will not cure (flags, token or experiment files, another
    /// coordinator on the state) is [`exit::REFUSED`], the rest
    /// [`exit::FAILURE`].
    pub fn exit_code(&self) -> u8 {
        use spikecv_common::exit;
        match self {
            ServeCmdError::NoToken { .. }
            | ServeCmdError::SharedAdminToken { .. }
            | ServeCmdError::PlainHttp { .. }
            | ServeCmdError::PlainGrpc { .. }
            | ServeCmdError::Fingerprint(_)
            | ServeCmdError::Token(_)
            | ServeCmdError::Lock(_)
            | ServeCmdError::Experiment(_) => exit::REFUSED,
            ServeCmdError::Scheduler(_)
            | ServeCmdError::Bind { .. }
            | ServeCmdError::Thread(_)
            | ServeCmdError::Serve(_) => exit::FAILURE,
        }
    }
}

/// The auth config of the token flags.
fn auth(args: &ServeArgs) -> Result<AuthConfig, ServeCmdError> {
    let worker = args
        .token_file
        .as_deref()
        .map(Token::from_file)
        .transpose()?;
    let admin = args
        .admin_token_file
        .as_deref()
        .map(Token::from_file)
        .transpose()?;
    if worker.is_none() && !args.listen.ip().is_loopback() {
        return Err(ServeCmdError::NoToken { addr: args.listen });
    }
    if admin.is_none() && !args.allow_shared_admin_token {
        let public = std::iter::once(args.listen)
            .chain(args.http)
            .find(|a| !a.ip().is_loopback());
        if let Some(addr) = public {
            return Err(ServeCmdError::SharedAdminToken { addr });
        }
    }
    if let Some(addr) = args.http
        && worker.is_none()
        && admin.is_none()
        && !addr.ip().is_loopback()
    {
        return Err(ServeCmdError::NoToken { addr });
    }
    if args.tls_cert.is_none() && !args.allow_plaintext && !args.listen.ip().is_loopback() {
        return Err(ServeCmdError::PlainGrpc { addr: args.listen });
    }
    if let Some(addr) = args.http
        && args.tls_cert.is_none()
        && !args.allow_plain_http
        && !addr.ip().is_loopback()
    {
        return Err(ServeCmdError::PlainHttp { addr });
    }
    Ok(AuthConfig { worker, admin })
}

/// Registers the enrolment token of --enrolment-token-file, if given.
fn accept_enrolment(scheduler: &mut Scheduler, args: &ServeArgs) -> Result<(), ServeCmdError> {
    let Some(path) = &args.enrolment_token_file else {
        return Ok(());
    };
    let token = crate::scheduler::WorkerSecret::presented(Token::from_file(path)?.expose());
    let new = scheduler.ensure_enrolment(
        &token,
        args.enrolment_uses,
        args.enrolment_ttl_seconds,
        args.enrolment_slots,
    )?;
    tracing::info!(file = %path.display(), new, "enrolment token accepted");
    Ok(())
}

/// Runs the coordinator until `shutdown` resolves.
pub async fn run(
    args: &ServeArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeCmdError> {
    let auth = auth(args)?;
    let tls = args
        .tls_cert
        .clone()
        .zip(args.tls_key.clone())
        .map(|(cert, key)| TlsFiles {
            cert,
            key,
            client_ca: args.tls_client_ca.clone(),
        });
    let settings = SchedulerSettings {
        heartbeat_seconds: args.heartbeat_seconds.max(1),
        lease_timeout_seconds: args.lease_timeout_seconds.max(2),
        max_workers: args.max_workers.max(1),
        max_shared_workers: args.max_shared_workers.max(1),
        max_shared_slots: args.max_shared_slots.max(1),
        max_releases: args.max_releases_per_job,
        ..SchedulerSettings::default()
    };
    // Held until `run` returns: no second coordinator on this state meanwhile.
    let lock = StateLock::acquire(&args.state)?;
    tracing::debug!(lock = %lock.path().display(), "state locked");
    let mut scheduler =
        Scheduler::open(&args.state, settings.clone(), Box::new(SystemClock::new()))?;
    scheduler.set_replay_wait_seconds(args.replay_wait_seconds);
    if let Some(path) = &args.experiment {
        let submission =
            experiment_submission(path.clone(), args.allow_unfingerprinted_data).await?;
        let outcome = scheduler.submit(&submission)?;
        tracing::info!(experiment = %outcome.experiment, new = outcome.jobs_new, reused = outcome.jobs_reused, in_progress = outcome.jobs_in_progress, "experiment submitted");
    }
    accept_enrolment(&mut scheduler, args)?;
    let sched = SchedulerHandle::spawn_bounded(scheduler, args.max_queued_calls)
        .map_err(ServeCmdError::Thread)?;
    let service = CoordinatorService::new(sched.clone(), settings.heartbeat_seconds)
        .with_checkpoint_limits(args.checkpoint_limits())
        .with_unfingerprinted_data(args.allow_unfingerprinted_data);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Every task that calls the scheduler is awaited before its thread is
    // joined, and the thread before the state lock is released.
    let mut tasks = vec![tokio::spawn(expire_ticker(sched.clone(), stop_rx.clone()))];
    if let Some(addr) = args.http {
        let https = tls.as_ref().map(crate::web::tls::acceptor).transpose()?;
        // The dashboard shows what `status` shows: the admin token, else the worker token.
        let dashboard_tokens = auth
            .admin
            .clone()
            .or_else(|| auth.worker.clone())
            .into_iter()
            .collect();
        let http = spawn_http(args, addr, https, dashboard_tokens, &service, &stop_rx).await?;
        tasks.push(http);
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| ServeCmdError::Bind {
            addr: args.listen,
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServeCmdError::Bind {
            addr: args.listen,
            source,
        })?;
    tracing::info!(addr = %local, tls = tls.is_some(), auth = auth.enabled(), "coordinator listening");
    let result = serve(
        listener,
        service,
        ServerOptions {
            auth,
            tls,
            health_listen: args.health_listen,
            conn_limits: crate::conn_limits::ConnLimits::default(),
        },
        shutdown,
    )
    .await;
    stop_in_order(stop_tx, tasks, sched).await;
    tracing::info!("coordinator stopped");
    drop(lock);
    Ok(result?)
}
/// Binds the HTTP listener on `addr` and spawns it: the dashboard (showing
/// what `status` shows, to `tokens`) and `/metrics`, until `stop` turns true.
async fn spawn_http(
    args: &ServeArgs,
    addr: std::net::SocketAddr,
    https: Option<tokio_rustls::TlsAcceptor>,
    tokens: Vec<Token>,
    service: &CoordinatorService,
    stop_rx: &tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, ServeCmdError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeCmdError::Bind { addr, source })?;
    let scheme = if https.is_some() { "https" } else { "http" };
    tracing::info!(%addr, "dashboard on {scheme}://{addr}/ (log in once with {scheme}://{addr}/login?token=YOUR_TOKEN), metrics on {scheme}://{addr}/metrics");
    let dashboard = Dashboard::start(
        DashboardConfig {
            state: args.state.clone(),
            tokens,
            poll_interval: Duration::from_secs(1),
            http_port: addr.port(),
            tls: https.is_some(),
            session_lifetime: Duration::from_secs_f64(args.dashboard_session_hours * 3600.0),
            logouts_file: Some(crate::dashboard::logouts::Logouts::path_for(&args.state)),
        },
        stop_rx.clone(),
    );
    let mut stop = stop_rx.clone();
    let limits = crate::web::HttpLimits::default();
    let security = crate::web::WebSecurity {
        hosts: crate::web::AllowedHosts::new(args.http_hosts.iter().cloned()),
        tls: https,
    };
    let routes = metrics::router(
        metrics::source(service.clone()),
        Some(dashboard.router(&limits)),
        &limits,
    );
    Ok(tokio::spawn(crate::web::serve_with(
        listener,
        routes,
        limits,
        security,
        async move {
            let _ = stop.wait_for(|s| *s).await;
        },
    )))
}

/// Stops what `run` started, in the order that lets the state lock go last:
/// the expiry ticker and the HTTP listener are told to stop and awaited, then
/// the scheduler serves the calls still queued and its thread is joined.
async fn stop_in_order(
    stop_tx: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    sched: SchedulerHandle,
) {
    let _ = stop_tx.send(true);
    for task in tasks {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "a coordinator task failed while stopping");
        }
    }
    if let Err(e) = sched.shutdown().await {
        tracing::error!(error = %e, "the scheduler thread did not stop cleanly");
    }
}

async fn experiment_submission(
    path: PathBuf,
    allow_unfingerprinted: bool,
) -> Result<Submission, ServeCmdError> {
    let joined = tokio::task::spawn_blocking(move || -> Result<Submission, ServeCmdError> {
        let (config, text) = normalized_config(&path)?;
        let fp = crate::service::fingerprint_of(&config.data.root, allow_unfingerprinted)?;
        Ok(Submission::from_config(config, text, fp)?)
    })
    .await;
    joined.map_err(|e| ServeCmdError::Thread(std::io::Error::other(e.to_string())))?
}

/// Expires lost leases once a second.
async fn expire_ticker(sched: SchedulerHandle, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        match sched.call_waiting(|s| s.expire_leases()).await {
            Ok(expired) if !expired.is_empty() => {
                let ids: Vec<String> = expired.iter().map(ToString::to_string).collect();
                tracing::warn!(attempts = %ids.join(","), "leases expired; jobs back to pending");
            }
            Ok(_) => {}
            Err(SchedulerError::Stopped) => return,
            Err(e) => tracing::error!(error = %e, "expiring leases failed"),
        }
    }
}
