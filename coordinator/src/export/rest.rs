//! A small blocking client for an MLflow tracking server's REST API
//! (`/api/2.0/mlflow/...`) and its artifacts proxy
//! (`/api/2.0/mlflow-artifacts/artifacts/...`): JSON in, JSON out, and errors
//! that name the endpoint, the HTTP status and MLflow's own message.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

/// How long one request may take, connection to last byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The most of a response body read (MLflow's answers are small; a page of
/// 1,000 runs with their latest metrics stays well under it).
const MAX_RESPONSE_BYTES: u64 = 256 << 20;

/// Why a call to the tracking server failed.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// The tracking URI is not an `http://` or `https://` address.
    #[error(
        "tracking URI {uri:?} is not an http:// or https:// address of an MLflow tracking server (start one with `mlflow server`)"
    )]
    BadUri {
        /// The URI given.
        uri: String,
    },
    /// No answer: connection refused, unknown host, timeout, TLS failure.
    #[error("MLflow tracking server {url} is unreachable: {detail}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// What the HTTP client saw.
        detail: String,
    },
    /// The server answered with an HTTP error.
    #[error("MLflow {endpoint} answered HTTP {status}{}: {message}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Http {
        /// The endpoint, e.g. `runs/create`.
        endpoint: String,
        /// The HTTP status code.
        status: u16,
        /// MLflow's `error_code`, e.g. `RESOURCE_DOES_NOT_EXIST`, when given.
        code: Option<String>,
        /// MLflow's `message`, or the body as text when it is not MLflow's JSON.
        message: String,
    },
    /// The server answered 200 with something that is not the expected JSON.
    #[error("MLflow {endpoint} answered with unexpected content: {detail}")]
    BadResponse {
        /// The endpoint.
        endpoint: String,
        /// What did not parse.
        detail: String,
    },
}

impl RestError {
    /// Whether MLflow said the resource does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RestError::Http { code: Some(c), .. } if c == "RESOURCE_DOES_NOT_EXIST")
    }
}

/// A connection to one tracking server.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    /// A client for the server at `tracking_uri` (`http(s)://host:port[/prefix]`).
    /// Nothing is sent yet.
    pub fn new(tracking_uri: &str) -> Result<Self, RestError> {
        let base = tracking_uri.trim().trim_end_matches('/');
        let rest = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"));
        if rest.is_none_or(str::is_empty) {
            return Err(RestError::BadUri {
                uri: tracking_uri.to_owned(),
            });
        }
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(REQUEST_TIMEOUT))
            .http_status_as_error(false)
            .build();
        Ok(Self {
            base: base.to_owned(),
            agent: ureq::Agent::new_with_config(config),
        })
    }

    /// The tracking URI, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// POSTs `body` to `/api/2.0/mlflow/<endpoint>` and parses the answer.
    pub fn post<T: DeserializeOwned>(&self, endpoint: &str, body: &Value) -> Result<T, RestError> {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.base);
        let answer = self.agent.post(&url).send_json(body);
        parse(endpoint, &url, answer)
    }

    /// GETs `/api/2.0/mlflow/<endpoint>?<query>` and parses the answer.
    pub fn get<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        query: &[(&str, &str)],
    ) -> Result<T, RestError> {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.base);
        let mut request = self.agent.get(&url);
        for (k, v) in query {
            request = request.query(*k, *v);
        }
        parse(endpoint, &url, request.call())
    }

    /// Uploads `bytes` to `path` (relative to the server's artifact root, e.g.
    /// `1/<run id>/artifacts/result.json`) through the artifacts proxy.
    pub fn put_artifact(&self, path: &str, bytes: &[u8]) -> Result<(), RestError> {
        let endpoint = format!("mlflow-artifacts/artifacts/{path}");
        let url = format!("{}/api/2.0/{endpoint}", self.base);
        let answer = self
            .agent
            .put(&url)
            .header("Content-Type", "application/octet-stream")
            .send(bytes);
        parse::<Value>(&endpoint, &url, answer).map(drop)
    }
}

/// The answer as `T`, or the error naming `endpoint`.
fn parse<T: DeserializeOwned>(
    endpoint: &str,
    url: &str,
    answer: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<T, RestError> {
    let mut response = answer.map_err(|e| RestError::Unreachable {
        url: url.to_owned(),
        detail: e.to_string(),
    })?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE_BYTES)
        .read_to_string()
        .map_err(|e| RestError::Unreachable {
            url: url.to_owned(),
            detail: format!("reading the answer: {e}"),
        })?;
    if !(200..300).contains(&status) {
        let json: Option<Value> = serde_json::from_str(&text).ok();
        let field = |k: &str| {
            json.as_ref()
                .and_then(|j| j.get(k))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        return Err(RestError::Http {
            endpoint: endpoint.to_owned(),
            status,
            code: field("error_code"),
            message: field("message").unwrap_or_else(|| shorten(&text)),
        });
    }
    // Empty answers (an artifact upload, `runs/update` on some servers) read as `{}`.
    let text = if text.trim().is_empty() { "{}" } else { &text };
    serde_json::from_str(text).map_err(|e| RestError::BadResponse {
        endpoint: endpoint.to_owned(),
        detail: format!("{e}: {}", shorten(text)),
    })
}

/// The first 500 characters of a body, for an error message.
fn shorten(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(500) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}
