//! Checkpoint records: a current attempt's upload is recorded (its staged file
//! renamed into place in the same transaction), looked up for a resume, and
//! removed with its file when the job ends (succeeds, fails, is cancelled or
//! pruned) or is submitted afresh; only a lease lost or handed back keeps it
//! for the next attempt. An upload's epoch must be one its attempt reported
//! (so a checkpoint never claims more training than the metrics show), and
//! what the file's progress record says must agree with the job and its
//! stored metrics ([`super::checkpoint_content`]). The
//! bytes never pass through the scheduler: see [`crate::checkpoints`].

use std::collections::HashSet;
use std::path::PathBuf;

use rusqlite::Connection;
use spikecv_common::experiment::job::EpochMetrics;
use spikecv_common::experiment::plan::JobId;

use super::checkpoint_content::check_checkpoint_content;
use super::fence::{attempt_key, extend, fence};
use super::types::{AttemptId, Checkpoint};
use super::validate::check_epoch_number;
use super::validate::same_figures;
use super::{Scheduler, SchedulerError};
use crate::checkpoints::{StagedCheckpoint, remove_quietly};
use crate::store::jobs::JobRow;
use crate::store::{StoreError, checkpoint_rows, jobs, lease_writes, metrics};

type Result<T> = std::result::Result<T, SchedulerError>;

/// Where a job's latest checkpoint is and what it must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRecord {
    /// The epoch it was taken after.
    pub epoch: u32,
    /// SHA-256 of the bytes (hex).
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    /// The file holding them.
    pub path: PathBuf,
}

/// Drops the job's checkpoint record in `conn`'s transaction and notes its
/// file in `dropped`, to be removed once the transaction is committed
/// ([`Scheduler::remove_checkpoint_files`]).
pub(super) fn drop_checkpoint(
    conn: &Connection,
    job: &JobId,
    dropped: &mut Vec<(JobId, String)>,
) -> Result<()> {
    if let Some(sha) = take_checkpoint_record(conn, job)? {
        dropped.push((job.clone(), sha));
    }
    Ok(())
}

/// Deletes the job's checkpoint record in `conn`'s transaction; returns the
/// SHA-256 it named (its file is removed after the commit).
pub(super) fn take_checkpoint_record(conn: &Connection, job: &JobId) -> Result<Option<String>> {
    Ok(checkpoint_rows::take_checkpoint(conn, job)?)
}

/// `Ok` when a checkpoint taken after `epoch` may be recorded for `attempt`
/// of `job`: the epoch lies in `1..=epochs` and the attempt has reported it
/// (its metrics went in first).
fn check_upload_epoch(
    conn: &Connection,
    attempt: AttemptId,
    job: &JobRow,
    epoch: u32,
) -> Result<()> {
    check_epoch_number("checkpoint epoch", epoch, job.planned_epochs)?;
    match lease_writes::last_epoch(conn, attempt)? {
        Some(last) if epoch <= last => Ok(()),
        last => Err(SchedulerError::BadRequest {
            message: format!(
                "checkpoint epoch {epoch}: attempt {attempt} has reported {}; a checkpoint follows its epoch's report",
                last.map_or_else(|| "no epoch yet".to_owned(), |l| format!("epoch {l} last"))
            ),
        }),
    }
}

/// Before `attempt` stores `m`: a repeat of an epoch it reported must carry
/// the same figures (a checkpoint's record was checked against them); when
/// another attempt's figures for that epoch are replaced (a resume that
/// could not load the checkpoint and trains again), a checkpoint taken at or
/// after that epoch no longer lists the stored figures and is dropped (its
/// file noted in `dropped`).
pub(super) fn keep_records_true(
    conn: &Connection,
    job: &JobId,
    attempt: AttemptId,
    m: &EpochMetrics,
    dropped: &mut Vec<(JobId, String)>,
) -> Result<()> {
    let Some((by, held)) = metrics::stored_epoch(conn, job, m.epoch)? else {
        return Ok(());
    };
    if same_figures(&held, m) {
        return Ok(());
    }
    if by == attempt {
        return Err(SchedulerError::BadRequest {
            message: format!(
                "epoch {} was reported already by attempt {attempt} with other figures; a repeated report must repeat them",
                m.epoch
            ),
        });
    }
    if jobs::checkpoint_epoch(conn, job)?.is_some_and(|e| e >= m.epoch) {
        drop_checkpoint(conn, job, dropped)?;
    }
    Ok(())
}

