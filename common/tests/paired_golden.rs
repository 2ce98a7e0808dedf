//! common::paired against golden values written by scipy
//! (`tests/fixtures/make_paired_golden.py`, scipy 1.17.1): mean differences and
//! their Student t intervals, `ttest_rel`, `wilcoxon` (exact, permutation and
//! normal approximation, ties and zero differences included) and `t.ppf`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use serde::Deserialize;
use spikecv_common::stats::paired::{WilcoxonMethod, compare};
use spikecv_common::stats::special::t_ppf;

#[derive(Deserialize)]
struct Golden {
    scipy: String,
    cases: BTreeMap<String, Case>,
    t_ppf: Vec<Ppf>,
}

#[derive(Deserialize)]
struct Case {
    candidate: Vec<f64>,
    baseline: Vec<f64>,
    mean_difference_pp: f64,
    ci95_pp: [Option<f64>; 2],
    t_statistic: Option<f64>,
    t_test_p: Option<f64>,
    wilcoxon_statistic: Option<f64>,
    wilcoxon_p: Option<f64>,
}

#[derive(Deserialize)]
struct Ppf {
    p: f64,
    df: f64,
    value: f64,
}

fn golden() -> Golden {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/paired_golden.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Relative 1e-9, or 1e-12 absolute for values near zero.
fn assert_close(what: &str, got: f64, want: f64) {
    let tol = (want.abs() * 1e-9).max(1e-12);
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got:e}, scipy {want:e}"
    );
}

#[test]
fn golden_file_is_from_the_documented_scipy() {
    assert_eq!(golden().scipy, "1.17.1");
}

#[test]
fn comparisons_match_scipy() {
    let g = golden();
    assert!(g.cases.len() >= 9);
    for (name, c) in &g.cases {
        let r = compare(&c.candidate, &c.baseline).unwrap();
        assert_eq!(r.pairs, c.candidate.len(), "{name}");
        assert_close(
            &format!("{name} mean"),
            r.mean_difference_pp.unwrap(),
            c.mean_difference_pp,
        );
        // scipy's NaN (no spread) is spikecv's None.
        match (r.ci95_pp, c.ci95_pp) {
            (Some([lo, hi]), [Some(wlo), Some(whi)]) => {
                assert_close(&format!("{name} ci low"), lo, wlo);
                assert_close(&format!("{name} ci high"), hi, whi);
            }
            (None, [None, None]) => {}
            // No spread: the formula gives a point, spikecv no interval.
            (None, [Some(lo), Some(hi)]) if name == "identical" && lo == hi => {}
            other => panic!("{name}: interval {other:?}"),
        }
        match (r.t_statistic, r.t_test_p, c.t_statistic, c.t_test_p) {
            (Some(t), Some(p), Some(wt), Some(wp)) => {
                assert_close(&format!("{name} t"), t, wt);
                assert_close(&format!("{name} t-test p"), p, wp);
            }
            (None, None, None, None) => {}
            other => panic!("{name}: t-test {other:?}"),
        }
        if name == "identical" {
            // scipy's permutation test gives 1.0 when every difference is
            // zero; spikecv reports no test.
            assert!(r.wilcoxon.is_none());
            continue;
        }
        let w = r.wilcoxon.unwrap();
        assert_close(
            &format!("{name} W"),
            w.statistic,
            c.wilcoxon_statistic.unwrap(),
        );
        assert_close(
            &format!("{name} Wilcoxon p"),
            w.p_value,
            c.wilcoxon_p.unwrap(),
        );
    }
}

#[test]
fn wilcoxon_picks_scipys_method() {
    let g = golden();
    let method = |name: &str| {
        let c = &g.cases[name];
        compare(&c.candidate, &c.baseline)
            .unwrap()
            .wilcoxon
            .unwrap()
            .method
    };
    assert_eq!(method("strong_effect"), WilcoxonMethod::Exact);
    assert_eq!(method("exact_30"), WilcoxonMethod::Exact);
    assert_eq!(method("ties_zero_permutation"), WilcoxonMethod::Permutation);
    assert_eq!(method("ties_zero_asymptotic"), WilcoxonMethod::Asymptotic);
    assert_eq!(method("large_60"), WilcoxonMethod::Asymptotic);
    assert_eq!(method("large_60_ties"), WilcoxonMethod::Asymptotic);
}

#[test]
fn t_quantiles_match_scipy() {
    for q in golden().t_ppf {
        assert_close(
            &format!("t.ppf({}, {})", q.p, q.df),
            t_ppf(q.p, q.df),
            q.value,
        );
    }
}
