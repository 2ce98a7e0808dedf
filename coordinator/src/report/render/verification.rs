//! The Markdown section on verified results (`[protocol] verify`): counts
//! by how each result was verified, each worker's part, every disagreeing
//! pair of runs and the suspect workers.

use std::fmt::Write as _;

use super::text::cell;
use crate::report::compute::report::Report;

/// Writes the verification section (nothing when the experiment has none).
pub fn write_markdown(out: &mut String, r: &Report) -> std::fmt::Result {
    let Some(v) = &r.verification else {
        return Ok(());
    };
    let c = &v.counts;
    writeln!(out, "\n## Verification\n")?;
    writeln!(
        out,
        "{} of {} sampled results verified by a replay on another worker: {} bit for bit, {} within the tolerance (docs/semantics.md, \"Verified results\"); {} waiting for a run, {} disputed, {} unverified; {} result(s) replaced by the majority's.\n",
        c.bitwise + c.tolerance,
        c.sampled,
        c.bitwise,
        c.tolerance,
        c.waiting,
        c.disputed,
        c.unverified,
        c.replaced
    )?;
    if !v.suspects.is_empty() {
        for s in &v.suspects {
            writeln!(
                out,
                "> **Suspect worker {}** (`{}`): {}. It gets no new leases until `coordinator worker clear {}`.\n",
                cell(&s.name),
                cell(&s.worker.0),
                cell(&s.reason),
                cell(&s.name)
            )?;
        }
    }
    if !v.workers.is_empty() {
        writeln!(
            out,
            "| worker | results confirmed | replays run | runs that disagreed | suspect |"
        )?;
        writeln!(out, "| --- | --- | --- | --- | --- |")?;
        for w in &v.workers {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                cell(&w.name),
                w.confirmed,
                w.replays,
                w.disagreed,
                if w.suspect { "**yes**" } else { "no" }
            )?;
        }
    }
    if !v.disagreements.is_empty() {
        writeln!(out, "\nRuns that disagreed (later run's value first):\n")?;
        writeln!(out, "| job | worker | with | rule | differences |")?;
        writeln!(out, "| --- | --- | --- | --- | --- |")?;
        for d in &v.disagreements {
            writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                cell(&d.job),
                cell(&d.worker),
                cell(&d.with_worker),
                d.rule,
                cell(&d.differences.join("; "))
            )?;
        }
    }
    Ok(())
}