impl Scheduler {
    /// The attempt's job if the attempt is current and may upload a checkpoint
    /// taken after `epoch` (see [`Scheduler::commit_checkpoint`]); checked
    /// before an upload's bytes are received.
    ///
    /// A replay's upload is refused as a bad request, not fenced: the
    /// replay goes on (its worker saves a checkpoint after the last epoch
    /// whatever the config says), only the upload is not wanted.
    pub fn check_upload(&self, attempt: AttemptId, epoch: u32) -> Result<JobId> {
        let conn = self.store.conn();
        if super::replay_ops::replay_fence(conn, attempt)?.is_some() {
            return Err(SchedulerError::BadRequest {
                message: format!(
                    "attempt {attempt} is a replay: it trains from epoch 0 in one attempt and keeps no checkpoint"
                ),
            });
        }
        let (_, job) = fence(conn, attempt)?;
        check_upload_epoch(conn, attempt, &job, epoch)?;
        Ok(job.id)
    }

    /// Records `staged` as the checkpoint a current attempt took after `epoch`,
    /// replacing the job's previous one (whose file is then removed). A fenced
    /// attempt's upload is removed and refused. Returns the SHA-256 (hex).
    pub fn commit_checkpoint(
        &mut self,
        attempt: AttemptId,
        epoch: u32,
        staged: StagedCheckpoint,
    ) -> Result<String> {
        let now = self.now_ms();
        let deadline = self.lease_deadline(now);
        let dir = self.checkpoints.clone();
        let outcome = (|| {
            let tx = self.store.transaction()?;
            let (a, job) = fence(&tx, attempt)?;
            check_upload_epoch(&tx, attempt, &job, epoch)?;
            check_checkpoint_content(&tx, &job, epoch, &staged.path)?;
            let previous = take_checkpoint_record(&tx, &job.id)?;
            let size = i64::try_from(staged.size).map_err(|_| SchedulerError::BadRequest {
                message: format!("checkpoint of {} bytes", staged.size),
            })?;
            attempt_key(attempt)?;
            checkpoint_rows::insert_checkpoint(
                &tx,
                &job.id,
                epoch,
                attempt,
                &staged.sha256,
                size,
                now,
            )?;
            extend(&tx, attempt, deadline, &a.worker, now)?;
            let target = dir.file(&job.id, &staged.sha256);
            std::fs::rename(&staged.path, &target).map_err(|e| {
                SchedulerError::checkpoint_io(format!("renaming to {}", target.display()), e)
            })?;
            if let Err(e) = tx.commit() {
                // The record was not written: the file it would name must go,
                // unless the previous record names the very same file.
                if previous.as_deref() != Some(staged.sha256.as_str()) {
                    remove_quietly(&target);
                }
                return Err(StoreError::from(e).into());
            }
            Ok((job.id, previous))
        })();
        match outcome {
            Ok((job, previous)) => {
                if let Some(old) = previous.filter(|old| *old != staged.sha256) {
                    remove_quietly(&dir.file(&job, &old));
                }
                Ok(staged.sha256)
            }
            Err(e) => {
                remove_quietly(&staged.path);
                Err(e)
            }
        }
    }

    /// Stores `bytes` as a checkpoint of a current attempt (stages a file and
    /// commits it: [`Scheduler::commit_checkpoint`]); returns its SHA-256 (hex).
    pub fn put_checkpoint(
        &mut self,
        attempt: AttemptId,
        epoch: u32,
        bytes: &[u8],
    ) -> Result<String> {
        let staged = self.stage_bytes(bytes)?;
        self.commit_checkpoint(attempt, epoch, staged)
    }

