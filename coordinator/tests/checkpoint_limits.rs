//! Checkpoint transfers within limits, over a real loopback socket: an upload
//! over the size limit, beyond its declared size or the free disk space is
//! refused and leaves no staged file; one upload per attempt and a bounded
//! number in total; an upload that goes quiet is abandoned; a download whose
//! worker never reads blocks no other call and is dropped after the idle
//! timeout. Afterwards the run goes on and the report still reads the store.
//! An upload must declare its size and keep a minimum rate over every window
//! after a grace; trickling uploads are cut off and an upload whose lease
//! ends gives its place back, so honest uploads get in. One download per
//! attempt and a bounded number in total.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod net_support;

use std::path::Path;
use std::time::{Duration, Instant};

use net_support::{
    Joined, LEASE_TIMEOUT_S, TestServer, join, lease_one, metrics, registration, result,
    start_limited,
};
use sha2::{Digest, Sha256};
use spikecv_common::proto::client::WorkerClient;
use spikecv_common::proto::{
    Assignment, AttemptProgress, CheckpointChunk, CompleteRequest, DownloadCheckpointRequest,
    HeartbeatRequest, ReportEpochRequest, StatusRequest,
};
use spikecv_coordinator::report::{build_report, from_store};
use spikecv_coordinator::scheduler::Clock;
use spikecv_coordinator::service::CheckpointLimits;
use tokio::sync::mpsc;
use tonic::Code;

/// A worker with its leased attempt.
struct Leased {
    client: WorkerClient,
    who: Joined,
    job: Assignment,
}

/// Registers `name`, leases one job and reports its first epoch (a
/// checkpoint follows its epoch's report).
async fn leased(server: &TestServer, name: &str) -> Leased {
    let mut client = server.worker(None);
    let who = join(&mut client, name, "fp-A").await;
    let job = lease_one(&mut client, &who, name, "fp-A").await.unwrap();
    client
        .report_epoch(ReportEpochRequest {
            attempt_id: job.attempt_id.clone(),
            metrics: Some(metrics(1).to_proto()),
            worker: who.creds(),
        })
        .await
        .unwrap();
    Leased { client, who, job }
}

/// `bytes` as upload chunks of `piece` bytes, the first declaring `declared`.
fn chunks(w: &Leased, bytes: &[u8], declared: u64, piece: usize) -> Vec<CheckpointChunk> {
    let sha = hex::encode(Sha256::digest(bytes));
    let n = bytes.len().div_ceil(piece).max(1);
    (0..n)
        .map(|i| CheckpointChunk {
            attempt_id: if i == 0 {
                w.job.attempt_id.clone()
            } else {
                String::new()
            },
            epoch: 1,
            data: bytes[i * piece..((i + 1) * piece).min(bytes.len())].to_vec(),
            sha256: if i + 1 == n {
                sha.clone()
            } else {
                String::new()
            },
            worker: if i == 0 { w.who.creds() } else { None },
            size: if i == 0 { declared } else { 0 },
        })
        .collect()
}

/// Uploads `bytes` whole, declaring their size.
async fn upload(w: &mut Leased, bytes: &[u8]) -> tonic::Result<u64> {
    let c = chunks(w, bytes, bytes.len() as u64, 256 << 10);
    w.client
        .upload_checkpoint(tokio_stream::iter(c))
        .await
        .map(|r| r.into_inner().bytes)
}

/// An upload whose first chunk is sent and whose stream stays open until
/// `rest` (the remaining chunks) is sent or the sender dropped.
struct OpenUpload {
    tx: mpsc::Sender<CheckpointChunk>,
    rest: Vec<CheckpointChunk>,
    call: tokio::task::JoinHandle<tonic::Result<u64>>,
}

