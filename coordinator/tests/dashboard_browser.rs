//! End to end: a real `coordinator serve --http` process on a tiny experiment
//! (2 seeds × 2 folds, a worker simulated over gRPC), its dashboard opened in
//! headless Chromium driven through WebDriver (chromedriver on loopback, a
//! hand-written HTTP client). Checks that the page shows the numbers of
//! `coordinator report --format json`, that it updates without a reload when a
//! job finishes (counts, aggregate, the selected job's curves), and that it
//! shows a "reconnecting" banner while the coordinator is down and recovers
//! when it is back. Saves a screenshot to `$CARGO_TARGET_TMPDIR/dashboard.png`
//! (and one of a suspect worker to `dashboard-suspect.png`).
//! A second test opens a sweep's dashboard: the configuration filter appears
//! with the sweep's labels and keeps only the chosen configuration's jobs.
//! A third names the experiment and a worker like HTML that runs a script:
//! the page shows the names as text (no element made of them, no alert), a
//! suspect worker with its reason (as text) and the command that clears it, and
//! the login page, its form and the log-out button work: without a session,
//! and after the logout, the page leads to the login page.
//!
//! Needs Debian's `chromium` and `chromium-driver`
//! (`apt-get update && apt-get install -y chromium chromium-driver`), so both
//! are `#[ignore]`d: `scripts/test.sh` runs them when both are installed and
//! names them as skipped when they are not (under `CI=true` their absence is a failure).
//! Run by hand, it fails without them. `CHROME_BIN` and `CHROMEDRIVER`
//! override the binaries' paths.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spikecv_common::experiment::job::{EpochMetrics, JobResult};
use spikecv_common::proto as pb;
use spikecv_common::proto::coordinator_client::CoordinatorClient;

