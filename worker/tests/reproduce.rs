//! Manifests and `worker reproduce` over real processes: a coordinator and a
//! CPU worker run a deterministic experiment (tiny synthetic set, one seed,
//! two folds); the report's JSON carries each job's manifest and its final
//! weights' hash (equal to `sha256sum` of the worker's file); `worker
//! reproduce` trains a job again from the report alone and matches it bit
//! for bit; a report whose figure is one ulp off, or whose weights hash is
//! another, is not reproduced (exit status non-zero, the figure named).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod join_support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use join_support::sweep::{ended, report};
use join_support::*;

const LIMIT: Duration = Duration::from_secs(300);

fn write_deterministic(path: &Path, data: &Path) {
    let text = format!(
        r#"name = "reproduce-test"
[data]
root = {:?}
downscale = 4
[protocol]
kind = "train-val-test"
folds = 2
seeds = [0]
variants = ["whole"]
{TINY_RUN}deterministic = true
"#,
        data.display().to_string()
    );
    std::fs::write(path, text).unwrap();
}

fn reproduce(report: &Path, job: &str, data: &Path, out: &Path) -> Output {
    Command::new(worker_bin())
        .args(["reproduce", "--job", job, "--report"])
        .arg(report)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `sha256sum FILE`'s digest.
fn sha256sum(file: &Path) -> String {
    let out = Command::new("sha256sum").arg(file).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deterministic_job_is_reproduced_bit_for_bit_from_its_report() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_data(&data, 5);
    let experiment = tmp.path().join("e.toml");
    write_deterministic(&experiment, &data);
    coordinator_bin();
    let (port, metrics) = (free_port(), free_port());
    let state = tmp.path().join("state.db");
    let work = tmp.path().join("w0");
    let _c = start_coordinator(
        port,
        &experiment,
        &state,
        metrics,
        &tmp.path().join("c.log"),
    );
    let mut w = start_worker(port, &data, &work, "w0");
    assert!(w.wait_for(LIMIT).success(), "the worker exits 0");
    wait_counts(port, Duration::from_secs(10), ended(2)).await;

    let json = report(&state, "json");
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    let job = &parsed["jobs"][0];
    assert_eq!(job["status"], "succeeded", "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let manifest = &job["provenance"]["manifest"];
    assert_eq!(manifest["switches"]["deterministic"], true, "{manifest}");
    assert_eq!(manifest["device"], "cpu");
    assert!(manifest["libtorch"].as_str().unwrap().starts_with("2.11.0"));
    assert!(manifest["threads"].as_u64().unwrap() >= 1);
    assert_eq!(manifest["binary_sha256"], sha256sum(&worker_bin()));
    let weights = work.join(&id).join("final.safetensors");
    assert_eq!(
        job["provenance"]["weights_sha256"],
        sha256sum(&weights),
        "the recorded hash is the worker's final weights'"
    );
    let md = report(&state, "md");
    let section = &md[md.find("## Environment").expect("an Environment section")..];
    let row = section
        .lines()
        .find(|l| l.starts_with("| 2 | w0 |"))
        .unwrap_or_else(|| panic!("one row for both jobs of w0: {section}"));
    assert!(row.contains("| yes |"), "deterministic: {row}");
    let report_file = tmp.path().join("report.json");
    std::fs::write(&report_file, &json).unwrap();

    let same = reproduce(&report_file, &id, &data, &tmp.path().join("again"));
    let out = text(&same);
    assert!(same.status.success(), "{out}");
    assert!(out.contains("comparison: bit for bit"), "{out}");
    assert!(out.contains("reproduced: all"), "{out}");
    assert!(!out.contains("DIFFER"), "{out}");

    // One ulp off in one figure of the recorded run.
    let mut nudged = parsed.clone();
    let loss = nudged["jobs"][0]["epochs"][1]["train_loss"]
        .as_f64()
        .unwrap();
    nudged["jobs"][0]["epochs"][1]["train_loss"] = f64::from_bits(loss.to_bits() + 1).into();
    std::fs::write(&report_file, nudged.to_string()).unwrap();
    let off = reproduce(&report_file, &id, &data, &tmp.path().join("off"));
    let out = text(&off);
    assert!(!off.status.success(), "{out}");
    assert!(out.contains("DIFFER epoch 2 train_loss"), "{out}");
    assert!(out.contains("NOT reproduced: 1 of"), "{out}");

    // Other weights.
    let mut other = parsed.clone();
    other["jobs"][0]["provenance"]["weights_sha256"] = "0".repeat(64).into();
    std::fs::write(&report_file, other.to_string()).unwrap();
    let swapped = reproduce(&report_file, &id, &data, &tmp.path().join("swapped"));
    let out = text(&swapped);
    assert!(!swapped.status.success(), "{out}");
    assert!(out.contains("DIFFER weights_sha256"), "{out}");

    // Another data set gives other job ids: refused, naming the job.
    let elsewhere = tmp.path().join("other-data");
    make_data(&elsewhere, 6);
    std::fs::write(&report_file, &json).unwrap();
    let wrong = reproduce(&report_file, &id, &elsewhere, &tmp.path().join("wrong"));
    let out = text(&wrong);
    assert!(!wrong.status.success(), "{out}");
    assert!(
        out.contains(&format!("job {id} is not among the jobs")),
        "{out}"
    );
}