fn open_upload(w: &Leased, bytes: &[u8]) -> OpenUpload {
    let mut all = chunks(w, bytes, bytes.len() as u64, 1 << 10);
    let rest = all.split_off(1);
    let (tx, rx) = mpsc::channel(rest.len() + 1);
    tx.try_send(all.remove(0)).unwrap();
    let mut client = w.client.clone();
    let call = tokio::spawn(async move {
        client
            .upload_checkpoint(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map(|r| r.into_inner().bytes)
    });
    OpenUpload { tx, rest, call }
}

impl OpenUpload {
    /// Sends the rest and waits for the answer.
    async fn finish(self) -> tonic::Result<u64> {
        for c in self.rest {
            self.tx.send(c).await.unwrap();
        }
        drop(self.tx);
        self.call.await.unwrap()
    }
}

/// Files in the checkpoint directory with extension `ext`.
fn files(server: &TestServer, ext: &str) -> usize {
    std::fs::read_dir(server.sched.checkpoint_dir().path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .and_then(|x| x.to_str())
                == Some(ext)
        })
        .count()
}

/// Waits (at most 5 s) until `f()` holds.
async fn wait_until(what: &str, f: impl Fn() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reports an epoch and completes the attempt.
async fn report_and_complete(w: &mut Leased) {
    w.client
        .report_epoch(ReportEpochRequest {
            attempt_id: w.job.attempt_id.clone(),
            metrics: Some(metrics(1).to_proto()),
            worker: w.who.creds(),
        })
        .await
        .unwrap();
    w.client
        .complete(CompleteRequest {
            attempt_id: w.job.attempt_id.clone(),
            result: Some(result().to_proto()),
            device: "cpu".to_owned(),
            worker: w.who.creds(),
            manifest: None,
            weights_sha256: String::new(),
        })
        .await
        .unwrap();
}

/// What `coordinator report` reads: the succeeded jobs of the experiment.
fn report_succeeded(server: &TestServer, db: &Path) -> usize {
    let conn = from_store::open_read_only(db).unwrap();
    let exp = from_store::experiments(&conn).unwrap().remove(0);
    let now = server.clock.now_ms();
    let report = build_report(&exp, &from_store::jobs(&conn, &exp.id).unwrap(), now / 1000);
    report.progress.succeeded
}

fn limits(max_bytes: u64, max_uploads: usize, idle_ms: u64) -> CheckpointLimits {
    CheckpointLimits {
        max_bytes,
        max_uploads,
        idle_timeout: Duration::from_millis(idle_ms),
        free_space_margin: 0,
        ..CheckpointLimits::default()
    }
}

#[tokio::test]
async fn uploads_over_the_size_limit_or_their_declared_size_are_refused_and_leave_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let server = start_limited(2, "fp-A", &db, limits(1 << 20, 4, 10_000)).await;
    let mut w = leased(&server, "w").await;
    let big: Vec<u8> = (0..(3u32 << 19)).map(|i| (i % 251) as u8).collect();

    // Declared over the limit: refused before a byte is staged.
    let refused = upload(&mut w, &big).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("1048576 bytes"), "{refused:?}");
    // Not declared: refused before a byte is staged, naming the field.
    let c = chunks(&w, &big, 0, 256 << 10);
    let refused = w
        .client
        .upload_checkpoint(tokio_stream::iter(c))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("size"), "{refused:?}");
    // Declared small, sends more.
    let c = chunks(&w, &big[..1000], 100, 64);
    let refused = w
        .client
        .upload_checkpoint(tokio_stream::iter(c))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("declared 100"), "{refused:?}");
    assert_eq!((files(&server, "part"), files(&server, "ckpt")), (0, 0));

    // The attempt goes on: a checkpoint within the limit is taken and the job
    // completes; the report reads it.
    assert_eq!(upload(&mut w, &big[..1 << 20]).await.unwrap(), 1 << 20);
    assert_eq!((files(&server, "part"), files(&server, "ckpt")), (0, 1));
    report_and_complete(&mut w).await;
    assert_eq!(report_succeeded(&server, &db), 1);
    server.stop().await;
}

