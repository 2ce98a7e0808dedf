//! Small HTTP pieces of the dashboard: query-string decoding, the bearer token
//! and JSON answers.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Decodes a query-string component: `+` is a space, `%XX` (two hex digits)
/// a byte, anything else as it is (the `percent-encoding` crate's decoder;
/// invalid UTF-8 becomes U+FFFD).
pub fn percent_decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
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

/// The token of an `Authorization: Bearer <token>` header, if any.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let h = headers.get(header::AUTHORIZATION)?;
    let h = String::from_utf8_lossy(h.as_bytes());
    let t = h
        .strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("bearer "))
        .unwrap_or(&h);
    Some(t.trim().to_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_two_hex_digits_make_an_escape() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("%41%62"), "Ab");
        // `%+f` and `%-1` are not escapes (the hand decoder read them as 0x0f, 0xff).
        assert_eq!(percent_decode("%+f"), "% f");
        assert_eq!(percent_decode("%-1x"), "%-1x");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%C3%A9"), "é");
        assert_eq!(percent_decode("%FF"), "\u{fffd}");
        assert_eq!(
            query_pairs("id=a%2Fb&q=x+y&flag"),
            vec![
                ("id".to_owned(), "a/b".to_owned()),
                ("q".to_owned(), "x y".to_owned()),
                ("flag".to_owned(), String::new()),
            ]
        );
    }
}
