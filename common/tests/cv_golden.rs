//! common::cv against golden vectors written by scikit-learn
//! (`tests/fixtures/make_cv_golden.py`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde::Deserialize;
use spikecv_common::experiment::cv::{kfold, split, train_test_split_indices};
use spikecv_common::experiment::sections::{ProtocolConfig, ProtocolKind};

#[derive(Deserialize)]
struct Golden {
    lists: Vec<ListGolden>,
    kfold: Vec<KfoldGolden>,
    train_test_split: Vec<TtsGolden>,
}

#[derive(Deserialize)]
struct ListGolden {
    list: String,
    recordings: Vec<String>,
    splits: Vec<ListSplit>,
}

#[derive(Deserialize)]
struct ListSplit {
    seed: u64,
    fold: u32,
    val_fraction: f64,
    kfold_train: Vec<usize>,
    train: Vec<usize>,
    val: Vec<usize>,
    test: Vec<usize>,
}

#[derive(Deserialize)]
struct KfoldGolden {
    n: usize,
    folds: usize,
    seed: u32,
    splits: Vec<(Vec<usize>, Vec<usize>)>,
}

#[derive(Deserialize)]
struct TtsGolden {
    n: usize,
    test_fraction: f64,
    seed: u32,
    train: Vec<usize>,
    test: Vec<usize>,
}

fn golden() -> Golden {
    let text = include_str!("fixtures/cv_golden.json");
    serde_json::from_str(text).unwrap()
}

fn names(recordings: &[String], idx: &[usize]) -> Vec<String> {
    idx.iter().map(|&i| recordings[i].clone()).collect()
}

#[test]
fn kfold_matches_scikit_learn() {
    let g = golden();
    assert!(g.kfold.len() > 100);
    for case in &g.kfold {
        let got = kfold(case.n, case.folds, case.seed).unwrap();
        assert_eq!(
            got, case.splits,
            "n={} folds={} seed={}",
            case.n, case.folds, case.seed
        );
    }
}

#[test]
fn train_test_split_matches_scikit_learn() {
    let g = golden();
    assert!(g.train_test_split.len() > 100);
    for case in &g.train_test_split {
        let (train, test) =
            train_test_split_indices(case.n, case.test_fraction, case.seed).unwrap();
        let what = format!("n={} f={} seed={}", case.n, case.test_fraction, case.seed);
        assert_eq!(train, case.train, "{what}");
        assert_eq!(test, case.test, "{what}");
    }
}

#[test]
fn reference_file_list_splits_match_scikit_learn() {
    let g = golden();
    assert_eq!(g.lists.len(), 2);
    for list in &g.lists {
        assert!(list.recordings.len() >= 41, "{}", list.list);
        for case in &list.splits {
            let what = format!(
                "{} seed={} fold={} f={}",
                list.list, case.seed, case.fold, case.val_fraction
            );
            let tvt = ProtocolConfig {
                kind: ProtocolKind::TrainValTest,
                val_fraction: case.val_fraction,
                ..ProtocolConfig::default()
            };
            let got = split(&list.recordings, &tvt, case.seed, case.fold).unwrap();
            assert_eq!(
                got.train,
                names(&list.recordings, &case.train),
                "train {what}"
            );
            assert_eq!(got.val, names(&list.recordings, &case.val), "val {what}");
            assert_eq!(got.test, names(&list.recordings, &case.test), "test {what}");

            let tt = ProtocolConfig {
                kind: ProtocolKind::TrainTest,
                ..tvt
            };
            let got = split(&list.recordings, &tt, case.seed, case.fold).unwrap();
            assert_eq!(
                got.train,
                names(&list.recordings, &case.kfold_train),
                "train-test train {what}"
            );
            assert!(got.val.is_empty());
            assert_eq!(
                got.test,
                names(&list.recordings, &case.test),
                "train-test test {what}"
            );
        }
    }
}