#[tokio::test]
async fn an_upload_that_would_not_fit_the_disk_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    // A margin no disk has free.
    let mut l = limits(u64::MAX, 4, 10_000);
    l.free_space_margin = u64::MAX / 2;
    let server = start_limited(2, "fp-A", &db, l).await;
    let mut w = leased(&server, "w").await;
    let refused = upload(&mut w, b"weights").await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("bytes free"), "{refused:?}");
    assert_eq!(files(&server, "part"), 0);
    report_and_complete(&mut w).await;
    assert_eq!(report_succeeded(&server, &db), 1);
    server.stop().await;
}

#[tokio::test]
async fn one_upload_per_attempt_and_no_more_than_the_limit_in_total() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let server = start_limited(3, "fp-A", &db, limits(1 << 20, 2, 10_000)).await;
    let mut a = leased(&server, "a").await;
    let mut b = leased(&server, "b").await;
    let mut c = leased(&server, "c").await;
    let bytes = vec![7u8; 4096];

    let first = open_upload(&a, &bytes);
    wait_until("a's upload to be staged", || files(&server, "part") == 1).await;
    let again = upload(&mut a, &bytes).await.unwrap_err();
    assert_eq!(again.code(), Code::Aborted, "{again:?}");
    assert!(again.message().contains("in progress"), "{again:?}");

    let second = open_upload(&b, &bytes);
    wait_until("b's upload to be staged", || files(&server, "part") == 2).await;
    let third = upload(&mut c, &bytes).await.unwrap_err();
    assert_eq!(third.code(), Code::ResourceExhausted, "{third:?}");
    assert!(
        third.message().contains("--max-checkpoint-uploads"),
        "{third:?}"
    );

    // The held uploads finish; then there is room again, also for a's attempt.
    assert_eq!(first.finish().await.unwrap(), 4096);
    assert_eq!(second.finish().await.unwrap(), 4096);
    assert_eq!(upload(&mut c, &bytes).await.unwrap(), 4096);
    assert_eq!(upload(&mut a, &bytes).await.unwrap(), 4096);
    assert_eq!((files(&server, "part"), files(&server, "ckpt")), (0, 3));
    for w in [&mut a, &mut b, &mut c] {
        report_and_complete(w).await;
    }
    assert_eq!(report_succeeded(&server, &db), 3);
    server.stop().await;
}

#[tokio::test]
async fn an_upload_that_goes_quiet_is_abandoned_and_its_file_removed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let server = start_limited(2, "fp-A", &db, limits(1 << 20, 1, 500)).await;
    let mut w = leased(&server, "w").await;
    let bytes = vec![3u8; 4096];
    let started = Instant::now();
    let quiet = open_upload(&w, &bytes);
    wait_until("the upload to be staged", || files(&server, "part") == 1).await;
    // The sender stays open and sends nothing.
    let OpenUpload { tx, call, .. } = quiet;
    let refused = call.await.unwrap().unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(refused.code(), Code::DeadlineExceeded, "{refused:?}");
    assert!(refused.message().contains("no chunk"), "{refused:?}");
    assert_eq!(files(&server, "part"), 0);
    drop(tx);
    // Its place (the only one) is free again.
    assert_eq!(upload(&mut w, &bytes).await.unwrap(), 4096);
    report_and_complete(&mut w).await;
    assert_eq!(report_succeeded(&server, &db), 1);
    server.stop().await;
}

/// Opens a download on a connection of its own and never reads it.
async fn unread_download(server: &TestServer, w: &Leased) -> impl Sized + use<> {
    let mut client = server.worker(None);
    client
        .download_checkpoint(DownloadCheckpointRequest {
            attempt_id: w.job.attempt_id.clone(),
            worker: w.who.creds(),
        })
        .await
        .unwrap()
}

