//! Every number of the Markdown, JSON and CSV reports against values computed
//! here from the fixture's formulas (two-pass mean/std, not the stats module).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod report_fixture;

use report_fixture as fx;
use serde_json::Value;
use spikecv_common::dataset::sl_animals::REDUCED;
use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::job::JobStatus;
use spikecv_common::experiment::sections::ProtocolKind;
use spikecv_coordinator::report::{build_report, render_csv, render_json, render_markdown};

const TVT: ProtocolKind = ProtocolKind::TrainValTest;

/// (seed, fold) of the jobs that succeeded in each variant.
fn succeeded_keys(v: Variant) -> Vec<(u64, u32)> {
    match v {
        Variant::WHOLE => (0..2).flat_map(|s| (0..3).map(move |f| (s, f))).collect(),
        REDUCED => (0..3).map(|f| (0, f)).collect(),
        other => panic!("the fixture has no {other} jobs"),
    }
}

fn over<F: Fn(Variant, u64, u32) -> f64>(v: Variant, keys: &[(u64, u32)], f: F) -> Vec<f64> {
    keys.iter().map(|&(s, k)| f(v, s, k)).collect()
}

fn min_max(xs: &[f64]) -> (f64, f64) {
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    (s[0], s[s.len() - 1])
}

fn report() -> spikecv_coordinator::report::Report {
    build_report(&fx::experiment("train-val-test"), &fx::jobs(TVT), fx::NOW)
}

/// The cells of the Markdown table row that starts with `prefix` (the cells
/// after the prefix).
fn row_after(md: &str, prefix: &str) -> Vec<String> {
    let line = md
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no row starting with {prefix:?} in\n{md}"));
    line[prefix.len()..]
        .trim_end_matches('|')
        .split(" | ")
        .map(|c| c.trim().trim_start_matches("| ").to_owned())
        .collect()
}

/// Asserts that a shown number (with `decimals` decimals, maybe followed by
/// " %") is `expected` rounded: within half a unit of the last decimal.
fn shown(cell: &str, expected: f64, decimals: i32) {
    let x: f64 = cell
        .trim_end_matches(" %")
        .parse()
        .unwrap_or_else(|_| panic!("{cell:?} is not a number (expected {expected})"));
    let tol = 0.5 * 10f64.powi(-decimals) + 1e-9;
    assert!(
        (x - expected).abs() <= tol,
        "shown {cell:?}, expected {expected}"
    );
    let dot = cell
        .trim_end_matches(" %")
        .split('.')
        .nth(1)
        .map_or(0, str::len);
    assert_eq!(
        dot as i32, decimals,
        "{cell:?} should have {decimals} decimals"
    );
}

/// Checks mean, population std, sample std, min, max cells of a metric row.
fn shown_summary(cells: &[String], xs: &[f64], scale: f64, decimals: i32) {
    let xs: Vec<f64> = xs.iter().map(|x| x * scale).collect();
    let (m, p) = fx::mean_std(&xs, 0);
    let (lo, hi) = min_max(&xs);
    shown(&cells[0], m, decimals);
    shown(&cells[1], p, decimals);
    if xs.len() > 1 {
        shown(&cells[2], fx::mean_std(&xs, 1).1, decimals);
    } else {
        assert_eq!(cells[2], "–");
    }
    if cells.len() > 5 {
        shown(&cells[3], lo, decimals);
        shown(&cells[4], hi, decimals);
    }
}

