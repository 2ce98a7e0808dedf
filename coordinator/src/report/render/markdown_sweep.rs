//! The Markdown section of a sweep: each variant and protocol's configurations
//! ranked, compared with the baseline pair by pair, the recommendation (on
//! validation data only) and what pruning saved.

use std::fmt::Write as _;

use super::text::{cell, count_text, flops_text, p_text, saving_text};
use crate::report::compute::compare::{BaselineComparison, RankBasis, Ranking, SweepComparison};
use crate::report::compute::configurations::NetworkSummary;
use crate::report::compute::metric::Metric;
use spikecv_common::stats::correlated::Posterior;

/// The network cells of a ranking row: compact name, parameters, FLOPs per
/// training sample (`–` when unknown).
fn network_cells(n: Option<&NetworkSummary>) -> [String; 3] {
    match n {
        None => ["–".into(), "–".into(), "–".into()],
        Some(n) => [
            format!("`{}`", n.name),
            count_text(n.parameters),
            flops_text(n.flops_per_sample),
        ],
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_owned(), |x| format!("{:.2}", 100.0 * x))
}

fn pp(x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_owned(), |x| format!("{x:+.2}"))
}

/// Posterior probabilities as "better / equivalent / worse" in %.
fn posterior_text(p: Option<&Posterior>) -> String {
    p.map_or_else(
        || "–".to_owned(),
        |p| {
            format!(
                "{:.1} / {:.1} / {:.1}",
                100.0 * p.p_better,
                100.0 * p.p_equivalent,
                100.0 * p.p_worse
            )
        },
    )
}

fn comparison_cells(c: Option<&BaselineComparison>, baseline: bool) -> [String; 7] {
    match c {
        None if baseline => std::array::from_fn(|i| {
            if i == 0 {
                "baseline".into()
            } else {
                String::new()
            }
        }),
        None => std::array::from_fn(|i| if i == 6 { "0".into() } else { "–".into() }),
        Some(c) => {
            let p = &c.paired;
            let ci = c.corrected_t.map_or_else(
                || "–".to_owned(),
                |t| format!("[{:+.2}, {:+.2}]", t.ci95_pp[0], t.ci95_pp[1]),
            );
            [
                pp(p.mean_difference_pp),
                ci,
                format!(
                    "{} ({})",
                    p_text(c.corrected_t.map(|t| t.p_value)),
                    p_text(c.corrected_t_p_holm)
                ),
                posterior_text(c.posterior.as_ref()),
                format!("{} ({})", p_text(p.t_test_p), p_text(c.t_test_p_holm)),
                format!(
                    "{} ({})",
                    p_text(p.wilcoxon.map(|w| w.p_value)),
                    p_text(c.wilcoxon_p_holm)
                ),
                p.pairs.to_string(),
            ]
        }
    }
}

