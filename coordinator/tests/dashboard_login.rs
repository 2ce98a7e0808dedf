//! The operator surfaces of the HTTP listener on real loopback sockets: the
//! login link (a session cookie, then no token in any URL), the Host check
//! against DNS rebinding, the cap on event streams, and HTTPS with the gRPC
//! listener's certificate (test material in tests/fixtures/tls).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use spikecv_coordinator::auth::Token;
use spikecv_coordinator::dashboard::{Dashboard, DashboardConfig};
use spikecv_coordinator::metrics::{self, MetricsSource};
use spikecv_coordinator::scheduler::{ManualClock, Scheduler, SchedulerSettings};
use spikecv_coordinator::server::TlsFiles;
use spikecv_coordinator::web::{self, AllowedHosts, HttpLimits, WebSecurity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "s3cret-token";

struct Listener {
    addr: SocketAddr,
    _dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    _stop: tokio::sync::watch::Sender<bool>,
}

/// The dashboard over an empty store behind the HTTP listener, with `limits`,
/// the extra host name `head-node.example` and TLS when `tls`.
fn listener(limits: HttpLimits, tls: bool) -> Listener {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    Scheduler::open(
        &db,
        SchedulerSettings::default(),
        Box::new(ManualClock::new(1_700_000_000_000)),
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let addr = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dash = Dashboard::start(
            DashboardConfig {
                state: db,
                tokens: vec![Token::new(TOKEN)],
                poll_interval: Duration::from_millis(50),
                http_port: addr.port(),
                tls,
                session_lifetime: spikecv_coordinator::dashboard::session::DEFAULT_LIFETIME,
                logouts_file: None,
            },
            stop_rx.clone(),
        );
        let source: MetricsSource = Arc::new(|| Box::pin(async { "up 1\n".to_owned() }));
        let router = metrics::router(source, Some(dash.router(&limits)), &limits);
        let security = WebSecurity {
            hosts: AllowedHosts::only(["head-node.example".to_owned()]),
            tls: tls.then(|| web::tls::acceptor(&tls_files()).unwrap()),
        };
        let mut stop = stop_rx.clone();
        tokio::spawn(web::serve_with(
            listener,
            router,
            limits,
            security,
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        ));
        addr
    });
    Listener {
        addr,
        _dir: dir,
        rt,
        _stop: stop_tx,
    }
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls")).join(name)
}

fn tls_files() -> TlsFiles {
    TlsFiles {
        cert: fixture("server.pem"),
        key: fixture("server.key"),
        client_ca: None,
    }
}

/// One plain GET with `Host: host`; returns (status, head, body).
fn get(addr: SocketAddr, host: &str, target: &str, headers: &str) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    split(&text)
}

fn split(text: &str) -> (u16, String, String) {
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, head.to_owned(), body.to_owned())
}

/// The `Cookie:` header line the login link's answer sets.
fn login(addr: SocketAddr) -> String {
    let host = addr.to_string();
    let (code, head, _) = get(addr, &host, &format!("/login?token={TOKEN}"), "");
    assert_eq!(code, 303, "{head}");
    assert!(head.contains("\r\nLocation: /\r\n"), "a clean URL: {head}");
    let set = head
        .lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: "))
        .unwrap();
    assert!(set.contains("; HttpOnly") && set.contains("; SameSite=Strict"));
    assert!(
        !set.contains(TOKEN),
        "the token itself is not the cookie: {set}"
    );
    format!("Cookie: {}\r\n", set.split(';').next().unwrap())
}

#[test]
fn the_login_link_sets_a_cookie_and_urls_carry_no_token() {
    let l = listener(HttpLimits::default(), false);
    let host = l.addr.to_string();
    // The page is public; the API needs the session.
    assert_eq!(get(l.addr, &host, "/", "").0, 200);
    let (code, _, body) = get(l.addr, &host, "/api/overview", "");
    assert_eq!(code, 401);
    assert!(body.contains("/login?token="), "{body}");
    // A token in an API URL is no longer accepted, nor a wrong one at login.
    let with_token = format!("/api/overview?token={TOKEN}");
    assert_eq!(get(l.addr, &host, &with_token, "").0, 401);
    let (code, head, _) = get(l.addr, &host, "/login?token=wrong", "");
    assert_eq!(code, 401);
    assert!(!head.contains("Set-Cookie"), "{head}");
    let cookie = login(l.addr);
    assert!(
        cookie.starts_with(&format!("Cookie: spikecv_session_{}=", l.addr.port())),
        "{cookie}"
    );
    let (code, _, body) = get(l.addr, &host, "/api/overview", &cookie);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("experiments"), "{body}");
    // A forged cookie and another port's cookie are refused.
    let forged = format!("Cookie: spikecv_session_{}=abc\r\n", l.addr.port());
    assert_eq!(get(l.addr, &host, "/api/overview", &forged).0, 401);
    let other = cookie.replace(&format!("_{}=", l.addr.port()), "_1=");
    assert_eq!(get(l.addr, &host, "/api/overview", &other).0, 401);
    // Scripts may still send the token as a bearer header.
    let bearer = format!("Authorization: Bearer {TOKEN}\r\n");
    assert_eq!(get(l.addr, &host, "/api/overview", &bearer).0, 200);
}

