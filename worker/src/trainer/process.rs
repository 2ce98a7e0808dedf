//! A running script: started in a process group of its own with the job's
//! variables (docs/trainers.md, "The job, handed to the script"), its stdout
//! in a log file, its stderr read on a thread into a log file and a tail of
//! its last lines for error messages; signalled as a group, and killed as a
//! group when dropped, so no script outlives its job. Groups still alive are
//! listed, so a worker that exits at once (a second Ctrl-C) can kill them
//! first ([`kill_all`]); a worker killed outright takes its scripts with it
//! (the parent-death signal).

use std::collections::{BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};

use rustix::process::{Pid, Signal, kill_process_group};

use super::registry::Trainer;
use crate::devices::DeviceSpec;

/// Lines of stderr kept for an error message.
pub const STDERR_LINES: usize = 20;
/// Characters kept of one stderr line.
pub const STDERR_LINE_CHARS: usize = 400;

/// The variable naming the job file.
pub const JOB_VAR: &str = "SPIKECV_JOB";
/// The variable naming the events file.
pub const EVENTS_VAR: &str = "SPIKECV_EVENTS";
/// The variable naming the device (`cpu` or `cuda`).
pub const DEVICE_VAR: &str = "SPIKECV_DEVICE";
/// The variable choosing the visible GPU.
pub const CUDA_VAR: &str = "CUDA_VISIBLE_DEVICES";

/// Process groups of scripts still running.
static LIVE: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sends `signal` to the process group `pgid` (never to init's "group").
fn signal_group(pgid: i32, signal: Signal) {
    if pgid > 1
        && let Some(pid) = Pid::from_raw(pgid)
    {
        let _ = kill_process_group(pid, signal);
    }
}

/// Makes the script die (SIGKILL) when the thread that starts it ends: a
/// worker killed with SIGKILL, which runs no destructor and cannot signal
/// the group, takes its scripts with it (Linux's `PR_SET_PDEATHSIG`; the
/// thread waits for the script, so only the worker's death ends it early).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn die_with_spawner(command: &mut Command) {
    let set = || {
        rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
            .map_err(std::io::Error::from)
    };
    // SAFETY: the closure runs in the child between fork and exec; it only
    // makes the prctl system call (async-signal-safe, no allocation, no lock).
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(command, set);
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_spawner(_command: &mut Command) {}

/// Kills every script's process group this process started and has not yet
/// reaped: for an exit that skips destructors.
pub fn kill_all() {
    for &pgid in lock(&LIVE).iter() {
        signal_group(pgid, Signal::KILL);
    }
}

/// Why a script could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A log file could not be created.
    #[error("cannot create {}: {source}", path.display())]
    Log {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The process could not be started.
    #[error("cannot start trainer {name:?} ({program}): {source}")]
    Spawn {
        /// The trainer.
        name: String,
        /// What was run.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Where a script runs and what it is told.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    /// The trainer.
    pub trainer: &'a Trainer,
    /// The job file (`$SPIKECV_JOB`).
    pub job_file: &'a Path,
    /// The events file (`$SPIKECV_EVENTS`).
    pub events: &'a Path,
    /// The slot's device.
    pub device: DeviceSpec,
    /// The job's folder: the default workdir, and where the logs go.
    pub job_dir: &'a Path,
}

/// The log of the script's stdout in its job's folder.
pub const STDOUT_LOG: &str = "trainer-stdout.log";
/// The log of the script's stderr in its job's folder.
pub const STDERR_LOG: &str = "trainer-stderr.log";

/// A started script.
#[derive(Debug)]
pub struct Script {
    child: Child,
    pgid: i32,
    tail: Arc<Mutex<VecDeque<String>>>,
    reaped: bool,
}

impl Script {
    /// Starts the script as `launch` says, in a process group of its own.
    pub fn start(launch: &Launch<'_>) -> Result<Script, StartError> {
        let t = launch.trainer;
        let log = |name: &str| {
            let path = launch.job_dir.join(name);
            std::fs::File::create(&path).map_err(|source| StartError::Log { path, source })
        };
        let (stdout, stderr_log) = (log(STDOUT_LOG)?, log(STDERR_LOG)?);
        let mut command = match &t.interpreter {
            Some(i) => {
                let mut c = Command::new(i);
                c.arg(&t.script);
                c
            }
            None => Command::new(&t.script),
        };
        let (cuda, device) = match launch.device {
            DeviceSpec::Cpu => (String::new(), "cpu"),
            DeviceSpec::Cuda(i) => (i.to_string(), "cuda"),
        };
        command
            .args(&t.args)
            .current_dir(t.workdir.as_deref().unwrap_or(launch.job_dir))
            .envs(&t.env)
            .env(JOB_VAR, launch.job_file)
            .env(EVENTS_VAR, launch.events)
            .env(CUDA_VAR, cuda)
            .env(DEVICE_VAR, device)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped());
        // Its own group: signals reach the script and whatever it started,
        // and a Ctrl-C in the worker's terminal reaches the worker alone.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        die_with_spawner(&mut command);
        let mut child = command.spawn().map_err(|source| StartError::Spawn {
            name: t.name.clone(),
            program: t.interpreter.as_ref().map_or_else(
                || t.script.display().to_string(),
                |i| format!("{} {}", i.to_string_lossy(), t.script.display()),
            ),
            source,
        })?;
        let pgid = i32::try_from(child.id()).unwrap_or(0);
        lock(&LIVE).insert(pgid);
        let tail: Arc<Mutex<VecDeque<String>>> = Arc::default();
        if let Some(pipe) = child.stderr.take() {
            let tail = tail.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("stderr-{}", t.name))
                .spawn(move || read_stderr(pipe, stderr_log, &tail));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot read the script's stderr");
            }
        }
        Ok(Script {
            child,
            pgid,
            tail,
            reaped: false,
        })
    }

    /// The exit status once the script has exited (it is then reaped).
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        let status = self.child.try_wait()?;
        if status.is_some() {
            self.reaped = true;
        }
        Ok(status)
    }

    /// SIGTERM to the script's group.
    pub fn terminate(&self) {
        signal_group(self.pgid, Signal::TERM);
    }

    /// SIGKILL to the script's group.
    pub fn kill(&self) {
        signal_group(self.pgid, Signal::KILL);
    }

    /// The last lines of its stderr so far, oldest first.
    pub fn stderr_tail(&self) -> Vec<String> {
        lock(&self.tail).iter().cloned().collect()
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        // The group too: what the script started may outlive it.
        self.kill();
        if !self.reaped {
            let _ = self.child.wait();
        }
        lock(&LIVE).remove(&self.pgid);
    }
}

/// Copies the script's stderr to `log` and keeps its last lines in `tail`,
/// until every process of the group has closed it.
fn read_stderr(
    pipe: std::process::ChildStderr,
    mut log: std::fs::File,
    tail: &Mutex<VecDeque<String>>,
) {
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let _ = log.write_all(&line);
        let text = String::from_utf8_lossy(&line);
        let mut kept: String = text.trim_end().chars().take(STDERR_LINE_CHARS).collect();
        if kept.len() < text.trim_end().len() {
            kept.push('…');
        }
        let mut t = lock(tail);
        if t.len() == STDERR_LINES {
            t.pop_front();
        }
        t.push_back(kept);
    }
}

/// How an exit status reads in a message.
pub fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "no exit status".to_owned(),
    }
}

/// Whether the status is death by SIGTERM or SIGKILL (the worker's signals).
pub fn ended_by_our_signal(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status
        .signal()
        .is_some_and(|s| s == Signal::TERM.as_raw() || s == Signal::KILL.as_raw())
}
