//! Worker registration: a new worker gets an id and a secret; a known one
//! refreshes its registration (after proving it holds the secret); a worker a
//! coordinator lost (its store replaced) is re-registered under the id and
//! secret it presents, so workers survive a coordinator restart either way.
//!
//! A live worker's identity is never taken over: a registration under the
//! name and host of a worker that is still heard from gets an identity of its
//! own (two workers started with the same `--name` run side by side); only
//! the row of a worker that is gone (lost, or silent for a lease timeout,
//! with no open attempt) is handed to a new registration. Workers present at
//! once are capped ([`SchedulerSettings::max_workers`](super::SchedulerSettings)),
//! and those on the shared token (no credential names them) have a cap and
//! a slot cap of their own (`max_shared_workers`, `max_shared_slots`).
//! A registration on the shared token under the name and host of a suspect
//! worker is suspect too (same reason, until an operator clears it).

use std::borrow::Cow;

use rusqlite::Connection;

use super::fence::{sha256_hex, to_json};
use super::identity::{WorkerSecret, secret_matches, stored_digest};
use super::types::{WorkerId, WorkerRegistration, WorkerState};
use super::{Scheduler, SchedulerError};
use crate::store::verify_rows::{self, SuspectRecord};
use crate::store::worker_rows::{self, WorkerFields};
use crate::store::{StoreError, credential_rows};

type Result<T> = std::result::Result<T, SchedulerError>;

/// A registered worker's id and the secret its later calls must carry.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The worker's id.
    pub id: WorkerId,
    /// Its secret (the store keeps only its hash).
    pub secret: WorkerSecret,
}

/// Fingerprints unfinished jobs need; `Ok` when `got` serves at least one of them
/// (or some job takes any data, or nothing is unfinished).
///
/// This runs on every lease and heartbeat (registration rides with them), so the
/// usual case is one index probe; only a refusal lists the fingerprints needed.
fn check_fingerprint(conn: &Connection, reg: &WorkerRegistration) -> Result<()> {
    if worker_rows::serves_unfinished_jobs(conn, &reg.data_fingerprint)? {
        return Ok(());
    }
    let needed = worker_rows::unfinished_fingerprints(conn)?;
    if needed.is_empty()
        || needed
            .iter()
            .any(|f| f.is_none() || f.as_deref() == Some(reg.data_fingerprint.as_str()))
    {
        return Ok(());
    }
    Err(SchedulerError::FingerprintMismatch {
        name: reg.name.clone(),
        got: reg.data_fingerprint.clone(),
        expected: needed.into_iter().flatten().collect(),
    })
}

impl Scheduler {
    /// Registers a worker and hands out its secret (after the data fingerprint
    /// check). A worker registering again under the same name and host as a
    /// worker that is gone (lost or silent for a lease timeout, no open
    /// attempt) gets that row back (id kept, secret replaced), so a restarting
    /// worker does not grow the `workers` table; a live worker's row is never
    /// handed over. Lost workers that never leased anything are deleted. A
    /// registration under the name and host of a suspect worker is suspect
    /// too. Refused with [`SchedulerError::TooManyWorkers`] when a new row would
    /// pass the cap.
    pub fn register(&mut self, reg: &WorkerRegistration) -> Result<Registered> {
        let reg = &self.shared_registration(reg);
        let now = self.now_ms();
        let secret = WorkerSecret::generate();
        let limit = self.settings.max_workers;
        let silent_since = now - i64::from(self.settings.lease_timeout_seconds) * 1000;
        let tx = self.store.transaction()?;
        check_fingerprint(&tx, reg)?;
        // Without this a stream of registrations grows the table for good.
        worker_rows::forget_idle_lost_workers(&tx)?;
        let (slots, trainers) = (to_json(&reg.slots)?, to_json(&reg.trainers)?);
        let fields = fields(reg, &slots, &trainers);
        let id = match worker_rows::gone_worker_named(&tx, &reg.name, &reg.host, silent_since)? {
            Some(id) => {
                worker_rows::refresh_worker(&tx, &id, &fields, Some(&secret.digest()), now)?;
                id
            }
            None => {
                check_worker_room(&tx, limit)?;
                check_shared_room(&tx, self.settings.max_shared_workers)?;
                let count = worker_rows::worker_count(&tx)?;
                let seed = format!(
                    "{}\n{}\n{now}\n{count}\n{}",
                    reg.name,
                    reg.host,
                    secret.expose()
                );
                let id = WorkerId(format!(
                    "w{}-{}",
                    count + 1,
                    &sha256_hex(seed.as_bytes())[..8]
                ));
                worker_rows::insert_worker(&tx, &id, &fields, &secret.digest(), now)?;
                id
            }
        };
        inherit_suspicion(&tx, &id, reg, now)?;
        tx.commit().map_err(StoreError::from)?;
        tracing::info!(worker = %id, name = %reg.name, host = %reg.host, slots = reg.slots.len(), "worker registered");
        Ok(Registered { id, secret })
    }

