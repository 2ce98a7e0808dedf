//! The web dashboard of `coordinator serve --http ADDR`: one page (HTML, JS and
//! CSS embedded in the binary; no build step, nothing fetched from elsewhere)
//! and the small JSON API it reads, on the same listener as `/metrics`.
//!
//! Routes (all `GET`):
//! - `/`, `/app.js`, `/style.css`: the page (public: it holds no data).
//! - `/api/overview`: experiments (config, hash, job counts, wall time, ETA,
//!   throughput, the aggregate so far from REPORT's `build_report`) and workers.
//! - `/api/events`: server-sent events; an `overview` event (the same JSON) at
//!   connect and whenever the store changes (polled every second), and a
//!   keep-alive comment every 15 s. EventSource reconnects by itself.
//! - `/api/jobs?experiment=&state=&variant=&seed=&fold=&q=&sort=&dir=&offset=&limit=`:
//!   one page of the jobs table, rows as arrays (see [`jobs::COLUMNS`]).
//! - `/api/job?id=JOB`: one job with its learning curves.
//!
//! Authentication: when the coordinator has a token (the admin token, else the
//! worker token), every `/api/` request must carry it, as
//! `Authorization: Bearer <token>` or as a `token` query parameter (EventSource
//! cannot send headers). The page takes it from its URL
//! (`http://host:port/#token=SECRET`, the fragment never reaches a server log),
//! keeps it in the tab's sessionStorage and removes it from the address bar.
//!
//! Every read runs on a blocking thread over a read-only SQLite connection
//! (WAL lets it read while the scheduler writes), so no async task blocks on
//! the database and the scheduler thread never waits for the dashboard.

pub mod http;
pub mod jobs;
pub mod overview;
pub mod queries;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::auth::Token;
use crate::metrics::{HttpFallback, RequestHead};
use crate::report::from_store::{self, FromStoreError};
use crate::store::StoreError;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// Seconds between keep-alive comments on an idle event stream.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// Why a dashboard request could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The store could not be opened or read.
    #[error(transparent)]
    Store(#[from] FromStoreError),
    /// A store row did not parse.
    #[error(transparent)]
    Rows(#[from] StoreError),
    /// A query failed.
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value does not parse.
    #[error("state database: {table} row {key}: column {column}: {message}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's key.
        key: String,
        /// The column.
        column: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A query parameter is malformed.
    #[error("query parameter {param}={value:?}: {message}")]
    BadRequest {
        /// The parameter.
        param: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        message: String,
    },
    /// No such job.
    #[error("job {job:?} is not in the state database")]
    UnknownJob {
        /// The id asked for.
        job: String,
    },
    /// No such experiment.
    #[error("experiment {experiment:?} is not in the state database")]
    UnknownExperiment {
        /// The id asked for.
        experiment: String,
    },
    /// The blocking reader thread failed.
    #[error("the dashboard's reader thread failed: {message}")]
    Reader {
        /// The join error.
        message: String,
    },
}

impl DashboardError {
    /// The HTTP status line this error answers with.
    pub fn status(&self) -> &'static str {
        match self {
            DashboardError::BadRequest { .. } => "400 Bad Request",
            DashboardError::UnknownJob { .. } | DashboardError::UnknownExperiment { .. } => {
                "404 Not Found"
            }
            DashboardError::Store(
                FromStoreError::Missing { .. } | FromStoreError::NotAStore { .. },
            ) => "503 Service Unavailable",
            _ => "500 Internal Server Error",
        }
    }
}

