//! Workers' own credentials: the admin issues a named worker a token of its
//! own (with the most jobs it may hold), or an enrolment token with which a
//! limited number of nodes, before it expires, each receive one. The store
//! keeps only the sha256 of every token.
//!
//! A named worker's id is its credential's name: the worker does not choose
//! it, cannot take another's, and holds at most the credential's slots. The
//! checks on a call (which identity and slots a credential allows) live in
//! [`crate::credentials`]; this module keeps the rows.

use std::fmt;

use super::fence::{fence, sha256_hex};
use super::identity::WorkerSecret;
use super::types::{AttemptId, WorkerId, WorkerState};
use super::{Scheduler, SchedulerError};
use crate::states::AttemptOutcome;
use crate::store::credential_rows::{self, CredentialRow, EnrolmentRow};
use crate::store::{StoreError, job_writes, lease_writes, worker_rows};

type Result<T> = std::result::Result<T, SchedulerError>;

/// The longest credential name.
pub const MAX_NAME_CHARS: usize = 64;
/// The most slots one credential may allow.
pub const MAX_CREDENTIAL_SLOTS: u32 = 1024;
/// The most credentials a coordinator keeps.
pub const MAX_CREDENTIALS: usize = 10_000;
/// The most nodes one enrolment token may enrol.
pub const MAX_ENROLMENT_USES: u32 = 10_000;
/// The longest an enrolment token stays valid: 30 days.
pub const MAX_ENROLMENT_TTL_SECONDS: u32 = 30 * 24 * 3600;
/// An enrolment token's life when none is asked for: one hour.
pub const DEFAULT_ENROLMENT_TTL_SECONDS: u32 = 3600;

/// The hex sha256 of a presented token, as the store keeps it.
pub fn token_digest(token: &[u8]) -> String {
    sha256_hex(token)
}

/// A valid credential name: 1 to 64 ASCII letters, digits, `.`, `_` or `-`,
/// starting with a letter or digit, and not of the form of the ids the
/// coordinator makes up for workers on the shared token (`w<n>-<8 hex>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialName(String);

impl CredentialName {
    /// Checks `text`; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |why: &str| SchedulerError::BadRequest {
            message: format!("worker name {text:?}: {why}"),
        };
        if text.is_empty() || text.chars().count() > MAX_NAME_CHARS {
            return Err(bad(&format!("must have 1 to {MAX_NAME_CHARS} characters")));
        }
        if !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(bad(
                "only ASCII letters, digits, '.', '_' and '-' are allowed",
            ));
        }
        if !text.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(bad("must start with a letter or digit"));
        }
        if looks_generated(text) {
            return Err(bad("has the form of a generated worker id (w<n>-<hex>)"));
        }
        Ok(CredentialName(text.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The worker id a worker with this credential has.
    pub fn worker_id(&self) -> WorkerId {
        WorkerId(self.0.clone())
    }
}

/// Whether `text` reads `w<digits>-<8 lowercase hex>`, the form of generated ids.
fn looks_generated(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('w') else {
        return false;
    };
    let Some((n, hex)) = rest.split_once('-') else {
        return false;
    };
    !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
        && hex.len() == 8
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A name made from a node's hint: characters a name may not hold become
/// `-`, cut to leave room for a suffix; `node` when nothing is left.
fn name_from_hint(hint: &str) -> String {
    let mut s: String = hint
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(MAX_NAME_CHARS - 8)
        .collect();
    let trimmed = s.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    s = trimmed.to_owned();
    if s.is_empty() || looks_generated(&s) {
        s = format!("node-{s}").trim_end_matches('-').to_owned();
    }
    s
}

/// A credential as issued: the token is shown once.
#[derive(Debug, Clone)]
pub struct IssuedCredential {
    /// The worker's name (its id).
    pub name: String,
    /// The most jobs it may hold at once.
    pub slots: u32,
    /// The token (the store keeps its hash).
    pub token: WorkerSecret,
}

/// An enrolment token as issued.
#[derive(Debug, Clone)]
pub struct IssuedEnrolment {
    /// The token (the store keeps its hash).
    pub token: WorkerSecret,
    /// When it stops being accepted (ms since the Unix epoch).
    pub expires_ms: i64,
}

/// Why an enrolment token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrolmentRefusal {
    /// No such token.
    Unknown,
    /// Every use was taken.
    UsedUp,
    /// Past its lifetime.
    Expired,
}

impl fmt::Display for EnrolmentRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EnrolmentRefusal::Unknown => "unknown",
            EnrolmentRefusal::UsedUp => "used up",
            EnrolmentRefusal::Expired => "expired",
        })
    }
}

