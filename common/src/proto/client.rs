//! Client side of the contract, shared by `worker join`, `coordinator submit`
//! and `coordinator status`: a lazily connecting channel (so a client started
//! before its coordinator simply retries), optional TLS, a bearer-token
//! interceptor, and the error of the coordinator's client commands
//! ([`CallError`]).

use std::path::{Path, PathBuf};

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::admin_client::AdminClient;
use super::coordinator_client::CoordinatorClient;

/// How to reach a coordinator.
#[derive(Clone, Default)]
pub struct ClientOptions {
    /// `http://host:port` or `https://host:port`.
    pub url: String,
    /// Bearer token sent with every call.
    pub token: Option<String>,
    /// PEM CA bundle that signed the coordinator's certificate (https).
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate and key, for coordinators that require one.
    pub tls_identity: Option<(PathBuf, PathBuf)>,
    /// Server name to verify instead of the URL's host.
    pub tls_domain: Option<String>,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("tls_ca", &self.tls_ca)
            .field("tls_identity", &self.tls_identity)
            .field("tls_domain", &self.tls_domain)
            .finish()
    }
}

/// A client that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not a valid endpoint.
    #[error("invalid coordinator URL {url:?}: {source}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        source: tonic::transport::Error,
    },
    /// A TLS or token file could not be read.
    #[error("cannot read {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TLS settings were refused.
    #[error("TLS settings for {url}: {source}")]
    Tls {
        /// The URL.
        url: String,
        /// Why.
        source: tonic::transport::Error,
    },
    /// The token file is empty or holds characters that cannot be sent.
    #[error("token file {path}: {problem}")]
    Token {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: &'static str,
    },
}

/// Why a command that calls a coordinator (`submit`, `status`, `cancel`,
/// `retry`) failed: its client, the call, or printing the answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The client could not be set up.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The coordinator refused or could not be reached.
    #[error("coordinator {url}: {}: {}", status.code(), status.message())]
    Call {
        /// The coordinator.
        url: String,
        /// Its answer.
        status: tonic::Status,
    },
    /// Writing the answer failed.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

impl CallError {
    /// Turns the answer of a call to the coordinator at `url` into a
    /// [`CallError::Call`].
    pub fn at(url: &str) -> impl Fn(tonic::Status) -> CallError + '_ {
        move |status| CallError::Call {
            url: url.to_owned(),
            status,
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|source| ClientError::File {
        path: path.to_owned(),
        source,
    })
}

/// Reads a token file (the whole file, surrounding whitespace trimmed).
pub fn read_token_file(path: &Path) -> Result<String, ClientError> {
    let refused = |problem| ClientError::Token {
        path: path.to_owned(),
        problem,
    };
    let text = String::from_utf8(read(path)?).map_err(|_| refused("not UTF-8"))?;
    let t = text.trim();
    if t.is_empty() {
        return Err(refused("empty"));
    }
    if !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(refused("the token must be printable ASCII without spaces"));
    }
    Ok(t.to_owned())
}

/// Adds `authorization: Bearer <token>` to every call (nothing without a token).
#[derive(Clone, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(<redacted>)")
    }
}

impl Bearer {
    /// An interceptor for `token` (`None`: sends nothing).
    pub fn new(token: Option<&str>) -> Self {
        Bearer(token.and_then(|t| format!("Bearer {t}").parse().ok()))
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            request.metadata_mut().insert("authorization", v.clone());
        }
        Ok(request)
    }
}

/// A worker-service client with the token attached.
pub type WorkerClient = CoordinatorClient<InterceptedService<Channel, Bearer>>;
/// An admin-service client with the token attached.
pub type AdminServiceClient = AdminClient<InterceptedService<Channel, Bearer>>;

impl ClientOptions {
    /// A channel that connects on first use and reconnects by itself.
    pub fn channel(&self) -> Result<Channel, ClientError> {
        let mut endpoint = Endpoint::from_shared(self.url.clone())
            .map_err(|source| ClientError::Url {
                url: self.url.clone(),
                source,
            })?
            .connect_timeout(std::time::Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(std::time::Duration::from_secs(30))
            .keep_alive_while_idle(true);
        let https = self.url.starts_with("https://");
        if https || self.tls_ca.is_some() || self.tls_identity.is_some() {
            let mut tls = ClientTlsConfig::new();
            if let Some(ca) = &self.tls_ca {
                tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
            }
            if let Some((cert, key)) = &self.tls_identity {
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            if let Some(domain) = &self.tls_domain {
                tls = tls.domain_name(domain.clone());
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|source| ClientError::Tls {
                    url: self.url.clone(),
                    source,
                })?;
        }
        Ok(endpoint.connect_lazy())
    }

    /// A worker-service client (64 MiB messages).
    pub fn worker_client(&self) -> Result<WorkerClient, ClientError> {
        Ok(
            CoordinatorClient::with_interceptor(
                self.channel()?,
                Bearer::new(self.token.as_deref()),
            )
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20),
        )
    }

    /// An admin-service client.
    pub fn admin_client(&self) -> Result<AdminServiceClient, ClientError> {
        Ok(
            AdminClient::with_interceptor(self.channel()?, Bearer::new(self.token.as_deref()))
                .max_decoding_message_size(16 << 20)
                .max_encoding_message_size(16 << 20),
        )
    }
}
