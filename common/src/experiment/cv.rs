//! Cross-validation splits that match scikit-learn bit for bit (DESIGN.md,
//! "Cross-validation protocol").
//!
//! - [`kfold`] is `KFold(n_splits, shuffle=True, random_state=seed).split(range(n))`:
//!   `RandomState(seed).shuffle(arange(n))`, then consecutive chunks of the shuffled
//!   indices are the test folds (the first `n % k` folds one longer). scikit-learn
//!   returns both train and test indices in ascending order (it goes through a
//!   boolean mask), and so does this.
//! - [`train_test_split_indices`] is `train_test_split(range(n), test_size=f,
//!   random_state=seed)`: `n_test = ceil(f·n)`, `n_train = n − n_test`,
//!   `perm = RandomState(seed).permutation(n)`, test = `perm[..n_test]`,
//!   train = `perm[n_test..]`, both in permuted order.
//! - [`split`] turns a fold of a file list into train/val/test recordings as the
//!   reference does: KFold over the list, then (train-val-test) the fold's training
//!   recordings are split again with `random_state = seed + 1`.

pub mod mt19937;

use serde::{Deserialize, Serialize};

use crate::dataset::kind::{DataKind, people};
use crate::experiment::cv::mt19937::Mt19937;
use crate::experiment::sections::{ProtocolConfig, ProtocolKind};

/// The recordings of one job: what it trains on, validates on and tests on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FoldSplit {
    /// Training recordings, in training order.
    pub train: Vec<String>,
    /// Validation recordings (empty for the train-test protocol).
    pub val: Vec<String>,
    /// Test recordings.
    pub test: Vec<String>,
}

/// A split that cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CvError {
    /// Fewer samples than folds (scikit-learn raises the same).
    #[error(
        "cannot make {folds} folds of {samples} recordings: need at least as many recordings as folds"
    )]
    TooFewSamples {
        /// Recordings available.
        samples: usize,
        /// Folds asked for.
        folds: usize,
    },
    /// Fewer than two folds.
    #[error("{folds} folds: need at least 2")]
    TooFewFolds {
        /// Folds asked for.
        folds: usize,
    },
    /// A fold number past the last fold.
    #[error("fold {fold} does not exist: folds are numbered 0..{folds}")]
    NoSuchFold {
        /// The fold asked for.
        fold: u32,
        /// Number of folds.
        folds: u32,
    },
    /// `[protocol] kind = "official"` for a data set without a split of its own.
    #[error("{kind} has no split of its own")]
    NoOfficialSplit {
        /// The data set kind.
        kind: &'static str,
    },
    /// The data set's own split leaves a set without recordings.
    #[error("the official split leaves no recording to {set} on (users 1-23 train, 24-29 test)")]
    EmptyOfficialSet {
        /// `train` or `test`.
        set: &'static str,
    },
    /// A test fraction outside (0, 1).
    #[error("test fraction {fraction} is not in (0, 1)")]
    BadFraction {
        /// The fraction given.
        fraction: f64,
    },
    /// The split would leave the training or the test side empty.
    #[error(
        "splitting {samples} recordings with test fraction {fraction} leaves {train} for training and {test} for testing; both need at least one"
    )]
    EmptySide {
        /// Recordings to split.
        samples: usize,
        /// The test fraction.
        fraction: f64,
        /// Recordings that would be trained on.
        train: usize,
        /// Recordings that would be held out.
        test: usize,
    },
    /// A seed numpy's `RandomState` does not accept (it takes 0..=2^32-1).
    #[error(
        "seed {seed} is out of range: numpy's RandomState takes 0..=4294967295 (and seed + 1 must fit for the validation split)"
    )]
    SeedOutOfRange {
        /// The seed given.
        seed: u64,
    },
}

/// One fold's `(train, test)` indices.
pub type FoldIndices = (Vec<usize>, Vec<usize>);

/// `KFold(n_splits=folds, shuffle=True, random_state=seed).split(range(n))`:
/// one `(train, test)` pair of ascending index lists per fold, in sklearn's order.
pub fn kfold(n: usize, folds: usize, seed: u32) -> Result<Vec<FoldIndices>, CvError> {
    if folds < 2 {
        return Err(CvError::TooFewFolds { folds });
    }
    if folds > n {
        return Err(CvError::TooFewSamples { samples: n, folds });
    }
    let mut order: Vec<usize> = (0..n).collect();
    Mt19937::new(seed).shuffle(&mut order);
    let mut out = Vec::with_capacity(folds);
    let mut start = 0;
    for k in 0..folds {
        let size = n / folds + usize::from(k < n % folds);
        let mut in_test = vec![false; n];
        for &i in &order[start..start + size] {
            in_test[i] = true;
        }
        start += size;
        let (test, train): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| in_test[i]);
        out.push((train, test));
    }
    Ok(out)
}