    /// Writes `bytes` to a synced `.part` file in the checkpoint directory.
    fn stage_bytes(&self, bytes: &[u8]) -> Result<StagedCheckpoint> {
        let dir = self.checkpoints.path().display();
        let io = |e| SchedulerError::checkpoint_io(format!("staging a checkpoint in {dir}"), e);
        let mut staging = self.checkpoints.stage().map_err(io)?;
        staging.write(bytes).map_err(io)?;
        staging.finish().map_err(io)
    }

    /// The record of the job's latest checkpoint, if any.
    pub fn checkpoint_record(&self, job: &JobId) -> Result<Option<CheckpointRecord>> {
        let row = checkpoint_rows::checkpoint(self.store.conn(), job)?;
        Ok(row.map(|(epoch, sha256, size)| CheckpointRecord {
            epoch,
            path: self.checkpoints.file(job, &sha256),
            sha256,
            size,
        }))
    }

    /// The job's latest checkpoint with its bytes (read whole; the service
    /// streams the file instead).
    pub fn get_checkpoint(&self, job: &JobId) -> Result<Option<Checkpoint>> {
        let Some(record) = self.checkpoint_record(job)? else {
            return Ok(None);
        };
        let bytes = std::fs::read(&record.path).map_err(|e| {
            SchedulerError::checkpoint_io(format!("reading {}", record.path.display()), e)
        })?;
        Ok(Some(Checkpoint {
            epoch: record.epoch,
            sha256: record.sha256,
            bytes,
        }))
    }

    /// On opening: writes checkpoints still held inline (schema 1) out to files
    /// and removes files that no record names (a crash mid-upload or between a
    /// commit and a removal).
    pub(super) fn tidy_checkpoint_files(&mut self) -> Result<()> {
        let inline = checkpoint_rows::inline_checkpoints(self.store.conn())?;
        for (job, sha, bytes) in inline {
            let path = self.checkpoints.file(&job, &sha);
            let staged = self.stage_bytes(&bytes)?;
            std::fs::rename(&staged.path, &path).map_err(|e| {
                SchedulerError::checkpoint_io(format!("renaming to {}", path.display()), e)
            })?;
            let tx = self.store.transaction()?;
            checkpoint_rows::drop_inline_bytes(&tx, &job)?;
            tx.commit().map_err(StoreError::from)?;
            tracing::info!(%job, path = %path.display(), "inline checkpoint moved to a file");
        }
        let records: Vec<(JobId, PathBuf)> = checkpoint_rows::checkpoint_names(self.store.conn())?
            .into_iter()
            .map(|(job, sha)| {
                let path = self.checkpoints.file(&job, &sha);
                (job, path)
            })
            .collect();
        let keep: HashSet<PathBuf> = records.iter().map(|(_, p)| p.clone()).collect();
        let removed = self
            .checkpoints
            .sweep(&keep)
            .map_err(|e| SchedulerError::checkpoint_io("sweeping stale files", e))?;
        if removed > 0 {
            tracing::info!(removed, "stale checkpoint files removed");
        }
        // A record whose file is gone (deleted by hand, a lost disk) cannot be
        // resumed from: drop it, so the job's next attempt starts from epoch 0.
        for (job, path) in records.iter().filter(|(_, p)| !p.is_file()) {
            let tx = self.store.transaction()?;
            take_checkpoint_record(&tx, job)?;
            tx.commit().map_err(StoreError::from)?;
            tracing::warn!(%job, path = %path.display(), "checkpoint file missing; the job will start from epoch 0");
        }
        Ok(())
    }
}

impl Scheduler {
    /// Removes the files of checkpoint records dropped by a committed
    /// transaction ([`drop_checkpoint`]).
    pub(super) fn remove_checkpoint_files(&self, dropped: &[(JobId, String)]) {
        for (job, sha) in dropped {
            remove_quietly(&self.checkpoint_dir().file(job, sha));
        }
    }
}