/// A named worker as `worker list` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedWorkerInfo {
    /// Its name.
    pub name: String,
    /// Its slot cap.
    pub slots: u32,
    /// When the credential was issued.
    pub created_ms: i64,
    /// Its state; `None` when it never called.
    pub state: Option<WorkerState>,
    /// Attempts it holds now.
    pub running: usize,
}

/// The hashes of every accepted worker credential and enrolment token, for
/// the listener's check of bearer tokens.
#[derive(Debug, Clone, Default)]
pub struct KnownTokens {
    /// (token hash, name, slots) of each credential.
    pub named: Vec<(String, String, u32)>,
    /// Hashes of the enrolment tokens recognised (usable, or spent within a
    /// day: `Enrol` then says why it refuses them).
    pub enrolments: Vec<String>,
}

fn slots_in_range(slots: u32) -> Result<u32> {
    match slots {
        0 => Ok(1),
        n if n <= MAX_CREDENTIAL_SLOTS => Ok(n),
        n => Err(SchedulerError::BadRequest {
            message: format!("slots {n}: at most {MAX_CREDENTIAL_SLOTS}"),
        }),
    }
}

impl Scheduler {
    /// Issues `name` a credential allowing `slots` jobs at once (0: 1).
    /// Refused when the name has one already.
    pub fn add_credential(
        &mut self,
        name: &CredentialName,
        slots: u32,
    ) -> Result<IssuedCredential> {
        let slots = slots_in_range(slots)?;
        let now = self.now_ms();
        let token = WorkerSecret::generate();
        let tx = self.store.transaction()?;
        issue(&tx, name.as_str(), slots, &token, now)?;
        tx.commit().map_err(StoreError::from)?;
        tracing::info!(worker = name.as_str(), slots, "worker credential issued");
        Ok(IssuedCredential {
            name: name.as_str().to_owned(),
            slots,
            token,
        })
    }

    /// Every credential, with its worker's state and running attempts.
    pub fn credentials(&self) -> Result<Vec<NamedWorkerInfo>> {
        let conn = self.store.conn();
        let mut out = Vec::new();
        for row in credential_rows::credentials(conn)? {
            let id = WorkerId(row.name.clone());
            let state = worker_rows::worker(conn, &id)?.map(|w| w.state);
            let running = lease_writes::open_attempts_of(conn, &id)?;
            out.push(NamedWorkerInfo {
                name: row.name,
                slots: row.slots,
                created_ms: row.created_ms,
                state,
                running,
            });
        }
        Ok(out)
    }

    /// Revokes `name`'s credential: its open attempts end at once (released,
    /// their jobs back to pending, not a failure) and its worker is lost.
    /// Returns the attempts released.
    pub fn remove_credential(&mut self, name: &CredentialName) -> Result<Vec<AttemptId>> {
        let now = self.now_ms();
        let id = name.worker_id();
        let tx = self.store.transaction()?;
        if !credential_rows::delete_credential(&tx, name.as_str())? {
            return Err(SchedulerError::UnknownCredential {
                name: name.as_str().to_owned(),
            });
        }
        let mut released = Vec::new();
        for key in credential_rows::open_attempt_ids(&tx, id.0.as_str())? {
            let attempt = AttemptId(u64::try_from(key).unwrap_or_default());
            let current = match fence(&tx, attempt) {
                Ok((_, job)) => Some(job),
                Err(SchedulerError::Fenced { .. } | SchedulerError::UnknownAttempt { .. }) => None,
                Err(e) => return Err(e),
            };
            lease_writes::end_attempt(
                &tx,
                attempt,
                now,
                AttemptOutcome::Released,
                Some("the worker's credential was removed"),
            )?;
            if let Some(job) = current {
                job_writes::release_job(&tx, &job.id, now)?;
            }
            released.push(attempt);
        }
        lease_writes::set_worker_state(&tx, &id, WorkerState::Lost)?;
        tx.commit().map_err(StoreError::from)?;
        tracing::info!(
            worker = name.as_str(),
            released = released.len(),
            "worker credential removed"
        );
        Ok(released)
    }

