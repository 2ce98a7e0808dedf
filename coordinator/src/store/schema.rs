//! The store's schema and its migrations, versioned with SQLite's `user_version`.

use rusqlite::{Connection, OptionalExtension};

use super::error::StoreError;

/// Migrations in order; migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
CREATE TABLE experiments (
    id               TEXT PRIMARY KEY,
    name             TEXT,
    config_toml      TEXT NOT NULL,
    config_hash      TEXT NOT NULL,
    data_fingerprint TEXT,
    class_names_json TEXT NOT NULL,
    created_ms       INTEGER NOT NULL
);
CREATE TABLE workers (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    host             TEXT NOT NULL,
    slots_json       TEXT NOT NULL,
    data_fingerprint TEXT NOT NULL,
    registered_ms    INTEGER NOT NULL,
    last_seen_ms     INTEGER NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('alive', 'draining', 'lost'))
);
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    experiment       TEXT NOT NULL REFERENCES experiments(id),
    variant          TEXT NOT NULL,
    seed             INTEGER NOT NULL,
    fold             INTEGER NOT NULL,
    protocol         TEXT NOT NULL,
    config_toml      TEXT NOT NULL,
    split_json       TEXT NOT NULL,
    data_fingerprint TEXT,
    max_attempts     INTEGER NOT NULL,
    status           TEXT NOT NULL CHECK (status IN
                     ('pending', 'leased', 'running', 'succeeded', 'failed', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    failures         INTEGER NOT NULL DEFAULT 0,
    lost_attempts    INTEGER NOT NULL DEFAULT 0,
    current_attempt  INTEGER REFERENCES attempts(id),
    progress_epoch   INTEGER,
    progress_of      INTEGER,
    error            TEXT,
    result_json      TEXT,
    best_epoch       INTEGER,
    test_accuracy    REAL,
    test_loss        REAL,
    val_accuracy     REAL,
    val_loss         REAL,
    train_seconds    REAL,
    worker           TEXT,
    device           TEXT,
    created_ms       INTEGER NOT NULL,
    updated_ms       INTEGER NOT NULL,
    finished_ms      INTEGER
);
CREATE INDEX jobs_by_status ON jobs(status);
CREATE TABLE experiment_jobs (
    experiment TEXT NOT NULL REFERENCES experiments(id),
    job        TEXT NOT NULL REFERENCES jobs(id),
    position   INTEGER NOT NULL,
    PRIMARY KEY (experiment, job)
);
CREATE TABLE attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job         TEXT NOT NULL REFERENCES jobs(id),
    worker      TEXT NOT NULL REFERENCES workers(id),
    device      TEXT NOT NULL,
    leased_ms   INTEGER NOT NULL,
    deadline_ms INTEGER NOT NULL,
    ended_ms    INTEGER,
    outcome     TEXT CHECK (outcome IN
                ('succeeded', 'failed', 'released', 'lost', 'cancelled')),
    error       TEXT
);
CREATE INDEX attempts_open ON attempts(deadline_ms) WHERE ended_ms IS NULL;
CREATE INDEX attempts_by_worker ON attempts(worker) WHERE ended_ms IS NULL;
CREATE TABLE epoch_metrics (
    job          TEXT NOT NULL REFERENCES jobs(id),
    epoch        INTEGER NOT NULL,
    attempt      INTEGER NOT NULL REFERENCES attempts(id),
    metrics_json TEXT NOT NULL,
    PRIMARY KEY (job, epoch)
);
CREATE TABLE checkpoints (
    job      TEXT PRIMARY KEY REFERENCES jobs(id),
    epoch    INTEGER NOT NULL,
    attempt  INTEGER NOT NULL REFERENCES attempts(id),
    sha256   TEXT NOT NULL,
    bytes    BLOB NOT NULL,
    saved_ms INTEGER NOT NULL
);
"#,
    // 2: checkpoint bytes move to files beside the database (see
    // `crate::checkpoints`); the table keeps the record and the size. Rows from
    // schema 1 keep their blob until the scheduler writes it out on opening.
    r#"
