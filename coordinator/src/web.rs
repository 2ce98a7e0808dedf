//! The HTTP listener of `coordinator serve --http`: an axum [`Router`] served
//! by hyper (HTTP/1.1, one request per connection) on a listener the caller
//! binds, until a shutdown future resolves, under limits so that one client
//! cannot stall the others:
//!
//! - at most [`HttpLimits::max_connections`] open connections (an event
//!   stream holds one; further clients wait in the listen backlog),
//! - at most [`HttpLimits::max_in_flight`] requests being answered at once,
//! - a request head within [`HttpLimits::max_head_bytes`], read within
//!   [`HttpLimits::head_timeout`],
//! - a request body within [`HttpLimits::max_body_bytes`] (413 beyond),
//! - an answer within [`HttpLimits::request_timeout`] (503 beyond); routes opt
//!   in with [`timed`], and the event stream does not.
//!
//! Every response carries [`security_headers`]. A request whose `Host` header
//! names another site is refused ([`host`]: DNS rebinding), and the listener
//! speaks TLS when given an acceptor ([`tls`]).

pub mod host;
pub mod tls;

pub use host::AllowedHosts;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// The limits of the HTTP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Open connections at most.
    pub max_connections: usize,
    /// Requests answered at once at most (an event stream counts only while
    /// its response starts).
    pub max_in_flight: usize,
    /// Time to answer a request of a [`timed`] route.
    pub request_timeout: Duration,
    /// Time to receive a request head.
    pub head_timeout: Duration,
    /// Largest request head (request line and headers), bytes.
    pub max_head_bytes: usize,
    /// Largest request body, bytes (every route is `GET`).
    pub max_body_bytes: usize,
    /// Dashboard event streams open at once at most (each holds a connection
    /// for as long as its page is open); one more is answered 429.
    pub max_event_streams: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            max_in_flight: 64,
            request_timeout: Duration::from_secs(30),
            head_timeout: Duration::from_secs(5),
            max_head_bytes: 16 * 1024,
            max_body_bytes: 16 * 1024,
            max_event_streams: 32,
        }
    }
}

/// A route's handler under the request timeout of `limits`.
pub fn timed<H, T, S>(handler: H, limits: &HttpLimits) -> axum::routing::MethodRouter<S>
where
    H: axum::handler::Handler<T, S>,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    axum::routing::get(handler).layer(TimeoutLayer::with_status_code(
        StatusCode::SERVICE_UNAVAILABLE,
        limits.request_timeout,
    ))
}

/// The Content-Security-Policy of every response: scripts, styles and
/// connections only to this origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'";

/// Headers every response carries: no caching, no sniffing, no referrer (a
/// token may be in the URL), no framing, and [`CONTENT_SECURITY_POLICY`].
pub fn security_headers() -> [(HeaderName, HeaderValue); 5] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
    ]
}

async fn add_security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in security_headers() {
        headers.insert(name, value);
    }
    response
}

/// Every route is `GET`: anything else is answered 405.
async fn get_only(request: Request, next: Next) -> Response {
    if request.method() != Method::GET {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "GET only\n",
        )
            .into_response();
    }
    next.run(request).await
}

/// `router` with the listener-wide layers: security headers, `GET` only, the
/// body size limit and the in-flight limit.
pub fn with_limits(router: Router, limits: &HttpLimits) -> Router {
    router
        .layer(GlobalConcurrencyLimitLayer::new(limits.max_in_flight))
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(middleware::from_fn(get_only))
        .layer(middleware::from_fn(add_security_headers))
}

/// Who the listener answers and how: the `Host` names it accepts and,
/// optionally, TLS.
#[derive(Clone, Default)]
pub struct WebSecurity {
    /// Names a request's `Host` header may carry (addresses and `localhost`
    /// always pass).
    pub hosts: AllowedHosts,
    /// TLS on every connection (none: plain HTTP).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for WebSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSecurity")
            .field("hosts", &self.hosts)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Serves `router` (with [`with_limits`] applied here) on `listener` until
/// `shutdown` resolves, over plain HTTP, accepting this machine's addresses
/// and names as `Host`; connections already open run on to their end.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let security = WebSecurity {
        hosts: AllowedHosts::new([]),
        tls: None,
    };
    serve_with(listener, router, limits, security, shutdown).await;
}

/// As [`serve`], with the `Host` names and TLS of `security`.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    security: WebSecurity,
    shutdown: impl Future<Output = ()>,
) {
    let router = with_limits(router, &limits).layer(middleware::from_fn_with_state(
        security.hosts.clone(),
        host::check_host,
    ));
    let service = TowerToHyperService::new(router);
    let mut http = hyper::server::conn::http1::Builder::new();
    // Title-Case header names, as the hand-written server wrote them (some
    // clients and scripts compare them case-sensitively).
    http.keep_alive(false)
        .title_case_headers(true)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .max_buf_size(limits.max_head_bytes.max(8192));
    let http = Arc::new(http);
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => return,
            permit = connections.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP listener accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (service, http, tls) = (service.clone(), http.clone(), security.tls.clone());
        let handshake = limits.head_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let served = match tls {
                None => http.serve_connection(TokioIo::new(stream), service).await,
                Some(acceptor) => {
                    let accepted = tokio::time::timeout(handshake, acceptor.accept(stream)).await;
                    match accepted {
                        Ok(Ok(tls)) => http.serve_connection(TokioIo::new(tls), service).await,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "HTTPS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("HTTPS handshake timed out");
                            return;
                        }
                    }
                }
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "HTTP connection");
            }
        });
    }
}