    /// An enrolment token: `uses` nodes (0: 1) may each enrol once within
    /// `ttl_seconds` (0: an hour), each credential allowing `slots` jobs.
    pub fn create_enrolment(
        &mut self,
        uses: u32,
        ttl_seconds: u32,
        slots: u32,
    ) -> Result<IssuedEnrolment> {
        let (uses, ttl, slots) = enrolment_terms(uses, ttl_seconds, slots)?;
        let now = self.now_ms();
        let token = WorkerSecret::generate();
        let expires_ms = now + i64::from(ttl) * 1000;
        let row = EnrolmentRow {
            token_sha256: token.digest(),
            uses_left: uses,
            slots,
            expires_ms,
        };
        let tx = self.store.transaction()?;
        credential_rows::insert_enrolment(&tx, &row, now)?;
        tx.commit().map_err(StoreError::from)?;
        tracing::info!(uses, ttl_seconds = ttl, slots, "enrolment token issued");
        Ok(IssuedEnrolment { token, expires_ms })
    }

    /// Registers the enrolment token `token` (one the admin made, given to
    /// `serve` in a file) with `uses`, `ttl_seconds` and `slots` as
    /// [`Scheduler::create_enrolment`] takes them, unless the store knows it
    /// already: a restarted coordinator does not give it its uses back.
    /// Returns whether it was new.
    pub fn ensure_enrolment(
        &mut self,
        token: &WorkerSecret,
        uses: u32,
        ttl_seconds: u32,
        slots: u32,
    ) -> Result<bool> {
        let digest = token.digest();
        if credential_rows::enrolment(self.store.conn(), &digest)?.is_some() {
            return Ok(false);
        }
        let (uses, ttl, slots) = enrolment_terms(uses, ttl_seconds, slots)?;
        let now = self.now_ms();
        let row = EnrolmentRow {
            token_sha256: digest,
            uses_left: uses,
            slots,
            expires_ms: now + i64::from(ttl) * 1000,
        };
        let tx = self.store.transaction()?;
        credential_rows::insert_enrolment(&tx, &row, now)?;
        tx.commit().map_err(StoreError::from)?;
        tracing::info!(
            uses,
            ttl_seconds = ttl,
            slots,
            "enrolment token from the file registered"
        );
        Ok(true)
    }

    /// Spends one use of the enrolment token whose hash is `digest` on a new
    /// credential named after `hint` (made unique with a numeric suffix).
    pub fn enrol(&mut self, digest: &str, hint: &str) -> Result<IssuedCredential> {
        let now = self.now_ms();
        let token = WorkerSecret::generate();
        let tx = self.store.transaction()?;
        let row = credential_rows::enrolment(&tx, digest)?;
        let why = match &row {
            None => Some(EnrolmentRefusal::Unknown),
            Some(r) if r.uses_left == 0 => Some(EnrolmentRefusal::UsedUp),
            Some(r) if r.expires_ms <= now => Some(EnrolmentRefusal::Expired),
            Some(_) => None,
        };
        let (Some(row), None) = (row, why) else {
            return Err(SchedulerError::EnrolmentRefused {
                why: why.unwrap_or(EnrolmentRefusal::Unknown),
            });
        };
        let base = name_from_hint(hint);
        let name = free_name(&tx, &base)?;
        issue(&tx, &name, row.slots, &token, now)?;
        credential_rows::use_enrolment(&tx, digest, now)?;
        tx.commit().map_err(StoreError::from)?;
        tracing::info!(worker = %name, slots = row.slots, "worker enrolled");
        Ok(IssuedCredential {
            name,
            slots: row.slots,
            token,
        })
    }

