//! Small HTTP pieces the dashboard needs on top of the `/metrics` listener:
//! query-string decoding, token checks and writing a whole response.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::auth::Token;
use crate::metrics::RequestHead;

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
pub fn presented_token(req: &RequestHead) -> Option<String> {
    if let Some(h) = req.header("authorization") {
        let t = h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
            .unwrap_or(h);
        return Some(t.trim().to_owned());
    }
    query_pairs(&req.query)
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
}

/// Whether the request may read the API: no token configured, or it carries
/// one of them (every token is compared, in constant time).
pub fn authorized(tokens: &[Token], req: &RequestHead) -> bool {
    if tokens.is_empty() {
        return true;
    }
    let Some(presented) = presented_token(req) else {
        return false;
    };
    tokens
        .iter()
        .fold(false, |ok, t| t.matches(presented.as_bytes()) | ok)
}

/// Headers every dashboard response carries: no caching, no sniffing, no
/// referrer (the token may be in the URL), scripts and styles only from here.
const COMMON_HEADERS: &str = "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\
    Referrer-Policy: no-referrer\r\nX-Frame-Options: DENY\r\n\
    Content-Security-Policy: default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'\r\n";

/// Writes a whole response and closes the connection.
pub async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{COMMON_HEADERS}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}

/// Writes a JSON error `{"error": message}`.
pub async fn respond_error(
    stream: &mut TcpStream,
    status: &str,
    message: &str,
) -> std::io::Result<()> {
    let body = serde_json::json!({ "error": message }).to_string();
    respond(stream, status, "application/json", body.as_bytes()).await
}

/// Starts a server-sent-events response (the events follow).
pub async fn start_event_stream(stream: &mut TcpStream) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n{COMMON_HEADERS}\
         X-Accel-Buffering: no\r\nConnection: keep-alive\r\n\r\nretry: 1000\n\n"
    );
    stream.write_all(head.as_bytes()).await
}

/// Writes one event (`data` must be a single line, e.g. compact JSON).
pub async fn send_event(stream: &mut TcpStream, event: &str, data: &str) -> std::io::Result<()> {
    let text = format!("event: {event}\ndata: {data}\n\n");
    stream.write_all(text.as_bytes()).await?;
    stream.flush().await
}
