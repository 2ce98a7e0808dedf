//! The published figures users compare against, per data set, each with the
//! protocol that produced it. A report shows the table of its experiment's
//! data set ([`PublishedTable::of`]); each data set's rows have the columns
//! that fit how its figures were obtained.
//!
//! # SL-Animals-DVS
//!
//! The table in DESIGN.md ([`SlAnimalsFigure`]: whole set and reduced set).
//! All are 4-fold over recordings with ± the standard deviation over folds.
//! The data set paper and the reference implementation report the best test
//! accuracy over epochs (the `train-test` protocol), so every figure here is
//! optimistic next to an honest train-val-test result.
//!
//! # DVS128 Gesture
//!
//! [`GestureFigure`]: one accuracy column, the data set's own split (users
//! 1-23 train, 24-29 test, as `trials_to_train.txt` and `trials_to_test.txt`
//! list them), which is how the literature evaluates it; none of these is
//! cross-validated, so a k-fold-over-people run is a different evaluation and
//! is shown beside them, not in their column. The sources do not say whether
//! the reported epoch or model was chosen on the test set, so each row says
//! "not stated" there rather than guess. The ± is the spread as each source
//! gives it.

use serde::Serialize;
use spikecv_common::dataset::dvs_gesture::kind::DVS_GESTURE;
use spikecv_common::dataset::kind::DataKind;
use spikecv_common::dataset::sl_animals::kind::SL_ANIMALS;

/// A mean ± std in percent, as published.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PublishedValue {
    /// Mean accuracy in percent.
    pub mean_percent: f64,
    /// Standard deviation in percentage points (over folds for SL-Animals-DVS,
    /// as the source gives it for DVS128 Gesture); `None` when the source
    /// gives none.
    pub std_percent: Option<f64>,
}

/// One row of the SL-Animals-DVS table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlAnimalsFigure {
    /// Method and source.
    pub method: &'static str,
    /// Result on the whole set, if given.
    pub whole: Option<PublishedValue>,
    /// Result on the reduced set (no S3), if given.
    pub reduced: Option<PublishedValue>,
    /// How the figure was obtained.
    pub protocol: &'static str,
    /// Whether the protocol selects on the test set (best test accuracy over epochs).
    pub optimistic: bool,
}

/// One row of the DVS128 Gesture table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GestureFigure {
    /// Method and source.
    pub method: &'static str,
    /// Test accuracy on the data set's own split (users 1-23 train, 24-29
    /// test), if given.
    pub official_split: Option<PublishedValue>,
    /// Classes the figure is over (11 with "other gestures"); `None` when the
    /// source does not say.
    pub classes: Option<u32>,
    /// How the figure was obtained.
    pub protocol: &'static str,
    /// Whether the figure selects on the test set (an epoch or model chosen
    /// by test accuracy); `None` when the source does not say.
    pub optimistic: Option<bool>,
}

/// The published figures of one data set. Serialised as the plain list of
/// its rows (the JSON report's `published`), so an SL-Animals-DVS report's
/// layout is the one it always had.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PublishedTable {
    /// SL-Animals-DVS: whole and reduced set, 4-fold over recordings.
    SlAnimals(Vec<SlAnimalsFigure>),
    /// DVS128 Gesture: the data set's own train/test split.
    DvsGesture(Vec<GestureFigure>),
}

impl PublishedTable {
    /// The table of data set `kind`.
    pub fn of(kind: DataKind) -> Self {
        if kind == DVS_GESTURE {
            PublishedTable::DvsGesture(gesture_figures())
        } else {
            PublishedTable::SlAnimals(sl_animals_figures())
        }
    }