/// Reads a whole download: its bytes, or the error that ended it.
async fn read_download(w: &mut Leased) -> (usize, tonic::Result<()>) {
    let mut stream = match w
        .client
        .download_checkpoint(DownloadCheckpointRequest {
            attempt_id: w.job.attempt_id.clone(),
            worker: w.who.creds(),
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(e) => return (0, Err(e)),
    };
    let mut n = 0;
    loop {
        match stream.message().await {
            Ok(Some(c)) => n += c.data.len(),
            Ok(None) => return (n, Ok(())),
            Err(e) => return (n, Err(e)),
        }
    }
}

/// Downloads nobody reads must not hold the runtime's blocking threads: with
/// only two of them, four stalled downloads would otherwise leave none for an
/// upload's file writes.
#[test]
fn downloads_nobody_reads_block_no_other_call() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let served = rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let server = start_limited(4, "fp-A", &db, limits(64 << 20, 4, 30_000)).await;
        let mut stalling = Vec::new();
        for name in ["a", "c", "d"] {
            stalling.push(leased(&server, name).await);
        }
        let mut b = leased(&server, "b").await;
        // 16 MiB: far more than the HTTP/2 windows and the download queue hold.
        let big: Vec<u8> = (0..(16u32 << 20)).map(|i| (i % 253) as u8).collect();
        for w in &mut stalling {
            upload(w, &big).await.unwrap();
        }
        let stalled_then_others = async {
            // Three stalled downloads (one per attempt: a second one of the
            // same attempt is refused) against two blocking threads.
            let mut stalled = Vec::new();
            for w in &stalling {
                stalled.push(unread_download(&server, w).await);
            }
            let (_, again) = read_download(&mut stalling[0]).await;
            assert_eq!(again.map_err(|e| e.code()), Err(Code::Aborted));
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(upload(&mut b, &big[..3 << 20]).await.unwrap(), 3 << 20);
            let (n, end) = read_download(&mut b).await;
            assert_eq!((n, end.map_err(|e| e.code())), (3 << 20, Ok(())));
            report_and_complete(&mut b).await;
            for w in &mut stalling {
                report_and_complete(w).await;
            }
            stalled
        };
        let Ok(stalled) = tokio::time::timeout(Duration::from_secs(20), stalled_then_others).await
        else {
            // Leave the stuck server behind (see below).
            std::mem::forget(server);
            return false;
        };
        assert_eq!(report_succeeded(&server, &db), 4);
        drop(stalled);
        server.stop().await;
        true
    });
    // Blocking threads stuck on unread downloads would keep a plain drop of
    // the runtime waiting forever; fail instead.
    rt.shutdown_timeout(Duration::from_secs(1));
    assert!(served, "calls beside the stalled downloads were not served");
}

