//! TLS for both listeners: the certificate files, the rustls acceptor they
//! make (with the `ring` provider tonic itself uses; client certificates
//! signed by `--tls-client-ca` required when it is given), and the gRPC
//! listener's handshakes, each bounded by a timeout so that a peer that opens
//! a TLS connection and never finishes the handshake is closed instead of
//! holding a descriptor and a task.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig, crypto};

/// Certificate files for TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain of the server.
    pub cert: PathBuf,
    /// PEM private key of the server.
    pub key: PathBuf,
    /// PEM CA bundle: when given, clients must present a certificate it signed.
    pub client_ca: Option<PathBuf>,
}

/// A TLS file that cannot be read or used.
#[derive(Debug, thiserror::Error)]
#[error("cannot use TLS file {path}: {source}")]
pub struct TlsFileError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

fn bad(path: &Path, what: String) -> TlsFileError {
    TlsFileError {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, what),
    }
}

fn client_verifier(
    ca: &Path,
    provider: Arc<crypto::CryptoProvider>,
) -> Result<Arc<dyn tokio_rustls::rustls::server::danger::ClientCertVerifier>, TlsFileError> {
    let mut roots = RootCertStore::empty();
    let cas = CertificateDer::pem_file_iter(ca)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(ca, format!("no usable PEM CA certificate: {e}")))?;
    for c in cas {
        roots
            .add(c)
            .map_err(|e| bad(ca, format!("CA certificate refused: {e}")))?;
    }
    WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
        .build()
        .map_err(|e| bad(ca, format!("client verifier: {e}")))
}

/// The TLS acceptor for `files`, offering `alpn` (`h2` for gRPC,
/// `http/1.1` for the HTTP listener).
pub fn acceptor(files: &TlsFiles, alpn: &[&[u8]]) -> Result<TlsAcceptor, TlsFileError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| bad(&files.cert, format!("no usable PEM certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| bad(&files.key, format!("no usable PEM private key: {e}")))?;
    let provider = Arc::new(crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&files.cert, e.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca, provider)?),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| bad(&files.key, format!("certificate and key do not fit: {e}")))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The TLS connections made over the `incoming` ones: each handshake runs
/// beside the others (at most `in_flight` at once) and is given up, the
/// connection closed, when it fails or has not finished within `timeout`.
pub fn handshakes<S, I>(
    incoming: I,
    acceptor: TlsAcceptor,
    timeout: Duration,
    in_flight: usize,
) -> impl Stream<Item = Result<tokio_rustls::server::TlsStream<S>, std::io::Error>>
where
    S: AsyncRead + AsyncWrite + Unpin,
    I: Stream<Item = Result<S, std::io::Error>>,
{
    incoming
        .map(move |conn| {
            let acceptor = acceptor.clone();
            async move {
                let conn = match conn {
                    Ok(c) => c,
                    Err(e) => return Some(Err(e)),
                };
                match tokio::time::timeout(timeout, acceptor.accept(conn)).await {
                    Ok(Ok(tls)) => Some(Ok(tls)),
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed; connection closed");
                        None
                    }
                    Err(_) => {
                        tracing::debug!(
                            seconds = timeout.as_secs_f64(),
                            "TLS handshake not finished in time; connection closed"
                        );
                        None
                    }
                }
            }
        })
        .buffer_unordered(in_flight.max(1))
        .filter_map(std::future::ready)
}
