//! The `coordinator` binary's network commands as a user runs them: `serve`
//! refuses to listen beyond loopback without a token; with a token, `status`
//! and `submit` need it; `/metrics` answers Prometheus text.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_coordinator"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn experiment(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("filelist.txt"),
        "user35_dc\nuser36_dc\nuser37_dc\nuser38_dc\n",
    )
    .unwrap();
    let path = dir.join("experiment.toml");
    std::fs::write(
        &path,
        "[data]\nroot = \"data\"\n[protocol]\nfolds = 2\nseeds = [0, 1]\nvariants = [\"whole\"]\n",
    )
    .unwrap();
    path
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `command` with stderr to `log` and waits (at most 30 s) until it
/// logs that it listens; panics, naming `what`, if it exits first.
fn spawn_listening(mut command: Command, log: &Path, what: &str) -> Killed {
    let mut child = Killed(
        command
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    while !std::fs::read_to_string(log)
        .unwrap()
        .contains("coordinator listening")
    {
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "{what} exited: {}",
            std::fs::read_to_string(log).unwrap()
        );
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{what} never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn client(cmd: &str, port: u16, token: Option<&Path>, extra: &[&str]) -> Output {
    let mut c = bin();
    c.args([cmd, "--coordinator", &format!("http://127.0.0.1:{port}")]);
    if let Some(t) = token {
        c.arg("--token-file").arg(t);
    }
    c.args(extra).output().unwrap()
}

#[test]
fn serve_refuses_a_public_address_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["serve", "--listen", "0.0.0.0:0", "--state"])
        .arg(dir.path().join("s.db"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "a refusal, not a crash");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--token-file"), "{err}");
}

#[test]
fn status_submit_and_metrics_over_a_token_protected_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path());
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "nope\n").unwrap();
    let (port, metrics) = (free_port(), free_port());
    let log = dir.path().join("serve.log");
    let _server = Killed(
        bin()
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--metrics",
                &format!("127.0.0.1:{metrics}"),
            ])
            .arg("--experiment")
            .arg(&exp)
            .arg("--state")
            .arg(dir.path().join("s.db"))
            .arg("--token-file")
            .arg(&token)
            // The data root holds only a file list: nothing to fingerprint.
            .arg("--allow-unfingerprinted-data")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    let status = loop {
        let out = client("status", port, Some(&token), &[]);
        if out.status.success() {
            break String::from_utf8(out.stdout).unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "coordinator did not come up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.contains("jobs: 0/4 finished"), "{status}");
    assert!(status.contains("pending 4"), "{status}");
    assert!(status.contains("workers: 0 alive"), "{status}");

    for t in [None, Some(wrong.as_path())] {
        let out = client("status", port, t, &[]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("Unauthenticated") || err.contains("token"),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "the token is never printed");
    }

    let again = client(
        "submit",
        port,
        Some(&token),
        &["--experiment", exp.to_str().unwrap()],
    );
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let text = String::from_utf8(again.stdout).unwrap();
    assert!(
        text.contains("0 new jobs"),
        "submitting the same experiment again creates nothing: {text}"
    );

    let json = client("status", port, Some(&token), &["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["total_jobs"], 4);

    // `--watch` streams one snapshot per interval until it is told to stop
    // (SIGTERM), then exits cleanly.
    let mut watch = bin()
        .args([
            "status",
            "--coordinator",
            &format!("http://127.0.0.1:{port}"),
        ])
        .arg("--token-file")
        .arg(&token)
        .args(["--watch", "--interval", "0.2", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    for _ in 0..3 {
        let line = lines.next().unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["total_jobs"], 4, "{line}");
    }
    let killed = Command::new("kill")
        .args(["-TERM", &watch.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = watch.wait().unwrap();
    assert!(
        exit.success(),
        "status --watch exits 0 on SIGTERM: {exit:?}"
    );

    let mut s = std::net::TcpStream::connect(("127.0.0.1", metrics)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("spikecv_jobs{state=\"pending\"} 4"), "{body}");
    assert!(body.contains("spikecv_leases_total 0"), "{body}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains("s3cret"), "the token is never logged");
}

#[test]
fn serve_beyond_loopback_wants_a_separate_admin_token_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "worker-token\n").unwrap();
    let serve = |extra: &[&str], state: &str| {
        let mut c = bin();
        c.args(["serve", "--listen", "0.0.0.0:0", "--state"])
            .arg(dir.path().join(state))
            .arg("--token-file")
            .arg(&token)
            .args(extra);
        c
    };
    let out = serve(&[], "a.db").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "a refusal, not a crash");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--admin-token-file") && err.contains("--allow-shared-admin-token"),
        "{err}"
    );
    // Told explicitly, it starts (and keeps running until stopped); plain
    // gRPC beyond loopback needs its own consent (see the TLS test below).
    let _started = spawn_listening(
        serve(&["--allow-shared-admin-token", "--allow-plaintext"], "b.db"),
        &dir.path().join("shared.log"),
        "serve with --allow-shared-admin-token",
    );
}

fn tls_fixture(name: &str) -> std::path::PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls")).join(name)
}

/// The health check's status and a `Status` call's outcome over plain
/// HTTP/2 on `port`.
fn plain_health_port(
    port: u16,
    admin: &Path,
) -> (Result<i32, tonic::Code>, Result<(), tonic::Code>) {
    use spikecv_common::proto::admin_client::AdminClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let token = std::fs::read_to_string(admin).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let health = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|r| r.into_inner().status)
            .map_err(|s| s.code());
        let mut request = tonic::Request::new(spikecv_common::proto::StatusRequest {});
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", token.trim()).parse().unwrap(),
        );
        let status = AdminClient::new(channel)
            .status(request)
            .await
            .map(|_| ())
            .map_err(|s| s.code());
        (health, status)
    })
}