CREATE TABLE checkpoints_v2 (
    job      TEXT PRIMARY KEY REFERENCES jobs(id),
    epoch    INTEGER NOT NULL,
    attempt  INTEGER NOT NULL REFERENCES attempts(id),
    sha256   TEXT NOT NULL,
    size     INTEGER NOT NULL,
    bytes    BLOB,
    saved_ms INTEGER NOT NULL
);
INSERT INTO checkpoints_v2 (job, epoch, attempt, sha256, size, bytes, saved_ms)
    SELECT job, epoch, attempt, sha256, length(bytes), bytes, saved_ms FROM checkpoints;
DROP TABLE checkpoints;
ALTER TABLE checkpoints_v2 RENAME TO checkpoints;
"#,
    // 3: each worker's secret, as a hex sha256 (see `crate::scheduler::identity`);
    // NULL for workers registered before: no secret matches theirs.
    r#"
ALTER TABLE workers ADD COLUMN secret_sha256 TEXT;
"#,
    // 4: sweeps. A job's configuration (its index in the experiment's sweep) on
    // the experiment-to-job link; job state `pruned` with the pruner's reason;
    // the epochs a job trains (`epochs`, for the time-left estimate; filled
    // in for older rows by the scheduler when it opens the store).
    // SQLite cannot change a CHECK, so `jobs` is rebuilt (`migrate` turns
    // foreign keys off around it and checks them before committing).
    r#"
