//! The verification section (`[protocol] verify`, docs/semantics.md
//! "Verified results"): how many results were verified and how, by which
//! workers, which runs disagreed, which workers are suspect. Computed from
//! the runs the store keeps of each verified job, nothing else.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::states::VerifyState;
use crate::store::verify_rows::{RunRecord, SuspectRecord};

/// What the section is computed from: each job's state, every run of the
/// experiment's jobs and the suspect workers.
#[derive(Debug, Clone, Default)]
pub struct VerificationInput {
    /// (job, state) of each job with a verification state.
    pub states: Vec<(String, VerifyState)>,
    /// Every run of the experiment's jobs, by job then attempt.
    pub runs: Vec<RunRecord>,
    /// Suspect workers (of the whole coordinator).
    pub suspects: Vec<SuspectRecord>,
}

/// Jobs by verification state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct VerifyCounts {
    /// Sampled jobs (every job with a state).
    pub sampled: u32,
    /// Verified bit for bit.
    pub bitwise: u32,
    /// Verified within the tolerance.
    pub tolerance: u32,
    /// Waiting for a replay or a third run.
    pub waiting: u32,
    /// Three runs, no two agreeing.
    pub disputed: u32,
    /// Replays kept failing.
    pub unverified: u32,
    /// Jobs whose figures are a replay's (the original was the odd one out).
    pub replaced: u32,
}

/// One worker's part in verification.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct WorkerVerification {
    /// Its name.
    pub name: String,
    /// Its original results that another run confirmed.
    pub confirmed: u32,
    /// Replays and third runs it ran.
    pub replays: u32,
    /// Its runs that agreed with no other run of their job.
    pub disagreed: u32,
    /// Whether it is suspect now.
    pub suspect: bool,
}

/// One pair of runs of a job that disagreed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Disagreement {
    /// The job.
    pub job: String,
    /// The later run's worker.
    pub worker: String,
    /// The earlier run's worker.
    pub with_worker: String,
    /// `bitwise` or `tolerance`: the rule they were compared under.
    pub rule: &'static str,
    /// The figures that differ (the first ten).
    pub differences: Vec<String>,
}

/// The whole section.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    /// Jobs by state.
    pub counts: VerifyCounts,
    /// Per worker, by name.
    pub workers: Vec<WorkerVerification>,
    /// Every disagreeing pair, in job order.
    pub disagreements: Vec<Disagreement>,
    /// The suspect workers.
    pub suspects: Vec<SuspectRecord>,
}

fn count(counts: &mut VerifyCounts, state: VerifyState) {
    counts.sampled += 1;
    match state {
        VerifyState::Bitwise => counts.bitwise += 1,
        VerifyState::Tolerance => counts.tolerance += 1,
        VerifyState::Wanted | VerifyState::Tiebreak => counts.waiting += 1,
        VerifyState::Disputed => counts.disputed += 1,
        VerifyState::Unverified => counts.unverified += 1,
    }
}

