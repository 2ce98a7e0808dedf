//! TLS for the HTTP listener: the same certificate and key as the gRPC
//! listener (`--tls-cert`, `--tls-key`), through `tokio-rustls` (the rustls
//! acceptor tonic itself uses, with the same `ring` provider). With
//! `--tls-client-ca` the HTTP listener asks for client certificates signed by
//! that CA too, as gRPC does: one policy for who may connect.

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig, crypto};

use crate::server::{ServeError, TlsFiles};

/// The TLS acceptor of the HTTP listener for `files` (HTTP/1.1 offered by ALPN).
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, ServeError> {
    let bad = |path: &std::path::Path, what: String| ServeError::TlsFile {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, what),
    };
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
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(ca)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| bad(ca, format!("no usable PEM CA certificate: {e}")))?;
            for c in cas {
                roots
                    .add(c)
                    .map_err(|e| bad(ca, format!("CA certificate refused: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .map_err(|e| bad(ca, format!("client verifier: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| bad(&files.key, format!("certificate and key do not fit: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
