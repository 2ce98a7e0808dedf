//! The `Host` header check of the HTTP listener, against DNS rebinding: a web
//! page on `evil.example` whose name is made to resolve to the coordinator's
//! address reaches the listener with `Host: evil.example`, so a request is
//! answered only when its `Host` names this machine:
//!
//! - an IP address (a rebinding page cannot be reached under an address: its
//!   origin is always the attacker's name),
//! - `localhost` (or a name under `.localhost`),
//! - the machine's own host name (as `/proc/sys/kernel/hostname` says),
//! - a name the operator configured (`coordinator serve --http-host NAME`).
//!
//! The port is not compared (an SSH tunnel or a proxy changes it). A request
//! without a `Host` header cannot come from a browser and passes, and so does
//! `GET /metrics`: it needs no token and holds no secret, and Prometheus
//! scrapes it under whatever name its configuration gives. Anything else is
//! answered `403 Forbidden` with a text that names the flag.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The host names a request's `Host` header may carry (IP addresses and
/// `localhost` always pass). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    names: Arc<[String]>,
}

impl AllowedHosts {
    /// `names` (case-insensitive, a trailing dot ignored) and this machine's
    /// host name.
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        let mut names: Vec<String> = names.into_iter().map(|n| normalize(&n)).collect();
        names.extend(machine_host_name().map(|n| normalize(&n)));
        names.retain(|n| !n.is_empty());
        Self {
            names: names.into(),
        }
    }

    /// Exactly `names`, without the machine's host name (for tests).
    pub fn only(names: impl IntoIterator<Item = String>) -> Self {
        Self {
            names: names.into_iter().map(|n| normalize(&n)).collect(),
        }
    }

    /// Whether a request with `Host: value` may be answered.
    pub fn allows(&self, value: &str) -> bool {
        let host = strip_port(value.trim());
        if host.is_empty() {
            return false;
        }
        if host.parse::<std::net::IpAddr>().is_ok() {
            return true;
        }
        let host = normalize(host);
        host == "localhost" || host.ends_with(".localhost") || self.names.contains(&host)
    }
}

/// Lower case, without a trailing dot.
fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The host of `host[:port]`, `[v6]:port` or `[v6]` (brackets removed).
fn strip_port(value: &str) -> &str {
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split_once(']').map_or("", |(v6, _)| v6);
    }
    match value.rsplit_once(':') {
        // More than one colon without brackets: not a host:port.
        Some((host, _)) if !host.contains(':') => host,
        Some(_) => value,
        None => value,
    }
}

/// This machine's host name, where the system tells it.
fn machine_host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// Middleware: answers 403 when the `Host` header names another site.
pub async fn check_host(
    State(hosts): State<AllowedHosts>,
    request: Request,
    next: Next,
) -> Response {
    let checked = request.uri().path() != "/metrics";
    if let Some(value) = request.headers().get(header::HOST).filter(|_| checked) {
        let text = String::from_utf8_lossy(value.as_bytes());
        if !hosts.allows(&text) {
            tracing::debug!(host = %text.escape_debug(), "HTTP request for another host refused");
            let body = format!(
                "Host {:?} is not an address or a name of this coordinator; \
                 start it with --http-host NAME to accept that name\n",
                text.chars().take(256).collect::<String>()
            );
            return (
                StatusCode::FORBIDDEN,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                body,
            )
                .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_localhost_and_configured_names_pass_other_names_do_not() {
        let hosts = AllowedHosts::only(["Head-Node.example.org.".to_owned()]);
        for ok in [
            "127.0.0.1:8080",
            "10.1.2.3",
            "[::1]:8080",
            "[fe80::1]",
            "::1",
            "localhost:9000",
            "LOCALHOST",
            "app.localhost:1",
            "head-node.example.org:8080",
            "HEAD-NODE.EXAMPLE.ORG.",
        ] {
            assert!(hosts.allows(ok), "{ok} should pass");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "head-node.example.org.evil.example",
            "localhost.evil.example",
            "",
            ":8080",
            "[::1",
            "127.0.0.1.evil.example",
        ] {
            assert!(!hosts.allows(bad), "{bad:?} should be refused");
        }
    }
}
