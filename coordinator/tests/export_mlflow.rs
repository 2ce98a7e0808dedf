//! `coordinator export mlflow` against a real `mlflow server` started here
//! (SQLite backend and artifact folder in a temporary directory): a state
//! written by the scheduler (a sweep of two configurations × two variants:
//! nine jobs succeeded, one failed, two running) is exported; the runs read
//! back through MLflow's API carry the numbers of `report.json` (group means
//! and spreads, each job's selected-model figures, every epoch's history,
//! status, worker and device); then one running job finishes and the other is
//! retried from epoch 1, and exporting again updates the same runs (the
//! retried job's run written anew), with no duplicate run and no duplicate
//! metric point.
//!
//! `mlflow_export_round_trip` needs MLflow (`mlflow` on PATH or in the
//! project's `.venv/bin`): it is `#[ignore]`d and listed in scripts/test.sh,
//! which runs it where MLflow is installed (CI installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod store_support;
#[path = "export_mlflow_support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::{Value, json};
use spikecv_coordinator::commands::export::{ExportArgs, ExportTarget, MlflowArgs, run};
use spikecv_coordinator::export::rest::Client;
use support::{MlflowServer, StateFixture, report_json};

const PROTOCOL: &str = "train-val-test";

fn export_in_process(state: &std::path::Path, uri: &str) -> String {
    let args = ExportArgs {
        target: ExportTarget::Mlflow(MlflowArgs {
            state: state.to_owned(),
            tracking_uri: uri.to_owned(),
            experiment: None,
            mlflow_experiment: None,
        }),
    };
    let mut out = Vec::new();
    run(&args, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn export_with_the_binary(state: &std::path::Path, uri: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args(["export", "mlflow", "--state"])
        .arg(state)
        .args(["--tracking-uri", uri, "--experiment", "mlflow export"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Every active run of the experiment, by `spikecv.job_id` (`parent` for the
/// aggregate run).
fn runs(client: &Client, experiment_id: &str) -> BTreeMap<String, Value> {
    let answer: Value = client
        .post(
            "runs/search",
            &json!({"experiment_ids": [experiment_id], "max_results": 1000}),
        )
        .unwrap();
    let list = answer["runs"].as_array().cloned().unwrap_or_default();
    let mut out = BTreeMap::new();
    for r in &list {
        let key = tag(r, "spikecv.job_id").unwrap_or_else(|| "parent".into());
        assert!(
            out.insert(key.clone(), r.clone()).is_none(),
            "two runs for {key}"
        );
    }
    out
}

fn pairs(run: &Value, kind: &str) -> BTreeMap<String, Value> {
    run["data"][kind]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (p["key"].as_str().unwrap().to_owned(), p["value"].clone()))
        .collect()
}

fn tag(run: &Value, key: &str) -> Option<String> {
    pairs(run, "tags")
        .get(key)
        .and_then(|v| v.as_str().map(str::to_owned))
}

fn metric(run: &Value, key: &str) -> Option<f64> {
    pairs(run, "metrics").get(key).and_then(Value::as_f64)
}

/// (step, value) of every logged point of `key`, in step order.
fn history(client: &Client, run: &Value, key: &str) -> Vec<(i64, f64)> {
    let id = run["info"]["run_id"].as_str().unwrap();
    let answer: Value = client
        .get(
            "metrics/get-history",
            &[("run_id", id), ("metric_key", key)],
        )
        .unwrap();
    let mut points: Vec<(i64, f64)> = answer["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| (m["step"].as_i64().unwrap(), m["value"].as_f64().unwrap()))
        .collect();
    points.sort_by(|a, b| a.partial_cmp(b).unwrap());
    points
}

fn artifact(uri: &str, run: &Value, name: &str) -> String {
    let root = run["info"]["artifact_uri"]
        .as_str()
        .unwrap()
        .trim_start_matches("mlflow-artifacts:/");
    let url = format!("{uri}/api/2.0/mlflow-artifacts/artifacts/{root}/{name}");
    ureq::get(&url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}

/// Checks every run against `report` (report.json as JSON).
fn check_against_report(client: &Client, uri: &str, experiment_id: &str, report: &Value) {
    let runs = runs(client, experiment_id);
    let jobs = report["jobs"].as_array().unwrap();
    assert_eq!(runs.len(), jobs.len() + 1, "{:?}", runs.keys());
    let parent = &runs["parent"];
    let parent_id = parent["info"]["run_id"].as_str().unwrap();
    assert_eq!(tag(parent, "spikecv.role").as_deref(), Some("aggregate"));

    // The aggregates: every group of report.json, figure by figure.
    let mut checked = 0;
    for g in report["groups"].as_array().unwrap() {
        let prefix = format!(
            "{}/{}/c{}",
            g["variant"].as_str().unwrap(),
            g["protocol"].as_str().unwrap(),
            g["configuration"]
        );
        for name in ["test_accuracy", "val_accuracy", "test_loss"] {
            for figure in ["mean", "std_population", "std_sample", "count"] {
                let key = format!("{prefix}/{name}_{figure}");
                assert_eq!(metric(parent, &key), g[name][figure].as_f64(), "{key}");
                checked += usize::from(g[name][figure].is_number());
            }
        }
        let label = tag(
            parent,
            &format!("spikecv.configuration.c{}", g["configuration"]),
        );
        assert!(
            label
                .unwrap()
                .starts_with(g["configuration_label"].as_str().unwrap())
        );
    }
    assert!(checked >= 36, "only {checked} figures compared");
    let stored: Value = serde_json::from_str(&artifact(uri, parent, "report.json")).unwrap();
    assert_eq!(stored["groups"], report["groups"]);

    let mut manifests = 0;
    for job in jobs {
        let id = job["id"].as_str().unwrap();
        let run = &runs[id];
        assert_eq!(tag(run, "mlflow.parentRunId").as_deref(), Some(parent_id));
        let params = pairs(run, "params");
        assert_eq!(params["variant"], job["variant"]);
        assert_eq!(params["seed"], json!(job["seed"].to_string()));
        assert_eq!(params["fold"], json!(job["fold"].to_string()));
        assert_eq!(params["protocol"], PROTOCOL);
        let c = job["configuration"].as_u64().unwrap() as usize;
        let values = &report["configurations"][c]["values"];
        assert_eq!(
            params["training.lr"],
            json!(values["training.lr"].to_string())
        );
        assert_eq!(params["training.epochs"], "3");

        let status = job["status"].as_str().unwrap();
        assert_eq!(tag(run, "spikecv.status").as_deref(), Some(status));
        assert_eq!(
            tag(run, "spikecv.worker").as_deref(),
            job["worker"].as_str()
        );
        assert_eq!(
            tag(run, "spikecv.device").as_deref(),
            job["device"].as_str()
        );
        // The manifest's fields as tags, where the job has one.
        match job["provenance"].as_object() {
            Some(p) => {
                manifests += 1;
                for (field, value) in p["manifest"].as_object().unwrap() {
                    if let Some(text) = value.as_str() {
                        let key = format!("spikecv.manifest.{field}");
                        assert_eq!(tag(run, &key).as_deref(), Some(text), "{id} {key}");
                    }
                }
                assert_eq!(
                    tag(run, "spikecv.weights_sha256").as_deref(),
                    p["weights_sha256"].as_str()
                );
            }
            None => assert_eq!(tag(run, "spikecv.manifest.device_model"), None),
        }
        let mlflow_status = match status {
            "succeeded" => "FINISHED",
            "failed" => "FAILED",
            _ => "RUNNING",
        };
        assert_eq!(run["info"]["status"], mlflow_status, "{id}");
        for key in [
            "test_accuracy",
            "test_loss",
            "val_accuracy",
            "val_loss",
            "best_epoch",
        ] {
            assert_eq!(metric(run, key), job[key].as_f64(), "{id} {key}");
        }

        let epochs = job["epochs"].as_array().unwrap();
        for (key, field) in [
            ("val/accuracy", "val_accuracy"),
            ("train/loss", "train_loss"),
            ("perf/samples_per_second", "samples_per_second"),
        ] {
            let want: Vec<(i64, f64)> = epochs
                .iter()
                .map(|e| (e["epoch"].as_i64().unwrap(), e[field].as_f64().unwrap()))
                .collect();
            assert_eq!(history(client, run, key), want, "{id} {key}");
        }

        let final_tag = tag(run, "spikecv.artifact.final_safetensors").unwrap();
        assert!(
            final_tag.starts_with("not held by the coordinator"),
            "{final_tag}"
        );
        if status == "succeeded" {
            let result: Value = serde_json::from_str(&artifact(uri, run, "result.json")).unwrap();
            assert_eq!(result["test_accuracy"], job["test_accuracy"]);
            assert_eq!(result["epochs"].as_array().unwrap().len(), epochs.len());
        } else {
            assert_eq!(tag(run, "spikecv.artifact.result_json"), None);
        }
    }
    assert!(manifests >= 4, "only {manifests} jobs with a manifest");
}

#[test]
#[ignore = "needs MLflow (mlflow on PATH or in .venv/bin); scripts/test.sh runs it where installed"]
fn mlflow_export_round_trip() {
    let server = MlflowServer::start();
    let uri = server.uri();
    let client = Client::new(&uri).unwrap();
    let mut fx = StateFixture::new();

    let t = std::time::Instant::now();
    let said = export_in_process(&fx.db, &uri);
    eprintln!("first export ({:.1} s): {said}", t.elapsed().as_secs_f64());
    assert!(
        said.contains("12 job runs (12 created, 0 updated, 0 unchanged"),
        "{said}"
    );
    let experiment: Value = client
        .get(
            "experiments/get-by-name",
            &[("experiment_name", "mlflow export")],
        )
        .unwrap();
    let experiment_id = experiment["experiment"]["experiment_id"].as_str().unwrap();
    let report = report_json(&fx.db);
    assert_eq!(report["progress"]["succeeded"], 9);
    check_against_report(&client, &uri, experiment_id, &report);
    let before = runs(&client, experiment_id);

    // One running job finishes, the other is retried from epoch 1: the second
    // export (the binary) updates the first's run, writes the second's anew
    // (its old history belongs to a lost attempt), and leaves the others.
    let finished = fx.finish_running_job();
    let retried = fx.retry_running_job();
    let said = export_with_the_binary(&fx.db, &uri);
    eprintln!("second export: {said}");
    assert!(
        said.contains("(0 created, 1 updated, 10 unchanged, 1 replaced)"),
        "{said}"
    );
    let report = report_json(&fx.db);
    assert_eq!(report["progress"]["succeeded"], 10);
    check_against_report(&client, &uri, experiment_id, &report);
    let after = runs(&client, experiment_id);
    let ids = |r: &BTreeMap<String, Value>| -> BTreeSet<(String, String)> {
        r.iter()
            .map(|(k, v)| (k.clone(), v["info"]["run_id"].as_str().unwrap().to_owned()))
            .collect()
    };
    let without = |r: &BTreeMap<String, Value>| {
        let mut r = r.clone();
        r.remove(&retried);
        ids(&r)
    };
    assert_eq!(
        without(&before),
        without(&after),
        "the same runs, none added"
    );
    assert_ne!(
        before[&retried]["info"]["run_id"],
        after[&retried]["info"]["run_id"]
    );
    assert_eq!(history(&client, &after[&finished], "val/accuracy").len(), 3);
    assert_eq!(history(&client, &after[&retried], "val/accuracy").len(), 1);

    // Nothing changed: nothing is sent.
    let said = export_with_the_binary(&fx.db, &uri);
    assert!(
        said.contains("(0 created, 0 updated, 12 unchanged, 0 replaced)"),
        "{said}"
    );
    assert_eq!(ids(&runs(&client, experiment_id)), ids(&after));

    // MLflow's own error comes back with its code and message.
    let err = client
        .get::<Value>("runs/get", &[("run_id", "0123456789abcdef")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("runs/get") && err.contains("RESOURCE_DOES_NOT_EXIST"),
        "{err}"
    );
}

#[test]
fn errors_name_what_and_where() {
    let fx = StateFixture::new();
    let args = |state: &std::path::Path, uri: &str| ExportArgs {
        target: ExportTarget::Mlflow(MlflowArgs {
            state: state.to_owned(),
            tracking_uri: uri.to_owned(),
            experiment: None,
            mlflow_experiment: None,
        }),
    };
    let fail = |a: &ExportArgs| run(a, &mut Vec::new()).unwrap_err().to_string();

    // Port 1 on loopback: nothing listens there.
    let e = fail(&args(&fx.db, "http://127.0.0.1:1"));
    assert!(
        e.contains("http://127.0.0.1:1/api/2.0/mlflow/") && e.contains("unreachable"),
        "{e}"
    );
    let e = fail(&args(&fx.db, "file:///tmp/mlruns"));
    assert!(
        e.contains("file:///tmp/mlruns") && e.contains("http://"),
        "{e}"
    );
    let missing = fx.db.with_file_name("nope.db");
    let e = fail(&args(&missing, "http://127.0.0.1:1"));
    assert!(e.contains("nope.db") && e.contains("does not exist"), "{e}");
    let mut named = args(&fx.db, "http://127.0.0.1:1");
    let ExportTarget::Mlflow(m) = &mut named.target;
    m.experiment = Some("other".into());
    let e = fail(&named);
    assert!(e.contains("\"other\"") && e.contains(&fx.experiment), "{e}");
}
