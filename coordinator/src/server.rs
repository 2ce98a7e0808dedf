//! The gRPC server: the worker service, the admin service and the standard gRPC
//! health service, on a listener the caller binds, with optional bearer-token
//! authentication and TLS (rustls; optionally requiring client certificates),
//! under [`GrpcLimits`] and the connection bounds of [`crate::conn_limits`].

use std::future::Future;

use spikecv_common::proto::admin_server::AdminServer;
use spikecv_common::proto::coordinator_server::CoordinatorServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::auth::AuthConfig;
use crate::conn_limits::{ConnGate, ConnLimits, limited_incoming};
use crate::health::HealthSettings;
use crate::service::CoordinatorService;
pub use crate::tls::TlsFiles;

/// Errors that stop the server or keep it from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The transport failed (listener, HTTP/2, TLS setup).
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The workers' credentials could not be read from the store.
    #[error("cannot read the workers' credentials: {0}")]
    Credentials(crate::scheduler::SchedulerError),
    /// The plain-text health listener could not be bound.
    #[error("cannot listen for health checks on {addr}: {source}")]
    HealthBind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A TLS file could not be read or used.
    #[error(transparent)]
    TlsFile(#[from] crate::tls::TlsFileError),
}

/// The limits of the gRPC listener, so that no caller can grow what it holds
/// without bound. Each method's largest message and deadline are set by
/// [`crate::call_limits`] (RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED); tonic's
/// decoder limits per service stay behind them as a backstop (OUT_OF_RANGE);
/// calls past the concurrency limit wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcLimits {
    /// Backstop for any message of the worker service (the largest is a
    /// `Complete` with every epoch, see [`crate::call_limits`]).
    pub worker_message_bytes: usize,
    /// Backstop for any message of the admin service (an experiment's TOML).
    pub admin_message_bytes: usize,
    /// Calls served at once per connection.
    pub calls_per_connection: usize,
    /// HTTP/2 streams a client may open at once per connection.
    pub streams_per_connection: u32,
    /// A connection that answers no HTTP/2 ping within this time after one is
    /// sent (every `keepalive`) is closed, with its calls.
    pub keepalive_timeout: std::time::Duration,
    /// Time between HTTP/2 pings (and TCP keep-alive probes).
    pub keepalive: std::time::Duration,
}

impl Default for GrpcLimits {
    fn default() -> Self {
        Self {
            worker_message_bytes: crate::call_limits::RESULT_MESSAGE_BYTES + (1 << 20),
            admin_message_bytes: crate::call_limits::SUBMIT_MESSAGE_BYTES + (1 << 20),
            calls_per_connection: 512,
            streams_per_connection: 1024,
            keepalive_timeout: std::time::Duration::from_secs(20),
            keepalive: std::time::Duration::from_secs(30),
        }
    }
}

/// How the server authenticates and encrypts.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Accepted tokens (none: open).
    pub auth: AuthConfig,
    /// TLS files (none: plain HTTP/2).
    pub tls: Option<TlsFiles>,
    /// An address that serves the gRPC health service alone, in plain text
    /// and without a token (for probes that cannot speak TLS, such as
    /// Kubernetes' `grpc:` probes); it carries no worker or admin call.
    pub health_listen: Option<std::net::SocketAddr>,
    /// Bounds on the listener's connections and the time a connection may
    /// take to speak or to finish its TLS handshake.
    pub conn_limits: ConnLimits,
}

/// Serves the coordinator, admin and health services on `listener` until
/// `shutdown` resolves, the health status following the scheduler thread
/// with the default [`HealthSettings`].
pub async fn serve(
    listener: TcpListener,
    service: CoordinatorService,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    serve_with_health(
        listener,
        service,
        options,
        HealthSettings::default(),
        shutdown,
    )
    .await
}

/// As [`serve`], the scheduler watchdog pinging as `health` says.
pub async fn serve_with_health(
    listener: TcpListener,
    service: CoordinatorService,
    options: ServerOptions,
    health: HealthSettings,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    crate::health::report(&health_reporter, tonic_health::ServingStatus::Serving).await;
    // Stops with the server (aborted when this function returns).
    let watchdog = AbortOnDrop(tokio::spawn(crate::health::watchdog(
        service.scheduler().clone(),
        health_reporter,
        health,
    )));
    let _health_only = match options.health_listen {
        Some(addr) => Some(spawn_health_only(addr, health_service.clone()).await?),
        None => None,
    };
    let limits = GrpcLimits::default();
    let mut builder = tonic::transport::Server::builder()
        .concurrency_limit_per_connection(limits.calls_per_connection)
        .max_concurrent_streams(Some(limits.streams_per_connection))
        .http2_keepalive_interval(Some(limits.keepalive))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        .tcp_keepalive(Some(limits.keepalive))
        .layer(crate::call_limits::CallLimitsLayer);
    service
        .reload_credentials()
        .await
        .map_err(ServeError::Credentials)?;
    let worker = tonic::service::interceptor::InterceptedService::new(
        CoordinatorServer::new(service.clone())
            .max_decoding_message_size(limits.worker_message_bytes),
        options
            .auth
            .worker_interceptor()
            .with_credentials(service.credential_book().clone()),
    );
    let admin = tonic::service::interceptor::InterceptedService::new(
        AdminServer::new(service).max_decoding_message_size(limits.admin_message_bytes),
        options.auth.admin_interceptor(),
    );
    let router = builder
        .add_service(health_service)
        .add_service(worker)
        .add_service(admin);
    let conn_limits = options.conn_limits;
    let incoming = limited_incoming(listener, ConnGate::new(conn_limits));
    match &options.tls {
        // The handshakes are ours, not tonic's, so that each has a deadline.
        Some(tls) => {
            let acceptor = crate::tls::acceptor(tls, &[b"h2"])?;
            let tls_incoming = crate::tls::handshakes(
                incoming,
                acceptor,
                conn_limits.handshake_timeout,
                conn_limits.max_connections,
            );
            router
                .serve_with_incoming_shutdown(tls_incoming, shutdown)
                .await?;
        }
        None => {
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?
        }
    }
    drop(watchdog);
    Ok(())
}

/// Binds `addr` and serves the health service alone on it, in plain text,
/// until the returned guard is dropped.
async fn spawn_health_only<T: tonic_health::pb::health_server::Health>(
    addr: std::net::SocketAddr,
    health: tonic_health::pb::health_server::HealthServer<T>,
) -> Result<AbortOnDrop, ServeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::HealthBind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServeError::HealthBind { addr, source })?;
    tracing::info!(addr = %local, "health service listening (plain text, health checks only)");
    Ok(AbortOnDrop(tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the health listener failed");
        }
    })))
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
