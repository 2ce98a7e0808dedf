//! Workers' own credentials against a real `coordinator serve` process over
//! loopback: `coordinator worker add NAME --slots N` prints a credential; a
//! hand-made worker using it gets the credential's name as its id whatever
//! name it registers, holds at most N jobs whatever slots it declares, and
//! cannot speak for another worker; `worker remove` releases its attempts at
//! once and the credential stops working. An enrolment token enrols as many
//! nodes as it has uses, each once, until it expires, and allows nothing else.
//! The shared token has caps of its own (`--max-shared-workers`,
//! `--max-shared-slots`), so its holders cannot keep named workers out; a
//! refusal about another worker's attempt does not name that worker. A
//! coordinator that lost its store does not take over an id a shared-token
//! worker presents: it registers the caller afresh under a new id.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;
mod net_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cli_support::{fails, ok, s};
use net_support::{file_list_root, registration};
use spikecv_common::proto::client::{ClientOptions, WorkerClient};
use spikecv_common::proto::{
    CompleteRequest, LeaseRequest, LeaseResponse, RegisterRequest, ReportEpochRequest, Slot,
    StatusRequest,
};
use tonic::Code;

struct Served {
    child: Child,
    url: String,
    admin: PathBuf,
    worker: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// `coordinator serve` on a free loopback port with a shared worker token
    /// and an admin token, serving 4 jobs (2 folds × 2 seeds).
    fn start() -> Served {
        Self::start_with(&[])
    }

