//! The DVS128 Gesture figures: one accuracy column, the data set's own split
//! (users 1-23 train, 24-29 test, as `trials_to_train.txt` and
//! `trials_to_test.txt` list them), which is how the literature evaluates it;
//! none of these is cross-validated, so a k-fold-over-people run is a
//! different evaluation and is shown beside them, not in their column. The
//! sources do not say whether the reported epoch or model was chosen on the
//! test set, so each row says "not stated" there rather than guess. The ± is
//! the spread as each source gives it.

use crate::dataset::published::{
    PublishedColumn, PublishedFigure, PublishedTable, PublishedValue, figure,
};
use crate::dataset::variant::Variant;

const OWN_SPLIT: &str = "the data set's own split (users 1-23 train, 24-29 test), not cross-validated; ± as the paper gives it";

/// The table, oldest figure first.
pub static TABLE: PublishedTable = PublishedTable {
    heading: "Compared with published figures on DVS128 Gesture",
    note: "Test accuracy, mean ± population std. Published figures are on the data set's own split (users 1-23 train, 24-29 test), ± as each source gives it; none is cross-validated, so this run's k-fold over people is a different evaluation, in its own column.",
    columns: &[
        PublishedColumn {
            key: Some("official_split"),
            header: "official split (users 1-23 train, 24-29 test)",
            variant: Variant::WHOLE,
            own_split: true,
        },
        PublishedColumn {
            key: None,
            header: "k-fold over people",
            variant: Variant::WHOLE,
            own_split: false,
        },
    ],
    classes_column: true,
    figures: &[
        PublishedFigure {
            method: "TrueNorth CNN, data set paper (Amir et al., CVPR 2017)",
            values: &[
                Some(PublishedValue {
                    mean_percent: 96.5,
                    std_percent: None,
                }),
                None,
            ],
            classes: None,
            protocol: "the data set's own split (users 1-23 train, 24-29 test), not cross-validated; the abstract's \"out-of-sample accuracy\", which it does not say is over 11 classes or 10 (without \"other gestures\"), nor with which output filtering; no spread given",
            optimistic: None,
        },
        PublishedFigure {
            method: "SLAYER (Shrestha & Orchard, NeurIPS 2018)",
            values: &[figure(93.64, 0.49), None],
            classes: Some(11),
            protocol: OWN_SPLIT,
            optimistic: None,
        },
        PublishedFigure {
            method: "DECOLLE (Kaiser, Mostafa & Neftci, Frontiers in Neuroscience 2020)",
            values: &[figure(95.54, 0.16), None],
            classes: Some(11),
            protocol: OWN_SPLIT,
            optimistic: None,
        },
    ],
};
