//! The Markdown "Environment" section: what the results were computed on
//! and with (one row per distinct manifest) and the build that made the
//! report, so every figure can be traced and re-run (`worker reproduce`).

use std::fmt::Write as _;

use super::text::cell;
use crate::report::compute::environments::Environments;

/// The first twelve hex digits of a hash (all of a shorter text).
fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

fn or_none(v: &Option<String>) -> String {
    v.as_deref().map_or_else(|| "–".to_owned(), cell)
}

/// The trainer a manifest names: `native`, or a script's name and the
/// start of its SHA-256.
fn trainer(m: &spikecv_common::experiment::manifest::Manifest) -> String {
    match (&m.trainer, &m.trainer_sha256) {
        (Some(name), Some(sha)) => format!("{} `{}`", cell(name), short(sha)),
        (Some(name), None) => cell(name),
        _ => "native".to_owned(),
    }
}

/// Writes the section.
pub fn write_markdown(out: &mut String, e: &Environments) -> std::fmt::Result {
    writeln!(out, "\n## Environment\n")?;
    let b = &e.generated_by;
    writeln!(
        out,
        "Report made by spikecv {}{} (binary sha256 `{}`).",
        cell(&b.spikecv_version),
        b.commit
            .as_deref()
            .map_or_else(String::new, |c| format!(", commit `{}`", cell(c))),
        short(&b.binary_sha256)
    )?;
    if e.environments.is_empty() {
        writeln!(out, "\nNo result carries a manifest.")?;
    } else {
        writeln!(
            out,
            "\n| jobs | workers | device | instruction set | threads | libtorch | CUDA | cuDNN | driver | precision | deterministic | TF32 | trainer | spikecv | binary |"
        )?;
        writeln!(
            out,
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        )?;
        for env in &e.environments {
            let m = &env.manifest;
            let workers: Vec<String> = env.workers.iter().map(|w| cell(w)).collect();
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}{} | `{}` |",
                env.jobs,
                workers.join(", "),
                cell(&m.device_model),
                cell(&m.instruction_set),
                m.threads,
                cell(&m.libtorch),
                or_none(&m.cuda),
                or_none(&m.cudnn),
                or_none(&m.driver),
                cell(&m.precision),
                if m.switches.deterministic {
                    "yes"
                } else {
                    "no"
                },
                if m.switches.tf32 { "yes" } else { "no" },
                trainer(m),
                cell(&m.spikecv_version),
                m.commit
                    .as_deref()
                    .map_or_else(String::new, |c| format!(" ({})", cell(short(c)))),
                short(&m.binary_sha256),
            )?;
        }
        writeln!(
            out,
            "\nA deterministic job can be trained again from this report with `worker reproduce --report report.json --job ID --data ROOT`: bit for bit on the same device model, instruction set, thread count and versions, within the tolerance of docs/semantics.md elsewhere."
        )?;
    }
    if e.without_manifest > 0 {
        writeln!(
            out,
            "\n{} succeeded job(s) came from workers that sent no manifest.",
            e.without_manifest
        )?;
    }
    for m in &e.mixed_scripts {
        let versions: Vec<String> = m
            .versions
            .iter()
            .map(|(sha, n)| format!("`{}` ({n} job(s))", short(sha)))
            .collect();
        writeln!(
            out,
            "
**Warning:** the results of configuration {} come from {} versions of training script {}: {}. Figures that mix them compare more than one model.",
            m.configuration,
            m.versions.len(),
            cell(&m.trainer),
            versions.join(", ")
        )?;
    }
    Ok(())
}
