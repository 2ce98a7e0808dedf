//! Turning the shared client flags (`--coordinator`, `--token-file`, TLS) into
//! connection options.

use spikecv_common::proto::client::{ClientError, ClientOptions, read_token_file};

use crate::cli::ClientArgs;

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
