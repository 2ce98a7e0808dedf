//! Dashboard login without the token in any URL but the first: the operator
//! opens the login link `http(s)://HOST:PORT/login?token=SECRET` once (as a
//! notebook server's link); the answer sets an `HttpOnly`, `SameSite=Strict`
//! session cookie (`Secure` over TLS) and redirects (303) to `/`, a clean
//! URL. From then on the page, its API calls and its event stream carry only
//! the cookie. Scripts may send `Authorization: Bearer <token>` instead.
//!
//! The cookie's value is a SHA-256 of a fixed label and the token, so a
//! coordinator restarted with the same token accepts the sessions it had (an
//! open page reconnects), the token itself never sits in the browser, and
//! changing the token ends every session. Its name carries the listener's
//! port (`spikecv_session_8080`): cookies are per host, not per port, so two
//! coordinators on one host keep their sessions apart.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::http::{bearer_token, text};
use crate::auth::Token;
use crate::constant_time::constant_time_eq;

/// How the dashboard recognises a logged-in browser.
#[derive(Debug, Clone)]
pub struct Sessions {
    tokens: Vec<Token>,
    cookie_name: String,
    secure: bool,
}

impl Sessions {
    /// Sessions for `tokens` (none: the dashboard is open) on a listener at
    /// `port` (0: a cookie name without a port), the cookie marked `Secure`
    /// when `tls`.
    pub fn new(tokens: Vec<Token>, port: u16, tls: bool) -> Self {
        let cookie_name = if port == 0 {
            "spikecv_session".to_owned()
        } else {
            format!("spikecv_session_{port}")
        };
        Self {
            tokens,
            cookie_name,
            secure: tls,
        }
    }

    /// The session cookie's name.
    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }

    /// Whether a request with `headers` may read the API: no token is
    /// configured, or it carries one as a bearer token or a session cookie of
    /// one. Every token is compared, in constant time.
    pub fn authorized(&self, headers: &HeaderMap) -> bool {
        if self.tokens.is_empty() {
            return true;
        }
        if let Some(presented) = bearer_token(headers) {
            return self
                .tokens
                .iter()
                .fold(false, |ok, t| t.matches(presented.as_bytes()) | ok);
        }
        let cookies = cookie_values(headers, &self.cookie_name);
        self.tokens.iter().fold(false, |ok, t| {
            let want = session_value(t);
            cookies.iter().fold(false, |hit, c| {
                constant_time_eq(want.as_bytes(), c.as_bytes()) | hit
            }) | ok
        })
    }

    /// The answer to the login link carrying `token`: the session cookie and
    /// a redirect to `/`, or 401 when the token is wrong (a redirect without
    /// a cookie when the dashboard has no token).
    pub fn login(&self, token: Option<&str>) -> Response {
        if self.tokens.is_empty() {
            return redirect_home(None);
        }
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return text(
                StatusCode::UNAUTHORIZED,
                "the login link needs the coordinator's token: /login?token=YOUR_TOKEN\n",
            );
        };
        let hit =
            self.tokens
                .iter()
                .fold(None, |found, t| match t.matches(token.trim().as_bytes()) {
                    true => Some(t),
                    false => found,
                });
        let Some(t) = hit else {
            return text(StatusCode::UNAUTHORIZED, "wrong token in the login link\n");
        };
        let secure = if self.secure { "; Secure" } else { "" };
        let cookie = format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict{secure}",
            self.cookie_name,
            session_value(t)
        );
        redirect_home(HeaderValue::from_str(&cookie).ok())
    }
}

/// The session cookie's value for `token`.
fn session_value(token: &Token) -> String {
    let mut h = Sha256::new();
    h.update(b"spikecv dashboard session v1\0");
    h.update(token.expose().as_bytes());
    hex::encode(h.finalize())
}

/// The values of every cookie called `name` in the request's `Cookie` headers.
fn cookie_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
        .collect()
}

/// 303 to `/`, setting `cookie` when given.
fn redirect_home(cookie: Option<HeaderValue>) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    if let Some(c) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, c);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(value).unwrap_or_else(|e| panic!("{e}")),
        );
        h
    }

    #[test]
    fn the_login_cookie_opens_the_api_and_nothing_else_does() {
        let s = Sessions::new(vec![Token::new("s3cret")], 8080, true);
        let answer = s.login(Some("s3cret"));
        assert_eq!(answer.status(), StatusCode::SEE_OTHER);
        assert_eq!(answer.headers()[header::LOCATION], "/");
        let set = answer.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            set.contains("; HttpOnly") && set.contains("; SameSite=Strict"),
            "{set}"
        );
        assert!(set.contains("; Secure") && !set.contains("s3cret"), "{set}");
        let pair = set.split(';').next().unwrap_or_default();
        assert!(pair.starts_with("spikecv_session_8080="), "{pair}");
        assert!(s.authorized(&with_cookie(&format!("theme=dark; {pair}"))));
        // Another port's cookie, a forged value, nothing: refused.
        let other = pair.replace("_8080=", "_8081=");
        assert!(!s.authorized(&with_cookie(&other)));
        assert!(!s.authorized(&with_cookie("spikecv_session_8080=00ff")));
        assert!(!s.authorized(&HeaderMap::new()));
        // A wrong or missing token sets nothing.
        for bad in [Some("nope"), Some(""), None] {
            let r = s.login(bad);
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{bad:?}");
            assert!(r.headers().get(header::SET_COOKIE).is_none());
        }
        // Another token gives another session.
        let t = Sessions::new(vec![Token::new("other")], 8080, true);
        assert!(!t.authorized(&with_cookie(pair)));
    }
}
