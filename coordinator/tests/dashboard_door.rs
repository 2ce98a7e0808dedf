//! The dashboard's door on a real `coordinator serve --http` process, over raw
//! loopback TCP: sessions that expire and a logout that ends them (also over a
//! restart), the login rate limit per address (a burst of 100 wrong guesses
//! is cut to a few, `/metrics` answering throughout, the right token working
//! after `Retry-After`), and an idle crowd of 300 connections that cannot
//! block `/metrics` or the page: neither with the default limits, nor on a
//! listener in this process whose request-head timeout (60 s) would leave
//! the crowd its places for longer than the test's deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_support;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_support::{Coordinator, DEADLINE, free_addr, get, header, post, serve};
use spikecv_coordinator::metrics::{self, MetricsSource};
use spikecv_coordinator::web::{self, HttpLimits};

const TOKEN: &str = "door-test-token";

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
        Dir { dir }
    }

    /// `coordinator serve --http` on this directory's state with `extra` flags.
    fn serve(&self, web: SocketAddr, extra: &[&str]) -> Coordinator {
        let d = self.dir.path();
        serve(&d.join("state.db"), &d.join("token"), web, extra)
    }
}

/// The `Set-Cookie` of a 303 login answer, checked for its attributes.
fn session_cookie(answer: &(u16, String, String), max_age: &str) -> String {
    let (code, head, _) = answer;
    assert_eq!(*code, 303, "{head}");
    assert_eq!(header(head, "Location"), Some("/"), "{head}");
    let set = header(head, "Set-Cookie").unwrap();
    for attribute in [
        "; Path=/",
        &format!("; Max-Age={max_age}"),
        "; HttpOnly",
        "; SameSite=Strict",
    ] {
        assert!(set.contains(attribute), "no {attribute:?} in {set}");
    }
    assert!(!set.contains("; Secure"), "plain HTTP: {set}");
    assert!(!set.contains(TOKEN), "{set}");
    format!("Cookie: {}\r\n", set.split(';').next().unwrap())
}

#[test]
fn sessions_expire_and_a_logout_ends_them_over_a_restart() {
    let dir = Dir::new();
    // A tiny lifetime: 0.0005 h = 1.8 s (Max-Age rounds down to 1).
    let web = free_addr();
    let short = dir.serve(web, &["--dashboard-session-hours", "0.0005"]);
    let login = get(web, &format!("/login?token={TOKEN}"), "");
    let cookie = session_cookie(&login, "1");
    std::thread::sleep(Duration::from_millis(2500));
    let (code, _, body) = get(web, "/api/overview", &cookie);
    assert_eq!(code, 401, "{body}");
    assert!(
        body.contains("expired") && body.contains("/login"),
        "{body}"
    );
    // The login page is where an expired session leads.
    let (code, head, page) = get(web, "/login", "");
    assert_eq!(code, 200, "{head}");
    assert!(
        page.contains("<form method=\"post\" action=\"/login\">"),
        "{page}"
    );
    drop(short);

    // The default lifetime (12 h), a login by the page's form.
    let web = free_addr();
    let first = dir.serve(web, &[]);
    let form = post(web, "/login", "", &format!("token={TOKEN}"));
    let cookie = session_cookie(&form, "43200");
    assert_eq!(get(web, "/api/overview", &cookie).0, 200);
    // A logout posted from another site is refused and ends nothing.
    let evil = post(
        web,
        "/logout",
        &format!("Origin: http://evil.example\r\n{cookie}"),
        "",
    );
    assert_eq!(evil.0, 403, "{}", evil.1);
    assert_eq!(get(web, "/api/overview", &cookie).0, 200);
    // A logout by GET does not exist (no link can log anyone out).
    assert_eq!(get(web, "/logout", &cookie).0, 405);
    let (code, head, _) = post(
        web,
        "/logout",
        &format!("Origin: http://{web}\r\n{cookie}"),
        "",
    );
    assert_eq!(code, 303, "{head}");
    assert_eq!(header(&head, "Location"), Some("/login"), "{head}");
    let cleared = header(&head, "Set-Cookie").unwrap();
    assert!(cleared.contains("; Max-Age=0"), "{cleared}");
    let (code, _, body) = get(web, "/api/overview", &cookie);
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("logged out"), "{body}");
    // Another session still works, and the ended one stays ended after a restart.
    let other = session_cookie(&get(web, &format!("/login?token={TOKEN}"), ""), "43200");
    drop(first);
    let _second = dir.serve(web, &[]);
    assert_eq!(
        get(web, "/api/overview", &other).0,
        200,
        "a session survives a restart"
    );
    assert_eq!(
        get(web, "/api/overview", &cookie).0,
        401,
        "a logout survives it too"
    );
}

