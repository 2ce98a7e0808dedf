//! Shared helpers of the HTTP listener tests: a real `coordinator serve
//! --http` process on a state database and token file, and raw HTTP/1.1
//! requests over loopback TCP (one per connection).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The failure bound of every wait (not a measure of speed).
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A `coordinator serve` process, killed when dropped.
pub struct Coordinator {
    child: Child,
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback address.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `coordinator serve --http WEB` on `state` with the token in `token_file`
/// and `extra` flags, once `/metrics` answers.
pub fn serve(state: &Path, token_file: &Path, web: SocketAddr, extra: &[&str]) -> Coordinator {
    let child = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args(["serve", "--state"])
        .arg(state)
        .args(["--listen", &free_addr().to_string()])
        .args(["--http", &web.to_string()])
        .arg("--token-file")
        .arg(token_file)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let c = Coordinator { child };
    let start = Instant::now();
    loop {
        if let Ok((200, _, _)) = try_get(web, "/metrics", "") {
            return c;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "serve never answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `raw` on a fresh connection and reads the answer to its end;
/// returns (status, head, body).
pub fn try_exchange(addr: SocketAddr, raw: &str) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(DEADLINE))?;
    s.write_all(raw.as_bytes())?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, head.to_owned(), body.to_owned()))
}

pub fn try_get(
    addr: SocketAddr,
    target: &str,
    headers: &str,
) -> std::io::Result<(u16, String, String)> {
    try_exchange(
        addr,
        &format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n"),
    )
}

pub fn get(addr: SocketAddr, target: &str, headers: &str) -> (u16, String, String) {
    try_get(addr, target, headers).unwrap()
}

pub fn post(addr: SocketAddr, target: &str, headers: &str, body: &str) -> (u16, String, String) {
    try_exchange(
        addr,
        &format!(
            "POST {target} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .unwrap()
}

/// The value of header `name` in `head` (case-insensitive name).
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
