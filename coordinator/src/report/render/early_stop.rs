//! The Markdown section on early stopping: the jobs `training.patience` ended
//! before their last epoch, and the time that saved.

use std::fmt::Write as _;

use super::text::{configuration_cell, duration_text, saving_text};
use crate::report::compute::configurations::ConfigurationInfo;
use crate::report::compute::early_stop::EarlyStopping;

/// Writes the early-stopping section: one row per stopped job, then the saving.
pub fn write_markdown(
    out: &mut String,
    e: &EarlyStopping,
    infos: &[ConfigurationInfo],
) -> std::fmt::Result {
    writeln!(out, "\n## Early stopping\n")?;
    writeln!(
        out,
        "These jobs ended after `training.patience` epochs without a better validation accuracy; each reports the model its protocol selected among the epochs it trained.\n"
    )?;
    writeln!(
        out,
        "| variant | configuration | seed | fold | stopped at epoch | of | time saved |"
    )?;
    writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |")?;
    for j in &e.jobs {
        let label = configuration_cell(infos, j.configuration);
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            j.variant,
            label,
            j.seed,
            j.fold,
            j.stopped_epoch,
            j.epochs,
            duration_text(j.saved_seconds)
        )?;
    }
    writeln!(
        out,
        "\nEarly stopping ended {} job(s) before their last epoch and saved {}, from each job's own mean epoch time.",
        e.jobs.len(),
        saving_text(&e.saving)
    )
}
