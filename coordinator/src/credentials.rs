//! Who a worker call comes from, and what that allows: the holder of the
//! shared worker token (loopback and tests: it registers as it likes), a
//! named worker presenting its own credential (its id is the credential's
//! name, its slots at most the credential's), or a node presenting an
//! enrolment token (which allows `Enrol` alone). With client certificates
//! required (`--tls-client-ca`), a certificate whose subject name (a DNS name
//! of its subjectAltName, or its CN) is a named worker's is that worker,
//! without a token or beside the shared one; it cannot take another name
//! (another worker's credential or an enrolment token beside it is refused).
//!
//! [`CredentialBook`] holds the hashes of the accepted credentials and
//! enrolment tokens, loaded from the store ([`KnownTokens`]) and reloaded
//! after every change, so the listener can tell callers apart without a
//! store read per call. Plain Rust: tested without a network.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use tonic::Status;

use crate::scheduler::{KnownTokens, SchedulerError, WorkerId, WorkerRegistration, token_digest};

/// A worker call's caller, as the listener found it (kept in the request's
/// extensions; a call without one came with the shared token or none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The shared worker token (or a coordinator without tokens).
    Shared,
    /// A worker's own credential.
    Named(NamedCaller),
    /// An enrolment token (its hash): good for `Enrol` only.
    Enrolment(String),
}

/// A named worker: its credential's name and slot cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedCaller {
    /// The credential's name: the worker's id.
    pub name: String,
    /// The most jobs it may hold at once.
    pub slots: u32,
}

impl NamedCaller {
    /// The worker's id.
    pub fn worker_id(&self) -> WorkerId {
        WorkerId(self.name.clone())
    }

    /// The registration as the coordinator keeps it: named after the
    /// credential, with at most the credential's slots (the first ones the
    /// worker declared).
    pub fn registration(&self, mut reg: WorkerRegistration) -> WorkerRegistration {
        reg.name.clone_from(&self.name);
        reg.slots
            .truncate(usize::try_from(self.slots).unwrap_or(usize::MAX));
        reg
    }

    /// `Ok` when `presented` is this credential's id.
    pub fn check_id(&self, presented: &WorkerId) -> Result<(), SchedulerError> {
        if presented.0 == self.name {
            Ok(())
        } else {
            Err(SchedulerError::NotYourIdentity {
                credential: self.name.clone(),
                presented: presented.clone(),
            })
        }
    }
}

impl Caller {
    /// The caller of a worker call (the shared token when the listener
    /// recorded none).
    pub fn of<T>(request: &tonic::Request<T>) -> Caller {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .unwrap_or(Caller::Shared)
    }

    /// `Err(PERMISSION_DENIED)` for an enrolment token, which allows `Enrol` alone.
    pub fn worker_call(&self, call: &str) -> Result<(), Status> {
        match self {
            Caller::Enrolment(_) => Err(Status::permission_denied(format!(
                "{call}: an enrolment token allows Enrol only; use the credential it gives"
            ))),
            Caller::Shared | Caller::Named(_) => Ok(()),
        }
    }

    /// `Ok` when this caller may speak for `worker` on an attempt call: the
    /// shared token for any worker (the secret decides), a credential for
    /// its own id only.
    pub fn check_worker(&self, call: &str, worker: &WorkerId) -> Result<(), Status> {
        self.worker_call(call)?;
        match self {
            Caller::Named(n) => n.check_id(worker).map_err(Status::from),
            Caller::Shared | Caller::Enrolment(_) => Ok(()),
        }
    }
}

#[derive(Debug, Default)]
struct Book {
    named: HashMap<String, NamedCaller>,
    by_name: HashMap<String, NamedCaller>,
    enrolments: HashSet<String>,
}

/// Why a client certificate was refused as a worker's identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateRefusal {
    /// Its names are those of more than one named worker.
    #[error("the client certificate names more than one worker")]
    SeveralWorkers,
    /// A token of another worker's credential came with it.
    #[error("the credential presented is not the worker the client certificate names")]
    OtherCredential,
    /// An enrolment token came with it: its holder has a name already.
    #[error("a client certificate that names a worker cannot enrol as another")]
    Enrolment,
}

impl From<CertificateRefusal> for Status {
    fn from(e: CertificateRefusal) -> Self {
        Status::permission_denied(e.to_string())
    }
}

impl Caller {
    /// The caller of a call that presented `by_token` (what its bearer token
    /// is, when a credential or an enrolment token) over a connection whose
    /// client certificate names `by_certificate`: the certificate's worker,
    /// unless the token is another worker's credential or an enrolment token
    /// (refused); `None` when neither names anyone.
    pub fn combine(
        by_token: Option<Caller>,
        by_certificate: Option<NamedCaller>,
    ) -> Result<Option<Caller>, CertificateRefusal> {
        match (by_token, by_certificate) {
            (Some(Caller::Named(n)), Some(c)) if n.name != c.name => {
                Err(CertificateRefusal::OtherCredential)
            }
            (Some(Caller::Enrolment(_)), Some(_)) => Err(CertificateRefusal::Enrolment),
            (Some(token), _) => Ok(Some(token)),
            (None, cert) => Ok(cert.map(Caller::Named)),
        }
    }
}

/// The accepted credentials and enrolment tokens, by the hash of their token.
#[derive(Debug, Clone, Default)]
pub struct CredentialBook(Arc<RwLock<Book>>);