#[tokio::test]
async fn a_download_not_read_for_the_idle_timeout_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let server = start_limited(2, "fp-A", &db, limits(64 << 20, 4, 300)).await;
    let mut w = leased(&server, "w").await;
    let big: Vec<u8> = (0..(16u32 << 20)).map(|i| (i % 253) as u8).collect();
    upload(&mut w, &big).await.unwrap();
    let mut stream = w
        .client
        .download_checkpoint(DownloadCheckpointRequest {
            attempt_id: w.job.attempt_id.clone(),
            worker: w.who.creds(),
        })
        .await
        .unwrap()
        .into_inner();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut n = 0;
    let end = loop {
        match stream.message().await {
            Ok(Some(c)) => n += c.data.len(),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    let err = end.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(n < big.len(), "{n} bytes");
    // A download that is read goes through, and the run goes on.
    let (n, end) = read_download(&mut w).await;
    assert_eq!((n, end.map_err(|e| e.code())), (big.len(), Ok(())));
    report_and_complete(&mut w).await;
    assert_eq!(report_succeeded(&server, &db), 1);
    server.stop().await;
}

#[tokio::test]
async fn downloads_are_capped_in_total_and_free_their_place_when_they_end() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let mut l = limits(64 << 20, 4, 30_000);
    l.max_downloads = 1;
    let server = start_limited(2, "fp-A", &db, l).await;
    let mut a = leased(&server, "a").await;
    let mut b = leased(&server, "b").await;
    let big: Vec<u8> = (0..(16u32 << 20)).map(|i| (i % 253) as u8).collect();
    upload(&mut a, &big).await.unwrap();
    upload(&mut b, &big[..4096]).await.unwrap();
    let stalled = unread_download(&server, &a).await;
    let (_, refused) = read_download(&mut b).await;
    let refused = refused.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("--max-checkpoint-downloads"),
        "{refused:?}"
    );
    // The stalled download's client goes away: its place is free again.
    drop(stalled);
    let mut got = (0, Err(Code::Unknown));
    for _ in 0..100 {
        let (n, end) = read_download(&mut b).await;
        got = (n, end.map_err(|e| e.code()));
        if got.1 != Err(Code::ResourceExhausted) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(got, (4096, Ok(())));
    report_and_complete(&mut a).await;
    report_and_complete(&mut b).await;
    server.stop().await;
}

#[tokio::test]
async fn an_upload_slower_than_the_minimum_rate_is_abandoned_and_its_file_removed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let mut l = limits(1 << 20, 1, 10_000);
    // 4 KiB/s over windows of 500 ms, after 200 ms of grace.
    l.min_upload_rate = 4 << 10;
    l.rate_window = Duration::from_millis(500);
    l.upload_grace = Duration::from_millis(200);
    let server = start_limited(2, "fp-A", &db, l).await;
    let mut w = leased(&server, "w").await;
    let bytes = vec![5u8; 4096];
    // 64-byte chunks every 100 ms: never idle, but 6.4 s for the whole.
    let mut all = chunks(&w, &bytes, bytes.len() as u64, 64);
    let rest = all.split_off(1);
    let (tx, rx) = mpsc::channel(rest.len() + 1);
    tx.try_send(all.remove(0)).unwrap();
    let mut client = w.client.clone();
    let call = tokio::spawn(async move {
        client
            .upload_checkpoint(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map(|r| r.into_inner().bytes)
    });
    let trickle = tokio::spawn(async move {
        for c in rest {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if tx.send(c).await.is_err() {
                break;
            }
        }
    });
    let refused = call.await.unwrap().unwrap_err();
    assert_eq!(refused.code(), Code::DeadlineExceeded, "{refused:?}");
    assert!(refused.message().contains("minimum rate"), "{refused:?}");
    trickle.abort();
    wait_until("the staged file to go", || files(&server, "part") == 0).await;
    // Its place is free again, and a prompt upload goes through.
    assert_eq!(upload(&mut w, &bytes).await.unwrap(), 4096);
    report_and_complete(&mut w).await;
    assert_eq!(report_succeeded(&server, &db), 1);
    server.stop().await;
}

/// An upload of `bytes` sent one byte every `every`; its answer.
fn trickle(
    w: &Leased,
    bytes: &[u8],
    every: Duration,
) -> tokio::task::JoinHandle<tonic::Result<u64>> {
    let all = chunks(w, bytes, bytes.len() as u64, 1);
    let stream = tokio_stream::StreamExt::throttle(tokio_stream::iter(all), every);
    let mut client = w.client.clone();
    tokio::spawn(async move {
        client
            .upload_checkpoint(stream)
            .await
            .map(|r| r.into_inner().bytes)
    })
}

/// Whether `coordinator status` answers (the admin service's Status).
async fn status_answers(server: &TestServer) -> bool {
    server.admin(None).status(StatusRequest {}).await.is_ok()
}

