//! Helpers of the sweep tests: job counts that have ended, `coordinator
//! report`, finished job folders on disk, and the report's comparisons with
//! the baseline recomputed from its own per-job CSV.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::coordinator_bin;

/// Holds when `jobs` jobs have ended (succeeded or pruned).
pub fn ended(jobs: u64) -> impl Fn(&BTreeMap<String, u64>) -> bool {
    move |c| {
        c.get("succeeded").copied().unwrap_or(0) + c.get("pruned").copied().unwrap_or(0) == jobs
    }
}

/// `coordinator report --format FORMAT --state STATE`'s output.
pub fn report(state: &Path, format: &str) -> String {
    report_args(state, &[], format)
}

/// [`report`] of experiment `id` of a store holding several.
pub fn report_of(state: &Path, id: &str, format: &str) -> String {
    report_args(state, &["--experiment", id], format)
}

fn report_args(state: &Path, extra: &[&str], format: &str) -> String {
    let out = Command::new(coordinator_bin())
        .args(["report", "--format", format, "--state"])
        .arg(state)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "report --format {format}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The folder a worker trains job `id` in (under its work folder).
pub fn job_folder(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Finished jobs (a `metrics.json`) per job folder across work folders;
/// panics when a job finished in two places.
pub fn finished_jobs(works: &[PathBuf]) -> Vec<String> {
    let mut seen = BTreeMap::new();
    for w in works {
        let Ok(entries) = std::fs::read_dir(w) else {
            continue;
        };
        for e in entries {
            let dir = e.unwrap().path();
            if dir.join("metrics.json").is_file() {
                let name = dir.file_name().unwrap().to_string_lossy().into_owned();
                if let Some(first) = seen.insert(name.clone(), dir.clone()) {
                    panic!("job {name} finished twice: {first:?} and {dir:?}");
                }
            }
        }
    }
    seen.into_keys().collect()
}

/// The rows of an RFC 4180 CSV text (quoted fields may hold commas, doubled
/// quotes and line breaks), each a map from the header's names.
pub fn csv_rows(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut records: Vec<Vec<String>> = Vec::new();
    let (mut record, mut field) = (Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(ch) = chars.next() {
        match (quoted, ch) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, _) => field.push(ch),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, _) => field.push(ch),
        }
    }
    assert!(!quoted, "the CSV ends inside a quoted field");
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    let mut records = records.into_iter();
    let header = records.next().expect("a CSV header");
    records
        .map(|r| {
            assert_eq!(r.len(), header.len(), "a CSV row of the wrong width: {r:?}");
            header.iter().cloned().zip(r).collect()
        })
        .collect()
}

/// The two-sided p-value of Student's t with `df` degrees of freedom:
/// P(|T| ≥ |t|). With t = √df·tan θ the density becomes cos^(df−1) θ on
/// (−π/2, π/2), so p is the share of ∫ cos^(df−1) above θ = atan(|t|/√df)
/// (Simpson's rule; df = 1 gives 1 − 2 atan|t| / π, the Cauchy law).
pub fn student_t_two_sided_p(t: f64, df: f64) -> f64 {
    let integral = |from: f64| {
        let to = std::f64::consts::FRAC_PI_2;
        let n = 20_000;
        let h = (to - from) / f64::from(n);
        let f = |x: f64| x.cos().max(0.0).powf(df - 1.0);
        let mut sum = f(from) + f(to);
        for i in 1..n {
            sum += f(from + h * f64::from(i)) * if i % 2 == 1 { 4.0 } else { 2.0 };
        }
        sum * h / 3.0
    };
    integral((t.abs() / df.sqrt()).atan()) / integral(0.0)
}

/// One comparison with the baseline as the report gave it and as the CSV
/// recomputes it.
#[derive(Debug)]
pub struct Recomputed {
    /// `variant/protocol/label`.
    pub name: String,
    /// (seed, fold) slots both the configuration and the baseline succeeded on.
    pub pairs: usize,
    /// Mean difference of test accuracy (candidate − baseline), in percentage points.
    pub mean_difference_pp: Option<f64>,
}

