//! Dashboard sessions without the token in any URL but the first: the operator
//! opens the login link `http(s)://HOST:PORT/login?token=SECRET` once (as a
//! notebook server's link), or types the token into the login page's form;
//! the answer sets an `HttpOnly`, `SameSite=Strict` session cookie (`Secure`
//! over TLS) with a `Max-Age` of the session's lifetime and redirects (303)
//! to `/`, a clean URL. From then on the page, its API calls and its event
//! stream carry only the cookie. Scripts may send
//! `Authorization: Bearer <token>` instead.
//!
//! A session is `ISSUED_MS.NONCE.MAC`: when it began (Unix milliseconds), 16
//! random bytes, and an HMAC-SHA256 of both keyed with the token. It is valid
//! for [`DEFAULT_LIFETIME`] (or the configured lifetime) from its start, so a
//! coordinator restarted with the same token keeps the sessions it had (an
//! open page reconnects), the token itself never sits in the browser, and
//! changing the token ends every session. Logging out (`POST /logout`)
//! records the session's nonce as ended ([`super::logouts`]) until it would
//! have expired; the record outlives a restart. The cookie's name carries the
//! listener's port (`spikecv_session_8080`): cookies are per host, not per
//! port, so two coordinators on one host keep their sessions apart.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::http::bearer_token;
use super::logouts::Logouts;
use super::now_ms;
use crate::auth::Token;
use crate::constant_time::constant_time_eq;

/// How long a session lasts unless configured otherwise: 12 hours.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// How far in the future a session's start may lie (clocks of restarted
/// coordinators differ a little).
const CLOCK_SKEW_MS: i64 = 60_000;

/// What a request's credentials are worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token is configured: the dashboard is open.
    Open,
    /// A valid session cookie.
    Session,
    /// A right bearer token.
    Bearer,
    /// A wrong bearer token.
    WrongBearer,
    /// A session cookie whose lifetime is over.
    Expired,
    /// A session cookie that was logged out.
    LoggedOut,
    /// No credentials, or a cookie that is not a session of this dashboard.
    None,
}

impl Access {
    /// Whether the request may read the API.
    pub fn allowed(self) -> bool {
        matches!(self, Access::Open | Access::Session | Access::Bearer)
    }
}

/// How the dashboard recognises a logged-in browser.
#[derive(Debug, Clone)]
pub struct Sessions {
    tokens: Vec<Token>,
    cookie_name: String,
    secure: bool,
    lifetime: Duration,
    logouts: Logouts,
}

/// A parsed session cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cookie {
    issued_ms: i64,
    nonce: String,
    mac: String,
}

impl Cookie {
    fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split('.');
        let issued_ms = parts.next()?.parse().ok()?;
        let nonce = parts.next().filter(|n| n.len() == 32 && is_hex(n))?;
        let mac = parts.next().filter(|m| m.len() == 64 && is_hex(m))?;
        parts.next().is_none().then(|| Cookie {
            issued_ms,
            nonce: nonce.to_owned(),
            mac: mac.to_owned(),
        })
    }
}

fn is_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl Sessions {
    /// Sessions for `tokens` (none: the dashboard is open) on a listener at
    /// `port` (0: a cookie name without a port), the cookie marked `Secure`
    /// when `tls`, each lasting `lifetime`, logouts kept in `logouts`.
    pub fn new(
        tokens: Vec<Token>,
        port: u16,
        tls: bool,
        lifetime: Duration,
        logouts: Logouts,
    ) -> Self {
        let cookie_name = if port == 0 {
            "spikecv_session".to_owned()
        } else {
            format!("spikecv_session_{port}")
        };
        Self {
            tokens,
            cookie_name,
            secure: tls,
            lifetime: lifetime.max(Duration::from_millis(1)),
            logouts,
        }
    }

    /// The session cookie's name.
    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }

    /// Whether any token is configured (else the dashboard is open).
    pub fn protected(&self) -> bool {
        !self.tokens.is_empty()
    }

    fn lifetime_ms(&self) -> i64 {
        i64::try_from(self.lifetime.as_millis()).unwrap_or(i64::MAX)
    }

    /// What the credentials of a request with `headers` are worth: a bearer
    /// token is checked first, then every session cookie of this listener.
    /// Every token is compared, in constant time.
    pub fn check(&self, headers: &HeaderMap) -> Access {
        if self.tokens.is_empty() {
            return Access::Open;
        }
        if let Some(presented) = bearer_token(headers) {
            return match self.token_matching(&presented) {
                Some(_) => Access::Bearer,
                None => Access::WrongBearer,
            };
        }
        let now = now_ms();
        let mut best = Access::None;
        for value in cookie_values(headers, &self.cookie_name) {
            let Some(cookie) = Cookie::parse(&value).filter(|c| self.signed(c)) else {
                continue;
            };
            let access = if cookie.issued_ms > now.saturating_add(CLOCK_SKEW_MS) {
                Access::None
            } else if now >= cookie.issued_ms.saturating_add(self.lifetime_ms()) {
                Access::Expired
            } else if self.logouts.contains(&cookie.nonce) {
                Access::LoggedOut
            } else {
                Access::Session
            };
            if access == Access::Session {
                return access;
            }
            if best == Access::None {
                best = access;
            }
        }
        best
    }

    /// The configured token `presented` is (compared with every one).
    pub fn token_matching(&self, presented: &str) -> Option<&Token> {
        let presented = presented.trim().as_bytes();
        self.tokens
            .iter()
            .fold(None, |found, t| match t.matches(presented) {
                true => Some(t),
                false => found,
            })
    }

    /// Whether `cookie`'s MAC is one of a configured token's.
    fn signed(&self, cookie: &Cookie) -> bool {
        self.tokens.iter().fold(false, |ok, t| {
            let want = mac(t, cookie.issued_ms, &cookie.nonce);
            constant_time_eq(want.as_bytes(), cookie.mac.as_bytes()) | ok
        })
    }

    /// The `Set-Cookie` value of a new session under `token`.
    pub fn begin(&self, token: &Token) -> Option<HeaderValue> {
        let issued_ms = now_ms();
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        let value = format!("{issued_ms}.{nonce}.{}", mac(token, issued_ms, &nonce));
        self.set_cookie(&value, self.lifetime.as_secs().max(1))
    }

    /// Ends the sessions of the request's cookies (recording them as logged
    /// out until they would have expired); the `Set-Cookie` value that
    /// removes the cookie from the browser.
    pub async fn end(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        for value in cookie_values(headers, &self.cookie_name) {
            if let Some(cookie) = Cookie::parse(&value).filter(|c| self.signed(c)) {
                let until = cookie.issued_ms.saturating_add(self.lifetime_ms());
                self.logouts.record(cookie.nonce, until).await;
            }
        }
        self.set_cookie("", 0)
    }

    fn set_cookie(&self, value: &str, max_age: u64) -> Option<HeaderValue> {
        let secure = if self.secure { "; Secure" } else { "" };
        let cookie = format!(
            "{}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}",
            self.cookie_name
        );
        HeaderValue::from_str(&cookie).ok()
    }
}

