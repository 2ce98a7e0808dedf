//! Training scripts in the scheduler (docs/trainers.md), without a network:
//! a job of trainer `X` goes only to a worker that registered `X`, native
//! jobs go to every worker, and jobs no live worker can run are reported as
//! waiting for their trainer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sched_support;

use sched_support::{registration, scheduler, submission_over};
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::trainer::TrainerInfo;
use spikecv_coordinator::scheduler::{ManualClock, WorkerRegistration};

const BASE: &str =
    "[data]\nroot = \"d\"\n[protocol]\nseeds = [0]\nvariants = [\"whole\"]\nfolds = 2\n";

fn with_trainer(name: &str, reg: WorkerRegistration) -> WorkerRegistration {
    WorkerRegistration {
        trainers: vec![TrainerInfo {
            name: name.to_owned(),
            script_sha256: "ab".repeat(32),
            deterministic: false,
        }],
        ..reg
    }
}

fn slots(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("cuda:{i}")).collect()
}

#[test]
fn a_script_job_waits_for_a_worker_that_has_its_trainer() {
    let clock = ManualClock::new(1_000);
    let mut s = scheduler(&clock);
    let text = format!("{BASE}[trainer]\nname = \"stbp-pytorch\"\n");
    s.submit(&submission_over(&text, 8, None, &["a", "b"]))
        .unwrap();

    let plain = s.register(&registration("plain", 2)).unwrap();
    assert!(
        s.lease(&plain.id, &slots(2))
            .unwrap()
            .assignments
            .is_empty()
    );
    let status = s.status().unwrap();
    assert_eq!(
        status.waiting_for_trainers,
        vec![("stbp-pytorch".to_owned(), 2)]
    );

    let other = s
        .register(&with_trainer("another", registration("other", 1)))
        .unwrap();
    assert!(
        s.lease(&other.id, &slots(1))
            .unwrap()
            .assignments
            .is_empty()
    );

    let able = s
        .register(&with_trainer("stbp-pytorch", registration("able", 2)))
        .unwrap();
    assert!(s.status().unwrap().waiting_for_trainers.is_empty());
    let lease = s.lease(&able.id, &slots(2)).unwrap();
    assert_eq!(lease.assignments.len(), 2);
    for a in &lease.assignments {
        let config = ExperimentConfig::from_toml_str(&a.config_toml).unwrap();
        assert_eq!(
            config.trainer.map(|t| t.name).as_deref(),
            Some("stbp-pytorch")
        );
    }
}

#[test]
fn a_sweep_over_trainers_gives_native_jobs_to_every_worker() {
    let clock = ManualClock::new(1_000);
    let mut s = scheduler(&clock);
    let text = format!(
        "{BASE}[trainer]\nframes = true\n[trainer.params]\nhidden = 8\n[sweep]\n\"trainer.name\" = [\"native\", \"py\"]\n"
    );
    s.submit(&submission_over(&text, 8, None, &["a", "b"]))
        .unwrap();

    let plain = s.register(&registration("plain", 4)).unwrap();
    let lease = s.lease(&plain.id, &slots(4)).unwrap();
    // Two folds of the native configuration; the script's two wait.
    assert_eq!(lease.assignments.len(), 2);
    for a in &lease.assignments {
        let config = ExperimentConfig::from_toml_str(&a.config_toml).unwrap();
        assert!(config.trainer.is_none(), "{}", a.config_toml);
    }
    assert_eq!(
        s.status().unwrap().waiting_for_trainers,
        vec![("py".to_owned(), 2)]
    );

    let able = s
        .register(&with_trainer("py", registration("able", 4)))
        .unwrap();
    let lease = s.lease(&able.id, &slots(4)).unwrap();
    assert_eq!(lease.assignments.len(), 2);
    for a in &lease.assignments {
        let config = ExperimentConfig::from_toml_str(&a.config_toml).unwrap();
        let trainer = config.trainer.unwrap();
        assert_eq!(trainer.name, "py");
        assert!(trainer.frames);
        assert_eq!(
            trainer.params.get("hidden").and_then(|v| v.as_integer()),
            Some(8)
        );
    }
}

#[test]
fn a_lost_worker_does_not_count_as_having_the_trainer() {
    let clock = ManualClock::new(1_000);
    let mut s = scheduler(&clock);
    let able = s
        .register(&with_trainer("py", registration("able", 1)))
        .unwrap();
    let text = format!("{BASE}[trainer]\nname = \"py\"\n");
    s.submit(&submission_over(&text, 8, None, &["a", "b"]))
        .unwrap();
    assert!(s.status().unwrap().waiting_for_trainers.is_empty());
    // Silent past every lease and liveness deadline: the worker is lost.
    clock.advance_ms(24 * 3_600_000);
    s.expire_leases().unwrap();
    assert_eq!(
        s.status().unwrap().waiting_for_trainers,
        vec![("py".to_owned(), 2)],
        "{:?}",
        s.status().unwrap().workers
    );
    let _ = able;
}

