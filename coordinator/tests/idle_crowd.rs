//! An idle crowd cannot starve the gRPC listener: 1,100 TCP connections that
//! never send a byte, against a real `coordinator serve` started with a limit
//! of 1,024 open files; `coordinator status` still answers (10 s deadline),
//! and a hand-made worker still registers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod net_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spikecv_common::proto::client::ClientOptions;

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn status_answers_through_an_idle_crowd_at_a_descriptor_limit() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = dir.path().join("serve.log");
    let bin = env!("CARGO_BIN_EXE_coordinator");
    let state = dir.path().join("state.db");
    let _served = Killed(
        Command::new("sh")
            .arg("-c")
            .arg(r#"ulimit -n 1024 && exec "$0" serve --listen "127.0.0.1:$1" --state "$2""#)
            .arg(bin)
            .arg(port.to_string())
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("coordinator listening")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "serve never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The crowd: connected, silent, held open.
    let mut crowd = Vec::with_capacity(1100);
    for _ in 0..1100 {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => crowd.push(s),
            Err(e) => panic!("connection {} of the crowd failed: {e}", crowd.len()),
        }
    }
    let mut status = Command::new(bin)
        .args([
            "status",
            "--coordinator",
            &format!("http://127.0.0.1:{port}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t1 = Instant::now();
    while status.try_wait().unwrap().is_none() {
        if t1.elapsed() > Duration::from_secs(10) {
            let _ = status.kill();
            panic!("status did not answer within 10 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = status.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("jobs:"));
    // A worker registers too.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = rt.block_on(async {
        let mut w = ClientOptions {
            url: format!("http://127.0.0.1:{port}"),
            ..ClientOptions::default()
        }
        .worker_client()
        .unwrap();
        tokio::time::timeout(
            Duration::from_secs(10),
            w.register(net_support::registration("after-the-crowd", "")),
        )
        .await
        .unwrap()
        .unwrap()
        .into_inner()
        .worker_id
    });
    assert!(!id.is_empty());
    drop(crowd);
}
