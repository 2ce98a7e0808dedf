//! Deterministic replay over real processes: `coordinator serve` with
//! `[protocol] verify = "all"` and two real CPU workers, each with a
//! credential of its own (`coordinator worker add`). Each job one worker
//! trains is trained again from epoch 0 by the other, and the two runs agree
//! bit for bit (every epoch's figures, the confusion matrix and the final
//! weights' hash): the report says every result is verified bitwise, by
//! both workers, with nothing disagreeing and no suspect; the workers leave
//! only once the replays are done.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod join_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use join_support::sweep::report;
use join_support::*;

const LIMIT: Duration = Duration::from_secs(300);

fn write_verified(path: &Path, data: &Path) {
    let text = format!(
        r#"name = "verify-test"
[data]
root = {:?}
downscale = 4
[protocol]
kind = "train-val-test"
folds = 2
seeds = [0]
variants = ["whole"]
verify = "all"
{TINY_RUN}"#,
        data.display().to_string()
    );
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_worker_replays_every_job_and_agrees_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_data(&data, 5);
    let experiment = tmp.path().join("e.toml");
    write_verified(&experiment, &data);
    let (admin, shared) = (tmp.path().join("admin"), tmp.path().join("shared"));
    std::fs::write(&admin, "admin-secret\n").unwrap();
    std::fs::write(&shared, "shared-secret\n").unwrap();
    let port = free_port();
    let state = tmp.path().join("state.db");
    let log = tmp.path().join("c.log");
    let _coordinator = Proc {
        child: Command::new(coordinator_bin())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--experiment")
            .arg(&experiment)
            .arg("--state")
            .arg(&state)
            .arg("--token-file")
            .arg(&shared)
            .arg("--admin-token-file")
            .arg(&admin)
            .args(["--heartbeat-seconds", "1", "--lease-timeout-seconds", "5"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
        name: "coordinator".into(),
    };
    let url = format!("http://127.0.0.1:{port}");
    let mut workers = Vec::new();
    for name in ["gpu-a", "gpu-b"] {
        // The coordinator may still be starting: `worker add` retries.
        let token = tmp.path().join(format!("{name}.token"));
        let mut added = false;
        for _ in 0..100 {
            let out = Command::new(coordinator_bin())
                .args(["worker", "add", name, "--coordinator", &url, "--token-file"])
                .arg(&admin)
                .arg("--out")
                .arg(&token)
                .output()
                .unwrap();
            if out.status.success() {
                added = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(added, "worker add {name}");
        let work = tmp.path().join(name);
        let token_arg = token.display().to_string();
        workers.push(start_worker_with(
            port,
            &data,
            &work,
            name,
            &["--token-file", &token_arg],
            &[],
        ));
    }
    for w in &mut workers {
        assert!(w.wait_for(LIMIT).success(), "{} exits 0", w.name);
    }

    let json = report(&state, "json");
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    let v = &parsed["verification"];
    assert_eq!(v["counts"]["sampled"], 2, "{v}");
    assert_eq!(
        v["counts"]["bitwise"], 2,
        "every job agrees bit for bit: {v}"
    );
    assert_eq!(v["counts"]["replaced"], 0, "{v}");
    assert!(v["disagreements"].as_array().unwrap().is_empty(), "{v}");
    assert!(v["suspects"].as_array().unwrap().is_empty(), "{v}");
    let replays: u64 = v["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["replays"].as_u64().unwrap())
        .sum();
    assert_eq!(replays, 2, "{v}");
    for j in parsed["jobs"].as_array().unwrap() {
        assert_eq!(j["status"], "succeeded", "{j}");
        assert_eq!(j["attempts"], 1, "a replay is no attempt of the job: {j}");
    }
    let md = report(&state, "md");
    assert!(
        md.contains("2 of the results were verified by a deterministic replay"),
        "{md}"
    );
}