/// `train_test_split(range(n), test_size=test_fraction, random_state=seed)`:
/// `(train, test)` in the permuted order scikit-learn returns them.
pub fn train_test_split_indices(
    n: usize,
    test_fraction: f64,
    seed: u32,
) -> Result<(Vec<usize>, Vec<usize>), CvError> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(CvError::BadFraction {
            fraction: test_fraction,
        });
    }
    // Same IEEE double arithmetic as scikit-learn's `ceil(test_size * n_samples)`.
    let n_test = (test_fraction * n as f64).ceil() as usize;
    let n_train = n.saturating_sub(n_test);
    if n_train == 0 || n_test == 0 {
        return Err(CvError::EmptySide {
            samples: n,
            fraction: test_fraction,
            train: n_train,
            test: n_test.min(n),
        });
    }
    let perm = Mt19937::new(seed).permutation(n);
    let test = perm[..n_test].to_vec();
    let train = perm[n_test..n_test + n_train].to_vec();
    Ok((train, test))
}

fn seed_u32(seed: u64) -> Result<u32, CvError> {
    u32::try_from(seed).map_err(|_| CvError::SeedOutOfRange { seed })
}

fn pick(recordings: &[String], indices: &[usize]) -> Vec<String> {
    indices.iter().map(|&i| recordings[i].clone()).collect()
}

/// The recordings of fold `fold` (0-based, in `KFold.split` order) of a file list.
///
/// Train-val-test: the fold's training recordings (ascending file-list order) are
/// split by `train_test_split(train, test_size=val_fraction, random_state=seed + 1)`
/// into train (in the returned, permuted order, which is the training order) and
/// val. Train-test: train is the fold's training recordings, val is empty.
pub fn split(
    recordings: &[String],
    protocol: &ProtocolConfig,
    seed: u64,
    fold: u32,
) -> Result<FoldSplit, CvError> {
    let folds = protocol.folds;
    if fold >= folds {
        return Err(CvError::NoSuchFold { fold, folds });
    }
    let all = kfold(recordings.len(), folds as usize, seed_u32(seed)?)?;
    let (train_idx, test_idx) = &all[fold as usize];
    let train = pick(recordings, train_idx);
    let test = pick(recordings, test_idx);
    match protocol.kind {
        ProtocolKind::TrainTest | ProtocolKind::Official => Ok(FoldSplit {
            train,
            val: Vec::new(),
            test,
        }),
        ProtocolKind::TrainValTest => {
            let val_seed = seed_u32(seed)?
                .checked_add(1)
                .ok_or(CvError::SeedOutOfRange { seed })?;
            let (tr, va) = train_test_split_indices(train.len(), protocol.val_fraction, val_seed)?;
            Ok(FoldSplit {
                train: pick(&train, &tr),
                val: pick(&train, &va),
                test,
            })
        }
    }
}

/// [`split`] over people instead of recordings: the folds (and, for
/// train-val-test, the validation split) are drawn over the distinct people
/// of `recordings` (in order of first appearance, `kind` naming each
/// recording's person), and every recording goes where its person goes:
/// grouped by person in the order of the people's split, each person's
/// recordings in file-list order. No person is in two sets. With one
/// recording per person this is [`split`].
pub fn split_by_person(
    recordings: &[String],
    kind: DataKind,
    protocol: &ProtocolConfig,
    seed: u64,
    fold: u32,
) -> Result<FoldSplit, CvError> {
    let by_people = split(&people(kind, recordings), protocol, seed, fold)?;
    let expand = |group: &[String]| -> Vec<String> {
        group
            .iter()
            .flat_map(|p| {
                recordings
                    .iter()
                    .filter(|r| kind.person_of(r) == *p)
                    .cloned()
            })
            .collect()
    };
    Ok(FoldSplit {
        train: expand(&by_people.train),
        val: expand(&by_people.val),
        test: expand(&by_people.test),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_partition_the_indices() {
        for n in [4, 5, 10, 59] {
            let folds = kfold(n, 4, 3).unwrap();
            let mut seen: Vec<usize> = folds.iter().flat_map(|(_, t)| t.clone()).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>());
            for (train, test) in &folds {
                assert_eq!(train.len() + test.len(), n);
                assert!(train.windows(2).all(|w| w[0] < w[1]));
                assert!(test.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }

    #[test]
    fn bad_arguments_are_typed_errors() {
        assert!(matches!(kfold(3, 4, 0), Err(CvError::TooFewSamples { .. })));
        assert!(matches!(kfold(3, 1, 0), Err(CvError::TooFewFolds { .. })));
        assert!(matches!(
            train_test_split_indices(1, 0.15, 0),
            Err(CvError::EmptySide { .. })
        ));
        assert!(matches!(
            train_test_split_indices(10, 1.0, 0),
            Err(CvError::BadFraction { .. })
        ));
        let protocol = ProtocolConfig::default();
        let recs: Vec<String> = (0..8).map(|i| format!("r{i}")).collect();
        assert!(matches!(
            split(&recs, &protocol, 0, 4),
            Err(CvError::NoSuchFold { .. })
        ));
        assert!(matches!(
            split(&recs, &protocol, u64::from(u32::MAX), 0),
            Err(CvError::SeedOutOfRange { .. })
        ));
    }
}