    /// Registers the worker whose id its credential gives (see
    /// [`crate::credentials`]): the row of that id is created, or refreshed
    /// with a new secret (the credential, not the secret, proves who it is: a
    /// restarted worker takes its row back). Refused with
    /// [`SchedulerError::TooManyWorkers`] when a new row would pass the cap.
    pub fn register_as(&mut self, id: &WorkerId, reg: &WorkerRegistration) -> Result<Registered> {
        let now = self.now_ms();
        let secret = WorkerSecret::generate();
        let limit = self.settings.max_workers;
        let tx = self.store.transaction()?;
        check_fingerprint(&tx, reg)?;
        let (slots, trainers) = (to_json(&reg.slots)?, to_json(&reg.trainers)?);
        let fields = fields(reg, &slots, &trainers);
        if worker_rows::worker(&tx, id)?.is_some() {
            worker_rows::refresh_worker(&tx, id, &fields, Some(&secret.digest()), now)?;
        } else {
            check_worker_room(&tx, limit)?;
            worker_rows::insert_worker(&tx, id, &fields, &secret.digest(), now)?;
        }
        tx.commit().map_err(StoreError::from)?;
        tracing::info!(worker = %id, host = %reg.host, slots = reg.slots.len(), "named worker registered");
        Ok(Registered {
            id: id.clone(),
            secret,
        })
    }

    /// `reg` as a worker on the shared token is kept: at most
    /// `max_shared_slots` slots, the first ones it declares.
    fn shared_registration<'a>(&self, reg: &'a WorkerRegistration) -> Cow<'a, WorkerRegistration> {
        let max = self.settings.max_shared_slots.max(1);
        if reg.slots.len() <= max {
            return Cow::Borrowed(reg);
        }
        let mut reg = reg.clone();
        reg.slots.truncate(max);
        Cow::Owned(reg)
    }

    /// Registers a worker and forgets its secret: for callers that drive the
    /// scheduler directly and never authenticate (tests, tools).
    pub fn register_worker(&mut self, reg: &WorkerRegistration) -> Result<WorkerId> {
        self.register(reg).map(|r| r.id)
    }

    /// Whether the store has a row for worker `id`. The service keeps an
    /// unknown id ([`Scheduler::ensure_worker`]) only for a caller whose
    /// credential names it; a shared-token caller is registered afresh.
    pub fn knows_worker(&self, id: &WorkerId) -> Result<bool> {
        Ok(stored_digest(self.store.conn(), id)?.is_some())
    }

    /// Refreshes a known worker after checking its secret, or re-registers
    /// one this coordinator has no record of (its store was replaced) under
    /// the id and secret it presents. Refused with
    /// [`SchedulerError::WrongSecret`] when the id is known and the secret is
    /// not its own, and with [`SchedulerError::FingerprintMismatch`] when the
    /// worker's data serves no unfinished job.
    pub fn ensure_worker(
        &mut self,
        id: &WorkerId,
        secret: &WorkerSecret,
        reg: &WorkerRegistration,
    ) -> Result<WorkerId> {
        let named = credential_rows::credential(self.store.conn(), &id.0)?.is_some();
        let reg = if named {
            Cow::Borrowed(reg)
        } else {
            self.shared_registration(reg)
        };
        let reg = reg.as_ref();
        let known = match stored_digest(self.store.conn(), id)? {
            Some(stored) => {
                if !secret_matches(stored.as_deref(), secret) {
                    return Err(SchedulerError::WrongSecret { worker: id.clone() });
                }
                true
            }
            None if secret.is_empty() => {
                return Err(SchedulerError::BadRequest {
                    message: format!("worker {id} presents no secret; register first"),
                });
            }
            None => false,
        };
        // The usual case, a lease or heartbeat of a live worker whose
        // registration has not changed, needs no write: the call that follows
        // refreshes its last-seen time in its own transaction.
        if known
            && let Some(w) = worker_rows::worker(self.store.conn(), id)?
            && w.state != WorkerState::Lost
            && (&w.name, &w.host, &w.slots, &w.data_fingerprint, &w.trainers)
                == (
                    &reg.name,
                    &reg.host,
                    &reg.slots,
                    &reg.data_fingerprint,
                    &reg.trainers,
                )
        {
            check_fingerprint(self.store.conn(), reg)?;
            return Ok(id.clone());
        }
        let now = self.now_ms();
        let limit = self.settings.max_workers;
        let tx = self.store.transaction()?;
        check_fingerprint(&tx, reg)?;
        let (slots, trainers) = (to_json(&reg.slots)?, to_json(&reg.trainers)?);
        let fields = fields(reg, &slots, &trainers);
        if known {
            worker_rows::refresh_worker(&tx, id, &fields, None, now)?;
        } else {
            check_worker_room(&tx, limit)?;
            if !named {
                check_shared_room(&tx, self.settings.max_shared_workers)?;
            }
            worker_rows::insert_worker(&tx, id, &fields, &secret.digest(), now)?;
            if !named {
                inherit_suspicion(&tx, id, reg, now)?;
            }
            tracing::info!(worker = %id, name = %reg.name, host = %reg.host, "unknown worker re-registered under its own id");
        }
        tx.commit().map_err(StoreError::from)?;
        Ok(id.clone())
    }
}

