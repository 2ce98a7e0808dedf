//! Small HTTP pieces of the dashboard: query-string decoding, token checks and
//! JSON answers.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::Token;

/// Decodes `%XX` escapes and `+` (a space) of a query-string component; bad
/// escapes are kept as they are.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded `key=value` pairs of a query string.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// The token a request carries: `Authorization: Bearer <token>`, or a `token`
/// query parameter (EventSource cannot set headers).
pub fn presented_token(headers: &HeaderMap, query: &str) -> Option<String> {
    if let Some(h) = headers.get(header::AUTHORIZATION) {
        let h = String::from_utf8_lossy(h.as_bytes());
        let t = h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
            .unwrap_or(&h);
        return Some(t.trim().to_owned());
    }
    query_pairs(query)
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
}

/// Whether a request with `headers` and `query` may read the API: no token
/// configured, or it carries one of them (every token is compared, in
/// constant time).
pub fn authorized(tokens: &[Token], headers: &HeaderMap, query: &str) -> bool {
    if tokens.is_empty() {
        return true;
    }
    let Some(presented) = presented_token(headers, query) else {
        return false;
    };
    tokens
        .iter()
        .fold(false, |ok, t| t.matches(presented.as_bytes()) | ok)
}

/// A JSON answer.
pub fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A JSON error `{"error": message}`.
pub fn json_error(status: StatusCode, message: &str) -> Response {
    json(status, serde_json::json!({ "error": message }).to_string())
}

/// A plain-text answer.
pub fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}
