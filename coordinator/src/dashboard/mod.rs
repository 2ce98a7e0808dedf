//! The web dashboard of `coordinator serve --http ADDR`: one page (HTML, JS and
//! CSS embedded in the binary; no build step, nothing fetched from elsewhere)
//! and the small JSON API it reads, on the same listener as `/metrics`.
//!
//! Routes (all `GET`, but the login form and the logout):
//! - `/`, `/app.js`, `/style.css`: the page (public: it holds no data).
//! - `/login`: the login page; `/login?token=SECRET`, the login link, and
//!   `POST /login` (the page's form) start a session; `POST /logout` ends it
//!   (see [`login`] and [`session`]).
//! - `/api/overview`: experiments (config, hash, job counts, wall time, ETA,
//!   throughput, the aggregate so far from REPORT's `build_report`) and workers.
//! - `/api/events`: server-sent events; an `overview` event (the same JSON) at
//!   connect and whenever the store changes (polled every second), and a
//!   keep-alive comment every 15 s. EventSource reconnects by itself. At most
//!   [`HttpLimits::max_event_streams`] at once (429 beyond).
//! - `/api/jobs?experiment=&state=&variant=&seed=&fold=&q=&sort=&dir=&offset=&limit=`:
//!   one page of the jobs table, rows as arrays (see [`jobs::COLUMNS`]).
//! - `/api/job?id=JOB`: one job with its learning curves.
//!
//! Authentication: when the coordinator has a token (the admin token, else the
//! worker token), every `/api/` request must carry the session cookie that the
//! login sets ([`session`]; it expires after its lifetime, 12 h by default,
//! and a logout ends it), or `Authorization: Bearer <token>`. A token in any
//! other URL is not accepted. Wrong guesses are limited per address
//! ([`login`]).
//!
//! Every read runs on a blocking thread over a read-only SQLite connection
//! (WAL lets it read while the scheduler writes), so no async task blocks on
//! the database and the scheduler thread never waits for the dashboard. The
//! routes are axum's ([`Dashboard::router`]), served by [`crate::web`] under
//! its limits; the API answers within the request timeout, the event stream
//! runs on.

pub mod http;
pub mod jobs;
mod login;
pub mod logouts;
pub mod overview;
mod routes;
pub mod session;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use rusqlite::Connection;
use tokio::sync::watch;

use crate::auth::Token;
use crate::metrics::HttpFallback;
use crate::report::from_store::{self, FromStoreError};
use crate::store::StoreError;
use crate::web::HttpLimits;

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
    /// The HTTP status this error answers with.
    pub fn status_code(&self) -> StatusCode {
        match self {
            DashboardError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            DashboardError::UnknownJob { .. } | DashboardError::UnknownExperiment { .. } => {
                StatusCode::NOT_FOUND
            }
            DashboardError::Store(
                FromStoreError::Missing { .. } | FromStoreError::NotAStore { .. },
            ) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The HTTP status line this error answers with, e.g. `404 Not Found`.
    pub fn status(&self) -> &'static str {
        match self.status_code() {
            StatusCode::BAD_REQUEST => "400 Bad Request",
            StatusCode::NOT_FOUND => "404 Not Found",
            StatusCode::SERVICE_UNAVAILABLE => "503 Service Unavailable",
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
    let lines = from_store::jobs_at(conn, &e.id, from_store::Depth::Live)?;
    let config =
        spikecv_common::experiment::config::ExperimentConfig::from_toml_str(&e.config_toml).ok();
    let epochs = config.as_ref().map(|c| c.training.epochs);
    let labels = config
        .and_then(|c| spikecv_common::experiment::configurations::configurations(&c).ok())
        .map(|list| list.into_iter().map(|c| c.label).collect())
        .unwrap_or_default();
    Ok(jobs::page(Some(e.id.clone()), epochs, labels, &lines, q))
}

/// One job with its learning curves.
pub fn job_detail(conn: &Connection, id: &str) -> Result<jobs::JobDetail, DashboardError> {
    let line = from_store::job(conn, id)?
        .ok_or_else(|| DashboardError::UnknownJob { job: id.to_owned() })?;
    Ok(jobs::detail(&line, &from_store::epochs(conn, id)?))
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
    /// The HTTP listener's port, part of the session cookie's name (0: none).
    pub http_port: u16,
    /// Whether the listener speaks TLS (the session cookie is then `Secure`).
    pub tls: bool,
    /// How long a login session lasts ([`session::DEFAULT_LIFETIME`]: 12 h).
    pub session_lifetime: Duration,
    /// Where logouts are kept over restarts (none: in memory only; see
    /// [`logouts`]).
    pub logouts_file: Option<PathBuf>,
}

struct Inner {
    state: PathBuf,
    sessions: session::Sessions,
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
                sessions: session::Sessions::new(
                    config.tokens,
                    config.http_port,
                    config.tls,
                    config.session_lifetime,
                    config
                        .logouts_file
                        .map_or_else(logouts::Logouts::in_memory, logouts::Logouts::load),
                ),
                snapshots: rx,
                stop,
            }),
        }
    }

    /// The dashboard's routes (page, API, event stream) with the default
    /// [`HttpLimits`], to give [`crate::metrics::serve_http`].
    pub fn fallback(&self) -> HttpFallback {
        self.router(&HttpLimits::default())
    }

    /// The dashboard's routes, API requests answered within
    /// `limits.request_timeout` (the event stream runs on).
    pub fn router(&self, limits: &HttpLimits) -> HttpFallback {
        routes::router(self.clone(), limits)
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
}

/// Resolves when `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
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
                if from_store::version(&conn)? == seen {
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