#[test]
fn a_burst_of_wrong_guesses_is_cut_short_while_metrics_answer() {
    let dir = Dir::new();
    let web = free_addr();
    let _c = dir.serve(web, &[]);
    let started = Instant::now();
    let (mut checked, mut limited, mut retry_after) = (0_u32, 0_u32, 0_u64);
    let mut codes = Vec::new();
    for i in 0..100 {
        let (code, head, _) = get(web, &format!("/login?token=wrong-{i}"), "");
        match code {
            401 => checked += 1,
            429 => {
                limited += 1;
                retry_after = header(&head, "Retry-After").unwrap().parse().unwrap();
                assert!(retry_after >= 1, "{head}");
            }
            other => panic!("guess {i}: {other}\n{head}"),
        }
        codes.push(code);
        if i % 10 == 0 {
            let (code, _, body) = get(web, "/metrics", "");
            assert_eq!(code, 200, "/metrics during the burst");
            assert!(body.contains("spikecv_jobs"), "{body}");
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "100 wrong guesses in {elapsed:.2} s: {checked} checked (401), {limited} refused (429); \
         {:.1} checked per second",
        f64::from(checked) / elapsed
    );
    // The first five (the burst) are checked; then one per 500 ms at most.
    assert_eq!(&codes[..5], &[401; 5], "{codes:?}");
    assert!(limited > 0, "{codes:?}");
    assert!(
        f64::from(checked) <= 5.0 + elapsed / 0.5 + 1.0,
        "{checked} checked in {elapsed:.2} s"
    );
    // Bearer tokens on the API from this address draw on the same allowance:
    // wrong ones are checked (401) only as the allowance refills.
    let mut bearer_checked = 0_u32;
    for i in 0..10 {
        let (code, head, body) = get(
            web,
            "/api/overview",
            &format!("Authorization: Bearer wrong-{i}\r\n"),
        );
        match code {
            401 => bearer_checked += 1,
            429 => {
                assert!(header(&head, "Retry-After").is_some(), "{head}");
                assert!(body.contains("too many wrong tokens"), "{body}");
            }
            other => panic!("bearer guess {i}: {other}\n{head}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let allowed = 5.0 + elapsed / 0.5 + 1.0;
    assert!(
        f64::from(checked + bearer_checked) <= allowed,
        "{checked} + {bearer_checked} checked in {elapsed:.2} s"
    );
    // The right token after the wait.
    std::thread::sleep(Duration::from_secs(retry_after.max(1)));
    let login = get(web, &format!("/login?token={TOKEN}"), "");
    let cookie = session_cookie(&login, "43200");
    assert_eq!(get(web, "/api/overview", &cookie).0, 200);
    assert_eq!(get(web, "/metrics", "").0, 200);
}

#[test]
fn an_idle_crowd_cannot_block_metrics_or_the_page() {
    let dir = Dir::new();
    let web = free_addr();
    let _c = dir.serve(web, &[]);
    // 300 connections from loopback that never send a byte, held open.
    let crowd: Vec<TcpStream> = (0..300).map(|_| TcpStream::connect(web).unwrap()).collect();
    let started = Instant::now();
    let (code, _, body) = get(web, "/metrics", "");
    eprintln!(
        "/metrics through 300 idle connections: {code} after {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(code, 200);
    assert!(body.contains("spikecv_jobs"), "{body}");
    let (code, _, page) = get(web, "/", "");
    assert_eq!(code, 200);
    assert!(page.contains("<title>spikecv coordinator</title>"));
    let cookie = session_cookie(&get(web, &format!("/login?token={TOKEN}"), ""), "43200");
    assert_eq!(get(web, "/api/overview", &cookie).0, 200);
    // The crowd's oldest connection was closed to make room: it reads the end.
    let mut oldest = &crowd[0];
    oldest.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut buf = [0_u8; 16];
    match oldest.read(&mut buf) {
        Ok(n) => assert_eq!(n, 0, "the server sent something to a silent client"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    drop(crowd);
}

#[test]
fn an_idle_crowd_cannot_outwait_a_long_head_timeout() {
    let limits = HttpLimits {
        head_timeout: Duration::from_secs(60),
        ..HttpLimits::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let web = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let source: MetricsSource = Arc::new(|| Box::pin(async { "up 1\n".to_owned() }));
        let router = metrics::router(source, None, &limits);
        tokio::spawn(web::serve(listener, router, limits, async {
            let _ = stopped.await;
        }));
        addr
    });
    let crowd: Vec<TcpStream> = (0..300).map(|_| TcpStream::connect(web).unwrap()).collect();
    // Within the deadline (the crowd would hold its places for 60 s).
    let (code, _, body) = get(web, "/metrics", "");
    assert_eq!(code, 200);
    assert_eq!(body, "up 1\n");
    drop(crowd);
    let _ = stop.send(());
}