/// The MAC of a session begun at `issued_ms` with `nonce`, keyed with `token`.
fn mac(token: &Token, issued_ms: i64, nonce: &str) -> String {
    // HMAC takes a key of any length: this cannot fail.
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(token.expose().as_bytes()) else {
        return String::new();
    };
    m.update(b"spikecv dashboard session v2\0");
    m.update(issued_ms.to_string().as_bytes());
    m.update(b".");
    m.update(nonce.as_bytes());
    hex::encode(m.finalize().into_bytes())
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

    fn sessions(token: &str, lifetime: Duration) -> Sessions {
        Sessions::new(
            vec![Token::new(token)],
            8080,
            true,
            lifetime,
            Logouts::in_memory(),
        )
    }

    /// The `name=value` pair of a `Set-Cookie` value.
    fn pair(set: &HeaderValue) -> String {
        let set = set.to_str().unwrap_or_else(|e| panic!("{e}"));
        set.split(';').next().unwrap_or_default().to_owned()
    }

    #[test]
    fn a_session_opens_the_api_and_nothing_else_does() {
        let s = sessions("s3cret", DEFAULT_LIFETIME);
        let set = s.begin(&Token::new("s3cret")).unwrap_or_else(|| panic!());
        let text = set.to_str().unwrap_or_else(|e| panic!("{e}"));
        for attribute in [
            "; Path=/",
            "; Max-Age=43200",
            "; HttpOnly",
            "; SameSite=Strict",
            "; Secure",
        ] {
            assert!(text.contains(attribute), "{attribute} in {text}");
        }
        assert!(!text.contains("s3cret"), "{text}");
        let pair = pair(&set);
        assert!(pair.starts_with("spikecv_session_8080="), "{pair}");
        assert_eq!(
            s.check(&with_cookie(&format!("theme=dark; {pair}"))),
            Access::Session
        );
        // Another port's cookie, a forged MAC, an old-style value, nothing: refused.
        let other = pair.replace("_8080=", "_8081=");
        assert_eq!(s.check(&with_cookie(&other)), Access::None);
        let forged = format!("{}0", &pair[..pair.len() - 1]);
        let forged = if forged == pair {
            format!("{}1", &pair[..pair.len() - 1])
        } else {
            forged
        };
        assert_eq!(s.check(&with_cookie(&forged)), Access::None);
        assert_eq!(
            s.check(&with_cookie("spikecv_session_8080=00ff")),
            Access::None
        );
        assert_eq!(s.check(&HeaderMap::new()), Access::None);
        // Another token does not know the session.
        let t = sessions("other", DEFAULT_LIFETIME);
        assert_eq!(t.check(&with_cookie(&pair)), Access::None);
        // Bearer tokens: right and wrong.
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert_eq!(s.check(&h), Access::Bearer);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer nope"),
        );
        assert_eq!(s.check(&h), Access::WrongBearer);
    }

    #[test]
    fn a_session_expires_and_a_logout_ends_it() {
        let short = sessions("s3cret", Duration::from_millis(1));
        let set = short
            .begin(&Token::new("s3cret"))
            .unwrap_or_else(|| panic!());
        assert!(set.to_str().unwrap_or_default().contains("; Max-Age=1;"));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(short.check(&with_cookie(&pair(&set))), Access::Expired);

        let s = sessions("s3cret", DEFAULT_LIFETIME);
        let set = s.begin(&Token::new("s3cret")).unwrap_or_else(|| panic!());
        let headers = with_cookie(&pair(&set));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let cleared = rt.block_on(s.end(&headers)).unwrap_or_else(|| panic!());
        let cleared = cleared.to_str().unwrap_or_default();
        assert!(
            cleared.starts_with("spikecv_session_8080=;") && cleared.contains("; Max-Age=0;"),
            "{cleared}"
        );
        assert_eq!(s.check(&headers), Access::LoggedOut);
        // Another session of the same token lives on.
        let other = s.begin(&Token::new("s3cret")).unwrap_or_else(|| panic!());
        assert_eq!(s.check(&with_cookie(&pair(&other))), Access::Session);
    }
}