    /// The hashes the listener accepts as worker credentials and enrolment tokens.
    pub fn known_tokens(&self) -> Result<KnownTokens> {
        let conn = self.store.conn();
        Ok(KnownTokens {
            named: credential_rows::credentials(conn)?
                .into_iter()
                .map(|r| (r.token_sha256, r.name, r.slots))
                .collect(),
            enrolments: credential_rows::recent_enrolments(conn, self.now_ms())?,
        })
    }
}

/// An enrolment's uses (0: 1), lifetime (0: an hour) and slots (0: 1),
/// checked against their bounds.
fn enrolment_terms(uses: u32, ttl_seconds: u32, slots: u32) -> Result<(u32, u32, u32)> {
    let slots = slots_in_range(slots)?;
    let uses = uses.max(1);
    if uses > MAX_ENROLMENT_USES || ttl_seconds > MAX_ENROLMENT_TTL_SECONDS {
        return Err(SchedulerError::BadRequest {
            message: format!(
                "an enrolment token allows at most {MAX_ENROLMENT_USES} uses and {MAX_ENROLMENT_TTL_SECONDS} s"
            ),
        });
    }
    let ttl = if ttl_seconds == 0 {
        DEFAULT_ENROLMENT_TTL_SECONDS
    } else {
        ttl_seconds
    };
    Ok((uses, ttl, slots))
}

/// Stores a credential named `name` (refused when taken or when the
/// coordinator keeps as many as it may).
fn issue(
    conn: &rusqlite::Connection,
    name: &str,
    slots: u32,
    token: &WorkerSecret,
    now: i64,
) -> Result<()> {
    if credential_rows::credentials(conn)?.len() >= MAX_CREDENTIALS {
        return Err(SchedulerError::BadRequest {
            message: format!("{MAX_CREDENTIALS} worker credentials exist, the limit; remove some"),
        });
    }
    let row = CredentialRow {
        name: name.to_owned(),
        token_sha256: token.digest(),
        slots,
        created_ms: now,
    };
    if !credential_rows::insert_credential(conn, &row)? {
        return Err(SchedulerError::CredentialExists {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// `base`, or `base-2`, `base-3`, ...: the first name no credential has.
fn free_name(conn: &rusqlite::Connection, base: &str) -> Result<String> {
    if credential_rows::credential(conn, base)?.is_none() {
        return Ok(base.to_owned());
    }
    for n in 2..=MAX_CREDENTIALS + 1 {
        let name = format!("{base}-{n}");
        if credential_rows::credential(conn, &name)?.is_none() {
            return Ok(name);
        }
    }
    Err(SchedulerError::BadRequest {
        message: format!("no free worker name left after {base:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_ascii_and_never_a_generated_id() {
        assert!(CredentialName::parse("gpu-node-07.lab_a").is_ok());
        for bad in [
            "",
            "-lead",
            "has space",
            "bidi\u{202e}",
            "zero\u{200b}width",
            "line\u{2028}sep",
            "w12-deadbeef",
            &"x".repeat(65),
        ] {
            assert!(CredentialName::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(CredentialName::parse("w12-deadbeefx").is_ok());
    }

    #[test]
    fn hints_become_valid_names() {
        assert_eq!(name_from_hint("gpu01.cluster"), "gpu01.cluster");
        assert_eq!(name_from_hint("  ü node"), "node");
        assert_eq!(name_from_hint(""), "node");
        assert_eq!(name_from_hint("w3-0123abcd"), "node-w3-0123abcd");
        for hint in ["a\u{202e}b", "--x", "w1-aaaaaaaa", &"y".repeat(300)] {
            let name = name_from_hint(hint);
            assert!(CredentialName::parse(&name).is_ok(), "{hint:?} -> {name:?}");
            assert!(CredentialName::parse(&format!("{name}-99")).is_ok());
        }
    }
}
