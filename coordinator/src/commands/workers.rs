//! `coordinator worker add|list|remove|clear|enrolment|enrol`: the workers' own
//! credentials on a running coordinator, and clearing a suspect worker.
//! `add`, `list`, `remove`, `clear` and `enrolment` take the admin token; `enrol` takes an enrolment token (in
//! `--token-file`) and writes the credential it receives to a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use spikecv_common::proto::client::{CallError, ClientError};
use spikecv_common::proto::enrol::{EnrolError, write_credential};
use spikecv_common::proto::{
    AddWorkerRequest, ClearWorkerRequest, CreateEnrolmentRequest, EnrolRequest, ListWorkersRequest,
    RemoveWorkerRequest, WorkerCredential,
};

use super::client_args::ClientArgs;

/// Flags of `coordinator worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: WorkerCommand,
}

/// The subcommands of `coordinator worker`.
#[derive(Debug, clap::Subcommand)]
pub enum WorkerCommand {
    /// Issue a named worker its own credential (printed, or written to --out,
    /// once: the coordinator keeps only its hash).
    Add(AddArgs),
    /// List the named workers: slots, state, running attempts.
    List(ListArgs),
    /// Revoke a named worker's credential; its running attempts are released
    /// at once (their jobs back in the queue).
    Remove(RemoveArgs),
    /// Clear a suspect worker (by name or id; one whose run disagreed with
    /// two others under `[protocol] verify`): it gets leases again.
    Clear(RemoveArgs),
    /// Make an enrolment token: --uses nodes may each enrol once with it
    /// before it expires.
    Enrolment(EnrolmentArgs),
    /// Enrol this node with an enrolment token (given as --token-file) and
    /// write the credential it receives to --out, for `worker join --token-file`.
    Enrol(EnrolArgs),
}

/// Flags of `coordinator worker add`.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The coordinator (admin token).
    #[command(flatten)]
    pub client: ClientArgs,
    /// The worker's name: its id (ASCII letters, digits, '.', '_', '-').
    pub name: String,
    /// The most jobs it may hold at once.
    #[arg(long, default_value_t = 1)]
    pub slots: u32,
    /// Write the token to this file (mode 0600; refused when it exists)
    /// instead of printing it.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Flags of `coordinator worker list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The coordinator (admin token).
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Flags of `coordinator worker remove` and `coordinator worker clear`.
#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// The coordinator (admin token).
    #[command(flatten)]
    pub client: ClientArgs,
    /// The worker's name.
    pub name: String,
}

/// Flags of `coordinator worker enrolment`.
#[derive(Debug, clap::Args)]
pub struct EnrolmentArgs {
    /// The coordinator (admin token).
    #[command(flatten)]
    pub client: ClientArgs,
    /// Nodes that may enrol with it.
    #[arg(long, default_value_t = 1)]
    pub uses: u32,
    /// Seconds it stays valid.
    #[arg(long, default_value_t = 3600)]
    pub ttl_seconds: u32,
    /// Slots of each credential it gives.
    #[arg(long, default_value_t = 1)]
    pub slots: u32,
    /// Write the token to this file (mode 0600; refused when it exists)
    /// instead of printing it.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Flags of `coordinator worker enrol`.
#[derive(Debug, clap::Args)]
pub struct EnrolArgs {
    /// The coordinator; --token-file holds the enrolment token.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Where to write the credential (mode 0600; refused when it exists, so
    /// a node enrols once).
    #[arg(long)]
    pub out: PathBuf,
    /// The name to ask for (default: this machine's host name); the
    /// coordinator makes it unique.
    #[arg(long)]
    pub name_hint: Option<String>,
}

/// Why a `coordinator worker` command failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkerCmdError {
    /// The call failed or was refused.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The client could not be set up.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The file for a token exists: a node enrols once, a token is written once.
    #[error(
        "{path} exists: refusing to overwrite a credential (remove the file to make a new one)"
    )]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The file for a token could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Writing the answer failed.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

/// Writes `token` to a new file at `path`, readable by its owner only
/// (the worker's own credential file is written the same way).
fn write_secret(path: &Path, token: &str) -> Result<(), WorkerCmdError> {
    write_credential(path, token).map_err(|e| match e {
        EnrolError::Exists { path } => WorkerCmdError::Exists { path },
        EnrolError::Write { path, source } => WorkerCmdError::Write { path, source },
        // Writing a file makes neither a client nor a call.
        EnrolError::Client(e) => WorkerCmdError::Client(e),
        EnrolError::Call { url, status } => WorkerCmdError::Call(CallError::Call {
            url,
            status: *status,
        }),
    })
}