    /// As [`Served::start`], with `extra` flags (paths relative to the
    /// served folder are not resolved: give absolute ones).
    fn start_with(extra: &[&str]) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        file_list_root(&data, &["user35_dc", "user36_dc", "user37_dc", "user38_dc"]);
        let exp = dir.path().join("experiment.toml");
        std::fs::write(
            &exp,
            format!(
                "[data]\nroot = {:?}\n[protocol]\nfolds = 2\nseeds = [0, 1]\nvariants = [\"whole\"]\n",
                s(&data)
            ),
        )
        .unwrap();
        let (admin, worker) = (dir.path().join("admin"), dir.path().join("worker"));
        std::fs::write(&admin, "admin-secret\n").unwrap();
        std::fs::write(&worker, "shared-worker-secret\n").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.path().join("serve.log");
        let child = Command::new(env!("CARGO_BIN_EXE_coordinator"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--state"])
            .arg(dir.path().join("state.db"))
            .arg("--experiment")
            .arg(&exp)
            .arg("--token-file")
            .arg(&worker)
            .arg("--admin-token-file")
            .arg(&admin)
            .arg("--allow-unfingerprinted-data")
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut served = Served {
            child,
            url: format!("http://127.0.0.1:{port}"),
            admin,
            worker,
            _dir: dir,
        };
        let t0 = Instant::now();
        while !std::fs::read_to_string(&log)
            .unwrap()
            .contains("coordinator listening")
        {
            assert!(served.child.try_wait().unwrap().is_none(), "serve exited");
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "serve never listened"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        served
    }

    /// `coordinator worker ARGS` with the admin token; must succeed.
    fn admin(&self, args: &[&str]) -> String {
        let mut all = vec!["worker"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--coordinator", &self.url, "--token-file", s(&self.admin)]);
        ok(&all)
    }

    /// `coordinator worker ARGS` with `token`; must fail: its stderr.
    fn refused(&self, args: &[&str], token: &Path) -> String {
        let mut all = vec!["worker"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--coordinator", &self.url, "--token-file", s(token)]);
        fails(&all)
    }

    fn client(&self, token: &str) -> WorkerClient {
        ClientOptions {
            url: self.url.clone(),
            token: Some(token.to_owned()),
            ..ClientOptions::default()
        }
        .worker_client()
        .unwrap()
    }

    async fn pending(&self) -> u64 {
        let options = ClientOptions {
            url: self.url.clone(),
            token: Some("admin-secret".to_owned()),
            ..ClientOptions::default()
        };
        let r = options
            .admin_client()
            .unwrap()
            .status(StatusRequest {})
            .await
            .unwrap()
            .into_inner();
        r.jobs
            .iter()
            .find(|j| j.state == "pending")
            .map_or(0, |j| j.count)
    }
}

/// A registration declaring `slots` CPU slots under `name`.
fn greedy(name: &str, slots: usize) -> RegisterRequest {
    RegisterRequest {
        slots: vec![
            Slot {
                device: "cpu".into(),
                device_name: "cpu".into(),
                memory_bytes: 0,
                manifest: None,
            };
            slots
        ],
        ..registration(name, "")
    }
}

async fn lease(
    c: &mut WorkerClient,
    id: &str,
    secret: &str,
    reg: RegisterRequest,
    free: usize,
) -> tonic::Result<LeaseResponse> {
    c.lease(LeaseRequest {
        worker_id: id.into(),
        registration: Some(reg),
        free_slots: vec!["cpu".into(); free],
        running: vec![],
        worker_secret: secret.into(),
    })
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_worker_is_its_credential_and_holds_at_most_its_slots() {
    let served = Served::start();
    let token_a = served.admin(&["add", "gpu-a", "--slots", "2"]);
    let token_a = token_a.trim();
    assert!(token_a.len() >= 32, "a printed token: {token_a:?}");
    served.admin(&["add", "gpu-b", "--slots", "1"]);
    let again = served.refused(&["add", "gpu-a"], &served.admin);
    assert!(again.contains("already"), "{again}");
    let odd = served.refused(&["add", "evil\u{202e}name"], &served.admin);
    assert!(odd.contains("ASCII"), "{odd}");
    let not_admin = served.refused(&["add", "gpu-c"], &served.worker);
    assert!(
        not_admin.contains("Unauthenticated") || not_admin.contains("token"),
        "{not_admin}"
    );

    // It registers as anyone with 256 slots: it is gpu-a, with 2.
    let mut a = served.client(token_a);
    let r = a
        .register(greedy("i-choose-my-name", 256))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.worker_id, "gpu-a");
    let first = lease(&mut a, "gpu-a", &r.worker_secret, greedy("x", 256), 256)
        .await
        .unwrap();
    assert_eq!(first.assignments.len(), 2, "capped at the admin's 2 slots");
    let more = lease(&mut a, "gpu-a", &r.worker_secret, greedy("x", 256), 256)
        .await
        .unwrap();
    assert!(more.assignments.is_empty(), "holds 2 already");

    // It cannot take another's identity, nor speak for a shared-token worker.
    let other = lease(&mut a, "gpu-b", &r.worker_secret, greedy("x", 1), 1).await;
    assert_eq!(other.unwrap_err().code(), Code::PermissionDenied);
    let mut shared = served.client("shared-worker-secret");
    let w = shared
        .register(registration("plain", ""))
        .await
        .unwrap()
        .into_inner();
    let held = lease(
        &mut shared,
        &w.worker_id,
        &w.worker_secret,
        registration("plain", ""),
        1,
    )
    .await
    .unwrap();
    assert_eq!(held.assignments.len(), 1);
    let speak_for = a
        .complete(CompleteRequest {
            attempt_id: held.assignments[0].attempt_id.clone(),
            result: None,
            device: "cpu".into(),
            worker: Some(spikecv_common::proto::WorkerCredentials {
                worker_id: w.worker_id.clone(),
                secret: w.worker_secret.clone(),
            }),
            manifest: None,
            weights_sha256: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(speak_for.code(), Code::PermissionDenied, "{speak_for:?}");
    assert!(!speak_for.message().contains(&w.worker_secret));

    let list = served.admin(&["list"]);
    let row = list.lines().find(|l| l.starts_with("gpu-a")).unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[1..4], ["2", "2", "alive"], "{list}");
    assert_eq!(
        served.pending().await,
        1,
        "4 jobs: 2 with gpu-a, 1 with plain"
    );

    // Removed: its attempts are released at once and its token refused.
    let removed = served.admin(&["remove", "gpu-a"]);
    assert!(removed.contains("released 2 attempt(s)"), "{removed}");
    assert_eq!(served.pending().await, 3);
    let after = lease(&mut a, "gpu-a", &r.worker_secret, greedy("x", 1), 1).await;
    assert_eq!(after.unwrap_err().code(), Code::Unauthenticated);
    let gone = served.refused(&["remove", "gpu-a"], &served.admin);
    assert!(gone.contains("no worker credential"), "{gone}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolment_token_enrols_its_uses_once_each_and_allows_nothing_else() {
    let served = Served::start();
    let dir = tempfile::tempdir().unwrap();
    let enrol_token = dir.path().join("enrol");
    served.admin(&[
        "enrolment",
        "--uses",
        "2",
        "--slots",
        "1",
        "--out",
        s(&enrol_token),
    ]);
    let enrol = |out: &Path| {
        let args = [
            "worker",
            "enrol",
            "--coordinator",
            &served.url,
            "--token-file",
            s(&enrol_token),
            "--out",
            s(out),
            "--name-hint",
            "node",
        ];
        cli_support::coordinator(&args)
    };
    let (c1, c2, c3) = (
        dir.path().join("c1"),
        dir.path().join("c2"),
        dir.path().join("c3"),
    );
    assert!(enrol(&c1).status.success());
    assert!(enrol(&c2).status.success());
    let third = enrol(&c3);
    assert!(!third.status.success());
    assert!(String::from_utf8_lossy(&third.stderr).contains("used up"));
    assert!(!c3.exists());
    // A node enrols once: an existing credential file is refused before any call.
    let twice = enrol(&c1);
    assert!(String::from_utf8_lossy(&twice.stderr).contains("exists"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&c1).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The enrolment token is no worker credential.
    let e = std::fs::read_to_string(&enrol_token).unwrap();
    let mut as_worker = served.client(e.trim());
    let refused = as_worker.register(registration("x", "")).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    // Each credential is its own worker, with the token's slot count.
    let mut ids = Vec::new();
    for c in [&c1, &c2] {
        let token = std::fs::read_to_string(c).unwrap();
        let mut w = served.client(token.trim());
        let r = w
            .register(greedy("whatever", 8))
            .await
            .unwrap()
            .into_inner();
        let got = lease(&mut w, &r.worker_id, &r.worker_secret, greedy("x", 8), 8)
            .await
            .unwrap();
        assert_eq!(got.assignments.len(), 1);
        ids.push(r.worker_id);
    }
    assert_eq!(ids, ["node", "node-2"]);

    // Expired: refused.
    let short = dir.path().join("short");
    served.admin(&["enrolment", "--ttl-seconds", "1", "--out", s(&short)]);
    std::thread::sleep(Duration::from_millis(1500));
    let c4 = dir.path().join("c4");
    let args = [
        "worker",
        "enrol",
        "--coordinator",
        &served.url,
        "--token-file",
        s(&short),
        "--out",
        s(&c4),
    ];
    let late = cli_support::coordinator(&args);
    assert!(
        String::from_utf8_lossy(&late.stderr).contains("expired"),
        "{late:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_accepts_an_enrolment_token_from_a_file_for_its_uses_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("enrolment-token");
    std::fs::write(&file, "an-enrolment-token-made-by-the-admin\n").unwrap();
    let served = Served::start_with(&[
        "--enrolment-token-file",
        s(&file),
        "--enrolment-uses",
        "1",
        "--enrolment-slots",
        "2",
    ]);
    let enrol = |out: &Path| {
        let args = [
            "worker",
            "enrol",
            "--coordinator",
            &served.url,
            "--token-file",
            s(&file),
            "--out",
            s(out),
            "--name-hint",
            "gpu07",
        ];
        cli_support::coordinator(&args)
    };
    let (c1, c2) = (dir.path().join("c1"), dir.path().join("c2"));
    let first = enrol(&c1);
    assert!(first.status.success(), "{first:?}");
    let second = enrol(&c2);
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("used up"),
        "{second:?}"
    );
    let token = std::fs::read_to_string(&c1).unwrap();
    let mut w = served.client(token.trim());
    let r = w.register(greedy("x", 4)).await.unwrap().into_inner();
    assert_eq!(r.worker_id, "gpu07");
    let got = lease(&mut w, &r.worker_id, &r.worker_secret, greedy("x", 4), 4)
        .await
        .unwrap();
    assert_eq!(got.assignments.len(), 2, "--enrolment-slots 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_token_has_caps_of_its_own_and_refusals_name_no_other_worker() {
    let served = Served::start_with(&[
        "--max-workers",
        "3",
        "--max-shared-workers",
        "2",
        "--max-shared-slots",
        "1",
    ]);
    let mut shared = served.client("shared-worker-secret");
    // A shared-token worker declaring 8 slots holds one job.
    let p1 = shared.register(greedy("p1", 8)).await.unwrap().into_inner();
    let held = lease(
        &mut shared,
        &p1.worker_id,
        &p1.worker_secret,
        greedy("p1", 8),
        8,
    )
    .await
    .unwrap();
    assert_eq!(held.assignments.len(), 1, "capped at --max-shared-slots 1");
    let p2 = shared.register(greedy("p2", 1)).await.unwrap().into_inner();
    // A third holder of the shared token is refused, by Register or by a
    // lease presenting an id this coordinator does not know.
    let full = shared.register(greedy("p3", 1)).await.unwrap_err();
    assert_eq!(full.code(), Code::ResourceExhausted);
    assert!(full.message().contains("--max-shared-workers"), "{full:?}");
    let adopted = lease(&mut shared, "ghost-7", "00ff", greedy("p3", 1), 1).await;
    assert_eq!(adopted.unwrap_err().code(), Code::ResourceExhausted);

    // A named worker still has room under --max-workers 3.
    let token = served.admin(&["add", "gpu-a", "--slots", "2"]);
    let mut a = served.client(token.trim());
    let r = a.register(greedy("x", 2)).await.unwrap().into_inner();
    assert_eq!(r.worker_id, "gpu-a");
    let got = lease(&mut a, "gpu-a", &r.worker_secret, greedy("x", 2), 2)
        .await
        .unwrap();
    assert_eq!(got.assignments.len(), 2);

    // p2 about p1's attempt, with its own valid credentials: refused, and
    // the refusal does not name p1 (nor gpu-a about it).
    let not_owner = shared
        .report_epoch(ReportEpochRequest {
            attempt_id: held.assignments[0].attempt_id.clone(),
            metrics: Some(net_support::metrics(1).to_proto()),
            worker: Some(spikecv_common::proto::WorkerCredentials {
                worker_id: p2.worker_id.clone(),
                secret: p2.worker_secret.clone(),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(not_owner.code(), Code::PermissionDenied);
    assert!(
        !not_owner.message().contains(&p1.worker_id),
        "{not_owner:?}"
    );
    let not_owner = a
        .report_epoch(ReportEpochRequest {
            attempt_id: held.assignments[0].attempt_id.clone(),
            metrics: Some(net_support::metrics(1).to_proto()),
            worker: Some(spikecv_common::proto::WorkerCredentials {
                worker_id: "gpu-a".into(),
                secret: r.worker_secret.clone(),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(not_owner.code(), Code::PermissionDenied);
    assert!(
        !not_owner.message().contains(&p1.worker_id),
        "{not_owner:?}"
    );
    assert_eq!(served.pending().await, 1, "4 jobs: 1 with p1, 2 with gpu-a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_id_on_the_shared_token_is_not_adopted() {
    let served = Served::start();
    let mut shared = served.client("shared-worker-secret");
    // An id and secret from a store this coordinator never had.
    let first = lease(
        &mut shared,
        "w1-0123abcd",
        "ghost-secret",
        greedy("n1", 1),
        1,
    )
    .await
    .unwrap();
    assert_ne!(
        first.worker_id, "w1-0123abcd",
        "the presented id was adopted"
    );
    assert!(!first.worker_id.is_empty());
    assert!(
        !first.worker_secret.is_empty(),
        "a new secret comes with the new id"
    );
    assert_ne!(first.worker_secret, "ghost-secret");
    assert_eq!(first.assignments.len(), 1, "the new worker is served");
    // The new id and secret work; the old ones name no worker here.
    let again = lease(
        &mut shared,
        &first.worker_id,
        &first.worker_secret,
        greedy("n1", 1),
        0,
    )
    .await
    .unwrap();
    assert_eq!(again.worker_id, first.worker_id);
    assert!(
        again.worker_secret.is_empty(),
        "a known worker keeps its secret"
    );
    let wrong = lease(
        &mut shared,
        &first.worker_id,
        "ghost-secret",
        greedy("n1", 1),
        0,
    )
    .await
    .unwrap_err();
    assert_eq!(wrong.code(), Code::PermissionDenied, "{wrong:?}");
}