#[tokio::test]
async fn trickling_uploads_are_cut_off_below_the_minimum_rate_and_honest_ones_then_get_in() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let mut l = limits(1 << 20, 3, 10_000);
    // 1 KiB/s over windows of 300 ms, after 300 ms of grace; a byte every
    // 100 ms is 10 bytes/s.
    l.min_upload_rate = 1 << 10;
    l.rate_window = Duration::from_millis(300);
    l.upload_grace = Duration::from_millis(300);
    let server = start_limited(4, "fp-A", &db, l).await;
    let mut tricklers = Vec::new();
    for name in ["t1", "t2", "t3"] {
        tricklers.push(leased(&server, name).await);
    }
    let mut honest = leased(&server, "honest").await;
    let bytes = vec![9u8; 4096];
    let calls: Vec<_> = tricklers
        .iter()
        .map(|t| trickle(t, &bytes, Duration::from_millis(100)))
        .collect();
    wait_until("three trickles to be staged", || {
        files(&server, "part") == 3
    })
    .await;
    // While they hold every place, an honest upload is turned away, and the
    // coordinator answers status.
    let busy = upload(&mut honest, &bytes).await.unwrap_err();
    assert_eq!(busy.code(), Code::ResourceExhausted, "{busy:?}");
    assert!(status_answers(&server).await);
    for call in calls {
        let refused = call.await.unwrap().unwrap_err();
        assert_eq!(refused.code(), Code::DeadlineExceeded, "{refused:?}");
        assert!(refused.message().contains("minimum rate"), "{refused:?}");
    }
    wait_until("the staged files to go", || files(&server, "part") == 0).await;
    assert_eq!(upload(&mut honest, &bytes).await.unwrap(), 4096);
    assert!(status_answers(&server).await);
    report_and_complete(&mut honest).await;
    assert_eq!(report_succeeded(&server, &db), 1);
    server.stop().await;
}

#[tokio::test]
async fn an_upload_whose_lease_ends_gives_its_place_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let mut l = limits(1 << 20, 1, 10_000);
    // A rate the trickle keeps (a byte every 100 ms over 300 ms windows is
    // above 1 byte/s): only the end of its lease stops it.
    l.min_upload_rate = 1;
    l.rate_window = Duration::from_millis(300);
    l.upload_grace = Duration::ZERO;
    let server = start_limited(2, "fp-A", &db, l).await;
    let trickler = leased(&server, "trickler").await;
    let mut honest = leased(&server, "honest").await;
    let bytes = vec![4u8; 4096];
    let call = trickle(&trickler, &bytes, Duration::from_millis(100));
    wait_until("the trickle to be staged", || files(&server, "part") == 1).await;
    let busy = upload(&mut honest, &bytes).await.unwrap_err();
    assert_eq!(busy.code(), Code::ResourceExhausted, "{busy:?}");

    // A lease timeout passes; the honest worker heartbeats, the trickler
    // does not, and its lease expires.
    server.clock.advance_s(LEASE_TIMEOUT_S + 1);
    honest
        .client
        .heartbeat(HeartbeatRequest {
            worker_id: honest.who.id.clone(),
            registration: Some(registration("honest", "fp-A")),
            running: vec![AttemptProgress {
                attempt_id: honest.job.attempt_id.clone(),
                epoch: 1,
                epochs: 2,
            }],
            worker_secret: honest.who.secret.clone(),
        })
        .await
        .unwrap();
    let expired = server.sched.call(|s| s.expire_leases()).await.unwrap();
    assert_eq!(
        expired.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec![trickler.job.attempt_id.clone()]
    );
    let refused = call.await.unwrap().unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("lease ended"), "{refused:?}");
    wait_until("the staged file to go", || files(&server, "part") == 0).await;
    assert_eq!(upload(&mut honest, &bytes).await.unwrap(), 4096);
    assert!(status_answers(&server).await);
    report_and_complete(&mut honest).await;
    assert_eq!(report_succeeded(&server, &db), 1);
    server.stop().await;
}
