//! State files on a real file system: two databases that differ only in their
//! extension get checkpoint folders of their own, a state written by an
//! earlier version finds its checkpoints in the folder it used then, and the
//! one-coordinator lock holds through a symbolic link to the database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::job::EpochMetrics;
use spikecv_common::experiment::plan::plan_configurations;
use spikecv_coordinator::scheduler::{
    ManualClock, Scheduler, SchedulerSettings, SlotInfo, Submission, WorkerRegistration,
};
use spikecv_coordinator::state_lock::{StateLock, StateLockError};

fn open(db: &Path) -> Scheduler {
    Scheduler::open(
        db,
        SchedulerSettings::default(),
        Box::new(ManualClock::new(1_700_000_000_000)),
    )
    .unwrap()
}

/// A checkpoint of the first job of a two-job experiment in `s`; returns
/// the job id and the checkpoint's file name.
fn checkpoint(s: &mut Scheduler) -> (String, String) {
    let text = "[data]\nroot = \"d\"\n[protocol]\nfolds = 2\nseeds = [0]\nvariants = [\"whole\"]\n[training]\nepochs = 3\n";
    let config = ExperimentConfig::from_toml_str(text).unwrap();
    let names: Vec<String> = (0..8).map(|i| format!("user{i:02}_dc")).collect();
    let plan = plan_configurations(&config, &names, None).unwrap();
    s.submit(&Submission {
        config_toml: config.to_toml_string(),
        config,
        jobs: plan.jobs,
        configurations: plan.configurations,
        data_fingerprint: None,
        class_names: vec!["cat".into(), "dog".into()],
        sample_counts: None,
    })
    .unwrap();
    let reg = WorkerRegistration {
        name: "w".into(),
        host: "h".into(),
        slots: vec![SlotInfo {
            device: "cpu".into(),
            device_name: "cpu".into(),
            memory_bytes: 1 << 30,
            manifest: None,
        }],
        data_fingerprint: String::new(),
        trainers: Vec::new(),
    };
    let w = s.register_worker(&reg).unwrap();
    let a = s.lease(&w, &["cpu".into()]).unwrap().assignments.remove(0);
    let m = EpochMetrics {
        epoch: 1,
        train_loss: 0.5,
        train_accuracy: 0.5,
        val_loss: Some(0.5),
        val_accuracy: Some(0.5),
        test_loss: Some(0.5),
        test_accuracy: Some(0.5),
        epoch_seconds: 1.0,
        samples_per_second: 10.0,
        firing_rates: Vec::new(),
    };
    s.record_epoch(a.attempt, &m).unwrap();
    let sha = s.put_checkpoint(a.attempt, 1, b"weights").unwrap();
    let file = s.checkpoint_dir().file(&a.job, &sha);
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    (a.job.as_str().to_owned(), name)
}

#[test]
fn run_db_and_run_sqlite_keep_their_checkpoints_apart() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = open(&dir.path().join("run.db"));
    let (_, name) = checkpoint(&mut a);
    let a_dir = a.checkpoint_dir().path().to_owned();
    assert_eq!(a_dir, dir.path().join("run.db.checkpoints"));
    assert!(a_dir.join(&name).is_file());
    drop(a);
    // The other state's folder is its own: opening it (which sweeps files no
    // record names) leaves run.db's checkpoint alone.
    let b = open(&dir.path().join("run.sqlite"));
    assert_eq!(
        b.checkpoint_dir().path(),
        dir.path().join("run.sqlite.checkpoints")
    );
    assert!(
        a_dir.join(&name).is_file(),
        "run.sqlite swept run.db's file"
    );
    drop(b);
    let a = open(&dir.path().join("run.db"));
    let job = spikecv_common::experiment::plan::JobId::new(name.split('.').next().unwrap());
    assert!(a.checkpoint_record(&job).unwrap().is_some());
}

#[test]
fn a_state_of_an_earlier_version_finds_its_checkpoints_in_the_old_folder() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("run.db");
    let mut s = open(&db);
    let (job, name) = checkpoint(&mut s);
    drop(s);
    // As an earlier version left it: the file in `run.checkpoints/`, beside a
    // file of another state that shared that folder.
    let (new_dir, old_dir) = (
        dir.path().join("run.db.checkpoints"),
        dir.path().join("run.checkpoints"),
    );
    std::fs::create_dir(&old_dir).unwrap();
    std::fs::rename(new_dir.join(&name), old_dir.join(&name)).unwrap();
    std::fs::remove_dir(&new_dir).unwrap();
    std::fs::write(old_dir.join("other-job.abc.ckpt"), b"run.sqlite's").unwrap();
    let s = open(&db);
    let job = spikecv_common::experiment::plan::JobId::new(job);
    let record = s.checkpoint_record(&job).unwrap().unwrap();
    assert_eq!(record.path, new_dir.join(&name));
    assert_eq!(std::fs::read(&record.path).unwrap(), b"weights");
    // The other state's file stays where it was, and so does the old folder.
    assert!(old_dir.join("other-job.abc.ckpt").is_file());
    assert!(!old_dir.join(&name).exists());
    drop(s);
    // Once nothing else is in it, the old folder goes.
    std::fs::remove_file(old_dir.join("other-job.abc.ckpt")).unwrap();
    let _s = open(&db);
    assert!(!old_dir.exists());
}

#[test]
fn the_lock_holds_through_a_link_to_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let first = StateLock::acquire(&db).unwrap();
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(&db, &link).unwrap();
    match StateLock::acquire(&link) {
        Err(e @ StateLockError::Held { .. }) => {
            assert!(e.to_string().contains("state.db.lock"), "{e}")
        }
        other => panic!("lock through the link: {other:?}"),
    }
    // Another spelling of the same path is the same state too.
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let detour = dir.path().join("sub").join("..").join("state.db");
    assert!(matches!(
        StateLock::acquire(&detour),
        Err(StateLockError::Held { .. })
    ));
    drop(first);
    let through_link = StateLock::acquire(&link).unwrap();
    assert_eq!(through_link.path(), dir.path().join("state.db.lock"));
}