ALTER TABLE experiment_jobs ADD COLUMN configuration INTEGER NOT NULL DEFAULT 0;
CREATE TABLE jobs_v4 (
    id               TEXT PRIMARY KEY,
    experiment       TEXT NOT NULL REFERENCES experiments(id),
    variant          TEXT NOT NULL,
    seed             INTEGER NOT NULL,
    fold             INTEGER NOT NULL,
    protocol         TEXT NOT NULL,
    config_toml      TEXT NOT NULL,
    split_json       TEXT NOT NULL,
    data_fingerprint TEXT,
    max_attempts     INTEGER NOT NULL,
    status           TEXT NOT NULL CHECK (status IN
                     ('pending', 'leased', 'running', 'succeeded', 'failed', 'cancelled', 'pruned')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    failures         INTEGER NOT NULL DEFAULT 0,
    lost_attempts    INTEGER NOT NULL DEFAULT 0,
    current_attempt  INTEGER REFERENCES attempts(id),
    progress_epoch   INTEGER,
    progress_of      INTEGER,
    error            TEXT,
    result_json      TEXT,
    best_epoch       INTEGER,
    test_accuracy    REAL,
    test_loss        REAL,
    val_accuracy     REAL,
    val_loss         REAL,
    train_seconds    REAL,
    worker           TEXT,
    device           TEXT,
    created_ms       INTEGER NOT NULL,
    updated_ms       INTEGER NOT NULL,
    finished_ms      INTEGER,
    pruned_json      TEXT,
    epochs           INTEGER
);
INSERT INTO jobs_v4 (id, experiment, variant, seed, fold, protocol, config_toml, split_json,
        data_fingerprint, max_attempts, status, attempts, failures, lost_attempts,
        current_attempt, progress_epoch, progress_of, error, result_json, best_epoch,
        test_accuracy, test_loss, val_accuracy, val_loss, train_seconds, worker, device,
        created_ms, updated_ms, finished_ms)
    SELECT id, experiment, variant, seed, fold, protocol, config_toml, split_json,
        data_fingerprint, max_attempts, status, attempts, failures, lost_attempts,
        current_attempt, progress_epoch, progress_of, error, result_json, best_epoch,
        test_accuracy, test_loss, val_accuracy, val_loss, train_seconds, worker, device,
        created_ms, updated_ms, finished_ms
    FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_v4 RENAME TO jobs;
CREATE INDEX jobs_by_status ON jobs(status);
"#,
    // 5: progress per attempt. `last_epoch` is the highest epoch the attempt
    // reported (epochs may not go back within an attempt, and a checkpoint's
    // epoch may not pass it); `progress_ms` is when the attempt was leased or
    // last reported a new epoch, and `epoch_timeout_ms` (0: off) how long it
    // may go without one before it is taken back. A job keeps its config's
    // `protocol.epoch_timeout_s` (NULL for jobs stored before: the default).
    r#"
ALTER TABLE attempts ADD COLUMN last_epoch INTEGER;
ALTER TABLE attempts ADD COLUMN progress_ms INTEGER;
ALTER TABLE attempts ADD COLUMN epoch_timeout_ms INTEGER NOT NULL DEFAULT 0;
UPDATE attempts SET progress_ms = leased_ms;
ALTER TABLE jobs ADD COLUMN epoch_timeout_s INTEGER;
"#,
    // 6: samples per recording, for data sets whose recordings hold any
    // number of samples (DVS128 Gesture): a JSON object from recording name
    // to count. NULL: one sample per class per recording (SL-Animals).
    r#"
ALTER TABLE experiments ADD COLUMN sample_counts_json TEXT;
"#,
    // 7: workers' own credentials and enrolment tokens (see
    // `crate::scheduler::credentials`): only the sha256 of each token is kept.
    r#"
CREATE TABLE worker_credentials (
    name         TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    slots        INTEGER NOT NULL CHECK (slots > 0),
    created_ms   INTEGER NOT NULL
);
CREATE TABLE enrolment_tokens (
    token_sha256 TEXT PRIMARY KEY,
    uses_left    INTEGER NOT NULL CHECK (uses_left >= 0),
    slots        INTEGER NOT NULL CHECK (slots > 0),
    expires_ms   INTEGER NOT NULL,
    created_ms   INTEGER NOT NULL
);
"#,
    // 8: what a pruning decision stands on. `prune_evidence` lists, for each
    // pruned job, the attempts whose epoch metrics made the decision (undone
    // when one of them fails or is lost); `attempts.resumed_from` is the
    // attempt whose checkpoint a lease handed out (its epochs count again).
    r#"
CREATE TABLE prune_evidence (
    job     TEXT NOT NULL REFERENCES jobs(id),
    attempt INTEGER NOT NULL REFERENCES attempts(id),
    PRIMARY KEY (job, attempt)
);
CREATE INDEX prune_evidence_by_attempt ON prune_evidence(attempt);
ALTER TABLE attempts ADD COLUMN resumed_from INTEGER REFERENCES attempts(id);
"#,
    // 9: what a succeeded job ran on and with (its manifest) and its final
    // weights' hash, as JSON (`spikecv_common::experiment::manifest::Provenance`);
    // NULL for results from workers before the manifest.
    r#"
ALTER TABLE jobs ADD COLUMN provenance_json TEXT;
"#,
    // 10: deterministic replay (see `crate::scheduler::verify`). Each
    // experiment that verifies keeps a secret for its sampling rule; a job
    // keeps the share its experiments verify (`verify_fraction`), where it
    // stands (`verify`, `crate::states::VerifyState`) and since when; a
    // replay's attempt is marked (`attempts.replay`); every run of a verified
    // job keeps what it produced (`job_runs`: its result, its provenance,
    // the credentials it came from and its comparisons); a worker whose run
    // disagreed with two others is suspect until an operator clears it.
    r#"
ALTER TABLE experiments ADD COLUMN verify_secret TEXT;
ALTER TABLE jobs ADD COLUMN verify_fraction REAL;
ALTER TABLE jobs ADD COLUMN verify TEXT;
ALTER TABLE jobs ADD COLUMN verify_since_ms INTEGER;
CREATE INDEX jobs_by_verify ON jobs(verify) WHERE verify IS NOT NULL;
ALTER TABLE attempts ADD COLUMN replay INTEGER NOT NULL DEFAULT 0;
CREATE TABLE job_runs (
    attempt          INTEGER PRIMARY KEY REFERENCES attempts(id),
    job              TEXT NOT NULL REFERENCES jobs(id),
    worker           TEXT NOT NULL,
    worker_name      TEXT NOT NULL,
    credentials_json TEXT NOT NULL,
    replay           INTEGER NOT NULL,
    result_json      TEXT NOT NULL,
    provenance_json  TEXT,
    comparisons_json TEXT,
    finished_ms      INTEGER NOT NULL
);
CREATE INDEX job_runs_by_job ON job_runs(job);
CREATE INDEX job_runs_by_worker ON job_runs(worker);
CREATE TABLE suspects (
    worker   TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    job      TEXT NOT NULL,
    reason   TEXT NOT NULL,
    since_ms INTEGER NOT NULL
);
"#,
    // 11: training scripts (docs/trainers.md). A job names the trainer that
    // runs it (`native`: the engine); a worker keeps the trainers it
    // registered (JSON: `spikecv_common::experiment::trainer::TrainerInfo`).
    r#"
ALTER TABLE jobs ADD COLUMN trainer TEXT NOT NULL DEFAULT 'native';
ALTER TABLE workers ADD COLUMN trainers_json TEXT NOT NULL DEFAULT '[]';
"#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings the database up to [`SCHEMA_VERSION`], one transaction per migration.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    // A table rebuild (schema 4) drops a table others refer to: foreign keys
    // are off while migrating (the pragma is ignored inside a transaction) and
    // checked before each commit.
    let enforced: bool = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let result = run_migrations(conn, found);
    conn.pragma_update(None, "foreign_keys", if enforced { "ON" } else { "OFF" })?;
    result
}