#[test]
fn markdown_figures_match_independent_computation() {
    let md = render_markdown(&report(), &[]);
    assert!(md.contains("**partial: 9 of 12 jobs**"), "{md}");
    assert!(
        md.contains("1 running, 0 leased, 1 pending, 1 failed, 0 cancelled, 0 not in the store")
    );

    for v in [Variant::WHOLE, REDUCED] {
        let keys = succeeded_keys(v);
        let n = keys.len();
        let jobs = if n < 6 {
            format!("partial: {n} of 6 jobs")
        } else {
            format!("{n} of 6 jobs")
        };
        type F = fn(Variant, u64, u32) -> f64;
        let metrics: [(&str, F, f64, i32); 4] = [
            ("test accuracy", fx::test_accuracy, 100.0, 2),
            ("validation accuracy", fx::val_accuracy, 100.0, 2),
            ("test loss", fx::test_loss, 1.0, 4),
            (
                "best epoch",
                |v, s, f| f64::from(fx::best_epoch(v, s, f)),
                1.0,
                1,
            ),
        ];
        for (name, f, scale, decimals) in metrics {
            let cells = row_after(&md, &format!("| {v} | train-val-test | {name} | "));
            shown_summary(&cells, &over(v, &keys, f), scale, decimals);
            assert_eq!(cells[5], jobs, "{name}");
        }
        // Ours beside the published figures: mean ± population std (jobs).
        let acc: Vec<f64> = over(v, &keys, fx::test_accuracy)
            .iter()
            .map(|x| x * 100.0)
            .collect();
        let (m, p) = fx::mean_std(&acc, 0);
        let cells = row_after(&md, "| this run, train-val-test | ");
        let ours = &cells[usize::from(v == REDUCED)];
        let (mean_text, rest) = ours.split_once(" ± ").unwrap();
        shown(mean_text, m, 2);
        let (std_text, count) = rest.split_once(' ').unwrap();
        shown(std_text, p, 2);
        assert_eq!(count, format!("({jobs})"));
    }

    // Per seed: whole seed 1 over its 3 folds; reduced seed 1 has no result.
    let seed1: Vec<f64> = (0..3)
        .map(|f| fx::test_accuracy(Variant::WHOLE, 1, f))
        .collect();
    let cells = row_after(&md, "| whole | train-val-test | 1 | ");
    shown_summary(&cells, &seed1, 100.0, 2);
    assert_eq!(cells[3], "3 of 3 jobs");
    assert!(md.contains("| reduced | train-val-test | 1 | – | – | – | partial: 0 of 3 jobs |"));
    let seed_means: Vec<f64> = (0..2)
        .map(|s| {
            fx::mean_std(
                &(0..3)
                    .map(|f| fx::test_accuracy(Variant::WHOLE, s, f))
                    .collect::<Vec<_>>(),
                0,
            )
            .0
        })
        .collect();
    let cells = row_after(&md, "| whole | train-val-test | between seeds | ");
    shown_summary(&cells, &seed_means, 100.0, 2);
    assert_eq!(cells[3], "2 seed means of 2");
    let cells = row_after(&md, "| reduced | train-val-test | between seeds | ");
    assert_eq!(cells[3], "1 seed means of 2");

    // Per fold: whole fold 2 over both seeds; reduced fold 2 has only seed 0.
    let f2: Vec<f64> = (0..2)
        .map(|s| fx::test_accuracy(Variant::WHOLE, s, 2))
        .collect();
    let cells = row_after(&md, "| whole | train-val-test | 2 | ");
    shown_summary(&cells[..3], &f2, 100.0, 2);
    let vm = fx::mean_std(
        &(0..2)
            .map(|s| fx::val_accuracy(Variant::WHOLE, s, 2))
            .collect::<Vec<_>>(),
        0,
    )
    .0;
    let lm = fx::mean_std(
        &(0..2)
            .map(|s| fx::test_loss(Variant::WHOLE, s, 2))
            .collect::<Vec<_>>(),
        0,
    )
    .0;
    shown(&cells[3], vm * 100.0, 2);
    shown(&cells[4], lm, 4);
    assert_eq!(cells[5], "2 of 2 jobs");
    let cells = row_after(&md, "| reduced | train-val-test | 2 | ");
    shown(&cells[0], fx::test_accuracy(REDUCED, 0, 2) * 100.0, 2);
    assert_eq!((cells[1].as_str(), cells[2].as_str()), ("0.00", "–"));
    shown(&cells[3], fx::val_accuracy(REDUCED, 0, 2) * 100.0, 2);
    shown(&cells[4], fx::test_loss(REDUCED, 0, 2), 4);
    assert_eq!(cells[5], "partial: 1 of 2 jobs");

    // The failed job with its error (pipe escaped for the table).
    assert!(md.contains(&format!(
        "| reduced | train-val-test | 1 | 0 | failed | 3 | gpu-b | cuda:3 | {} |",
        fx::FAILED_ERROR.replace('|', "\\|")
    )));

    // Compute: GPU hours from the cuda jobs' seconds (unfinished: epoch time).
    let jobs = fx::jobs(TVT);
    let gpu: f64 = jobs
        .iter()
        .filter(|j| j.device.as_deref().is_some_and(|d| d.starts_with("cuda")))
        .map(fx::job_seconds)
        .sum();
    let all: f64 = jobs.iter().map(fx::job_seconds).sum();
    shown(row_after(&md, "- GPU hours: ")[0].as_str(), gpu / 3600.0, 3);
    shown(
        row_after(&md, "- CPU hours: ")[0].as_str(),
        (all - gpu) / 3600.0,
        3,
    );
    let train = row_after(&md, "- Training time, all jobs: ")[0].clone();
    let secs = train.rsplit_once('(').unwrap().1.trim_end_matches(" s)");
    shown(secs, all, 1);
    assert!(md.contains(
        "- Wall time: 2 h 07 min 34 s (7654 s, submission to report (run not finished))"
    ));
    // Samples/s per worker and device: every epoch of its jobs.
    for (worker, device) in [
        ("gpu-a", "cuda:0"),
        ("gpu-a", "cuda:1"),
        ("cpu-node", "cpu"),
        ("gpu-b", "cuda:3"),
    ] {
        let on: Vec<_> = jobs
            .iter()
            .filter(|j| j.worker.as_deref() == Some(worker) && j.device.as_deref() == Some(device))
            .collect();
        let speeds: Vec<f64> = on
            .iter()
            .flat_map(|j| j.epochs.iter().map(|e| e.samples_per_second))
            .collect();
        let cells = row_after(&md, &format!("| {worker} | {device} | "));
        assert_eq!(cells[0], on.len().to_string());
        assert_eq!(cells[1], speeds.len().to_string());
        let (m, p) = fx::mean_std(&speeds, 0);
        let (lo, hi) = min_max(&speeds);
        for (cell, want) in cells[2..6].iter().zip([m, p, lo, hi]) {
            shown(cell, want, 1);
        }
    }

    // Configuration and hash, published figures with protocol, times.
    assert!(md.contains("Configuration hash: `9c1d2e3f4a5b6c7d`"));
    assert!(md.contains(&format!(
        "```toml\n{}\n```",
        fx::config_toml("train-val-test").trim_end()
    )));
    assert!(md.contains(
        "| STBP, data set paper (Vasudevan et al. 2021) | 56.20 % ± 1.52 | 71.45 % ± 1.74 |"
    ));
    assert!(md.contains("| STBP reference, random crops | 75.78 % ± 2.73 | not given |"));
    // 1_780_000_000 s after the epoch (`date -u -d @1780000000`).
    assert!(md.contains("Submitted: 2026-05-28 20:26:40 UTC"), "{md}");
}

