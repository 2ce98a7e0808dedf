//! The HTTP listener of `coordinator serve --http`: an axum [`Router`] served
//! by hyper (HTTP/1.1, one request per connection) on a listener the caller
//! binds, until a shutdown future resolves, under limits so that one client
//! cannot stall the others:
//!
//! - at most [`HttpLimits::max_connections`] open connections, and
//!   [`HttpLimits::max_per_peer`] from one address: when a bound is reached,
//!   the oldest connection that has not sent a byte yet (and has been open
//!   for a quarter of the head timeout, at most a second) is closed to make
//!   room (an idle crowd cannot hold every place), and when every place is
//!   held by a connection that spoke (an event stream, a request being
//!   answered, a request head arriving), further clients wait in the listen
//!   backlog; one more from a peer at its own bound is answered 503
//!   ([`crate::conn_limits`]),
//! - a connection that sends nothing is closed after
//!   [`HttpLimits::head_timeout`], and one request per connection (no
//!   keep-alive: no connection idles between requests),
//! - at most [`HttpLimits::max_in_flight`] requests being answered at once,
//! - a request head within [`HttpLimits::max_head_bytes`], read within
//!   [`HttpLimits::head_timeout`],
//! - a request body within [`HttpLimits::max_body_bytes`] (413 beyond),
//! - an answer within [`HttpLimits::request_timeout`] (503 beyond); routes opt
//!   in with [`timed`], and the event stream does not.
//!
//! Each request carries its peer's address as a [`PeerAddr`] extension (the
//! login's per-address rate limit, [`rate`]). Every response carries
//! [`security_headers`]. A request whose `Host` header
//! names another site is refused ([`host`]: DNS rebinding), and the listener
//! speaks TLS when given an acceptor ([`tls`]).

pub mod host;
pub mod rate;
pub mod tls;

pub use host::AllowedHosts;
pub use rate::PeerAddr;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt as _;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::conn_limits::{Admitted, ConnGate, ConnLimits, LimitedStream, Refusal};

/// The limits of the HTTP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Open connections at most.
    pub max_connections: usize,
    /// Open connections from one peer address at most.
    pub max_per_peer: usize,
    /// Requests answered at once at most (an event stream counts only while
    /// its response starts).
    pub max_in_flight: usize,
    /// Time to answer a request of a [`timed`] route.
    pub request_timeout: Duration,
    /// Time to receive a request head.
    pub head_timeout: Duration,
    /// Largest request head (request line and headers), bytes.
    pub max_head_bytes: usize,
    /// Largest request body, bytes (every route is `GET`, but for the
    /// login form and the logout).
    pub max_body_bytes: usize,
    /// Dashboard event streams open at once at most (each holds a connection
    /// for as long as its page is open); one more is answered 429.
    pub max_event_streams: usize,
    /// Login attempts (and API requests with a bearer token) one peer address
    /// may make at once before it is slowed down ([`rate`]).
    pub login_burst: u32,
    /// Time after which one more attempt is allowed.
    pub login_interval: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            max_per_peer: 64,
            max_in_flight: 64,
            request_timeout: Duration::from_secs(30),
            head_timeout: Duration::from_secs(5),
            max_head_bytes: 16 * 1024,
            max_body_bytes: 16 * 1024,
            max_event_streams: 32,
            login_burst: 5,
            login_interval: Duration::from_millis(500),
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
    axum::routing::get(handler).layer(timeout(limits))
}

/// The request timeout of `limits` as a layer (503 beyond it), for routes
/// [`timed`] does not build.
pub fn timeout(limits: &HttpLimits) -> TimeoutLayer {
    TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, limits.request_timeout)
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

/// Paths that also take `POST` (a form): the login and the logout.
pub const POST_PATHS: [&str; 2] = ["/login", "/logout"];

/// Every route is `GET` (but [`POST_PATHS`], which take `POST` as well):
/// anything else is answered 405.
async fn get_only(request: Request, next: Next) -> Response {
    let post = request.method() == Method::POST && POST_PATHS.contains(&request.uri().path());
    if request.method() != Method::GET && !post {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "GET only\n",
        )
            .into_response();
    }
    next.run(request).await
}

/// `router` with the listener-wide layers: security headers, `GET` only (and
/// `POST` on [`POST_PATHS`]), the body size limit and the in-flight limit.
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
    let mut http = hyper::server::conn::http1::Builder::new();
    // Title-Case header names, as the hand-written server wrote them (some
    // clients and scripts compare them case-sensitively).
    http.keep_alive(false)
        .title_case_headers(true)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .max_buf_size(limits.max_head_bytes.max(8192));
    let http = Arc::new(http);
    let gate = ConnGate::new(ConnLimits {
        max_connections: limits.max_connections.max(1),
        max_per_peer: limits.max_per_peer.max(1),
        preface_timeout: limits.head_timeout,
        eviction_grace: (limits.head_timeout / 4).min(Duration::from_secs(1)),
        handshake_timeout: limits.head_timeout,
    });
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = gate.room() => {}
        }
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP listener accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let admitted = tokio::select! {
            () = &mut shutdown => return,
            admitted = admit(&gate, peer) => admitted,
        };
        let Some(admitted) = admitted else {
            tokio::spawn(refuse_busy(stream, limits.head_timeout));
            continue;
        };
        let stream = gate.limit(stream, admitted);
        let connection = Connection {
            router: router.clone(),
            http: http.clone(),
            tls: security.tls.clone(),
            peer,
            handshake: limits.head_timeout,
        };
        tokio::spawn(connection.serve(stream));
    }
}

/// A place for a connection from `peer`: at once, or once a silent
/// connection is old enough to be closed for it, or once a place is freed
/// when every place is held by one that spoke; `None` when the peer holds
/// its share and each of them spoke.
async fn admit(gate: &ConnGate, peer: SocketAddr) -> Option<Admitted> {
    loop {
        match gate.try_admit(peer.ip()) {
            Ok(admitted) => return Some(admitted),
            Err(Refusal::Young(wait)) => tokio::time::sleep(wait).await,
            Err(Refusal::Full) => gate.freed().await,
            Err(Refusal::PeerFull) => return None,
        }
    }
}

/// One admitted connection and what serving it needs.
struct Connection {
    router: Router,
    http: Arc<hyper::server::conn::http1::Builder>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    peer: SocketAddr,
    handshake: Duration,
}

impl Connection {
    /// Serves `stream` (after the TLS handshake, when TLS is on) to its end;
    /// each request carries the peer's address.
    async fn serve(self, stream: LimitedStream<TcpStream>) {
        let (router, peer) = (self.router, self.peer);
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request.extensions_mut().insert(PeerAddr(peer));
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
        let served = match self.tls {
            None => {
                self.http
                    .serve_connection(TokioIo::new(stream), service)
                    .await
            }
            Some(acceptor) => {
                let accepted = tokio::time::timeout(self.handshake, acceptor.accept(stream)).await;
                match accepted {
                    Ok(Ok(tls)) => self.http.serve_connection(TokioIo::new(tls), service).await,
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
    }
}

/// The answer to a connection from a peer that holds its share of places,
/// each busy: 503 with `Retry-After`, then closed (plain text even on an
/// HTTPS listener: no handshake is spent on it, and the client reads a
/// failed handshake).
async fn refuse_busy(mut stream: TcpStream, within: Duration) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\nContent-Length: 58\r\nConnection: close\r\n\r\ntoo many connections from this address; try again shortly\n";
    let _ = tokio::time::timeout(within, async {
        let _ = stream.write_all(BUSY).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