/// One page of the jobs table of `q.experiment` (default: the newest one).
pub fn jobs_page(conn: &Connection, q: &jobs::JobsQuery) -> Result<jobs::JobsPage, DashboardError> {
    let experiments = from_store::experiments(conn)?;
    let experiment = match &q.experiment {
        Some(id) => Some(experiments.iter().find(|e| &e.id == id).ok_or_else(|| {
            DashboardError::UnknownExperiment {
                experiment: id.clone(),
            }
        })?),
        None => experiments.last(),
    };
    let Some(e) = experiment else {
        return Ok(jobs::page(None, None, Vec::new(), &[], q));
    };
    let lines = queries::experiment_jobs(conn, &e.id)?;
    let config = spikecv_common::config::ExperimentConfig::from_toml_str(&e.config_toml).ok();
    let epochs = config.as_ref().map(|c| c.training.epochs);
    let labels = config
        .and_then(|c| spikecv_common::sweep::configurations(&c).ok())
        .map(|list| list.into_iter().map(|c| c.label).collect())
        .unwrap_or_default();
    Ok(jobs::page(Some(e.id.clone()), epochs, labels, &lines, q))
}

/// One job with its learning curves.
pub fn job_detail(conn: &Connection, id: &str) -> Result<jobs::JobDetail, DashboardError> {
    let line =
        queries::job(conn, id)?.ok_or_else(|| DashboardError::UnknownJob { job: id.to_owned() })?;
    Ok(jobs::detail(&line, &queries::epochs(conn, id)?))
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// How the dashboard runs.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// The state database (read-only here).
    pub state: PathBuf,
    /// Tokens accepted on `/api/` (empty: open).
    pub tokens: Vec<Token>,
    /// How often the store is checked for changes to push.
    pub poll_interval: Duration,
}

struct Inner {
    state: PathBuf,
    tokens: Vec<Token>,
    snapshots: watch::Receiver<Option<Arc<str>>>,
    stop: watch::Receiver<bool>,
}

/// The dashboard: routes and the change poller (cheap to clone).
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("state", &self.inner.state)
            .finish_non_exhaustive()
    }
}

impl Dashboard {
    /// Starts the change poller (on the current tokio runtime); it and every
    /// event stream end when `stop` turns true.
    pub fn start(config: DashboardConfig, stop: watch::Receiver<bool>) -> Self {
        let (tx, rx) = watch::channel(None);
        tokio::spawn(poll(
            config.state.clone(),
            tx,
            config.poll_interval,
            stop.clone(),
        ));
        Self {
            inner: Arc::new(Inner {
                state: config.state,
                tokens: config.tokens,
                snapshots: rx,
                stop,
            }),
        }
    }

    /// The handler to give [`crate::metrics::serve_http`].
    pub fn fallback(&self) -> HttpFallback {
        let this = self.clone();
        Arc::new(move |req, stream| {
            let this = this.clone();
            Box::pin(async move { this.handle(req, stream).await })
        })
    }

    /// Runs `f` over a read-only connection on a blocking thread.
    pub async fn read<T, F>(&self, f: F) -> Result<T, DashboardError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, DashboardError> + Send + 'static,
    {
        let state = self.inner.state.clone();
        tokio::task::spawn_blocking(move || f(&from_store::open_read_only(&state)?))
            .await
            .map_err(|e| DashboardError::Reader {
                message: e.to_string(),
            })?
    }

