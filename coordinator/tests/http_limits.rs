//! The limits of the HTTP listener (`/metrics` and the dashboard) on a real
//! loopback socket: a slow answer is cut off with 503, a large body is refused
//! with 413, methods other than GET with 405, a slow request head is dropped,
//! and connections beyond the limit wait until one closes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spikecv_coordinator::metrics::{self, MetricsSource};
use spikecv_coordinator::web::{self, HttpLimits};

struct Server {
    addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// `/metrics` answering "ok\n" after `delay`, under `limits`.
fn server(delay: Duration, limits: HttpLimits) -> Server {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let addr = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let source: MetricsSource = Arc::new(move || {
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                "ok\n".to_owned()
            })
        });
        let router = metrics::router(source, None, &limits);
        tokio::spawn(web::serve(listener, router, limits, async {
            let _ = stopped.await;
        }));
        addr
    });
    Server {
        addr,
        _rt: rt,
        stop: Some(stop),
    }
}

/// Sends `request` and reads the whole answer (the server closes).
fn exchange(s: &mut TcpStream, request: &str) -> String {
    s.write_all(request.as_bytes()).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

fn status(text: &str) -> u16 {
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn get_metrics(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    exchange(&mut s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
}

#[test]
fn slow_answers_large_bodies_and_other_methods_are_refused() {
    let limits = HttpLimits {
        request_timeout: Duration::from_millis(300),
        max_body_bytes: 1024,
        ..HttpLimits::default()
    };
    let fast = server(Duration::ZERO, limits);
    let ok = get_metrics(fast.addr);
    assert_eq!(status(&ok), 200, "{ok}");
    assert!(ok.ends_with("\r\n\r\nok\n"), "{ok}");
    let head = ok.to_ascii_lowercase();
    for h in [
        "cache-control: no-store",
        "x-content-type-options: nosniff",
        "referrer-policy: no-referrer",
        "x-frame-options: deny",
        "content-security-policy: default-src 'self'",
        "connection: close",
    ] {
        assert!(head.contains(h), "no {h:?} in {ok}");
    }

    let mut s = TcpStream::connect(fast.addr).unwrap();
    let big = exchange(
        &mut s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n\r\n",
    );
    assert_eq!(status(&big), 413, "{big}");
    let mut s = TcpStream::connect(fast.addr).unwrap();
    let post = exchange(
        &mut s,
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status(&post), 405, "{post}");
    assert!(post.to_ascii_lowercase().contains("x-frame-options: deny"));
    let mut s = TcpStream::connect(fast.addr).unwrap();
    // (A name this machine answers to: other names are refused, see web::host.)
    let other = exchange(&mut s, "GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(status(&other), 404, "{other}");

    let slow = server(Duration::from_secs(30), limits);
    let start = Instant::now();
    let cut = get_metrics(slow.addr);
    assert_eq!(status(&cut), 503, "{cut}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "cut off after the request timeout, not after the answer: {:?}",
        start.elapsed()
    );
}

#[test]
fn a_slow_request_head_is_dropped_and_extra_connections_wait() {
    let limits = HttpLimits {
        max_connections: 1,
        head_timeout: Duration::from_millis(500),
        ..HttpLimits::default()
    };
    let srv = server(Duration::ZERO, limits);
    // The only connection slot, held by a client that sends half a head.
    let mut idle = TcpStream::connect(srv.addr).unwrap();
    idle.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    let start = Instant::now();
    let mut waiting = TcpStream::connect(srv.addr).unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    waiting
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0_u8; 64];
    let early = waiting.read(&mut buf);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "a second connection is not served while the first holds the only slot: {early:?}"
    );
    // The half head times out, its connection closes, and the waiting one is served.
    let mut rest = Vec::new();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = idle.read_to_end(&mut rest);
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut text = String::new();
    waiting.read_to_string(&mut text).unwrap();
    assert_eq!(status(&text), 200, "{text}");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(5),
        "served once the stalled head timed out (~500 ms): {waited:?}"
    );
}