#[test]
fn train_test_figures_are_marked_optimistic() {
    let report = build_report(
        &fx::experiment("train-test"),
        &fx::jobs(ProtocolKind::TrainTest),
        fx::NOW,
    );
    let md = render_markdown(&report, &[]);
    assert!(md.contains("**Optimistic figures.**"));
    assert!(md.contains("| whole | train-test (optimistic: the epoch is chosen by test accuracy) | test accuracy (optimistic) |"));
    assert!(md.contains("| this run, train-test |"));
    // No validation figures under train-test.
    assert!(
        !md.lines()
            .any(|l| l.starts_with("| whole") && l.contains("| validation accuracy | "))
    );
    let csv = render_csv(&report);
    assert!(
        csv.lines()
            .skip(1)
            .all(|l| l.split(',').nth(15) == Some("true"))
    );
    let json: Value = serde_json::from_str(&render_json(&report).unwrap()).unwrap();
    assert_eq!(json["groups"][0]["optimistic"], Value::Bool(true));
    assert!(json["groups"][0]["val_accuracy"].is_null());

    let honest = render_markdown(&report_tvt_complete(), &[]);
    assert!(!honest.contains("**Optimistic figures.**"));
}

fn report_tvt_complete() -> spikecv_coordinator::report::Report {
    let jobs: Vec<_> = [Variant::WHOLE, REDUCED]
        .into_iter()
        .flat_map(|v| {
            (0..2u64).flat_map(move |s| (0..3u32).map(move |f| fx::succeeded(v, s, f, TVT)))
        })
        .collect();
    build_report(&fx::experiment("train-val-test"), &jobs, fx::NOW)
}

#[test]
fn complete_run_says_so_and_uses_finish_time() {
    let r = report_tvt_complete();
    assert!(r.progress.complete);
    let md = render_markdown(&r, &[]);
    assert!(md.contains("- Status: complete, 12 of 12 jobs succeeded"));
    assert!(!md.contains("partial"));
    let last = fx::CREATED + 2000 + 100;
    assert!(md.contains(&format!(
        "({} s, submission to last job finished)",
        last - fx::CREATED
    )));
}

#[test]
fn missing_jobs_count_as_planned() {
    // Only two records in the store; the config plans 12.
    let jobs: Vec<_> = fx::jobs(TVT).into_iter().take(2).collect();
    let r = build_report(&fx::experiment("train-val-test"), &jobs, fx::NOW);
    assert_eq!(
        (r.progress.planned, r.progress.missing, r.progress.succeeded),
        (12, 10, 2)
    );
    let md = render_markdown(&r, &[]);
    assert!(md.contains("partial: 2 of 6 jobs"));
    assert!(md.contains(
        "| reduced | train-val-test | test accuracy | – | – | – | – | – | partial: 0 of 6 jobs |"
    ));
}