/// This machine's host name (empty when unknown).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Prints a credential, or writes its token to `out`.
fn deliver(
    c: &WorkerCredential,
    out_file: Option<&Path>,
    out: &mut dyn Write,
) -> Result<(), WorkerCmdError> {
    match out_file {
        Some(path) => {
            write_secret(path, &c.token)?;
            writeln!(
                out,
                "worker {} ({} slot(s)): credential written to {}",
                c.name,
                c.slots,
                path.display()
            )?;
        }
        None => writeln!(out, "{}", c.token)?,
    }
    Ok(())
}

/// Runs `coordinator worker ...`, writing its output to `out`.
pub async fn run(args: &WorkerArgs, out: &mut dyn Write) -> Result<(), WorkerCmdError> {
    match &args.command {
        WorkerCommand::Add(a) => {
            let options = a.client.options()?;
            let c = options
                .admin_client()?
                .add_worker(AddWorkerRequest {
                    name: a.name.clone(),
                    slots: a.slots,
                })
                .await
                .map_err(CallError::at(&options.url))?
                .into_inner();
            deliver(&c, a.out.as_deref(), out)
        }
        WorkerCommand::List(a) => list(a, out).await,
        WorkerCommand::Remove(a) => {
            let options = a.client.options()?;
            let r = options
                .admin_client()?
                .remove_worker(RemoveWorkerRequest {
                    name: a.name.clone(),
                })
                .await
                .map_err(CallError::at(&options.url))?
                .into_inner();
            writeln!(
                out,
                "removed worker {}; released {} attempt(s)",
                a.name,
                r.released.len()
            )?;
            for attempt in &r.released {
                writeln!(out, "  {attempt}")?;
            }
            Ok(())
        }
        WorkerCommand::Clear(a) => {
            let options = a.client.options()?;
            let r = options
                .admin_client()?
                .clear_worker(ClearWorkerRequest {
                    name: a.name.clone(),
                })
                .await
                .map_err(CallError::at(&options.url))?
                .into_inner();
            writeln!(
                out,
                "cleared {}: {} suspect worker(s) may lease again",
                a.name, r.cleared
            )?;
            Ok(())
        }
        WorkerCommand::Enrolment(a) => enrolment(a, out).await,
        WorkerCommand::Enrol(a) => enrol(a, out).await,
    }
}

async fn list(a: &ListArgs, out: &mut dyn Write) -> Result<(), WorkerCmdError> {
    let options = a.client.options()?;
    let r = options
        .admin_client()?
        .list_workers(ListWorkersRequest {})
        .await
        .map_err(CallError::at(&options.url))?
        .into_inner();
    writeln!(out, "{:<32} {:>5} {:>7} state", "name", "slots", "running")?;
    for w in &r.workers {
        let state = if w.state.is_empty() {
            "never seen"
        } else {
            &w.state
        };
        writeln!(
            out,
            "{:<32} {:>5} {:>7} {state}",
            w.name, w.slots, w.running
        )?;
    }
    Ok(())
}

async fn enrolment(a: &EnrolmentArgs, out: &mut dyn Write) -> Result<(), WorkerCmdError> {
    let options = a.client.options()?;
    let r = options
        .admin_client()?
        .create_enrolment(CreateEnrolmentRequest {
            uses: a.uses,
            ttl_seconds: a.ttl_seconds,
            slots: a.slots,
        })
        .await
        .map_err(CallError::at(&options.url))?
        .into_inner();
    match &a.out {
        Some(path) => {
            write_secret(path, &r.token)?;
            writeln!(
                out,
                "enrolment token for {} node(s) written to {}",
                a.uses.max(1),
                path.display()
            )?;
        }
        None => writeln!(out, "{}", r.token)?,
    }
    Ok(())
}

async fn enrol(a: &EnrolArgs, out: &mut dyn Write) -> Result<(), WorkerCmdError> {
    // Checked before the call too, so that no use of the token is spent.
    if a.out.exists() {
        return Err(WorkerCmdError::Exists {
            path: a.out.clone(),
        });
    }
    let options = a.client.options()?;
    let hint = a.name_hint.clone().unwrap_or_else(host_name);
    let r = options
        .worker_client()?
        .enrol(EnrolRequest { name_hint: hint })
        .await
        .map_err(CallError::at(&options.url))?
        .into_inner();
    let c = r.credential.unwrap_or_default();
    deliver(&c, Some(&a.out), out)
}