#[test]
fn requests_for_other_host_names_are_refused() {
    let l = listener(HttpLimits::default(), false);
    let cookie = login(l.addr);
    let port = l.addr.port();
    for ok in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "head-node.example:8080".to_owned(),
        "[::1]:1".to_owned(),
    ] {
        let (code, _, body) = get(l.addr, &ok, "/api/overview", &cookie);
        assert_eq!(code, 200, "Host {ok}: {body}");
    }
    for bad in [
        format!("rebind.evil.example:{port}"),
        "head-node.example.evil.example".to_owned(),
    ] {
        for target in [
            "/api/overview",
            "/api/events",
            "/",
            "/login?token=s3cret-token",
        ] {
            let (code, _, body) = get(l.addr, &bad, target, &cookie);
            assert_eq!(code, 403, "Host {bad} {target}: {body}");
            assert!(body.contains("--http-host"), "{body}");
        }
        // Prometheus scrapes under any name; the metrics hold no secret.
        assert_eq!(get(l.addr, &bad, "/metrics", "").0, 200);
    }
}

#[test]
fn event_streams_beyond_the_cap_are_refused_until_one_closes() {
    let limits = HttpLimits {
        max_event_streams: 2,
        ..HttpLimits::default()
    };
    let l = listener(limits, false);
    let cookie = login(l.addr);
    let open = |addr: SocketAddr| {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            s,
            "GET /api/events HTTP/1.1\r\nHost: {addr}\r\n{cookie}\r\n"
        )
        .unwrap();
        let mut r = BufReader::new(s);
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        (status, r)
    };
    let (first, a) = open(l.addr);
    let (second, _b) = open(l.addr);
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    let (third, mut c) = open(l.addr);
    assert!(third.starts_with("HTTP/1.1 429"), "{third}");
    let mut rest = String::new();
    c.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("the limit is 2"), "{rest}");
    // One closes: a new stream is accepted again (the server notices the
    // closed socket at its next write, a keep-alive at the latest).
    drop(a);
    let mut accepted = false;
    for _ in 0..100 {
        let (status, _r) = open(l.addr);
        if status.starts_with("HTTP/1.1 200") {
            accepted = true;
            break;
        }
        assert!(status.starts_with("HTTP/1.1 429"), "{status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(accepted, "no stream accepted after one closed");
}

#[test]
fn https_with_the_grpc_certificate_and_a_secure_cookie() {
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto};

    let l = listener(HttpLimits::default(), true);
    // Plain HTTP on the TLS listener gets no answer.
    let mut s = std::net::TcpStream::connect(l.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut plain = Vec::new();
    let _ = s.read_to_end(&mut plain);
    assert!(!plain.starts_with(b"HTTP/1.1 200"));

    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(fixture("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let addr = l.addr;
    let https_get = |target: String| {
        let connector = connector.clone();
        l.rt.block_on(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let mut tls = connector.connect(name, tcp).await.unwrap();
            let request = format!(
                "GET {target} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
                addr.port()
            );
            tls.write_all(request.as_bytes()).await.unwrap();
            let mut text = Vec::new();
            let _ = tls.read_to_end(&mut text).await;
            split(&String::from_utf8_lossy(&text))
        })
    };
    let (code, head, _) = https_get(format!("/login?token={TOKEN}"));
    assert_eq!(code, 303, "{head}");
    assert!(head.contains("; Secure"), "{head}");
    let (code, _, body) = https_get("/metrics".to_owned());
    assert_eq!((code, body.as_str()), (200, "up 1\n"));
}