impl CredentialBook {
    /// Replaces the book's content with `known`.
    pub fn load(&self, known: KnownTokens) {
        let named: HashMap<String, NamedCaller> = known
            .named
            .into_iter()
            .map(|(digest, name, slots)| (digest, NamedCaller { name, slots }))
            .collect();
        let book = Book {
            by_name: named
                .values()
                .map(|n| (n.name.clone(), n.clone()))
                .collect(),
            named,
            enrolments: known.enrolments.into_iter().collect(),
        };
        match self.0.write() {
            Ok(mut b) => *b = book,
            Err(poisoned) => *poisoned.into_inner() = book,
        }
    }

    /// The caller a presented bearer token makes, when it is a credential or
    /// an enrolment token (`None`: neither).
    pub fn classify(&self, token: &[u8]) -> Option<Caller> {
        let digest = token_digest(token);
        let book = match self.0.read() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(n) = book.named.get(&digest) {
            return Some(Caller::Named(n.clone()));
        }
        book.enrolments
            .contains(&digest)
            .then_some(Caller::Enrolment(digest))
    }

    /// The named worker a client certificate (`der`, its DER) stands for:
    /// the one whose name is among the certificate's DNS names and common
    /// names ([`crate::cert_names`]); `None` when it names no worker.
    pub fn certificate_caller(
        &self,
        der: &[u8],
    ) -> Result<Option<NamedCaller>, CertificateRefusal> {
        let names = crate::cert_names::subject_names(der);
        let book = match self.0.read() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut found: Option<&NamedCaller> = None;
        for n in names.iter().filter_map(|name| book.by_name.get(name)) {
            match found {
                Some(f) if f.name != n.name => return Err(CertificateRefusal::SeveralWorkers),
                _ => found = Some(n),
            }
        }
        Ok(found.cloned())
    }

    /// Credentials in the book.
    pub fn len(&self) -> usize {
        match self.0.read() {
            Ok(b) => b.named.len(),
            Err(poisoned) => poisoned.into_inner().named.len(),
        }
    }

    /// Whether the book holds no credential.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::SlotInfo;

    fn reg(name: &str, slots: usize) -> WorkerRegistration {
        WorkerRegistration {
            name: name.into(),
            host: "h".into(),
            slots: (0..slots)
                .map(|i| SlotInfo {
                    device: format!("cuda:{i}"),
                    device_name: String::new(),
                    memory_bytes: 0,
                    manifest: None,
                })
                .collect(),
            data_fingerprint: String::new(),
            trainers: Vec::new(),
        }
    }

    #[test]
    fn a_credential_names_the_worker_and_caps_its_slots() {
        let n = NamedCaller {
            name: "gpu-a".into(),
            slots: 2,
        };
        let r = n.registration(reg("i-choose-my-name", 256));
        assert_eq!(r.name, "gpu-a");
        assert_eq!(r.slots.len(), 2);
        assert_eq!(n.registration(reg("x", 1)).slots.len(), 1);
        assert!(n.check_id(&WorkerId("gpu-a".into())).is_ok());
        assert!(matches!(
            n.check_id(&WorkerId("gpu-b".into())),
            Err(SchedulerError::NotYourIdentity { .. })
        ));
    }

    #[test]
    fn the_book_tells_credentials_enrolments_and_strangers_apart() {
        let book = CredentialBook::default();
        book.load(KnownTokens {
            named: vec![(token_digest(b"cred-a"), "a".into(), 3)],
            enrolments: vec![token_digest(b"enrol-1")],
        });
        assert_eq!(
            book.classify(b"cred-a"),
            Some(Caller::Named(NamedCaller {
                name: "a".into(),
                slots: 3
            }))
        );
        let enrol = book.classify(b"enrol-1");
        assert_eq!(enrol, Some(Caller::Enrolment(token_digest(b"enrol-1"))));
        assert_eq!(book.classify(b"shared"), None);
        let e = enrol.unwrap_or(Caller::Shared);
        assert_eq!(
            e.worker_call("Lease").map_err(|s| s.code()),
            Err(tonic::Code::PermissionDenied)
        );
        let named = book.classify(b"cred-a").unwrap_or(Caller::Shared);
        assert!(
            named
                .check_worker("Complete", &WorkerId("a".into()))
                .is_ok()
        );
        assert_eq!(
            named
                .check_worker("Complete", &WorkerId("b".into()))
                .map_err(|s| s.code()),
            Err(tonic::Code::PermissionDenied)
        );
        book.load(KnownTokens::default());
        assert_eq!(
            book.classify(b"cred-a"),
            None,
            "a removed credential is refused"
        );
    }

    #[test]
    fn a_certificate_names_its_worker_and_no_other() {
        let named = |name: &str| NamedCaller {
            name: name.into(),
            slots: 1,
        };
        let a = Some(named("a"));
        assert_eq!(Caller::combine(None, None), Ok(None));
        assert_eq!(
            Caller::combine(None, a.clone()),
            Ok(Some(Caller::Named(named("a"))))
        );
        assert_eq!(
            Caller::combine(Some(Caller::Named(named("a"))), a.clone()),
            Ok(Some(Caller::Named(named("a"))))
        );
        assert_eq!(
            Caller::combine(Some(Caller::Named(named("b"))), a.clone()),
            Err(CertificateRefusal::OtherCredential)
        );
        assert_eq!(
            Caller::combine(Some(Caller::Enrolment("e".into())), a),
            Err(CertificateRefusal::Enrolment)
        );
        assert_eq!(
            Caller::combine(Some(Caller::Enrolment("e".into())), None),
            Ok(Some(Caller::Enrolment("e".into())))
        );
    }
}
