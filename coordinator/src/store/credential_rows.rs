//! Workers' own credentials and enrolment tokens: rows keyed by the sha256 of
//! their tokens (the tokens themselves are never stored).

use rusqlite::{Connection, OptionalExtension, params};

use super::error::StoreError;
use super::job_writes::exec;

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One `worker_credentials` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRow {
    /// The worker's name (its id).
    pub name: String,
    /// The hex sha256 of its token.
    pub token_sha256: String,
    /// The most attempts it may hold at once.
    pub slots: u32,
    /// When it was issued.
    pub created_ms: i64,
}

/// One `enrolment_tokens` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolmentRow {
    /// The hex sha256 of the token.
    pub token_sha256: String,
    /// Enrolments left.
    pub uses_left: u32,
    /// Slots of each credential it gives.
    pub slots: u32,
    /// When it stops being accepted.
    pub expires_ms: i64,
}

fn credential_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<CredentialRow> {
    Ok(CredentialRow {
        name: r.get(0)?,
        token_sha256: r.get(1)?,
        slots: r.get(2)?,
        created_ms: r.get(3)?,
    })
}

/// Stores a credential; `false` when the name is taken.
pub(crate) fn insert_credential(conn: &Connection, row: &CredentialRow) -> Result<bool> {
    Ok(exec(
        conn,
        "INSERT OR IGNORE INTO worker_credentials (name, token_sha256, slots, created_ms) \
         VALUES (?1, ?2, ?3, ?4)",
        params![row.name, row.token_sha256, row.slots, row.created_ms],
    )? > 0)
}

/// The credential named `name`.
pub(crate) fn credential(conn: &Connection, name: &str) -> Result<Option<CredentialRow>> {
    Ok(conn
        .prepare_cached(
            "SELECT name, token_sha256, slots, created_ms FROM worker_credentials WHERE name = ?1",
        )?
        .query_row([name], credential_of)
        .optional()?)
}

/// Every credential, by name.
pub(crate) fn credentials(conn: &Connection) -> Result<Vec<CredentialRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, token_sha256, slots, created_ms FROM worker_credentials ORDER BY name",
    )?;
    let rows = stmt.query_map([], credential_of)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Deletes the credential named `name`; `false` when there was none.
pub(crate) fn delete_credential(conn: &Connection, name: &str) -> Result<bool> {
    Ok(exec(
        conn,
        "DELETE FROM worker_credentials WHERE name = ?1",
        [name],
    )? > 0)
}

/// Stores an enrolment token.
pub(crate) fn insert_enrolment(conn: &Connection, row: &EnrolmentRow, now: i64) -> Result<()> {
    exec(
        conn,
        "INSERT INTO enrolment_tokens (token_sha256, uses_left, slots, expires_ms, created_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            row.token_sha256,
            row.uses_left,
            row.slots,
            row.expires_ms,
            now
        ],
    )?;
    Ok(())
}

/// The enrolment token whose hash is `digest`.
pub(crate) fn enrolment(conn: &Connection, digest: &str) -> Result<Option<EnrolmentRow>> {
    Ok(conn
        .prepare_cached(
            "SELECT token_sha256, uses_left, slots, expires_ms FROM enrolment_tokens \
             WHERE token_sha256 = ?1",
        )?
        .query_row([digest], |r| {
            Ok(EnrolmentRow {
                token_sha256: r.get(0)?,
                uses_left: r.get(1)?,
                slots: r.get(2)?,
                expires_ms: r.get(3)?,
            })
        })
        .optional()?)
}

/// How long a used-up or expired enrolment token is still recognised (so
/// that a node using it hears why it is refused): a day.
const FORGET_AFTER_MS: i64 = 24 * 3600 * 1000;

/// Hashes of the enrolment tokens recognised at `now`: usable ones, and
/// those used up or expired within the last day.
pub(crate) fn recent_enrolments(conn: &Connection, now: i64) -> Result<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT token_sha256 FROM enrolment_tokens WHERE expires_ms > ?1")?;
    let rows = stmt.query_map([now - FORGET_AFTER_MS], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Counts one use of an enrolment token, and forgets tokens expired for a day.
pub(crate) fn use_enrolment(conn: &Connection, digest: &str, now: i64) -> Result<()> {
    exec(
        conn,
        "UPDATE enrolment_tokens SET uses_left = uses_left - 1 \
         WHERE token_sha256 = ?1 AND uses_left > 0",
        [digest],
    )?;
    exec(
        conn,
        "DELETE FROM enrolment_tokens WHERE expires_ms <= ?1",
        [now - FORGET_AFTER_MS],
    )?;
    Ok(())
}

/// The open attempts of `worker` (ids), for releasing them.
pub(crate) fn open_attempt_ids(conn: &Connection, worker: &str) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM attempts WHERE worker = ?1 AND ended_ms IS NULL ORDER BY id",
    )?;
    let rows = stmt.query_map([worker], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
