//! Helpers of the deterministic-replay tests: an experiment that verifies,
//! named workers whose slots say what they run on, honest and forged
//! results, and the three runs that make a forging worker suspect.

use spikecv_common::experiment::job::JobResult;
use spikecv_common::experiment::manifest::{Manifest, Provenance, Switches};
use spikecv_common::experiment::plan::JobId;
use spikecv_coordinator::scheduler::{
    Assignment, CredentialName, Scheduler, Submission, WorkerId, WorkerRegistration,
};
use spikecv_coordinator::states::VerifyState;

use super::{honest_result, registration, submission_over};

/// Three folds over nine recordings (six test samples a job), one seed,
/// `[protocol] verify = verify`, `epochs` epochs.
pub fn verify_submission(verify: &str, max_attempts: u32, name: &str, epochs: u32) -> Submission {
    submission_over(
        &format!(
            "name = \"{name}\"\n[data]\nroot = \"d\"\n[protocol]\nfolds = 3\nseeds = [0]\n\
             variants = [\"whole\"]\nmax_attempts = {max_attempts}\nverify = {verify}\n\
             [training]\nepochs = {epochs}\ncheckpoint_every = 1\n"
        ),
        9,
        None,
        &["a", "b"],
    )
}

/// The environment of a slot: CPU, `threads` threads.
pub fn environment(threads: u32) -> Manifest {
    Manifest {
        libtorch: "2.11.0".into(),
        device: "cpu".into(),
        device_model: "test cpu".into(),
        instruction_set: "AVX2".into(),
        threads,
        ..Manifest::default()
    }
}

/// `name`'s registration: one slot with `threads` threads.
pub fn registration_on(name: &str, threads: u32) -> WorkerRegistration {
    let mut reg = registration(name, 1);
    reg.slots[0].manifest = Some(environment(threads));
    reg
}

/// A named worker (credential `name`, one slot with `threads` threads).
pub fn named(s: &mut Scheduler, name: &str, threads: u32) -> WorkerId {
    let credential = CredentialName::parse(name).unwrap();
    s.add_credential(&credential, 1).unwrap();
    s.register_as(&credential.worker_id(), &registration_on(name, threads))
        .unwrap()
        .id
}

/// What a run on `threads` threads says it ran on, with `weights`.
pub fn provenance(threads: u32, weights: &str) -> Provenance {
    let switches = Switches {
        deterministic: true,
        ..Switches::default()
    };
    Provenance {
        manifest: environment(threads).for_job(switches, ""),
        weights_sha256: weights.repeat(32),
    }
}

/// A forged result of `epochs` epochs: every test sample right.
pub fn forged(epochs: u32) -> JobResult {
    JobResult {
        test_accuracy: 1.0,
        confusion: vec![vec![3, 0], vec![0, 3]],
        ..honest_result(epochs)
    }
}

/// One lease of one slot for `w`.
pub fn lease_one(s: &mut Scheduler, w: &WorkerId) -> Option<Assignment> {
    let out = s.lease(w, &["cuda:0".to_owned()]).unwrap();
    assert!(out.assignments.len() <= 1);
    out.assignments.into_iter().next()
}

/// `liar` forges the next pending job (of `epochs` epochs, on 4 threads),
/// `first` replays it honestly, `second` runs the tie-break honestly: the
/// liar is suspect over that job, which is returned.
pub fn make_suspect(
    s: &mut Scheduler,
    liar: &WorkerId,
    [first, second]: [&WorkerId; 2],
    epochs: u32,
) -> JobId {
    let honest = provenance(4, "ab");
    let a = lease_one(s, liar).unwrap();
    s.complete_with(a.attempt, &forged(epochs), Some(&provenance(4, "ff")))
        .unwrap();
    for w in [first, second] {
        let r = lease_one(s, w).unwrap();
        assert_eq!(r.job, a.job, "the replay comes before pending jobs");
        s.complete_with(r.attempt, &honest_result(epochs), Some(&honest))
            .unwrap();
    }
    assert_eq!(s.verify_state(&a.job).unwrap(), Some(VerifyState::Bitwise));
    assert!(s.suspects().unwrap().iter().any(|x| x.worker == *liar));
    a.job
}
