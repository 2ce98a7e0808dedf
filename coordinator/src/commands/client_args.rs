//! The flags every client command shares (`--coordinator`, `--token-file`,
//! TLS) and the connection options they describe.

use std::path::PathBuf;

use spikecv_common::proto::client::{ClientError, ClientOptions, read_token_file};

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

impl ClientArgs {
    /// The connection options these flags describe (reads the token file).
    pub fn options(&self) -> Result<ClientOptions, ClientError> {
        let token = self
            .token_file
            .as_deref()
            .map(read_token_file)
            .transpose()?;
        Ok(ClientOptions {
            url: self.coordinator.clone(),
            token,
            tls_ca: self.tls_ca.clone(),
            tls_identity: self
                .tls_client_cert
                .clone()
                .zip(self.tls_client_key.clone()),
            tls_domain: None,
        })
    }
}
