//! TLS for the HTTP listener: the same certificate and key as the gRPC
//! listener (`--tls-cert`, `--tls-key`) through [`crate::tls::acceptor`],
//! offering HTTP/1.1. With `--tls-client-ca` the HTTP listener asks for
//! client certificates signed by that CA too, as gRPC does: one policy for
//! who may connect.

use tokio_rustls::TlsAcceptor;

use crate::server::ServeError;
use crate::tls::TlsFiles;

/// The TLS acceptor of the HTTP listener for `files` (HTTP/1.1 offered by ALPN).
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, ServeError> {
    Ok(crate::tls::acceptor(files, &[b"http/1.1"])?)
}
