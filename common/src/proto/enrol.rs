//! A node's own credential from an enrolment token: the node calls `Enrol`
//! once with the enrolment token as its bearer token and keeps the
//! credential it receives in a file of its own (mode 0600), which every later
//! start reads instead of enrolling again.

use std::path::{Path, PathBuf};

use super::client::{ClientError, ClientOptions, read_token_file};
use super::{EnrolRequest, WorkerCredential};

/// Why a node could not get its credential.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    /// The client could not be set up, or a token file was unusable.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The coordinator refused the enrolment or could not be reached.
    #[error("enrolling at {url}: {}: {}", status.code(), status.message())]
    Call {
        /// The coordinator.
        url: String,
        /// Its answer.
        status: Box<tonic::Status>,
    },
    /// The credential file exists already (a node enrols once).
    #[error("{path} exists: refusing to overwrite a credential (remove the file to enrol again)")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The credential file could not be written.
    #[error("cannot write credential file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Calls `Enrol` with `options` (whose token is the enrolment token),
/// asking for a name like `hint`.
pub async fn enrol(options: &ClientOptions, hint: &str) -> Result<WorkerCredential, EnrolError> {
    let call = |status| EnrolError::Call {
        url: options.url.clone(),
        status: Box::new(status),
    };
    let r = options
        .worker_client()?
        .enrol(EnrolRequest {
            name_hint: hint.to_owned(),
        })
        .await
        .map_err(call)?
        .into_inner();
    r.credential.ok_or_else(|| {
        call(tonic::Status::internal(
            "Enrol answered without a credential",
        ))
    })
}

/// Writes `token` to a new file at `path`, readable by its owner only;
/// refused when the file exists.
pub fn write_credential(path: &Path, token: &str) -> Result<(), EnrolError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let failed = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            EnrolError::Exists {
                path: path.to_owned(),
            }
        } else {
            EnrolError::Write {
                path: path.to_owned(),
                source,
            }
        }
    };
    let mut file = options.open(path).map_err(failed)?;
    writeln!(file, "{token}").map_err(failed)?;
    Ok(())
}

/// The node's credential: read from `credential_file` when it exists, else
/// obtained once with the enrolment token in `enrolment_file` (over the
/// connection `options` describes, its own token ignored) and written there.
pub async fn credential_or_enrol(
    options: &ClientOptions,
    enrolment_file: &Path,
    credential_file: &Path,
    hint: &str,
) -> Result<String, EnrolError> {
    if credential_file.exists() {
        return Ok(read_token_file(credential_file)?);
    }
    let with_enrolment = ClientOptions {
        token: Some(read_token_file(enrolment_file)?),
        ..options.clone()
    };
    let credential = enrol(&with_enrolment, hint).await?;
    write_credential(credential_file, &credential.token)?;
    tracing::info!(name = %credential.name, slots = credential.slots, file = %credential_file.display(), "enrolled: this node's credential is kept in its file");
    Ok(credential.token)
}