fn close(a: &Value, b: f64) {
    let a = a.as_f64().unwrap_or_else(|| panic!("{a} is not a number"));
    assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} != {b}");
}

#[test]
fn json_figures_match_independent_computation() {
    let text = render_json(&report()).unwrap();
    let j: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(j["schema_version"], 1);
    assert_eq!(j["experiment"]["id"], fx::EXPERIMENT);
    assert_eq!(j["experiment"]["config_hash"], "9c1d2e3f4a5b6c7d");
    assert_eq!(
        j["experiment"]["config_toml"],
        fx::config_toml("train-val-test")
    );
    assert_eq!(j["experiment"]["class_names"].as_array().unwrap().len(), 19);
    let p = &j["progress"];
    assert_eq!(
        (
            p["planned"].as_u64(),
            p["succeeded"].as_u64(),
            p["failed"].as_u64(),
            p["running"].as_u64(),
            p["pending"].as_u64()
        ),
        (Some(12), Some(9), Some(1), Some(1), Some(1))
    );
    assert_eq!(p["complete"], false);

    let groups = j["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    for (g, v) in groups.iter().zip([Variant::WHOLE, REDUCED]) {
        assert_eq!(g["variant"], v.as_str());
        assert_eq!(g["protocol"], "train-val-test");
        assert_eq!(g["optimistic"], false);
        let keys = succeeded_keys(v);
        for (name, f) in [
            (
                "test_accuracy",
                fx::test_accuracy as fn(Variant, u64, u32) -> f64,
            ),
            ("val_accuracy", fx::val_accuracy),
            ("test_loss", fx::test_loss),
            ("best_epoch", |v, s, f| f64::from(fx::best_epoch(v, s, f))),
        ] {
            let xs = over(v, &keys, f);
            let m = &g[name];
            assert_eq!(m["count"].as_u64(), Some(keys.len() as u64), "{name}");
            assert_eq!(m["planned"].as_u64(), Some(6));
            close(&m["mean"], fx::mean_std(&xs, 0).0);
            close(&m["std_population"], fx::mean_std(&xs, 0).1);
            close(&m["std_sample"], fx::mean_std(&xs, 1).1);
            let (lo, hi) = min_max(&xs);
            close(&m["min"], lo);
            close(&m["max"], hi);
        }
        // Per fold, over seeds.
        for fold in 0..3u32 {
            let row = &g["per_fold"][fold as usize];
            assert_eq!(row["fold"], fold);
            let xs: Vec<f64> = keys
                .iter()
                .filter(|k| k.1 == fold)
                .map(|&(s, f)| fx::test_accuracy(v, s, f))
                .collect();
            assert_eq!(
                row["test_accuracy"]["count"].as_u64(),
                Some(xs.len() as u64)
            );
            close(&row["test_accuracy"]["mean"], fx::mean_std(&xs, 0).0);
            close(
                &row["test_accuracy"]["std_population"],
                fx::mean_std(&xs, 0).1,
            );
        }
        // Confusion summed over the succeeded jobs.
        let conf: Vec<Vec<u64>> = serde_json::from_value(g["confusion"].clone()).unwrap();
        assert_eq!(g["confusion_jobs"].as_u64(), Some(keys.len() as u64));
        let mut want = vec![vec![0u64; 19]; 19];
        for &(s, f) in &keys {
            for (w, row) in want.iter_mut().zip(fx::confusion(s, f)) {
                for (x, y) in w.iter_mut().zip(row) {
                    *x += u64::from(y);
                }
            }
        }
        assert_eq!(conf, want);
    }
    let reduced = &groups[1];
    assert!(reduced["per_seed"][1]["test_accuracy"]["mean"].is_null());
    assert_eq!(reduced["seed_spread"]["count"], 1);
    assert_eq!(reduced["seed_spread"]["planned"], 2);

    let failed = j["failed_jobs"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["error"], fx::FAILED_ERROR);
    assert_eq!(failed[0]["status"], "failed");

    let jobs = fx::jobs(TVT);
    let gpu: f64 = jobs
        .iter()
        .filter(|j| j.device.as_deref().is_some_and(|d| d.starts_with("cuda")))
        .map(fx::job_seconds)
        .sum();
    close(&j["compute"]["gpu_hours"], gpu / 3600.0);
    close(
        &j["compute"]["wall_seconds"],
        (fx::NOW - fx::CREATED) as f64,
    );
    let tp = j["compute"]["throughput"].as_array().unwrap();
    let cpu = tp.iter().find(|t| t["device"] == "cpu").unwrap();
    let speeds: Vec<f64> = (1..=fx::EPOCHS)
        .map(|e| fx::epoch(Variant::WHOLE, 1, 2, e).samples_per_second)
        .collect();
    assert_eq!(cpu["worker"], "cpu-node");
    assert_eq!(cpu["jobs"], 1);
    close(
        &cpu["samples_per_second"]["mean"],
        fx::mean_std(&speeds, 0).0,
    );
    assert_eq!(j["jobs"].as_array().unwrap().len(), 12);
    assert_eq!(j["published"].as_array().unwrap().len(), 6);
    close(&j["published"][0]["whole"]["mean_percent"], 56.20);
}