    /// The data set the table is about.
    pub fn data_kind(&self) -> DataKind {
        match self {
            PublishedTable::SlAnimals(_) => SL_ANIMALS,
            PublishedTable::DvsGesture(_) => DVS_GESTURE,
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            PublishedTable::SlAnimals(rows) => rows.len(),
            PublishedTable::DvsGesture(rows) => rows.len(),
        }
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The name a report gives data set `kind`.
pub fn data_set_name(kind: DataKind) -> &'static str {
    kind.title()
}

const fn v(mean_percent: f64, std_percent: f64) -> Option<PublishedValue> {
    Some(PublishedValue {
        mean_percent,
        std_percent: Some(std_percent),
    })
}

const PAPER: &str = "4-fold over recordings, ± std over folds; train-test (best test accuracy over epochs), as the data set paper reports";

/// The SL-Animals-DVS figures, in DESIGN.md's order.
pub fn sl_animals_figures() -> Vec<SlAnimalsFigure> {
    vec![
        SlAnimalsFigure {
            method: "STBP, data set paper (Vasudevan et al. 2021)",
            whole: v(56.20, 1.52),
            reduced: v(71.45, 1.74),
            protocol: PAPER,
            optimistic: true,
        },
        SlAnimalsFigure {
            method: "SLAYER, same paper",
            whole: v(60.9, 4.58),
            reduced: v(78.03, 3.08),
            protocol: PAPER,
            optimistic: true,
        },
        SlAnimalsFigure {
            method: "DECOLLE, same paper",
            whole: v(70.6, 7.8),
            reduced: v(77.6, 6.5),
            protocol: PAPER,
            optimistic: true,
        },
        SlAnimalsFigure {
            method: "STBP reference implementation (PyTorch), early",
            whole: v(41.32, 3.06),
            reduced: None,
            protocol: "4-fold over recordings; train-test, max test accuracy over epochs; a loader bug (reshape instead of transpose) scrambled its input",
            optimistic: true,
        },
        SlAnimalsFigure {
            method: "STBP reference implementation, fixed",
            whole: v(64.97, 4.81),
            reduced: v(71.47, 1.54),
            protocol: "4-fold over recordings; train-test, max test accuracy over epochs; corrected input layout",
            optimistic: true,
        },
        SlAnimalsFigure {
            method: "STBP reference, random crops",
            whole: v(75.78, 2.73),
            reduced: None,
            protocol: "4-fold over recordings; train-test, max test accuracy over epochs; trained on random 510 ms crops (17 steps), tested on the first 4350 ms (145 steps)",
            optimistic: true,
        },
    ]
}

/// The DVS128 Gesture figures, oldest first.
pub fn gesture_figures() -> Vec<GestureFigure> {
    vec![
        GestureFigure {
            method: "TrueNorth CNN, data set paper (Amir et al., CVPR 2017)",
            official_split: Some(PublishedValue {
                mean_percent: 96.5,
                std_percent: None,
            }),
            classes: None,
            protocol: "the data set's own split (users 1-23 train, 24-29 test), not cross-validated; the abstract's \"out-of-sample accuracy\", which it does not say is over 11 classes or 10 (without \"other gestures\"), nor with which output filtering; no spread given",
            optimistic: None,
        },
        GestureFigure {
            method: "SLAYER (Shrestha & Orchard, NeurIPS 2018)",
            official_split: v(93.64, 0.49),
            classes: Some(11),
            protocol: "the data set's own split (users 1-23 train, 24-29 test), not cross-validated; ± as the paper gives it",
            optimistic: None,
        },
        GestureFigure {
            method: "DECOLLE (Kaiser, Mostafa & Neftci, Frontiers in Neuroscience 2020)",
            official_split: v(95.54, 0.16),
            classes: Some(11),
            protocol: "the data set's own split (users 1-23 train, 24-29 test), not cross-validated; ± as the paper gives it",
            optimistic: None,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_data_set_has_its_own_table() {
        let sl = PublishedTable::of(SL_ANIMALS);
        assert_eq!(sl.data_kind(), SL_ANIMALS);
        assert_eq!(sl.len(), 6);
        let g = PublishedTable::of(DVS_GESTURE);
        assert_eq!(g.data_kind(), DVS_GESTURE);
        let PublishedTable::DvsGesture(rows) = g else {
            panic!("not the Gesture table: {g:?}");
        };
        assert!(rows.iter().all(|r| r.official_split.is_some()));
        assert!(rows.iter().any(|r| r.method.starts_with("SLAYER")));
        assert!(rows.iter().any(|r| r.method.starts_with("DECOLLE")));
        assert!(rows.iter().all(|r| r.protocol.contains("users 1-23 train")));
    }

    #[test]
    fn both_tables_serialise_as_plain_lists_of_rows() {
        let sl = serde_json::to_value(PublishedTable::of(SL_ANIMALS)).unwrap_or_default();
        assert_eq!(sl[0]["whole"]["mean_percent"], 56.2);
        assert_eq!(sl[0]["whole"]["std_percent"], 1.52);
        assert_eq!(sl[3]["reduced"], serde_json::Value::Null);
        let g = serde_json::to_value(PublishedTable::of(DVS_GESTURE)).unwrap_or_default();
        assert_eq!(g[1]["official_split"]["mean_percent"], 93.64);
        assert_eq!(g[1]["classes"], 11);
        assert_eq!(g[1]["optimistic"], serde_json::Value::Null);
        assert!(g[1].get("whole").is_none());
    }
}