    /// Answers one request (anything but `GET /metrics`).
    pub async fn handle(&self, req: RequestHead, mut stream: TcpStream) -> std::io::Result<()> {
        if req.method != "GET" {
            return http::respond(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain; charset=utf-8",
                b"GET only\n",
            )
            .await;
        }
        let asset = match req.path.as_str() {
            "/" | "/index.html" => Some(("text/html; charset=utf-8", INDEX_HTML)),
            "/app.js" => Some(("text/javascript; charset=utf-8", APP_JS)),
            "/style.css" => Some(("text/css; charset=utf-8", STYLE_CSS)),
            _ => None,
        };
        if let Some((content_type, body)) = asset {
            return http::respond(&mut stream, "200 OK", content_type, body.as_bytes()).await;
        }
        if !req.path.starts_with("/api/") {
            return http::respond(
                &mut stream,
                "404 Not Found",
                "text/plain; charset=utf-8",
                b"not found\n",
            )
            .await;
        }
        if !http::authorized(&self.inner.tokens, &req) {
            return http::respond_error(
                &mut stream,
                "401 Unauthorized",
                "this dashboard needs the coordinator's token",
            )
            .await;
        }
        let pairs = http::query_pairs(&req.query);
        let answer: Result<String, DashboardError> =
            match req.path.as_str() {
                "/api/events" => return self.events(stream).await,
                "/api/overview" => {
                    self.read(|c| {
                        Ok(serde_json::to_string(&overview::overview(c, now_ms())?)
                            .unwrap_or_default())
                    })
                    .await
                }
                "/api/jobs" => match jobs::JobsQuery::from_pairs(&pairs) {
                    Ok(q) => {
                        self.read(move |c| {
                            Ok(serde_json::to_string(&jobs_page(c, &q)?).unwrap_or_default())
                        })
                        .await
                    }
                    Err(e) => Err(e),
                },
                "/api/job" => {
                    let id = pairs
                        .into_iter()
                        .find(|(k, _)| k == "id")
                        .map(|(_, v)| v)
                        .unwrap_or_default();
                    self.read(move |c| {
                        Ok(serde_json::to_string(&job_detail(c, &id)?).unwrap_or_default())
                    })
                    .await
                }
                _ => {
                    return http::respond_error(&mut stream, "404 Not Found", "no such API route")
                        .await;
                }
            };
        match answer {
            Ok(body) => {
                http::respond(&mut stream, "200 OK", "application/json", body.as_bytes()).await
            }
            Err(e) => {
                tracing::debug!(path = %req.path, error = %e, "dashboard request failed");
                http::respond_error(&mut stream, e.status(), &e.to_string()).await
            }
        }
    }

    /// The event stream: the latest overview now and on every change.
    async fn events(&self, mut stream: TcpStream) -> std::io::Result<()> {
        http::start_event_stream(&mut stream).await?;
        let mut snapshots = self.inner.snapshots.clone();
        let mut stop = self.inner.stop.clone();
        let mut send = true;
        loop {
            if send {
                let current = snapshots.borrow_and_update().clone();
                if let Some(json) = current {
                    http::send_event(&mut stream, "overview", &json).await?;
                }
            }
            tokio::select! {
                () = stopped(&mut stop) => return Ok(()),
                changed = snapshots.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    send = true;
                }
                () = tokio::time::sleep(KEEPALIVE) => {
                    stream.write_all(b": keep-alive\n\n").await?;
                    send = false;
                }
            }
        }
    }
}

/// Resolves when `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Publishes a new overview whenever the store's version changes.
async fn poll(
    state: PathBuf,
    tx: watch::Sender<Option<Arc<str>>>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = String::new();
    let mut failing = false;
    loop {
        tokio::select! {
            () = stopped(&mut stop) => return,
            _ = tick.tick() => {}
        }
        let (path, seen) = (state.clone(), last.clone());
        let polled = tokio::task::spawn_blocking(
            move || -> Result<Option<(String, String)>, DashboardError> {
                let conn = from_store::open_read_only(&path)?;
                if queries::version(&conn)? == seen {
                    return Ok(None);
                }
                let o = overview::overview(&conn, now_ms())?;
                let json = serde_json::to_string(&o).unwrap_or_default();
                Ok(Some((o.version, json)))
            },
        )
        .await
        .map_err(|e| DashboardError::Reader {
            message: e.to_string(),
        })
        .and_then(|r| r);
        match polled {
            Ok(Some((version, json))) => {
                last = version;
                failing = false;
                tx.send_replace(Some(json.into()));
            }
            Ok(None) => {}
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "dashboard cannot read the state database");
                    let json = serde_json::json!({ "error": e.to_string(), "now_ms": now_ms() })
                        .to_string();
                    tx.send_replace(Some(json.into()));
                }
                failing = true;
                last.clear();
            }
        }
    }
}