/// Splits one CSV line (RFC 4180 quoting).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            (c, _) => out.last_mut().unwrap().push(c),
        }
    }
    out
}

fn opt_f64(s: &str) -> Option<f64> {
    (!s.is_empty()).then(|| s.parse().unwrap())
}

#[test]
fn csv_has_one_row_per_job_with_every_metric() {
    let csv = render_csv(&report());
    let mut lines = csv.lines();
    let header = csv_fields(lines.next().unwrap());
    assert_eq!(
        header[..15],
        "experiment,variant,seed,fold,protocol,status,attempts,best_epoch,test_accuracy,test_loss,val_accuracy,val_loss,train_seconds,worker,device"
            .split(',')
            .collect::<Vec<_>>()[..]
    );
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<Vec<String>> = lines.map(csv_fields).collect();
    let jobs = fx::jobs(TVT);
    assert_eq!(rows.len(), jobs.len());
    for r in &rows {
        assert_eq!(r.len(), header.len());
        let v: Variant = r[col("variant")].parse().unwrap();
        let seed: u64 = r[col("seed")].parse().unwrap();
        let fold: u32 = r[col("fold")].parse().unwrap();
        let job = jobs
            .iter()
            .find(|j| j.variant == v && j.seed == seed && j.fold == fold)
            .unwrap();
        assert_eq!(r[col("experiment")], fx::EXPERIMENT);
        assert_eq!(r[col("protocol")], "train-val-test");
        let status: JobStatus = r[col("status")].parse().unwrap();
        assert_eq!(status, job.status);
        assert_eq!(r[col("attempts")].parse::<u32>().unwrap(), job.attempts);
        assert_eq!(r[col("best_epoch")].parse::<u32>().ok(), job.best_epoch);
        assert_eq!(opt_f64(&r[col("test_accuracy")]), job.test_accuracy);
        assert_eq!(opt_f64(&r[col("test_loss")]), job.test_loss);
        assert_eq!(opt_f64(&r[col("val_accuracy")]), job.val_accuracy);
        assert_eq!(opt_f64(&r[col("val_loss")]), job.val_loss);
        assert_eq!(opt_f64(&r[col("train_seconds")]), job.train_seconds);
        assert_eq!(r[col("worker")], job.worker.clone().unwrap_or_default());
        assert_eq!(r[col("device")], job.device.clone().unwrap_or_default());
        assert_eq!(r[col("error")], job.error.clone().unwrap_or_default());
        assert_eq!(
            r[col("epochs_reported")].parse::<usize>().unwrap(),
            job.epochs.len()
        );
        if let Some(a) = opt_f64(&r[col("test_accuracy")]) {
            assert!((0.0..=1.0).contains(&a));
        }
        if !job.epochs.is_empty() {
            let speeds: Vec<f64> = job.epochs.iter().map(|e| e.samples_per_second).collect();
            let got = opt_f64(&r[col("samples_per_second_mean")]).unwrap();
            assert!((got - fx::mean_std(&speeds, 0).0).abs() < 1e-9);
        }
        assert_eq!(r[col("config_hash")], "9c1d2e3f4a5b6c7d");
    }
    // The error with a comma and quotes survives quoting.
    assert!(csv.contains("\"CUDA out of memory, tried \"\"2 GiB\"\" | epoch 3\""));
}

#[test]
fn the_experiment_name_is_text_in_the_markdown_heading() {
    let mut r = report();
    r.experiment.name = Some("x\n# injected <img src=x onerror=alert(1)> [a](http://e) *b*".into());
    let md = render_markdown(&r, &[]);
    let first = md.lines().next().unwrap();
    assert_eq!(
        first,
        "# spikecv report: x # injected \\<img src=x onerror=alert(1)\\> \\[a\\](http://e) \\*b\\*"
    );
    assert!(!md.lines().any(|l| l.starts_with("# injected")), "{md}");
}
