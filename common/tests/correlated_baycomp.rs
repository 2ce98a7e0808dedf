//! The corrected resampled t-test and the Bayesian correlated t-test against
//! baycomp 1.0.3's `CorrelatedTTest` (and scipy's Student t for the corrected
//! p-value and interval): `fixtures/correlated_baycomp.py` draws seeds × folds
//! accuracies with mixed-sign differences, runs baycomp on them and prints the
//! cases; each is recomputed here and must agree to 1e-9.
//!
//! `correlated_tests_equal_baycomp` needs baycomp in the project's `.venv`
//! (`.venv/bin/python -m pip install baycomp==1.0.3`): it is `#[ignore]`d and
//! listed in scripts/test.sh, which runs it where baycomp is installed (CI
//! installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use spikecv_common::stats::correlated::{corrected_t, posterior, rho_for_folds};

fn close(ours: f64, theirs: f64, what: &str) {
    assert!(
        (ours - theirs).abs() <= 1e-9 * theirs.abs().max(1.0),
        "{what}: {ours} vs baycomp/scipy {theirs}"
    );
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
#[ignore = "needs baycomp in .venv (scripts/test.sh runs it where installed)"]
fn correlated_tests_equal_baycomp() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/correlated_baycomp.py");
    let out = Command::new(&python)
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let golden: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(golden["baycomp"], "1.0.3");
    let cases = golden["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    for (i, c) in cases.iter().enumerate() {
        let (base, cand) = (floats(&c["baseline_pp"]), floats(&c["candidate_pp"]));
        let d_pp: Vec<f64> = cand.iter().zip(&base).map(|(c, b)| c - b).collect();
        assert!(d_pp.iter().any(|d| *d > 0.0) && d_pp.iter().any(|d| *d < 0.0));
        let d: Vec<f64> = d_pp.iter().map(|d| d / 100.0).collect();
        let rho = rho_for_folds(c["folds"].as_u64().unwrap() as u32);
        let rope = c["rope"].as_f64().unwrap();

        let t = corrected_t(&d, rho).unwrap();
        close(
            t.statistic,
            c["t"].as_f64().unwrap(),
            &format!("case {i} t"),
        );
        close(t.dof, c["dof"].as_f64().unwrap(), &format!("case {i} dof"));
        close(
            t.p_value,
            c["t_p"].as_f64().unwrap(),
            &format!("case {i} p"),
        );
        let ci = floats(&c["ci95_pp"]);
        close(t.ci95_pp[0], ci[0], &format!("case {i} ci low"));
        close(t.ci95_pp[1], ci[1], &format!("case {i} ci high"));

        let p = posterior(&d_pp, rho, rope).unwrap();
        for (ours, key) in [
            (p.p_worse, "p_worse"),
            (p.p_equivalent, "p_equivalent"),
            (p.p_better, "p_better"),
        ] {
            close(ours, c[key].as_f64().unwrap(), &format!("case {i} {key}"));
        }
    }
}
