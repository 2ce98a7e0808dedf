//! The dashboard's door: the login page and link, the logout, and the
//! per-address limit on guessing the token ([`crate::web::rate`]).
//!
//! - `GET /login`: the login page, a form that posts the token (so it sits in
//!   no URL or history).
//! - `GET /login?token=SECRET` (the login link) and `POST /login` (the form,
//!   `token=SECRET`): a session cookie and a redirect to `/` (303); a wrong
//!   token gets the login page again with 401.
//! - `POST /logout`: ends the session on the server (it is refused from then
//!   on, see [`super::session`]), removes the cookie and redirects to the
//!   login page. A `POST`, not a `GET`, so that no link, image or prefetch
//!   can log anyone out; and the `SameSite=Strict` cookie is not sent with a
//!   request from another site, so another site cannot end a session either.
//!   A form posted from another origin (its `Sec-Fetch-Site` says so, or,
//!   without it, its `Origin`) is refused with 403 on both paths.
//!
//! Every login attempt, and every API request with a bearer token, takes a
//! token of its address's bucket before the secret is compared; a right
//! secret gives it back. An address out of tokens is answered 429 with
//! `Retry-After`, right secret or not.

use axum::extract::{Extension, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Dashboard;
use super::http::{self, text};
use crate::web::PeerAddr;
use crate::web::rate::{PeerBuckets, retry_after_seconds};

const LOGIN_HTML: &str = include_str!("assets/login.html");

/// The login page, with `notice` (a fixed text, never a request's) above the form.
fn login_page(status: StatusCode, notice: Option<&'static str>) -> Response {
    let body = match notice {
        Some(n) => LOGIN_HTML.replace("<!--notice-->", &format!("<p class=\"notice\">{n}</p>")),
        None => LOGIN_HTML.to_owned(),
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// 303 to `to`, setting `cookie` when given.
fn redirect(to: &'static str, cookie: Option<HeaderValue>) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    if let Some(c) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, c);
    }
    response
}

/// 429 with `Retry-After` for an address out of attempts; `json` for the API.
pub(super) fn too_many(wait: std::time::Duration, json: bool) -> Response {
    let seconds = retry_after_seconds(wait);
    let message =
        format!("too many wrong tokens from this address; try again in {seconds} s (Retry-After)");
    let mut response = if json {
        http::json_error(StatusCode::TOO_MANY_REQUESTS, &message)
    } else {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            message + "\n",
        )
            .into_response()
    };
    if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// Whether a form post comes from another site: its `Sec-Fetch-Site` says
/// so, or (from a browser that does not send it) its `Origin` is not this
/// listener's (`Host`) origin. `Origin: null` says nothing: browsers send it
/// for a same-origin form under the page's `Referrer-Policy: no-referrer`.
fn cross_site(headers: &HeaderMap) -> bool {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = value("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    match (value("origin").filter(|o| *o != "null"), value("host")) {
        (None, _) => false,
        (Some(origin), Some(host)) => {
            let authority = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            authority.is_none_or(|a| !a.eq_ignore_ascii_case(host))
        }
        (Some(_), None) => true,
    }
}

/// A login attempt with `token` from `peer`.
fn attempt(d: &Dashboard, buckets: &PeerBuckets, peer: Option<&PeerAddr>, token: &str) -> Response {
    let sessions = &d.inner.sessions;
    if !sessions.protected() {
        return redirect("/", None);
    }
    let taken = match buckets.take(peer) {
        Ok(t) => t,
        Err(wait) => return too_many(wait, false),
    };
    match sessions.token_matching(token) {
        Some(t) => {
            buckets.give_back(taken);
            redirect("/", sessions.begin(t))
        }
        None => login_page(
            StatusCode::UNAUTHORIZED,
            Some("Wrong token: the coordinator does not accept it."),
        ),
    }
}

/// `GET /login`: the page, or the login link's attempt.
pub(super) async fn login_get(
    State(d): State<Dashboard>,
    Extension(buckets): Extension<PeerBuckets>,
    peer: Option<Extension<PeerAddr>>,
    RawQuery(query): RawQuery,
) -> Response {
    let token = http::query_pairs(query.as_deref().unwrap_or(""))
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v);
    match token {
        None if d.inner.sessions.protected() => login_page(StatusCode::OK, None),
        None => redirect("/", None),
        Some(t) if t.trim().is_empty() => login_page(
            StatusCode::UNAUTHORIZED,
            Some("The login link needs the coordinator's token: /login?token=YOUR_TOKEN"),
        ),
        Some(t) => attempt(&d, &buckets, peer.as_deref(), &t),
    }
}

/// `POST /login`: the form's attempt (`token=…`, form-encoded).
pub(super) async fn login_post(
    State(d): State<Dashboard>,
    Extension(buckets): Extension<PeerBuckets>,
    peer: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if cross_site(&headers) {
        return text(StatusCode::FORBIDDEN, "a login form from another site\n");
    }
    let token = http::query_pairs(&body)
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
        .unwrap_or_default();
    attempt(&d, &buckets, peer.as_deref(), &token)
}

/// `POST /logout`: ends the request's session, to the login page.
pub(super) async fn logout(State(d): State<Dashboard>, headers: HeaderMap) -> Response {
    if cross_site(&headers) {
        return text(StatusCode::FORBIDDEN, "a logout from another site\n");
    }
    let cleared = d.inner.sessions.end(&headers).await;
    redirect("/login", cleared)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn posts_from_another_origin_are_told_apart() {
        assert!(!cross_site(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(!cross_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(cross_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example"),
        ])));
        assert!(cross_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "cross-site"),
        ])));
        assert!(cross_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-site"),
        ])));
        // What Chromium sends for the login page's own form (no-referrer).
        assert!(!cross_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null"),
            ("sec-fetch-site", "same-origin"),
        ])));
    }
}