#[test]
fn grpc_beyond_loopback_wants_tls_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "worker-token\n").unwrap();
    let admin = dir.path().join("admin-token");
    std::fs::write(&admin, "admin-token\n").unwrap();
    let port = free_port();
    let serve = |extra: &[&str], state: &str, port: u16| {
        let mut c = bin();
        c.args(["serve", "--listen", &format!("0.0.0.0:{port}"), "--state"])
            .arg(dir.path().join(state))
            .arg("--token-file")
            .arg(&token)
            .arg("--admin-token-file")
            .arg(&admin)
            .args(extra);
        c
    };
    let out = serve(&[], "a.db", 0).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "a refusal, not a crash");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--allow-plaintext") && err.contains("--tls-cert") && err.contains("0.0.0.0"),
        "{err}"
    );
    // With a certificate it serves TLS: `status` answers over https with the
    // CA, and a plain-text client gets nothing.
    let (cert, key, ca) = (
        tls_fixture("server.pem"),
        tls_fixture("server.key"),
        tls_fixture("ca.pem"),
    );
    let health_port = free_port();
    let mut with_tls = serve(&[], "b.db", port);
    with_tls
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .arg("--health-listen")
        .arg(format!("127.0.0.1:{health_port}"));
    let _tls = spawn_listening(with_tls, &dir.path().join("tls.log"), "serve with TLS");
    let https = bin()
        .args([
            "status",
            "--coordinator",
            &format!("https://127.0.0.1:{port}"),
        ])
        .arg("--token-file")
        .arg(&admin)
        .arg("--tls-ca")
        .arg(&ca)
        .output()
        .unwrap();
    assert!(
        https.status.success(),
        "{}",
        String::from_utf8_lossy(&https.stderr)
    );
    let plain = client("status", port, Some(&admin), &[]);
    assert!(
        !plain.status.success(),
        "plain gRPC to a TLS listener fails"
    );
    // The plain-text health listener answers health checks and nothing else.
    let (health, status) = plain_health_port(health_port, &admin);
    assert_eq!(health, Ok(1), "SERVING on the health listener");
    assert!(status.is_err(), "no admin call on the health listener");
    // Told explicitly, plain gRPC beyond loopback starts.
    let _plain = spawn_listening(
        serve(&["--allow-plaintext"], "c.db", 0),
        &dir.path().join("plain.log"),
        "serve with --allow-plaintext",
    );
}

#[test]
fn a_second_serve_on_the_same_state_refuses_to_start_naming_the_lock_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.db");
    let serve = |port: u16| {
        let mut c = bin();
        c.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--state"])
            .arg(&state);
        c
    };
    let mut first = spawn_listening(
        serve(free_port()),
        &dir.path().join("first.log"),
        "the first serve",
    );
    let second = serve(free_port()).output().unwrap();
    assert_eq!(second.status.code(), Some(3), "a refusal, not a crash");
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("s.db.lock"), "{err}");
    assert!(
        first.0.try_wait().unwrap().is_none(),
        "the first one runs on"
    );
    // Once the first has stopped, the state is free again.
    drop(first);
    let _third = spawn_listening(
        serve(free_port()),
        &dir.path().join("third.log"),
        "serve after the first stopped",
    );
}

#[test]
fn data_that_cannot_be_fingerprinted_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path());
    // At start: a refusal naming the data root and the flag.
    let out = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--experiment"])
        .arg(&exp)
        .arg("--state")
        .arg(dir.path().join("a.db"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "a refusal, not a crash");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("data.root") && err.contains("--allow-unfingerprinted-data"),
        "{err}"
    );
    // Over gRPC: Submit answers INVALID_ARGUMENT with the same words.
    let port = free_port();
    let _server = spawn_listening(
        {
            let mut c = bin();
            c.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--state"])
                .arg(dir.path().join("b.db"));
            c
        },
        &dir.path().join("b.log"),
        "serve without an experiment",
    );
    let out = bin()
        .args([
            "submit",
            "--coordinator",
            &format!("http://127.0.0.1:{port}"),
        ])
        .arg("--experiment")
        .arg(&exp)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid argument") && err.contains("--allow-unfingerprinted-data"),
        "{err}"
    );
}

#[test]
fn plain_http_beyond_loopback_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let (worker, admin) = (dir.path().join("w"), dir.path().join("a"));
    std::fs::write(&worker, "worker-token\n").unwrap();
    std::fs::write(&admin, "admin-token\n").unwrap();
    let serve = |extra: &[&str], state: &str| {
        let mut c = bin();
        c.args(["serve", "--listen", "127.0.0.1:0", "--http", "0.0.0.0:0"])
            .arg("--state")
            .arg(dir.path().join(state))
            .arg("--token-file")
            .arg(&worker)
            .arg("--admin-token-file")
            .arg(&admin)
            .args(extra);
        c
    };
    let out = serve(&[], "a.db").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "a refusal, not a crash");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--allow-plain-http") && err.contains("--tls-cert"),
        "{err}"
    );
    let _started = spawn_listening(
        serve(&["--allow-plain-http"], "b.db"),
        &dir.path().join("plain.log"),
        "serve with --allow-plain-http",
    );
}

#[test]
fn a_port_in_use_is_a_failure_not_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = bin()
        .args(["serve", "--listen", &addr, "--state"])
        .arg(dir.path().join("s.db"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a restart may cure it");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen"), "{err}");
}
