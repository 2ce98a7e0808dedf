//! The gRPC server: the coordinator service for workers plus the standard
//! gRPC health service, on a listener the caller binds.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use spikecv_common::proto::coordinator_server::{Coordinator, CoordinatorServer};
use spikecv_common::proto::{PROTOCOL_VERSION, RegisterRequest, RegisterResponse};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The transport failed (listener, HTTP/2).
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The coordinator's gRPC service; thin, it translates and delegates.
#[derive(Debug, Default)]
pub struct CoordinatorService {
    next_worker: AtomicU64,
}

#[tonic::async_trait]
impl Coordinator for CoordinatorService {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        let req = request.into_inner();
        if req.protocol_version != PROTOCOL_VERSION {
            return Err(Status::failed_precondition(format!(
                "worker speaks protocol version {}, this coordinator speaks {PROTOCOL_VERSION}",
                req.protocol_version
            )));
        }
        let n = self.next_worker.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(worker = %req.worker_name, host = %req.host, slots = req.slots.len(), "worker registered");
        Ok(Response::new(RegisterResponse {
            worker_id: format!("w{n}"),
            heartbeat_seconds: 5,
        }))
    }
}

/// Serves the coordinator and health services on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<CoordinatorServer<CoordinatorService>>()
        .await;
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(CoordinatorServer::new(CoordinatorService::default()))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}