fn write_ranking(out: &mut String, r: &Ranking) -> std::fmt::Result {
    let basis = match r.ranked_by {
        RankBasis::Validation => "ranked by mean validation accuracy",
        RankBasis::TestOptimistic => {
            "ranked by mean test accuracy (optimistic: the epoch is chosen by test accuracy)"
        }
    };
    writeln!(out, "\n### {}, {}: {basis}\n", r.variant, r.protocol)?;
    writeln!(
        out,
        "| rank | configuration | network | parameters | FLOPs/sample | validation accuracy | test accuracy | Δ test vs baseline (pp) | 95 % CI, corrected (pp) | corrected t p (Holm) | P(better / equivalent / worse) % | paired t p, uncorrected (Holm) | Wilcoxon p, uncorrected (Holm) | pairs | pruned | samples/s | baseline speed ÷ this |"
    )?;
    writeln!(
        out,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )?;
    for row in &r.rows {
        let rank = if row.rank == 0 {
            "–".to_owned()
        } else {
            row.rank.to_string()
        };
        let metric = |m: &Metric| {
            format!(
                "{} ± {} ({} of {})",
                pct(m.mean),
                pct(m.std_population),
                m.count,
                m.planned
            )
        };
        let val = row
            .val_accuracy
            .as_ref()
            .map_or_else(|| "n/a".to_owned(), metric);
        let [diff, ci, corrected, posterior, t, w, pairs] =
            comparison_cells(row.versus_baseline.as_ref(), row.baseline);
        let name = if row.baseline {
            format!("**{}** (baseline)", cell(&row.label))
        } else {
            cell(&row.label)
        };
        let [network, parameters, flops] = network_cells(row.network.as_ref());
        writeln!(
            out,
            "| {rank} | {name} | {network} | {parameters} | {flops} | {val} | {} | {diff} | {ci} | {corrected} | {posterior} | {t} | {w} | {pairs} | {} | {} | {} |",
            metric(&row.test_accuracy),
            row.pruned,
            row.samples_per_second
                .mean
                .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1}")),
            row.baseline_speedup
                .map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×")),
        )?;
    }
    match (r.ranked_by, r.recommended) {
        (RankBasis::Validation, Some(c)) => {
            let label = r
                .rows
                .iter()
                .find(|row| row.configuration == c)
                .map_or("", |row| row.label.as_str());
            writeln!(
                out,
                "\nRecommended: **{}**, the best mean validation accuracy. The choice is made on validation data only; its test accuracy above is the honest estimate.",
                cell(label)
            )?;
        }
        (RankBasis::Validation, None) => {
            writeln!(
                out,
                "\nNo recommendation yet: no configuration has a validation accuracy."
            )?;
        }
        (RankBasis::TestOptimistic, _) => {
            writeln!(
                out,
                "\nNo recommendation: under train-test every figure is optimistic (chosen on test data); run train-val-test to choose."
            )?;
        }
    }
    Ok(())
}

/// Writes the sweep section.
pub fn write_sweep(out: &mut String, s: &SweepComparison) -> std::fmt::Result {
    writeln!(out, "\n## Configurations compared\n")?;
    writeln!(
        out,
        "Every configuration ran on the same (seed, fold) splits, so each is compared with the baseline pair by pair: Δ is the mean of (configuration − baseline) test accuracy over the jobs both finished, in percentage points. The folds of one seed train on overlapping data, so their differences are correlated and the plain paired t-test is overconfident (Dietterich 1998; Nadeau & Bengio 2003); the report leads with the corrected resampled t-test (Nadeau & Bengio; Bouckaert & Frank 2004 for seeds × folds): the variance of the n differences times (1/n + ρ/(1 − ρ)) with ρ = 1/k for k folds, n − 1 degrees of freedom, its 95 % interval and two-sided p-value, Holm-adjusted over the {} comparisons of this report in brackets. Under the official protocol the pairs are seeds on one split, none sharing training data with another split, so ρ = 0 and the corrected test is the paired t-test. P(better / equivalent / worse) is the Bayesian correlated t-test's posterior (Corani & Benavoli 2015; the same ρ) that the configuration's mean accuracy is above, within or below ± {} pp of the baseline's (the region of practical equivalence, `[sweep] rope`). Beside them, uncorrected: the paired t-test and the Wilcoxon signed-rank test as scipy computes them, each with its own Holm adjustment. Accuracies are mean ± population std in %, with jobs behind each figure; pruned jobs are left out of every figure. Each configuration's network is named compactly (conv `c<channels>k<kernel>`, pool `p<size>a`/`p<size>m`, linear `f<features>`), with its parameters and the FLOPs of one training sample's forward pass (2 × multiply-accumulates of the conv and linear layers × `simulation.steps`; no backward pass, no spike sparsity). Samples/s is the mean training speed over the epochs of the succeeded jobs, as each trainer measured it; the last column is the baseline's speed over the configuration's (2.00× : the baseline trains twice as fast). A configuration that runs a training script (`trainer=…`, docs/trainers.md) is compared on the same folds as the native engine.",
        s.comparisons, s.rope_pp
    )?;
    for r in &s.rankings {
        write_ranking(out, r)?;
    }
    let p = &s.pruning;
    if p.pruned_jobs > 0 {
        writeln!(
            out,
            "\nPruning stopped {} job(s) on validation accuracy (below the median of the other configurations at the same epoch, or, with successive halving, below the configurations that go on at a rung); it saved {}, from each pruned job's own mean epoch time.",
            p.pruned_jobs,
            saving_text(&p.saving)
        )?;
    }
    Ok(())
}