/// Text of at most [`DIFFERENCE_CHARS`] characters (longer ones cut, with
/// an ellipsis): a confusion matrix of many classes stays readable.
fn shorten(text: &str) -> String {
    if text.chars().count() <= DIFFERENCE_CHARS {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(DIFFERENCE_CHARS - 1).collect();
    out.push('…');
    out
}

/// The longest text of one difference.
const DIFFERENCE_CHARS: usize = 160;

/// Whether `run` agrees with some other run of its job (`runs`).
fn agrees_with_another(run: &RunRecord, runs: &[&RunRecord]) -> bool {
    let mine = run.comparisons.iter().any(|c| c.comparison.agrees());
    let theirs = runs.iter().any(|r| {
        r.comparisons
            .iter()
            .any(|c| c.with == run.attempt && c.comparison.agrees())
    });
    mine || theirs
}

/// The verification section, `None` when no job of the experiment has a
/// verification state (it does not verify, or nothing was sampled yet).
pub fn verification(input: &VerificationInput) -> Option<Verification> {
    if input.states.is_empty() && input.suspects.is_empty() {
        return None;
    }
    let mut counts = VerifyCounts::default();
    for (_, state) in &input.states {
        count(&mut counts, *state);
    }
    let mut by_job: BTreeMap<&str, Vec<&RunRecord>> = BTreeMap::new();
    for r in &input.runs {
        by_job.entry(r.job.as_str()).or_default().push(r);
    }
    let mut workers: BTreeMap<String, WorkerVerification> = BTreeMap::new();
    let mut disagreements = Vec::new();
    for (job, runs) in &by_job {
        if runs.len() < 2 {
            continue;
        }
        let original = runs.iter().find(|r| !r.replay);
        for run in runs {
            let w = workers.entry(run.worker_name.clone()).or_default();
            w.name.clone_from(&run.worker_name);
            let agrees = agrees_with_another(run, runs);
            match (run.replay, agrees) {
                (false, true) => w.confirmed += 1,
                (true, _) => w.replays += 1,
                (false, false) => {}
            }
            if !agrees {
                w.disagreed += 1;
            }
            for c in run.comparisons.iter().filter(|c| !c.comparison.agrees()) {
                let with = runs.iter().find(|r| r.attempt == c.with);
                disagreements.push(Disagreement {
                    job: (*job).to_owned(),
                    worker: run.worker_name.clone(),
                    with_worker: with.map(|r| r.worker_name.clone()).unwrap_or_default(),
                    rule: match c.comparison.agreement {
                        spikecv_common::experiment::manifest::Agreement::Bitwise => "bitwise",
                        _ => "tolerance",
                    },
                    differences: c
                        .comparison
                        .differences()
                        .take(10)
                        .map(|d| shorten(&format!("{}: {} vs {}", d.what, d.second, d.first)))
                        .collect(),
                });
            }
        }
        if original.is_some_and(|o| !agrees_with_another(o, runs))
            && runs.iter().any(|r| agrees_with_another(r, runs))
        {
            counts.replaced += 1;
        }
    }
    for s in &input.suspects {
        let w = workers.entry(s.name.clone()).or_default();
        w.name.clone_from(&s.name);
        w.suspect = true;
    }
    Some(Verification {
        counts,
        workers: workers.into_values().collect(),
        disagreements,
        suspects: input.suspects.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AttemptId, WorkerId};
    use crate::store::verify_rows::RunComparison;
    use spikecv_common::experiment::job::JobResult;
    use spikecv_common::experiment::replay::compare;

    fn result(accuracy: f64) -> JobResult {
        JobResult {
            best_epoch: 1,
            test_accuracy: accuracy,
            test_loss: 0.5,
            val_accuracy: None,
            val_loss: None,
            confusion: Vec::new(),
            train_seconds: 1.0,
            epochs: Vec::new(),
            optimistic: false,
        }
    }

    /// Run `attempt` of job `j` by `name`, compared with `earlier`.
    fn run(attempt: u64, name: &str, accuracy: f64, earlier: &[&RunRecord]) -> RunRecord {
        let r = result(accuracy);
        let p = Default::default();
        RunRecord {
            attempt: AttemptId(attempt),
            job: "j".into(),
            worker: WorkerId(name.into()),
            worker_name: name.into(),
            credentials: vec![name.into()],
            replay: attempt > 1,
            comparisons: earlier
                .iter()
                .map(|e| RunComparison {
                    with: e.attempt,
                    comparison: compare((&e.result, &p), (&r, &p)),
                })
                .collect(),
            result: r,
            provenance: None,
            finished_ms: 0,
        }
    }

    #[test]
    fn the_odd_one_out_disagreed_and_its_job_counts_as_replaced() {
        let forged = run(1, "mallory", 1.0, &[]);
        let replay = run(2, "alice", 0.5, &[&forged]);
        let third = run(3, "bob", 0.5, &[&forged, &replay]);
        let input = VerificationInput {
            states: vec![("j".into(), VerifyState::Tolerance)],
            runs: vec![forged, replay, third],
            suspects: vec![SuspectRecord {
                worker: WorkerId("mallory".into()),
                name: "mallory".into(),
                job: "j".into(),
                reason: "disagreed".into(),
                since_ms: 0,
            }],
        };
        let v = verification(&input).unwrap();
        assert_eq!((v.counts.tolerance, v.counts.replaced), (1, 1));
        let names: Vec<(&str, u32, bool)> = v
            .workers
            .iter()
            .map(|w| (w.name.as_str(), w.disagreed, w.suspect))
            .collect();
        assert_eq!(
            names,
            [("alice", 0, false), ("bob", 0, false), ("mallory", 1, true)]
        );
        assert_eq!(v.disagreements.len(), 2);
        assert!(v.disagreements[0].differences[0].starts_with("test_accuracy"));
        assert!(verification(&VerificationInput::default()).is_none());
    }
}