const TOKEN: &str = "dash-e2e-token";
const EPOCHS: u32 = 6;
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- plumbing

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn find(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    std::env::var_os(env)
        .map(PathBuf::from)
        .into_iter()
        .chain(candidates.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`);
/// returns the status code and the body (by Content-Length, chunked or to the end).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: Option<&Value>,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (mut length, mut chunked) = (None, false);
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap() == 0 || line.trim().is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').unwrap_or((&line, ""));
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = v.trim().parse::<usize>().ok(),
            "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
    }
    let mut raw = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            let n = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).unwrap();
            raw.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = length {
        raw.resize(n, 0);
        r.read_exact(&mut raw).unwrap();
    } else {
        r.read_to_end(&mut raw).unwrap();
    }
    let body = String::from_utf8_lossy(&raw).into_owned();
    (code, body)
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let n = chunk
            .iter()
            .fold(0u32, |acc, &c| (acc << 6) | u32::from(val(c)))
            << (6 * (4 - chunk.len()));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

// ---------------------------------------------------------------- WebDriver

struct Browser {
    driver: SocketAddr,
    session: String,
    _chromedriver: Proc,
}

impl Browser {
    fn start(chromium: &Path, chromedriver: &Path, profile: &Path) -> Self {
        let driver = free_addr();
        let child = Command::new(chromedriver)
            .arg(format!("--port={}", driver.port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let proc = Proc(child);
        wait_for("chromedriver", || {
            TcpStream::connect(driver).ok()?;
            let (code, body) = http(driver, "GET", "/status", "", None);
            let v: Value = serde_json::from_str(&body).ok()?;
            (code == 200 && v["value"]["ready"] == true).then_some(())
        });
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--window-size=1400,1700",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let (code, body) = http(driver, "POST", "/session", "", Some(&caps));
        assert_eq!(code, 200, "new WebDriver session: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let session = v["value"]["sessionId"].as_str().unwrap().to_owned();
        Browser {
            driver,
            session,
            _chromedriver: proc,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (code, text) = http(
            self.driver,
            method,
            &format!("/session/{}{path}", self.session),
            "",
            body,
        );
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_eq!(code, 200, "WebDriver {method} {path}: {text}");
        v["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(&json!({ "url": url })));
    }

    /// Runs `script` (a function body) in the page and returns its value.
    fn js(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": [] })),
        )
    }

    /// Waits until `script` returns something other than null/false.
    fn wait_js(&self, what: &str, script: &str) -> Value {
        wait_for(what, || {
            let v = self.js(script);
            (!v.is_null() && v != Value::Bool(false)).then_some(v)
        })
    }

    /// Runs `script` like [`Browser::js`]; `None` when WebDriver answers with
    /// an error (e.g. while the page navigates).
    fn try_js(&self, script: &str) -> Option<Value> {
        let body = json!({ "script": script, "args": [] });
        let path = format!("/session/{}/execute/sync", self.session);
        let (code, text) = http(self.driver, "POST", &path, "", Some(&body));
        let v: Value = serde_json::from_str(&text).ok()?;
        (code == 200).then(|| v["value"].clone())
    }

    /// Waits until `script` returns something other than null/false, across
    /// page loads.
    fn wait_page(&self, what: &str, script: &str) -> Value {
        wait_for(what, || {
            let v = self.try_js(script)?;
            (!v.is_null() && v != Value::Bool(false)).then_some(v)
        })
    }

    /// The WebDriver id of the element `css` selects.
    fn element(&self, css: &str) -> String {
        let found = self.call(
            "POST",
            "/element",
            Some(&json!({ "using": "css selector", "value": css })),
        );
        found["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Types `text` into the element `css` selects.
    fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(&json!({ "text": text })),
        );
    }

    /// Clicks the element `css` selects (WebDriver waits for a navigation it starts).
    fn click(&self, css: &str) {
        let id = self.element(css);
        self.call("POST", &format!("/element/{id}/click"), Some(&json!({})));
    }

    /// Whether an alert (or another user prompt) is open.
    fn alert_open(&self) -> bool {
        let path = format!("/session/{}/alert/text", self.session);
        let (code, text) = http(self.driver, "GET", &path, "", None);
        assert!(
            code == 200 || text.contains("no such alert"),
            "WebDriver GET /alert/text: {code} {text}"
        );
        code == 200
    }

    fn screenshot(&self) -> Vec<u8> {
        base64_decode(self.call("GET", "/screenshot", None).as_str().unwrap())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(
            self.driver,
            "DELETE",
            &format!("/session/{}", self.session),
            "",
            None,
        );
    }
}

// ---------------------------------------------------------------- coordinator and worker

struct Setup {
    dir: tempfile::TempDir,
    grpc: SocketAddr,
    web: SocketAddr,
}

impl Setup {
    fn new() -> Self {
        Self::with_config("")
    }

    /// A set-up whose experiment ends with `extra` (a `[sweep]` table).
    fn with_config(extra: &str) -> Self {
        Self::named("dashboard-e2e", extra)
    }

    /// A set-up whose experiment is called `name` (a TOML literal string:
    /// no `'`) and ends with `extra`.
    fn named(name: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir_all(&root).unwrap();
        let names: Vec<String> = (0..8).map(|i| format!("user{:02}_dc", 40 + i)).collect();
        std::fs::write(root.join("filelist.txt"), names.join("\n") + "\n").unwrap();
        let toml = format!(
            "name = '{name}'\n[data]\nroot = {:?}\n[protocol]\nfolds = 2\nseeds = [0, 1]\nvariants = [\"whole\"]\n[training]\nepochs = {EPOCHS}\n{extra}",
            root.display().to_string()
        );
        std::fs::write(dir.path().join("experiment.toml"), toml).unwrap();
        std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
        Setup {
            dir,
            grpc: free_addr(),
            web: free_addr(),
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    fn coordinator(&self) -> Proc {
        let d = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("coordinator.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_coordinator"))
            .args(["serve", "--experiment"])
            .arg(d.join("experiment.toml"))
            .arg("--state")
            .arg(self.db())
            .args([
                "--listen",
                &self.grpc.to_string(),
                "--http",
                &self.web.to_string(),
            ])
            .arg("--token-file")
            .arg(d.join("token"))
            // The data root holds only a file list: nothing to fingerprint.
            .arg("--allow-unfingerprinted-data")
            .args(["--heartbeat-seconds", "1"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let proc = Proc(child);
        wait_for("the coordinator's HTTP listener", || {
            TcpStream::connect(self.web).ok()?;
            let (code, body) = http(self.web, "GET", "/metrics", "", None);
            (code == 200 && body.contains("spikecv_jobs")).then_some(())
        });
        proc
    }

    fn report(&self) -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_coordinator"))
            .args(["report", "--format", "json", "--state"])
            .arg(self.db())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "report: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// Adds the bearer token to every call.
type AuthFn =
    Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>;
type Client = CoordinatorClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, AuthFn>,
>;

/// A worker simulated over gRPC: registers with two slots and leases two jobs.
struct SimWorker {
    rt: tokio::runtime::Runtime,
    client: Client,
    id: String,
    secret: String,
}

fn registration() -> pb::RegisterRequest {
    pb::RegisterRequest {
        protocol_version: pb::PROTOCOL_VERSION,
        worker_name: "sim-node-1".into(),
        host: "sim-node".into(),
        slots: ["cuda:0", "cuda:1"]
            .map(|d| pb::Slot {
                device: d.into(),
                device_name: "simulated GPU".into(),
                memory_bytes: 80 << 30,
                manifest: None,
            })
            .to_vec(),
        data_fingerprint: String::new(),
        trainers: Vec::new(),
    }
}

fn metrics(epoch: u32, k: f64) -> EpochMetrics {
    let e = f64::from(epoch);
    EpochMetrics {
        epoch,
        train_loss: 0.9 / e + k,
        train_accuracy: (0.12 * e + k).min(1.0),
        val_loss: Some(0.8 / e + k),
        val_accuracy: Some((0.1 * e + k).min(1.0)),
        test_loss: Some(0.85 / e + k),
        test_accuracy: Some((0.09 * e + k).min(1.0)),
        epoch_seconds: 3.0,
        samples_per_second: 250.0 + 10.0 * k,
        firing_rates: Vec::new(),
    }
}

impl SimWorker {
    fn connect(grpc: SocketAddr) -> Self {
        Self::connect_as(grpc, registration())
    }

    /// A worker registered with `registration` (leases still send the default one).
    fn connect_as(grpc: SocketAddr, registration: pb::RegisterRequest) -> Self {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let client = rt.block_on(async {
            let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
                .unwrap()
                .connect()
                .await
                .unwrap();
            let bearer: tonic::metadata::MetadataValue<_> =
                format!("Bearer {TOKEN}").parse().unwrap();
            let auth: AuthFn = Box::new(move |mut r: tonic::Request<()>| {
                r.metadata_mut().insert("authorization", bearer.clone());
                Ok(r)
            });
            CoordinatorClient::with_interceptor(channel, auth)
        });
        let mut w = SimWorker {
            rt,
            client,
            id: String::new(),
            secret: String::new(),
        };
        let r =
            w.rt.block_on(w.client.register(registration))
                .unwrap()
                .into_inner();
        w.id = r.worker_id;
        w.secret = r.worker_secret;
        w
    }

    fn creds(&self) -> pb::WorkerCredentials {
        pb::WorkerCredentials {
            worker_id: self.id.clone(),
            secret: self.secret.clone(),
        }
    }

    fn lease(&mut self) -> Vec<pb::Assignment> {
        let req = pb::LeaseRequest {
            worker_id: self.id.clone(),
            registration: Some(registration()),
            free_slots: vec!["cuda:0".into(), "cuda:1".into()],
            running: vec![],
            worker_secret: self.secret.clone(),
        };
        self.rt
            .block_on(self.client.lease(req))
            .unwrap()
            .into_inner()
            .assignments
    }

    fn epoch(&mut self, attempt: &str, m: &EpochMetrics) {
        let req = pb::ReportEpochRequest {
            attempt_id: attempt.into(),
            metrics: Some(m.to_proto()),
            worker: Some(self.creds()),
        };
        self.rt.block_on(self.client.report_epoch(req)).unwrap();
        let beat = pb::HeartbeatRequest {
            worker_id: self.id.clone(),
            registration: Some(registration()),
            running: vec![pb::AttemptProgress {
                attempt_id: attempt.into(),
                epoch: m.epoch,
                epochs: EPOCHS,
            }],
            worker_secret: self.secret.clone(),
        };
        self.rt.block_on(self.client.heartbeat(beat)).unwrap();
    }

    fn complete(&mut self, a: &pb::Assignment, test: f64, epochs: Vec<EpochMetrics>) {
        let result = JobResult {
            best_epoch: EPOCHS - 1,
            test_accuracy: test,
            test_loss: 0.3,
            val_accuracy: Some(test - 0.04),
            val_loss: Some(0.35),
            // No matrix: one of 2x2 cannot fit the data set's 19 classes and
            // its test set, which the coordinator now checks.
            confusion: vec![],
            train_seconds: 3.0 * f64::from(EPOCHS),
            epochs,
            optimistic: false,
        };
        let req = pb::CompleteRequest {
            attempt_id: a.attempt_id.clone(),
            result: Some(result.to_proto()),
            device: a.device.clone(),
            worker: Some(self.creds()),
            manifest: None,
            weights_sha256: String::new(),
        };
        self.rt.block_on(self.client.complete(req)).unwrap();
    }
}

// ---------------------------------------------------------------- the test

/// Checks every aggregate row and the counts on the page against a report.
fn assert_page_matches_report(b: &Browser, report: &Value) {
    let page = b.js(
        "const rows = [...document.querySelectorAll('tr[data-variant]')].map(r => {
           const t = r.querySelector('[data-field=test]'), c = r.querySelector('[data-field=count]');
           return { variant: r.dataset.variant, protocol: r.dataset.protocol, mean: t.dataset.mean ?? null,
                    std: t.dataset.std ?? null, text: t.textContent, count: Number(c.dataset.count),
                    planned: Number(c.dataset.planned), badge: r.querySelector('[data-field=partial]').textContent };
         });
         const stat = n => document.querySelector('[data-stat=' + n + ']').textContent;
         return { rows, planned: stat('planned'), succeeded: stat('succeeded'), running: stat('running') };",
    );
    let progress = &report["progress"];
    assert_eq!(page["planned"], progress["planned"].to_string());
    assert_eq!(page["succeeded"], progress["succeeded"].to_string());
    let running = progress["running"].as_u64().unwrap() + progress["leased"].as_u64().unwrap();
    assert_eq!(page["running"], running.to_string());
    let groups = report["groups"].as_array().unwrap();
    let rows = page["rows"].as_array().unwrap();
    assert_eq!(rows.len(), groups.len());
    for (row, g) in rows.iter().zip(groups) {
        assert_eq!(row["variant"], g["variant"]);
        assert_eq!(row["protocol"], g["protocol"]);
        let m = &g["test_accuracy"];
        assert_eq!(row["count"], m["count"]);
        assert_eq!(row["planned"], g["planned"]);
        let mean = m["mean"].as_f64().unwrap();
        let shown: f64 = row["mean"].as_str().unwrap().parse().unwrap();
        assert!(
            (shown - mean).abs() < 1e-12,
            "page mean {shown}, report {mean}"
        );
        let std = m["std_population"].as_f64().unwrap();
        let shown: f64 = row["std"].as_str().unwrap().parse().unwrap();
        assert!(
            (shown - std).abs() < 1e-12,
            "page std {shown}, report {std}"
        );
        let text = row["text"].as_str().unwrap();
        assert!(
            text.starts_with(&format!("{:.2} %", 100.0 * mean)),
            "{text}"
        );
        let complete = progress["complete"].as_bool().unwrap();
        assert_eq!(row["badge"], if complete { "final" } else { "partial" });
    }
}

/// Chromium and chromedriver, or a panic saying how to get them.
fn browser_binaries() -> (PathBuf, PathBuf) {
    let chromium = find(
        "CHROME_BIN",
        &[
            "/usr/bin/chromium",
            "/usr/bin/chromium-browser",
            "/usr/bin/google-chrome",
        ],
    );
    let driver = find(
        "CHROMEDRIVER",
        &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
    );
    let (Some(chromium), Some(driver)) = (chromium, driver) else {
        panic!(
            "chromium and chromedriver are needed: apt-get update && apt-get install -y chromium chromium-driver \
             (or set CHROME_BIN and CHROMEDRIVER)"
        );
    };
    (chromium, driver)
}

#[test]
#[ignore = "needs chromium and chromedriver (scripts/test.sh runs it when they are installed)"]
fn dashboard_in_headless_chromium() {
    let (chromium, driver) = browser_binaries();
    let setup = Setup::new();
    let mut coordinator = setup.coordinator();
    let (code, _) = http(setup.web, "GET", "/api/overview", "", None);
    assert_eq!(code, 401, "the API needs the token");

    // Two jobs leased: the first finishes, the second is at epoch 3 of 6.
    let mut worker = SimWorker::connect(setup.grpc);
    let jobs = worker.lease();
    assert_eq!(jobs.len(), 2);
    let first: Vec<EpochMetrics> = (1..=EPOCHS).map(|e| metrics(e, 0.0)).collect();
    for m in &first {
        worker.epoch(&jobs[0].attempt_id, m);
    }
    worker.complete(&jobs[0], 0.58, first);
    let second: Vec<EpochMetrics> = (1..=EPOCHS).map(|e| metrics(e, 0.07)).collect();
    for m in &second[..3] {
        worker.epoch(&jobs[1].attempt_id, m);
    }

    let profile = setup.dir.path().join("chromium-profile");
    let b = Browser::start(&chromium, &driver, &profile);
    // The login link sets an HttpOnly session cookie and redirects to a clean URL.
    b.goto(&format!("http://{}/login?token={TOKEN}", setup.web));
    b.wait_js(
        "the overview",
        "const s = document.querySelector('[data-stat=succeeded]'); return s && s.textContent === '1';",
    );
    assert_eq!(
        b.js("return location.href"),
        format!("http://{}/", setup.web),
        "no token in the address bar"
    );
    assert_eq!(
        b.js("return document.cookie"),
        "",
        "the session cookie is HttpOnly: the page's scripts cannot read it"
    );
    assert_page_matches_report(&b, &setup.report());

    // The jobs table: four rows, the running job at epoch 3/6 with its latest accuracy.
    b.wait_js(
        "the jobs table",
        "return document.querySelectorAll('#jobs tbody tr').length === 4;",
    );
    let running = b.js(&format!(
        "const r = document.querySelector('#jobs tr[data-job=\"{}\"]');
         return {{ state: r.dataset.state, epoch: r.querySelector('[data-field=epoch]').textContent,
                   test: Number(r.querySelector('[data-field=test]').dataset.value) }};",
        jobs[1].job_id
    ));
    assert_eq!(running["state"], "running");
    assert_eq!(running["epoch"], "3/6");
    assert!((running["test"].as_f64().unwrap() - second[2].test_accuracy.unwrap()).abs() < 1e-12);
    let workers =
        b.js("return [...document.querySelectorAll('#workers tbody tr')].map(r => r.textContent)");
    let w = workers[0].as_str().unwrap();
    assert!(
        w.contains("sim-node-1") && w.contains("alive") && w.contains("3/6"),
        "{w}"
    );

    // Sorting on the server: by test accuracy, descending, the finished job (0.58) first.
    b.js("document.querySelector('#jobs th[data-sort=test_accuracy]').click(); return null;");
    b.js("document.querySelector('#jobs th[data-sort=test_accuracy]').click(); return null;");
    b.wait_js(
        "sorted rows",
        &format!("const r = document.querySelector('#jobs tbody tr'); return !!r && r.dataset.job === '{}' && document.querySelector('th.sorted-desc') !== null;", jobs[0].job_id),
    );

    // The finished job's curves (for the screenshot), then the running job's.
    let select = |id: &str, n: usize| {
        b.js(&format!(
            "document.querySelector('#jobs tr[data-job=\"{id}\"]').click(); return null;"
        ));
        b.wait_js(
            "the learning curves",
            &format!("const d = document.querySelector('#detail'); return !d.hidden && d.dataset.job === '{id}' && d.dataset.epochs === '{n}';"),
        );
    };
    select(&jobs[0].job_id, EPOCHS as usize);
    let points = b.js("return [...document.querySelectorAll('#chart-acc path[data-series]')].map(p => [p.dataset.series, p.dataset.points])");
    assert_eq!(
        points,
        json!([["train acc", "6"], ["val acc", "6"], ["test acc", "6"]])
    );
    let png = b.screenshot();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&shot, &png).unwrap();
    eprintln!("dashboard screenshot: {}", shot.display());
    select(&jobs[1].job_id, 3);

    // The second job finishes: the page updates in place (no reload).
    let boot = b.js("return window.spikecvDashboard.boot");
    for m in &second[3..] {
        worker.epoch(&jobs[1].attempt_id, m);
    }
    worker.complete(&jobs[1], 0.66, second);
    b.wait_js(
        "the page to show the second result",
        "const s = document.querySelector('[data-stat=succeeded]'); return s && s.textContent === '2' && document.querySelector('#detail').dataset.epochs === '6';",
    );
    assert_eq!(
        b.js("return window.spikecvDashboard.boot"),
        boot,
        "the page was reloaded"
    );
    let report = setup.report();
    assert_eq!(report["groups"][0]["test_accuracy"]["count"], 2);
    assert_page_matches_report(&b, &report);
    let state = b.js(&format!(
        "return document.querySelector('#jobs tr[data-job=\"{}\"]').dataset.state",
        jobs[1].job_id
    ));
    assert_eq!(state, "succeeded");

    // The coordinator goes away: a "reconnecting" banner; back: the banner goes.
    drop(coordinator);
    b.wait_js(
        "the reconnecting banner",
        "return !document.querySelector('#banner').hidden;",
    );
    assert!(
        b.js("return document.querySelector('#banner').textContent")
            .as_str()
            .unwrap()
            .contains("reconnecting")
    );
    coordinator = setup.coordinator();
    b.wait_js(
        "the banner to go after the restart",
        "return document.querySelector('#banner').hidden && document.querySelector('#connection').textContent === 'live';",
    );
    assert_eq!(b.js("return window.spikecvDashboard.boot"), boot);
    assert_page_matches_report(&b, &setup.report());
    drop(b);
    drop(coordinator);
}

#[test]
#[ignore = "needs chromium and chromedriver (scripts/test.sh runs it when they are installed)"]
fn sweep_configuration_filter_in_headless_chromium() {
    let (chromium, driver) = browser_binaries();
    let setup = Setup::with_config("[sweep]\n\"training.lr\" = [0.001, 0.0003]\n");
    let coordinator = setup.coordinator();
    let profile = setup.dir.path().join("chromium-profile");
    let b = Browser::start(&chromium, &driver, &profile);
    b.goto(&format!("http://{}/login?token={TOKEN}", setup.web));
    // Two configurations × two seeds × two folds.
    b.wait_js(
        "the jobs table",
        "return document.querySelectorAll('#jobs tbody tr').length === 8;",
    );
    // The filter appears for a sweep, with the configurations' labels.
    let filter = b.js("const s = document.querySelector('#f-configuration');
         return { hidden: s.parentElement.hidden, options: [...s.options].map(o => o.value) };");
    assert_eq!(filter["hidden"], false);
    assert_eq!(filter["options"], json!(["", "lr=0.001", "lr=0.0003"]));
    // The aggregate has a row per configuration.
    let groups = b.js(
        "return [...document.querySelectorAll('[data-configuration]')].map(r => r.dataset.configuration)",
    );
    assert_eq!(groups, json!(["lr=0.001", "lr=0.0003"]));
    // Choosing one keeps only its jobs, each labelled with it.
    b.js(
        "const s = document.querySelector('#f-configuration'); s.value = 'lr=0.0003';
         s.dispatchEvent(new Event('input', { bubbles: true })); return null;",
    );
    b.wait_js(
        "the filtered jobs",
        "const rows = [...document.querySelectorAll('#jobs tbody tr')];
         return rows.length === 4 && rows.every(r => r.querySelector('[data-field=variant]').textContent === 'whole [lr=0.0003]');",
    );
    // Every job finishes (accuracies spread so that the pairs differ): the
    // aggregate gains the comparison with the baseline, the report's figures.
    let mut worker = SimWorker::connect(setup.grpc);
    let mut done = 0;
    while done < 8 {
        let jobs = worker.lease();
        assert!(!jobs.is_empty(), "jobs left to lease");
        for a in &jobs {
            let epochs: Vec<EpochMetrics> = (1..=EPOCHS).map(|e| metrics(e, 0.0)).collect();
            for m in &epochs {
                worker.epoch(&a.attempt_id, m);
            }
            worker.complete(
                a,
                0.40 + 0.07 * f64::from(done) - 0.01 * f64::from(done * done % 5),
                epochs,
            );
            done += 1;
        }
    }
    let report = setup.report();
    let rows = report["sweep"]["rankings"][0]["rows"].as_array().unwrap();
    let compared = rows.iter().find(|r| r["configuration"] == 1).unwrap();
    let posterior = &compared["versus_baseline"]["posterior"];
    assert!(posterior["p_better"].is_f64(), "{compared}");
    let cell = b.wait_js(
        "the comparison column",
        "const c = document.querySelector('[data-configuration=\"lr=0.0003\"] [data-field=versus]');
         return c && c.dataset.pBetter ? { better: +c.dataset.pBetter, equivalent: +c.dataset.pEquivalent, worse: +c.dataset.pWorse, text: c.textContent } : null;",
    );
    for key in ["better", "equivalent", "worse"] {
        let want = posterior[format!("p_{key}")].as_f64().unwrap();
        let got = cell[key].as_f64().unwrap();
        assert!(
            (got - want).abs() < 1e-12,
            "{key}: page {got}, report {want}"
        );
    }
    assert!(cell["text"].as_str().unwrap().contains(" pp, p "), "{cell}");
    let baseline = b.js(
        "return document.querySelector('[data-configuration=\"lr=0.001\"] [data-field=versus]').textContent",
    );
    assert_eq!(baseline, json!("baseline"));
    drop(b);
    drop(coordinator);
}

#[test]
#[ignore = "needs chromium and chromedriver (scripts/test.sh runs it when they are installed)"]
fn hostile_names_and_the_logout_in_headless_chromium() {
    const EXPERIMENT: &str = "<img src=x onerror=alert(1)> a|b";
    const WORKER: &str = "=cmd()|<img src=x onerror=alert(2)><b>w</b>";
    let (chromium, driver) = browser_binaries();
    let setup = Setup::named(EXPERIMENT, "");
    let coordinator = setup.coordinator();
    let mut reg = registration();
    reg.worker_name = WORKER.into();
    reg.host = "<i>node</i>".into();
    let worker = SimWorker::connect_as(setup.grpc, reg);

    let profile = setup.dir.path().join("chromium-profile");
    let b = Browser::start(&chromium, &driver, &profile);
    // Without a session the page sends the browser to the login page.
    b.goto(&format!("http://{}/", setup.web));
    b.wait_page(
        "the login page",
        "return location.pathname === '/login' && !!document.querySelector('#login form');",
    );
    // The form posts the token: no token in any URL.
    b.type_into("#token", TOKEN);
    b.click("#login button[type=submit]");
    b.wait_page(
        "the overview with the worker",
        "const h = document.querySelector('.experiment-head h2');
         return !!h && document.querySelectorAll('#workers tbody tr').length === 1;",
    );
    assert_eq!(
        b.js("return location.href"),
        format!("http://{}/", setup.web)
    );
    let shown = b.js("const row = document.querySelector('#workers tbody tr');
         return { experiment: document.querySelector('.experiment-head h2').textContent,
                  worker: row.cells[0].textContent, host: row.cells[1].textContent,
                  option: document.querySelector('#f-experiment option').textContent,
                  images: document.querySelectorAll('img').length,
                  injected: document.querySelectorAll('main b, main i').length };");
    assert_eq!(shown["experiment"], EXPERIMENT, "the name as text: {shown}");
    assert_eq!(shown["worker"], WORKER, "{shown}");
    assert_eq!(shown["host"], "<i>node</i>", "{shown}");
    assert!(
        shown["option"].as_str().unwrap().starts_with(EXPERIMENT),
        "{shown}"
    );
    assert_eq!(shown["images"], 0, "no element was made of a name: {shown}");
    assert_eq!(shown["injected"], 0, "{shown}");
    assert!(!b.alert_open(), "no script ran");

    // The worker turns suspect (a row the scheduler writes when a replay
    // outvotes it; written here straight into the store, with a reason
    // like HTML): the live page shows a badge whose title is the reason,
    // the reason as text and the command that clears it (by id: the name
    // is no word to type in a shell), without a reload.
    const REASON: &str = "<img src=x onerror=alert(3)> disagreed with two runs";
    let store = rusqlite::Connection::open(setup.db()).unwrap();
    store.busy_timeout(WAIT).unwrap();
    store
        .execute(
            "INSERT INTO suspects (worker, name, job, reason, since_ms) VALUES (?1, ?2, 'job-x', ?3, 1)",
            rusqlite::params![worker.id, WORKER, REASON],
        )
        .unwrap();
    let suspect = b.wait_js(
        "the suspect badge",
        "const badge = document.querySelector('#workers tbody tr.suspect [data-suspect=badge]');
         if (!badge) return null;
         return { badge: badge.textContent, title: badge.title,
                  note: document.querySelector('[data-suspect=note]').textContent,
                  command: document.querySelector('[data-suspect=note] code').textContent,
                  count: document.querySelector('#worker-count').textContent,
                  images: document.querySelectorAll('img').length };",
    );
    assert_eq!(suspect["badge"], "suspect", "{suspect}");
    assert_eq!(suspect["title"], REASON, "{suspect}");
    let note = suspect["note"].as_str().unwrap();
    assert!(
        note.starts_with(REASON) && note.contains("job job-x"),
        "{suspect}"
    );
    assert_eq!(
        suspect["command"],
        format!("coordinator worker clear {}", worker.id)
    );
    assert!(
        suspect["count"].as_str().unwrap().contains("1 suspect"),
        "{suspect}"
    );
    assert_eq!(suspect["images"], 0, "no element was made of the reason");
    assert!(!b.alert_open(), "no script ran");
    // Pending jobs turn to a training script no worker registered (written
    // here straight into the store, its name like HTML): the live page says
    // they wait for it, the name as text, and how to register it.
    const TRAINER: &str = "<img src=x onerror=alert(4)>";
    let waiting = store
        .execute(
            "UPDATE jobs SET trainer = ?1, updated_ms = updated_ms + 1 WHERE status = 'pending'",
            [TRAINER],
        )
        .unwrap();
    assert!(waiting > 0, "the setup leaves pending jobs");
    let wait = b.wait_js(
        "the waiting line",
        "const li = document.querySelector('#trainer-waits li');
         if (!li) return null;
         return { text: li.textContent, command: li.querySelector('code').textContent,
                  images: document.querySelectorAll('img').length };",
    );
    assert!(
        wait["text"]
            .as_str()
            .unwrap()
            .contains(&format!("{waiting} pending job(s) need trainer {TRAINER}")),
        "{wait}"
    );
    assert_eq!(
        wait["command"],
        format!("worker join --trainer {TRAINER}=SCRIPT"),
        "{wait}"
    );
    assert_eq!(
        wait["images"], 0,
        "no element was made of the trainer's name"
    );
    assert!(!b.alert_open(), "no script ran");
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-suspect.png");
    std::fs::write(&shot, b.screenshot()).unwrap();
    eprintln!("suspect screenshot: {}", shot.display());

    // The log-out button ends the session: the login page, also for `/`.
    b.click("#logout button");
    b.wait_page(
        "the login page after the logout",
        "return location.pathname === '/login' && !!document.querySelector('#login form');",
    );
    b.goto(&format!("http://{}/", setup.web));
    b.wait_page(
        "the login page again",
        "return location.pathname === '/login';",
    );
    assert!(!b.alert_open());
    drop(b);
    drop(coordinator);
}
