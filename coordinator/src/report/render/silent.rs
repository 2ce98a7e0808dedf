//! The Markdown section on silent jobs: how many succeeded jobs of each group
//! had an output layer that never fired, and which layer went quiet first.

use std::fmt::Write as _;

use super::text::{cell, configuration_cell};
use crate::report::compute::report::Report;

/// Writes the silent-jobs section: how many succeeded jobs of each group
/// were silent, then one row per silent job (nothing when there are none).
pub fn write_markdown(out: &mut String, r: &Report) -> std::fmt::Result {
    let (jobs, infos) = (&r.silent_jobs, &r.configurations);
    if jobs.is_empty() {
        return Ok(());
    }
    writeln!(out, "\n## Silent jobs\n")?;
    for g in r.groups.iter().filter(|g| g.silent_jobs > 0) {
        let label = if g.configuration_label.is_empty() {
            String::new()
        } else {
            format!(" [{}]", cell(&g.configuration_label))
        };
        writeln!(
            out,
            "- {}{label} · {}: {} of {} succeeded jobs silent (they are in the figures above).",
            g.variant, g.protocol, g.silent_jobs, g.succeeded
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "The output layer of these jobs never fired in training: their loss stays constant and no gradient flows, so they learn nothing (try another seed, a lower threshold or a longer time window). The quiet layer is the one that fell silent first.\n"
    )?;
    writeln!(
        out,
        "| variant | protocol | configuration | seed | fold | quiet layer | silent since epoch |"
    )?;
    writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |")?;
    for j in jobs {
        let label = configuration_cell(infos, j.configuration);
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            j.variant,
            j.protocol,
            label,
            j.seed,
            j.fold,
            cell(&j.quiet_layer),
            j.quiet_since
        )?;
    }
    Ok(())
}
