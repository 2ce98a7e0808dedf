//! One attempt of a script's job, driven to its end (docs/trainers.md, "What
//! the script says back" and "Control"): the script started, its events file
//! followed and every line checked; each epoch goes to the observer (which
//! may ask to stop: SIGTERM to the group, SIGKILL after the grace period),
//! each checkpoint is wrapped as a native one and handed to the observer,
//! and the exit decides the outcome: complete (with the script's result, or
//! the epoch the protocol selects), stopped, or failed with the line at
//! fault or the last lines of the script's stderr. A script that reports no
//! line for `protocol.epoch_timeout_s` is killed.

use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use spikecv_common::experiment::job::JobResult;
use spikecv_common::experiment::manifest::Provenance;

use super::events::{Line, Validator, quote};
use super::history::History;
use super::prepare::{Prepared, ScriptJob, prepare, sha256_hex};
use super::process::{Launch, Script, describe, ended_by_our_signal};
use super::tail::{Tail, TailError};
use super::wrap::{Origin, wrap};
use crate::checkpoint::{FORMAT_VERSION, Progress};
use crate::slot_child::wire::ChildOutcome;
use crate::train::outputs::write_job_files_with;
use crate::train::{Control, Observer, checkpoint_path};

/// How often the events file and the script are looked at.
pub const POLL: Duration = Duration::from_millis(50);

fn failed(message: String, deterministic: bool) -> ChildOutcome {
    ChildOutcome::Failed {
        message,
        deterministic,
        sticky: false,
    }
}

/// Runs `job`'s attempt with its script, reporting to `observer`, and says
/// how it ended. The script is killed (with its group) before this returns.
pub fn run(job: &ScriptJob<'_>, observer: &mut dyn Observer) -> ChildOutcome {
    let name = &job.trainer.name;
    let prepared = match prepare(job) {
        Ok(p) => p,
        Err(e) => return failed(format!("trainer {name:?}: {e}"), e.is_deterministic()),
    };
    let mut tail = match Tail::open(&prepared.events) {
        Ok(t) => t,
        Err(e) => return failed(format!("trainer {name:?}: {e}"), false),
    };
    let launch = Launch {
        trainer: job.trainer,
        job_file: &prepared.job_file,
        events: &prepared.events,
        device: job.spec.device,
        job_dir: &job.spec.out_dir,
    };
    let script = match Script::start(&launch) {
        Ok(s) => s,
        Err(e) => return failed(e.to_string(), false),
    };
    tracing::info!(trainer = %name, job = job.job_id, "script started");
    Attempt::new(job, prepared, script).drive(&mut tail, observer)
}

/// Why the worker killed the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Killed {
    /// Not killed.
    No,
    /// It did not exit within the grace period after SIGTERM.
    AfterStop,
    /// It sent its result but did not exit within the grace period.
    AfterResult,
}

/// An attempt whose script runs.
struct Attempt<'a, 'j> {
    job: &'a ScriptJob<'j>,
    script: Script,
    validator: Validator,
    history: History,
    job_key: String,
    resume_epoch: u32,
    /// The last checkpoint's epoch and the SHA-256 of the script's file.
    last_checkpoint: Option<(u32, String)>,
    result: Option<JobResult>,
    result_at: Option<Instant>,
    stop_sent: Option<Instant>,
    killed: Killed,
    last_line: Instant,
    last_epoch_at: Instant,
}

impl<'a, 'j> Attempt<'a, 'j> {
    fn new(job: &'a ScriptJob<'j>, prepared: Prepared, script: Script) -> Self {
        let now = Instant::now();
        Attempt {
            job,
            script,
            resume_epoch: prepared.rules.resume_epoch,
            validator: Validator::new(prepared.rules),
            history: prepared.history,
            job_key: prepared.job_key,
            last_checkpoint: prepared.resumed,
            result: None,
            result_at: None,
            stop_sent: None,
            killed: Killed::No,
            last_line: now,
            last_epoch_at: now,
        }
    }

    fn name(&self) -> &str {
        &self.job.trainer.name
    }

    fn epochs(&self) -> u32 {
        self.job.spec.config.training.epochs
    }

