//! Shared-token authentication: every call carries `authorization: Bearer <token>`
//! metadata, compared in constant time. Worker calls accept the worker token (or
//! the admin token), a worker's own credential or an enrolment token, or come
//! over a connection whose client certificate names a worker (see
//! [`crate::credentials`]: the caller is recorded in the request's extensions);
//! admin calls accept only the admin token, which falls back to the worker token
//! when none is configured. Tokens are never logged.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tonic::{Request, Status};

use crate::constant_time::constant_time_eq;
use crate::credentials::{Caller, CredentialBook};

/// A secret token, kept out of `Debug` output.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// A token file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read.
    #[error("cannot read token file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file holds no token (empty or whitespace).
    #[error("token file {path} is empty")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The token has characters that cannot travel in gRPC metadata.
    #[error("token file {path}: the token must be printable ASCII without spaces")]
    NotAscii {
        /// The file.
        path: PathBuf,
    },
}

impl Token {
    /// Wraps a token string (surrounding whitespace trimmed).
    pub fn new(text: &str) -> Self {
        Token(Arc::from(text.trim()))
    }

    /// Reads a token file: the whole file, whitespace around it trimmed.
    pub fn from_file(path: &Path) -> Result<Self, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Io {
            path: path.to_owned(),
            source,
        })?;
        let t = text.trim();
        if t.is_empty() {
            return Err(TokenError::Empty {
                path: path.to_owned(),
            });
        }
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::NotAscii {
                path: path.to_owned(),
            });
        }
        Ok(Token::new(t))
    }

    /// The secret itself (for building a client's metadata).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The `authorization` metadata value for this token.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Whether `candidate` equals this token, in time independent of where they differ.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), candidate)
    }
}

/// Which tokens a coordinator accepts.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// Token for worker calls (`None`: no authentication).
    pub worker: Option<Token>,
    /// Token for admin calls (`None`: the worker token).
    pub admin: Option<Token>,
}

impl AuthConfig {
    /// Whether any token is required.
    pub fn enabled(&self) -> bool {
        self.worker.is_some() || self.admin.is_some()
    }

    /// The interceptor for the worker service.
    pub fn worker_interceptor(&self) -> AuthInterceptor {
        let mut accepted = Vec::new();
        accepted.extend(self.worker.clone());
        accepted.extend(self.admin.clone());
        AuthInterceptor {
            accepted: accepted.into(),
            realm: "worker",
            book: None,
        }
    }

    /// The interceptor for the admin service.
    pub fn admin_interceptor(&self) -> AuthInterceptor {
        let accepted: Vec<Token> = self
            .admin
            .clone()
            .or_else(|| self.worker.clone())
            .into_iter()
            .collect();
        AuthInterceptor {
            accepted: accepted.into(),
            realm: "admin",
            book: None,
        }
    }
}

/// A tonic interceptor that refuses calls without an accepted bearer token.
#[derive(Debug, Clone)]
pub struct AuthInterceptor {
    accepted: Arc<[Token]>,
    realm: &'static str,
    book: Option<CredentialBook>,
}

impl AuthInterceptor {
    /// The same interceptor also accepting the credentials and enrolment
    /// tokens of `book` (for the worker service only).
    #[must_use]
    pub fn with_credentials(mut self, book: CredentialBook) -> Self {
        self.book = Some(book);
        self
    }
}

impl tonic::service::Interceptor for AuthInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(book) = &self.book {
            let by_token = request.metadata().get("authorization").and_then(|value| {
                let presented = value.as_bytes();
                let token = presented
                    .strip_prefix(b"Bearer ")
                    .or_else(|| presented.strip_prefix(b"bearer "))
                    .unwrap_or(presented);
                book.classify(token)
            });
            let by_certificate = match request.peer_certs() {
                Some(certs) => match certs.first() {
                    Some(leaf) => book.certificate_caller(leaf)?,
                    None => None,
                },
                None => None,
            };
            if let Some(caller) = Caller::combine(by_token, by_certificate)? {
                request.extensions_mut().insert(caller);
                return Ok(request);
            }
        }
        if self.accepted.is_empty() {
            return Ok(request);
        }
        let Some(value) = request.metadata().get("authorization") else {
            return Err(Status::unauthenticated(format!(
                "{} call without an authorization token",
                self.realm
            )));
        };
        let presented = value.as_bytes();
        let token = presented
            .strip_prefix(b"Bearer ")
            .or_else(|| presented.strip_prefix(b"bearer "))
            .unwrap_or(presented);
        // Check every accepted token so the time does not tell which one matched.
        let ok = self
            .accepted
            .iter()
            .fold(false, |acc, t| t.matches(token) | acc);
        if ok {
            Ok(request)
        } else {
            Err(Status::unauthenticated(format!(
                "{} call with a wrong token",
                self.realm
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    fn call(i: &mut AuthInterceptor, header: Option<&str>) -> Result<(), tonic::Code> {
        let mut r = Request::new(());
        if let Some(h) = header {
            r.metadata_mut().insert("authorization", h.parse().unwrap());
        }
        i.call(r).map(|_| ()).map_err(|s| s.code())
    }

    #[test]
    fn worker_and_admin_tokens() {
        let auth = AuthConfig {
            worker: Some(Token::new("w-secret")),
            admin: Some(Token::new("a-secret")),
        };
        let mut w = auth.worker_interceptor();
        let mut a = auth.admin_interceptor();
        assert_eq!(call(&mut w, Some("Bearer w-secret")), Ok(()));
        assert_eq!(call(&mut w, Some("Bearer a-secret")), Ok(()));
        assert_eq!(call(&mut w, None), Err(tonic::Code::Unauthenticated));
        assert_eq!(
            call(&mut w, Some("Bearer nope")),
            Err(tonic::Code::Unauthenticated)
        );
        assert_eq!(call(&mut a, Some("Bearer a-secret")), Ok(()));
        assert_eq!(
            call(&mut a, Some("Bearer w-secret")),
            Err(tonic::Code::Unauthenticated)
        );
    }

    #[test]
    fn admin_falls_back_to_worker_token_and_none_means_open() {
        let auth = AuthConfig {
            worker: Some(Token::new("w")),
            admin: None,
        };
        assert_eq!(
            call(&mut auth.admin_interceptor(), Some("Bearer w")),
            Ok(())
        );
        let open = AuthConfig::default();
        assert_eq!(call(&mut open.worker_interceptor(), None), Ok(()));
        assert!(!format!("{:?}", Token::new("secret")).contains("secret"));
    }
}