mod verification {
    //! `[protocol] verify` over a training script: replayed only when the
    //! script is declared deterministic, and only by a worker declaring the
    //! same script (same SHA-256) deterministic.
    use super::*;
    use sched_support::honest_result;
    use spikecv_common::experiment::manifest::{Manifest, Provenance, Switches};
    use spikecv_common::experiment::plan::JobId;
    use spikecv_coordinator::scheduler::{CredentialName, Scheduler, WorkerId};
    use spikecv_coordinator::states::VerifyState;

    const EPOCHS: u32 = 2;

    fn submit(s: &mut Scheduler) {
        let text = format!(
            "[data]\nroot = \"d\"\n[protocol]\nfolds = 3\nseeds = [0]\nvariants = [\"whole\"]\n\
             verify = \"all\"\n[training]\nepochs = {EPOCHS}\n[trainer]\nname = \"py\"\n"
        );
        s.submit(&submission_over(&text, 9, None, &["a", "b"]))
            .unwrap();
    }

    fn environment() -> Manifest {
        Manifest {
            libtorch: "2.11.0".into(),
            device: "cpu".into(),
            device_model: "test cpu".into(),
            instruction_set: "AVX2".into(),
            threads: 1,
            ..Manifest::default()
        }
    }

    /// A worker with its own credential, one slot, trainer `py` with script
    /// hash `sha` (declared deterministic or not); `None`: no trainer.
    fn worker(s: &mut Scheduler, name: &str, py: Option<(&str, bool)>) -> WorkerId {
        let credential = CredentialName::parse(name).unwrap();
        s.add_credential(&credential, 1).unwrap();
        let mut reg = registration(name, 1);
        reg.slots[0].manifest = Some(environment());
        if let Some((sha, deterministic)) = py {
            reg.trainers = vec![TrainerInfo {
                name: "py".into(),
                script_sha256: sha.repeat(32),
                deterministic,
            }];
        }
        s.register_as(&credential.worker_id(), &reg).unwrap().id
    }

    fn provenance(sha: &str) -> Provenance {
        let switches = Switches {
            deterministic: true,
            ..Switches::default()
        };
        let mut manifest = environment().for_job(switches, "");
        manifest.trainer = Some("py".into());
        manifest.trainer_sha256 = Some(sha.repeat(32));
        Provenance {
            manifest,
            weights_sha256: "cd".repeat(32),
        }
    }

    fn run_all(s: &mut Scheduler, w: &WorkerId, sha: &str) -> Vec<JobId> {
        let mut done = Vec::new();
        while let Some(a) = s
            .lease(w, &["cuda:0".to_owned()])
            .unwrap()
            .assignments
            .into_iter()
            .next()
        {
            s.complete_with(a.attempt, &honest_result(EPOCHS), Some(&provenance(sha)))
                .unwrap();
            done.push(a.job);
        }
        done
    }

    fn leases(s: &mut Scheduler, w: &WorkerId) -> usize {
        s.lease(w, &["cuda:0".to_owned()])
            .unwrap()
            .assignments
            .len()
    }

    #[test]
    fn a_script_not_declared_deterministic_stays_unverified() {
        let clock = ManualClock::new(1_700_000_000_000);
        let mut s = scheduler(&clock);
        submit(&mut s);
        let a = worker(&mut s, "alice", Some(("ab", false)));
        let b = worker(&mut s, "bob", Some(("ab", true)));
        let done = run_all(&mut s, &a, "ab");
        assert_eq!(done.len(), 3);
        for job in &done {
            assert_eq!(s.verify_state(job).unwrap(), Some(VerifyState::Unverified));
        }
        assert_eq!(leases(&mut s, &b), 0, "nothing to replay");
    }

    #[test]
    fn only_a_worker_with_the_same_deterministic_script_replays() {
        let clock = ManualClock::new(1_700_000_000_000);
        let mut s = scheduler(&clock);
        submit(&mut s);
        let a = worker(&mut s, "alice", Some(("ab", true)));
        let other_script = worker(&mut s, "bob", Some(("ef", true)));
        let not_declared = worker(&mut s, "carol", Some(("ab", false)));
        let no_trainer = worker(&mut s, "dave", None);
        let done = run_all(&mut s, &a, "ab");
        for job in &done {
            assert_eq!(s.verify_state(job).unwrap(), Some(VerifyState::Wanted));
        }
        // Even once the wait for a bitwise slot is over.
        clock.advance_s(3_600);
        for w in [&other_script, &not_declared, &no_trainer] {
            assert_eq!(leases(&mut s, w), 0, "{w}");
        }
        let able = worker(&mut s, "erin", Some(("ab", true)));
        let replays = run_all(&mut s, &able, "ab");
        assert_eq!(replays.len(), 3);
        for job in &done {
            assert_eq!(s.verify_state(job).unwrap(), Some(VerifyState::Bitwise));
        }
    }
}