/// Marks `id` suspect when a suspect worker had `reg`'s name and host: a
/// worker on the shared token that is suspect does not escape by
/// registering again under a new id (it keeps the reason, and says which
/// id it was).
fn inherit_suspicion(
    conn: &Connection,
    id: &WorkerId,
    reg: &WorkerRegistration,
    now: i64,
) -> Result<()> {
    if verify_rows::is_suspect(conn, id)? {
        return Ok(());
    }
    let Some(old) = verify_rows::suspect_like(conn, &reg.name, &reg.host)? else {
        return Ok(());
    };
    verify_rows::mark_suspect(
        conn,
        &SuspectRecord {
            worker: id.clone(),
            name: reg.name.clone(),
            reason: format!("{}; re-registered as {id} (was {})", old.reason, old.worker),
            job: old.job,
            since_ms: now,
        },
    )?;
    tracing::warn!(worker = %id, was = %old.worker, name = %reg.name, host = %reg.host,
        "a suspect worker registered again under a new id: suspect too, no leases until cleared");
    Ok(())
}

/// `Ok` when one more worker fits under the cap of `limit`.
fn check_worker_room(conn: &Connection, limit: usize) -> Result<()> {
    if worker_rows::present_worker_count(conn)? >= limit {
        tracing::warn!(limit, "worker registration refused: the cap is reached");
        return Err(SchedulerError::TooManyWorkers { limit });
    }
    Ok(())
}

/// `Ok` when one more worker on the shared token fits under its cap of `limit`.
fn check_shared_room(conn: &Connection, limit: usize) -> Result<()> {
    if worker_rows::present_shared_worker_count(conn)? >= limit {
        tracing::warn!(
            limit,
            "shared-token registration refused: its cap is reached"
        );
        return Err(SchedulerError::TooManySharedWorkers { limit });
    }
    Ok(())
}

fn fields<'a>(
    reg: &'a WorkerRegistration,
    slots_json: &'a str,
    trainers_json: &'a str,
) -> WorkerFields<'a> {
    WorkerFields {
        name: &reg.name,
        host: &reg.host,
        slots_json,
        data_fingerprint: &reg.data_fingerprint,
        trainers_json,
    }
}