    /// Follows the script until it exits (or is killed for good).
    fn drive(mut self, tail: &mut Tail, observer: &mut dyn Observer) -> ChildOutcome {
        if self.resume_epoch < self.epochs() {
            observer.on_epoch_start(self.resume_epoch + 1, self.epochs());
        }
        loop {
            // Looked at before the lines: every line written before the
            // exit is read with it.
            let status = match self.script.try_wait() {
                Ok(s) => s,
                Err(e) => return failed(format!("trainer {:?}: waiting: {e}", self.name()), false),
            };
            if let Err(outcome) = self.read(tail, observer) {
                self.script.kill();
                return outcome;
            }
            if let Some(status) = status {
                return self.finish(status, tail);
            }
            if let Some(outcome) = self.supervise(observer) {
                return outcome;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Handles the lines appended since the last look.
    fn read(&mut self, tail: &mut Tail, observer: &mut dyn Observer) -> Result<(), ChildOutcome> {
        let lines = tail.lines().map_err(|e| {
            let too_long = matches!(e, TailError::TooLong { .. });
            failed(format!("trainer {:?}: {e}", self.name()), too_long)
        })?;
        for text in lines {
            self.last_line = Instant::now();
            let measured = self.last_epoch_at.elapsed().as_secs_f64();
            let line = self
                .validator
                .check(&text, measured)
                .map_err(|e| failed(format!("trainer {:?}: {e}", self.name()), true))?;
            match line {
                Line::Epoch(e) => {
                    self.last_epoch_at = Instant::now();
                    let m = e.metrics.clone();
                    self.history.push(e);
                    if observer.on_epoch(&m) == Control::Stop {
                        self.request_stop();
                    }
                    if m.epoch < self.epochs() {
                        observer.on_epoch_start(m.epoch + 1, self.epochs());
                    }
                }
                Line::Checkpoint { epoch, path } => self.checkpoint(epoch, &path, observer)?,
                Line::Result(r) => {
                    self.result = Some(self.history.result_from(r));
                    self.result_at = Some(Instant::now());
                }
            }
        }
        Ok(())
    }

    /// Wraps the script's checkpoint of `epoch` at `path` as the job's
    /// checkpoint and hands it to the observer.
    fn checkpoint(
        &mut self,
        epoch: u32,
        path: &Path,
        observer: &mut dyn Observer,
    ) -> Result<(), ChildOutcome> {
        let name = self.name().to_owned();
        let bytes = std::fs::read(path).map_err(|e| {
            failed(
                format!("trainer {name:?}: checkpoint {}: {e}", path.display()),
                false,
            )
        })?;
        let progress = Progress {
            format: FORMAT_VERSION,
            job_key: self.job_key.clone(),
            epoch,
            optimizer_step: 0,
            lr: self.job.spec.config.training.lr,
            train_seconds: self.history.train_seconds(),
            epochs: self.history.epochs().to_vec(),
            best: self.history.best_so_far(),
        };
        let origin = Origin {
            name: name.clone(),
            sha256: self.job.trainer.sha256.clone(),
            file: path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        let target = checkpoint_path(&self.job.spec.out_dir);
        wrap(&bytes, &progress, &origin, &target)
            .map_err(|e| failed(format!("trainer {name:?}: {e}"), false))?;
        observer.on_checkpoint(&target);
        self.last_checkpoint = Some((epoch, sha256_hex(&bytes)));
        Ok(())
    }

    /// SIGTERM to the script's group, once.
    fn request_stop(&mut self) {
        if self.stop_sent.is_none() {
            tracing::info!(trainer = %self.name(), job = self.job.job_id, "asking the script to stop (SIGTERM)");
            self.script.terminate();
            self.stop_sent = Some(Instant::now());
        }
    }

    /// Stops, kills or times out the script as due; `Some` ends the attempt.
    fn supervise(&mut self, observer: &dyn Observer) -> Option<ChildOutcome> {
        if observer.stop_requested() {
            self.request_stop();
        }
        let grace = self.job.grace;
        let due = |at: Option<Instant>| at.is_some_and(|t| t.elapsed() >= grace);
        if self.killed == Killed::No {
            if due(self.stop_sent) {
                tracing::warn!(trainer = %self.name(), ?grace, "the script did not exit after SIGTERM; killing it");
                self.killed = Killed::AfterStop;
                self.script.kill();
            } else if due(self.result_at) {
                tracing::warn!(trainer = %self.name(), ?grace, "the script sent its result but did not exit; killing it");
                self.killed = Killed::AfterResult;
                self.script.kill();
            }
        }
        let timeout = self.job.spec.config.protocol.epoch_timeout_s;
        let waiting = self.stop_sent.is_none() && self.result_at.is_none();
        if waiting
            && timeout > 0
            && self.last_line.elapsed() >= Duration::from_secs(u64::from(timeout))
        {
            self.script.kill();
            return Some(failed(
                format!(
                    "trainer {:?} reported no line for {timeout} s (protocol.epoch_timeout_s) after epoch {}; killed{}",
                    self.name(),
                    self.validator.done(),
                    self.stderr_text()
                ),
                false,
            ));
        }
        None
    }

    /// The last lines of the script's stderr, for a message.
    fn stderr_text(&self) -> String {
        let lines = self.script.stderr_tail();
        if lines.is_empty() {
            return "; its stderr is empty".to_owned();
        }
        format!("; the last lines of its stderr:\n{}", lines.join("\n"))
    }

    /// The job's result, when the script finished it: its `result`, or the
    /// protocol's selection once every epoch is done.
    fn complete(&self) -> Option<Result<JobResult, String>> {
        if let Some(r) = &self.result {
            return Some(Ok(r.clone()));
        }
        (self.history.last_epoch() == self.epochs()).then(|| self.history.selected_result())
    }

    /// How the attempt ended, the script having exited with `status`.
    fn finish(&self, status: ExitStatus, tail: &Tail) -> ChildOutcome {
        let name = self.name();
        let stopped = self.stop_sent.is_some();
        // A crash mid-line is told by its exit status and stderr instead.
        let clean_exit = status.success() && !stopped;
        if let Some(partial) = tail.unfinished().filter(|_| clean_exit) {
            return failed(
                format!(
                    "trainer {name:?}: the events file ends in a line without its newline: {}",
                    quote(&partial)
                ),
                true,
            );
        }
        let ended_well = status.success()
            || (stopped && ended_by_our_signal(status))
            || (self.killed == Killed::AfterResult && self.result.is_some());
        if ended_well {
            match self.complete() {
                Some(Ok(result)) => return self.completed(result),
                Some(Err(why)) if !stopped => {
                    return failed(format!("trainer {name:?}: {why}"), true);
                }
                _ => {}
            }
            if stopped {
                let epoch = self.last_checkpoint.as_ref().map_or(0, |c| c.0);
                tracing::info!(trainer = %name, epoch, %status, "the script stopped");
                return ChildOutcome::Stopped { epoch };
            }
            return failed(
                format!(
                    "trainer {name:?} exited 0 after epoch {} of {} without a result{}",
                    self.validator.done(),
                    self.epochs(),
                    self.stderr_text()
                ),
                false,
            );
        }
        failed(
            format!(
                "trainer {name:?} ended ({}) after epoch {} of {}{}",
                describe(status),
                self.validator.done(),
                self.epochs(),
                self.stderr_text()
            ),
            false,
        )
    }

    /// The outcome of a finished job: its result and provenance (the slot's
    /// manifest with the trainer and its hash; the last checkpoint's hash as
    /// the weights'), and `metrics.json` and `config.toml` in its folder.
    fn completed(&self, result: JobResult) -> ChildOutcome {
        let mut manifest = self.job.manifest.clone();
        manifest.trainer = Some(self.name().to_owned());
        manifest.trainer_sha256 = Some(self.job.trainer.sha256.clone());
        let provenance = Provenance {
            manifest,
            weights_sha256: self
                .last_checkpoint
                .as_ref()
                .map(|c| c.1.clone())
                .unwrap_or_default(),
        };
        write_outputs(self.job, &result, &provenance);
        ChildOutcome::Complete {
            result: Box::new(result),
            provenance: Box::new(provenance),
        }
    }
}

/// `metrics.json` and `config.toml` as the native engine leaves them (a
/// failure is logged: the result stands).
fn write_outputs(job: &ScriptJob<'_>, result: &JobResult, provenance: &Provenance) {
    if let Err(e) = write_job_files_with(job.spec, result, provenance.clone()) {
        tracing::warn!(error = %e, "cannot write the job's metrics.json or config.toml");
    }
}
