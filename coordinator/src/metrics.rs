//! A small HTTP listener for Prometheus: `GET /metrics` answers the text
//! exposition format; every other request goes to an optional fallback handler
//! (the dashboard, see [`crate::dashboard`]) or is answered 404. Hand-written on
//! tokio (one request per connection), so it needs no web framework.

use std::future::Future;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Produces the current metrics text (Prometheus exposition format).
pub type MetricsSource = Arc<dyn Fn() -> futures::future::BoxFuture<'static, String> + Send + Sync>;

/// The head of an HTTP request: method, path, query string and headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHead {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path without the query, e.g. `/api/jobs`.
    pub path: String,
    /// The raw query string after `?` (empty when none).
    pub query: String,
    /// Header names (lowercase) and values, in order.
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    /// Parses a request head (request line and headers).
    pub fn parse(head: &str) -> Self {
        let mut lines = head.lines();
        let mut parts = lines.next().unwrap_or("").split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let headers = lines
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers,
        }
    }

    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Answers a request that is not `GET /metrics`: it owns the connection and
/// writes the whole response (it may stream, e.g. server-sent events).
pub type HttpFallback = Arc<
    dyn Fn(RequestHead, TcpStream) -> futures::future::BoxFuture<'static, std::io::Result<()>>
        + Send
        + Sync,
>;

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve_metrics(
    listener: TcpListener,
    source: MetricsSource,
    shutdown: impl Future<Output = ()>,
) {
    serve_http(listener, source, None, shutdown).await;
}

/// Serves `GET /metrics` and hands every other request to `fallback` (404
/// without one) on `listener` until `shutdown` resolves.
pub async fn serve_http(
    listener: TcpListener,
    source: MetricsSource,
    fallback: Option<HttpFallback>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let source = source.clone();
                    let fallback = fallback.clone();
                    tokio::spawn(async move {
                        if let Err(e) = answer(stream, source, fallback).await {
                            tracing::debug!(error = %e, "metrics connection");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
        }
    }
}

async fn answer(
    mut stream: TcpStream,
    source: MetricsSource,
    fallback: Option<HttpFallback>,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    // Read the request head (at most 16 KiB), ignore any body.
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request head"))??;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let request = RequestHead::parse(&String::from_utf8_lossy(&buf));
    let (method, path) = (request.method.as_str(), request.path.as_str());
    if !(method == "GET" && path == "/metrics")
        && let Some(fallback) = fallback
    {
        return fallback(request, stream).await;
    }
    let (status, content_type, body) = if method == "GET" && path == "/metrics" {
        (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            source().await,
        )
    } else {
        (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found\n".to_owned(),
        )
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Appends one metric (HELP, TYPE and samples) to a Prometheus text body.
pub fn write_metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, f64)]) {
    use std::fmt::Write;
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}
