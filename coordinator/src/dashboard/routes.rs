//! The dashboard's axum routes: the page, the token-checked JSON API and the
//! server-sent-event stream (see the parent module for what each answers).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::http::{self, json, json_error, text};
use super::session::Access;
use super::{
    Dashboard, DashboardError, job_detail, jobs, jobs_page, login, now_ms, overview, stopped,
};
use crate::web::rate::PeerBuckets;
use crate::web::{self, HttpLimits, PeerAddr, timed};

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// Time between keep-alive comments on an idle event stream.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// The routes of `dashboard`.
pub(super) fn router(dashboard: Dashboard, limits: &HttpLimits) -> Router {
    let streams = EventStreams {
        open: Arc::new(Semaphore::new(limits.max_event_streams)),
        limit: limits.max_event_streams,
    };
    let api = Router::new()
        .route("/api/overview", timed(api_overview, limits))
        .route("/api/jobs", timed(api_jobs, limits))
        .route("/api/job", timed(api_job, limits))
        // No timeout: the stream runs until the client or the server stops.
        .route(
            "/api/events",
            get(move |state: State<Dashboard>| api_events(state, streams.clone())),
        )
        .route_layer(middleware::from_fn_with_state(
            dashboard.clone(),
            require_token,
        ));
    Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", INDEX_HTML)))
        .route(
            "/index.html",
            get(|| asset("text/html; charset=utf-8", INDEX_HTML)),
        )
        .route(
            "/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/style.css",
            get(|| asset("text/css; charset=utf-8", STYLE_CSS)),
        )
        .route(
            "/login",
            get(login::login_get)
                .post(login::login_post)
                .layer(web::timeout(limits)),
        )
        .route("/logout", post(login::logout).layer(web::timeout(limits)))
        .merge(api)
        .fallback(not_found)
        .layer(Extension(PeerBuckets::new(
            limits.login_burst,
            limits.login_interval,
        )))
        .with_state(dashboard)
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The 401 answer for `access` (which is not allowed), saying why.
fn unauthorized(access: Access) -> Response {
    let message = match access {
        Access::Expired => {
            "your dashboard session has expired: log in again at /login \
             (or open the login link /login?token=YOUR_TOKEN)"
        }
        Access::LoggedOut => "this dashboard session was logged out: log in again at /login",
        Access::WrongBearer => "wrong bearer token",
        _ => {
            "this dashboard needs the coordinator's token: log in at /login, or open its \
             login link /login?token=YOUR_TOKEN once (or send Authorization: Bearer)"
        }
    };
    json_error(StatusCode::UNAUTHORIZED, message)
}

/// What a request's credentials are worth; a bearer token only while its
/// address has attempts left (see [`login`]): `Err` is the time until it has.
fn access(
    d: &Dashboard,
    buckets: &PeerBuckets,
    peer: Option<&PeerAddr>,
    headers: &HeaderMap,
) -> Result<Access, Duration> {
    let sessions = &d.inner.sessions;
    if !sessions.protected() || http::bearer_token(headers).is_none() {
        return Ok(sessions.check(headers));
    }
    let taken = buckets.take(peer)?;
    let access = sessions.check(headers);
    if access.allowed() {
        buckets.give_back(taken);
    }
    Ok(access)
}

/// Lets a request through to the API only with a session cookie or a bearer
/// token (when a token is set); a token in the URL does not count.
async fn require_token(
    State(d): State<Dashboard>,
    Extension(buckets): Extension<PeerBuckets>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request.extensions().get::<PeerAddr>().copied();
    match access(&d, &buckets, peer.as_ref(), request.headers()) {
        Ok(a) if a.allowed() => next.run(request).await,
        Ok(a) => unauthorized(a),
        Err(wait) => login::too_many(wait, true),
    }
}

/// Anything else: under `/api/`, 401 without the token, else a JSON 404; a
/// plain 404 elsewhere.
async fn not_found(
    State(d): State<Dashboard>,
    Extension(buckets): Extension<PeerBuckets>,
    peer: Option<Extension<PeerAddr>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if !uri.path().starts_with("/api/") {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    match access(&d, &buckets, peer.as_deref(), &headers) {
        Ok(a) if a.allowed() => json_error(StatusCode::NOT_FOUND, "no such API route"),
        Ok(a) => unauthorized(a),
        Err(wait) => login::too_many(wait, true),
    }
}

/// A JSON answer of `value`, or the error's status and message.
fn answer<T: serde::Serialize>(path: &str, value: Result<T, DashboardError>) -> Response {
    match value.and_then(|v| {
        serde_json::to_string(&v).map_err(|e| DashboardError::Reader {
            message: format!("cannot encode the answer: {e}"),
        })
    }) {
        Ok(body) => json(StatusCode::OK, body),
        Err(e) => {
            tracing::debug!(%path, error = %e, "dashboard request failed");
            json_error(e.status_code(), &e.to_string())
        }
    }
}

async fn api_overview(State(d): State<Dashboard>) -> Response {
    let o = d.read(|c| overview::overview(c, now_ms())).await;
    answer("/api/overview", o)
}

async fn api_jobs(State(d): State<Dashboard>, RawQuery(query): RawQuery) -> Response {
    let pairs = http::query_pairs(query.as_deref().unwrap_or(""));
    let page = match jobs::JobsQuery::from_pairs(&pairs) {
        Ok(q) => d.read(move |c| jobs_page(c, &q)).await,
        Err(e) => Err(e),
    };
    answer("/api/jobs", page)
}

async fn api_job(State(d): State<Dashboard>, RawQuery(query): RawQuery) -> Response {
    let id = http::query_pairs(query.as_deref().unwrap_or(""))
        .into_iter()
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v)
        .unwrap_or_default();
    let detail = d.read(move |c| job_detail(c, &id)).await;
    answer("/api/job", detail)
}

/// One server-sent event (`data` is a single line, e.g. compact JSON).
fn event(name: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// The cap on open event streams: each holds a permit until it ends.
#[derive(Clone)]
struct EventStreams {
    open: Arc<Semaphore>,
    limit: usize,
}

/// The event stream: the latest overview now and on every change, a
/// keep-alive comment when idle, until the dashboard stops. Beyond
/// [`HttpLimits::max_event_streams`] open streams, 429 naming the limit.
async fn api_events(State(d): State<Dashboard>, streams: EventStreams) -> Response {
    let Ok(permit) = streams.open.try_acquire_owned() else {
        let message = format!(
            "too many dashboard event streams open (the limit is {}); close a dashboard tab",
            streams.limit
        );
        return json_error(StatusCode::TOO_MANY_REQUESTS, &message);
    };
    let start = futures::stream::once(async {
        Ok::<_, Infallible>(Bytes::from_static(b"retry: 1000\n\n"))
    });
    let state = (
        d.inner.snapshots.clone(),
        d.inner.stop.clone(),
        true,
        permit,
    );
    let events = futures::stream::unfold(
        state,
        |(mut snapshots, mut stop, mut send, permit)| async move {
            let permit: OwnedSemaphorePermit = permit;
            loop {
                if send {
                    let current = snapshots.borrow_and_update().clone();
                    if let Some(json) = current {
                        let chunk = event("overview", &json);
                        return Some((Ok(chunk), (snapshots, stop, false, permit)));
                    }
                }
                tokio::select! {
                    () = stopped(&mut stop) => return None,
                    changed = snapshots.changed() => {
                        if changed.is_err() {
                            return None;
                        }
                        send = true;
                    }
                    () = tokio::time::sleep(KEEPALIVE) => {
                        let chunk = Bytes::from_static(b": keep-alive\n\n");
                        return Some((Ok(chunk), (snapshots, stop, false, permit)));
                    }
                }
            }
        },
    );
    (
        [
            (header::CONTENT_TYPE, "text/event-stream; charset=utf-8"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(start.chain(events)),
    )
        .into_response()
}
