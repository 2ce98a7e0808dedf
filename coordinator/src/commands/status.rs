//! `coordinator status`: one screen with jobs by state, workers (alive,
//! draining, lost), throughput and ETA; `--watch` redraws it from the
//! coordinator's Watch stream until Ctrl-C.

use std::fmt::Write as _;
use std::future::Future;
use std::io::Write;

use spikecv_common::proto::client::CallError;
use spikecv_common::proto::{StatusRequest, StatusResponse, WatchRequest};

use super::client_args::ClientArgs;

/// Flags of `coordinator status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The coordinator to ask.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Refresh the screen until Ctrl-C.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between refreshes with --watch.
    #[arg(long, default_value_t = 2.0)]
    pub interval: f64,
    /// Print one JSON object per snapshot instead of the screen.
    #[arg(long)]
    pub json: bool,
}

fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The status screen as text.
pub fn render(s: &StatusResponse) -> String {
    let mut out = String::new();
    let count = |state: &str| {
        s.jobs
            .iter()
            .find(|j| j.state == state)
            .map_or(0, |j| j.count)
    };
    let done = count("succeeded") + count("failed") + count("cancelled") + count("pruned");
    let _ = writeln!(out, "jobs: {done}/{} finished", s.total_jobs);
    let _ = writeln!(
        out,
        "  pending {}  leased {}  running {}  succeeded {}  failed {}  cancelled {}  pruned {}",
        count("pending"),
        count("leased"),
        count("running"),
        count("succeeded"),
        count("failed"),
        count("cancelled"),
        count("pruned")
    );
    let _ = writeln!(
        out,
        "throughput: {:.1} jobs/h   ETA: {}",
        s.jobs_per_hour,
        s.eta_seconds.map_or_else(|| "unknown".to_owned(), duration)
    );
    let by = |state: &str| s.workers.iter().filter(|w| w.state == state).count();
    let _ = writeln!(
        out,
        "workers: {} alive, {} draining, {} lost",
        by("alive"),
        by("draining"),
        by("lost")
    );
    if !s.workers.is_empty() {
        let _ = writeln!(
            out,
            "  {:<10} {:<28} {:<9} {:>5} {:>7} {:>9}",
            "id", "name", "state", "slots", "running", "last seen"
        );
        for w in &s.workers {
            let _ = writeln!(
                out,
                "  {:<10} {:<28} {:<9} {:>5} {:>7} {:>9}",
                w.worker_id,
                w.name,
                w.state,
                w.slots,
                w.running,
                duration(w.last_seen_seconds)
            );
        }
    }
    for w in s.workers.iter().filter(|w| !w.suspect.is_empty()) {
        let _ = writeln!(
            out,
            "SUSPECT: {} ({}): {}; no new leases until `coordinator worker clear {}`",
            w.name, w.worker_id, w.suspect, w.name
        );
    }
    for t in &s.waiting_for_trainers {
        let _ = writeln!(
            out,
            "WAITING: {} pending job(s) need trainer {:?}, which no live worker registered (`worker join --trainer {}=SCRIPT`)",
            t.jobs, t.trainer, t.trainer
        );
    }
    out
}

fn as_json(s: &StatusResponse) -> String {
    let jobs: serde_json::Map<String, serde_json::Value> = s
        .jobs
        .iter()
        .map(|j| (j.state.clone(), j.count.into()))
        .collect();
    let workers: Vec<serde_json::Value> = s
        .workers
        .iter()
        .map(|w| {
            serde_json::json!({"id": w.worker_id, "name": w.name, "host": w.host, "state": w.state,
                "slots": w.slots, "running": w.running, "last_seen_seconds": w.last_seen_seconds,
                "suspect": (!w.suspect.is_empty()).then_some(&w.suspect)})
        })
        .collect();
    let waiting: serde_json::Map<String, serde_json::Value> = s
        .waiting_for_trainers
        .iter()
        .map(|t| (t.trainer.clone(), t.jobs.into()))
        .collect();
    serde_json::json!({"jobs": jobs, "total_jobs": s.total_jobs, "workers": workers,
        "jobs_per_hour": s.jobs_per_hour, "eta_seconds": s.eta_seconds,
        "waiting_for_trainers": waiting})
    .to_string()
}

/// Prints the status once, or every `--interval` seconds with `--watch`.
pub async fn run(
    args: &StatusArgs,
    out: &mut dyn Write,
    stop: impl Future<Output = ()>,
) -> Result<(), CallError> {
    let options = args.client.options()?;
    let mut client = options.admin_client()?;
    let call_err = CallError::at(&options.url);
    if !args.watch {
        let s = client
            .status(StatusRequest {})
            .await
            .map_err(&call_err)?
            .into_inner();
        let text = if args.json {
            as_json(&s) + "\n"
        } else {
            render(&s)
        };
        out.write_all(text.as_bytes())?;
        return Ok(());
    }
    let interval_ms = (args.interval.clamp(0.1, 3600.0) * 1000.0) as u32;
    let mut stream = client
        .watch(WatchRequest { interval_ms })
        .await
        .map_err(&call_err)?
        .into_inner();
    tokio::pin!(stop);
    loop {
        let next = tokio::select! {
            () = &mut stop => return Ok(()),
            m = stream.message() => m.map_err(&call_err)?,
        };
        let Some(s) = next else { return Ok(()) };
        if args.json {
            writeln!(out, "{}", as_json(&s))?;
        } else {
            // Clear the screen and draw from the top.
            write!(out, "\x1b[2J\x1b[H{}", render(&s))?;
        }
        out.flush()?;
    }
}
