//! The SL-Animals-DVS figures of DESIGN.md: whole set and reduced set, all
//! 4-fold over recordings with ± the standard deviation over folds. The data
//! set paper and the reference implementation report the best test accuracy
//! over epochs (the `train-test` protocol), so every figure here is optimistic
//! next to an honest train-val-test result.

use crate::dataset::published::{PublishedColumn, PublishedFigure, PublishedTable, figure};
use crate::dataset::sl_animals::REDUCED;
use crate::dataset::variant::Variant;

const PAPER: &str = "4-fold over recordings, ± std over folds; train-test (best test accuracy over epochs), as the data set paper reports";

/// A row of this table: whole and reduced figures, optimistic.
const fn row(
    method: &'static str,
    values: &'static [Option<crate::dataset::published::PublishedValue>],
    protocol: &'static str,
) -> PublishedFigure {
    PublishedFigure {
        method,
        values,
        classes: None,
        protocol,
        optimistic: Some(true),
    }
}

/// The table, rows in DESIGN.md's order.
pub static TABLE: PublishedTable = PublishedTable {
    heading: "Compared with published figures",
    note: "Test accuracy, mean ± population std. Published figures are 4-fold over recordings, ± std over folds.",
    columns: &[
        PublishedColumn {
            key: Some("whole"),
            header: "whole set",
            variant: Variant::WHOLE,
            own_split: false,
        },
        PublishedColumn {
            key: Some("reduced"),
            header: "reduced (no S3)",
            variant: REDUCED,
            own_split: false,
        },
    ],
    classes_column: false,
    figures: &[
        row(
            "STBP, data set paper (Vasudevan et al. 2021)",
            &[figure(56.20, 1.52), figure(71.45, 1.74)],
            PAPER,
        ),
        row(
            "SLAYER, same paper",
            &[figure(60.9, 4.58), figure(78.03, 3.08)],
            PAPER,
        ),
        row(
            "DECOLLE, same paper",
            &[figure(70.6, 7.8), figure(77.6, 6.5)],
            PAPER,
        ),
        row(
            "STBP reference implementation (PyTorch), early",
            &[figure(41.32, 3.06), None],
            "4-fold over recordings; train-test, max test accuracy over epochs; a loader bug (reshape instead of transpose) scrambled its input",
        ),
        row(
            "STBP reference implementation, fixed",
            &[figure(64.97, 4.81), figure(71.47, 1.54)],
            "4-fold over recordings; train-test, max test accuracy over epochs; corrected input layout",
        ),
        row(
            "STBP reference, random crops",
            &[figure(75.78, 2.73), None],
            "4-fold over recordings; train-test, max test accuracy over epochs; trained on random 510 ms crops (17 steps), tested on the first 4350 ms (145 steps)",
        ),
    ],
};