/// Recomputes every comparison with the baseline in the JSON report (`json`)
/// from the per-job CSV report (`csv`): the pairs are the (seed, fold) slots
/// of the same variant and protocol where both the configuration and the
/// baseline succeeded; the mean difference of test accuracy (pp) and the
/// paired t-test's two-sided p-value must equal the report's (1e-9). Returns
/// the comparisons checked.
pub fn check_comparisons_against_csv(json: &serde_json::Value, csv: &str) -> Vec<Recomputed> {
    type Slot = (String, String, String, String, String);
    let mut acc: BTreeMap<Slot, f64> = BTreeMap::new();
    for row in csv_rows(csv) {
        if row["status"] != "succeeded" {
            continue;
        }
        let a: f64 = row["test_accuracy"]
            .parse()
            .unwrap_or_else(|e| panic!("a succeeded job without test accuracy ({e}): {row:?}"));
        let slot = (
            row["variant"].clone(),
            row["protocol"].clone(),
            row["configuration"].clone(),
            row["seed"].clone(),
            row["fold"].clone(),
        );
        assert!(
            acc.insert(slot, a).is_none(),
            "a job twice in the CSV: {row:?}"
        );
    }
    let mut checked = Vec::new();
    for ranking in json["sweep"]["rankings"].as_array().unwrap() {
        let variant = ranking["variant"].as_str().unwrap();
        let protocol = ranking["protocol"].as_str().unwrap();
        let rows = ranking["rows"].as_array().unwrap();
        let baseline: Vec<&str> = rows
            .iter()
            .filter(|r| r["baseline"] == true)
            .map(|r| r["label"].as_str().unwrap())
            .collect();
        assert_eq!(baseline.len(), 1, "one baseline in {ranking}");
        let of = |label: &str| -> BTreeMap<(String, String), f64> {
            acc.iter()
                .filter(|((v, p, c, _, _), _)| v == variant && p == protocol && c == label)
                .map(|((_, _, _, s, f), a)| ((s.clone(), f.clone()), *a))
                .collect()
        };
        let base = of(baseline[0]);
        for row in rows.iter().filter(|r| r["baseline"] != true) {
            let label = row["label"].as_str().unwrap();
            let name = format!("{variant}/{protocol}/{label}");
            let d: Vec<f64> = of(label)
                .iter()
                .filter_map(|(k, c)| base.get(k).map(|b| c - b))
                .collect();
            let cmp = &row["versus_baseline"];
            assert_eq!(
                cmp["pairs"].as_u64(),
                Some(d.len() as u64),
                "{name}: pairs against the CSV's"
            );
            let n = d.len() as f64;
            let mean = (!d.is_empty()).then(|| d.iter().sum::<f64>() / n);
            match mean {
                Some(mean) => {
                    let reported = cmp["mean_difference_pp"].as_f64().unwrap();
                    assert!(
                        (reported - 100.0 * mean).abs() < 1e-9,
                        "{name}: {reported} vs {} from the CSV",
                        100.0 * mean
                    );
                }
                None => assert!(cmp["mean_difference_pp"].is_null(), "{name}: no pairs"),
            }
            let sd = mean
                .filter(|_| d.len() > 1)
                .map(|m| (d.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
            match (mean, sd) {
                (Some(mean), Some(sd)) if sd > 0.0 => {
                    let t = mean / (sd / n.sqrt());
                    let p = student_t_two_sided_p(t, n - 1.0);
                    let got = cmp["t_test_p"].as_f64().unwrap();
                    assert!((got - p).abs() < 1e-9, "{name}: t-test p {got} vs {p}");
                }
                _ => assert!(cmp["t_test_p"].is_null(), "{name}: no spread, no t-test"),
            }
            checked.push(Recomputed {
                name,
                pairs: d.len(),
                mean_difference_pp: mean.map(|m| 100.0 * m),
            });
        }
    }
    checked
}