fn run_migrations(conn: &mut Connection, found: u32) -> Result<(), StoreError> {
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        let broken: Option<String> = tx
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()?;
        if let Some(table) = broken {
            return Err(StoreError::Migration {
                version: i as u32 + 1,
                message: format!("table {table} has rows whose foreign key points nowhere"),
            });
        }
        tx.pragma_update(None, "user_version", i as u32 + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "store schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_2_keeps_schema_1_checkpoints_with_their_size() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO experiments VALUES ('e', NULL, '', 'h', NULL, '[]', 0);
             INSERT INTO jobs (id, experiment, variant, seed, fold, protocol, config_toml,
                 split_json, max_attempts, status, created_ms, updated_ms)
                 VALUES ('j', 'e', 'whole', 0, 0, 'cv', '', '{}', 3, 'running', 0, 0);
             INSERT INTO workers VALUES ('w', 'a', 'h', '[]', '', 0, 0, 'alive');
             INSERT INTO attempts (job, worker, device, leased_ms, deadline_ms)
                 VALUES ('j', 'w', 'cpu', 0, 1);
             INSERT INTO checkpoints VALUES ('j', 4, 1, 'abc', x'01020304', 7);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let row: (u32, i64, Vec<u8>, i64) = conn
            .query_row(
                "SELECT epoch, size, bytes, saved_ms FROM checkpoints WHERE job = 'j'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(row, (4, 4, vec![1, 2, 3, 4], 7));
        let version: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn schema_4_rebuilds_jobs_keeping_rows_and_references_and_allows_pruned() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        conn.execute_batch(
            "INSERT INTO experiments VALUES ('e', NULL, '', 'h', NULL, '[]', 0);
             INSERT INTO jobs (id, experiment, variant, seed, fold, protocol, config_toml,
                 split_json, max_attempts, status, created_ms, updated_ms, test_accuracy)
                 VALUES ('j', 'e', 'whole', 0, 0, 'cv', 'c', '{}', 3, 'succeeded', 0, 0, 0.75);
             INSERT INTO experiment_jobs VALUES ('e', 'j', 0);
             INSERT INTO workers VALUES ('w', 'a', 'h', '[]', '', 0, 0, 'alive', NULL);
             INSERT INTO attempts (job, worker, device, leased_ms, deadline_ms)
                 VALUES ('j', 'w', 'cpu', 0, 1);
             INSERT INTO epoch_metrics VALUES ('j', 1, 1, '{}');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let row: (String, f64, i64) = conn
            .query_row(
                "SELECT j.status, j.test_accuracy, ej.configuration
                 FROM jobs j JOIN experiment_jobs ej ON ej.job = j.id",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(row, ("succeeded".to_owned(), 0.75, 0));
        conn.execute("UPDATE jobs SET status = 'pruned'", [])
            .unwrap();
        assert!(
            conn.execute("UPDATE jobs SET status = 'bogus'", [])
                .is_err()
        );
        // Foreign keys are enforced again and still point at the new table.
        let on: bool = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert!(on);
        assert!(
            conn.execute("INSERT INTO epoch_metrics VALUES ('nope', 1, 1, '{}')", [])
                .is_err()
        );
        assert!(conn.execute("DELETE FROM jobs WHERE id = 'j'", []).is_err());
    }
}
