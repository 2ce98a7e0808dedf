//! The runner of training scripts (docs/trainers.md) on small Python scripts
//! that use the helper (`python/` on PYTHONPATH; the scripts are in
//! `tests/trainers/`), with a fake observer and no coordinator: a good script
//! completes with the protocol's selection and checkpoints the coordinator
//! would accept, a stopped one resumes from its checkpoint, a crash, a
//! garbage line, silence, an exit before the last epoch without a result and
//! an unfinished last line fail, an early result completes, and a stop
//! reaches the script as SIGTERM.
//! Skipped (with a note) where no Python 3 runs.
//!
//! Still to write, now that the coordinator leases a script's jobs only to
//! workers that registered it: the real-process test (`coordinator serve`
//! and two `worker join`, one with `--trainers` naming these scripts, one
//! without, as in `join_cluster.rs`): only the first gets the jobs and
//! `coordinator status` shows them waiting for the trainer until it
//! registers; a worker stopped or killed after its first checkpoint upload,
//! the job resumes from the wrapped checkpoint on a worker with the trainer
//! (`resumed.txt` in its job folder); the report's environment lists the
//! script's name and hash. Done by hand on this branch after merging main:
//! a worker without the trainer got none of 4 jobs (status: WAITING ... need
//! trainer "good"), one with it ran all 4, the report's trainer column read
//! `good <sha>`; before the merge, a drain (SIGTERM to the worker) handed a
//! job back after epoch 1 and another worker resumed it from the uploaded
//! checkpoint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use spikecv_common::dataset::Dataset;
use spikecv_common::dataset::synth::{SynthOptions, SynthSize, generate};
use spikecv_common::dataset::variant::Variant;
use spikecv_common::events::frames::{Crop, bin};
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::cv::FoldSplit;
use spikecv_common::experiment::job::EpochMetrics;
use spikecv_common::experiment::manifest::Manifest;
use spikecv_worker::checkpoint::{PROGRESS_KEY, Progress, recorded_epoch};
use spikecv_worker::devices::DeviceSpec;
use spikecv_worker::lif::fused::LifKernels;
use spikecv_worker::slot_child::wire::ChildOutcome;
use spikecv_worker::train::{Control, JobSpec, Observer, checkpoint_path, frame_specs};
use spikecv_worker::trainer::{Registry, ScriptJob, run};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The project's venv Python, else `python3`; `None` when neither runs.
fn python() -> Option<PathBuf> {
    let venv = repo().join(".venv/bin/python");
    let candidates = [venv, PathBuf::from("python3")];
    candidates.into_iter().find(|p| {
        std::process::Command::new(p)
            .arg("-c")
            .arg("import sys; assert sys.version_info >= (3, 7)")
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Whether `python` imports numpy (the helper decodes frames with it).
fn has_numpy(python: &Path) -> bool {
    std::process::Command::new(python)
        .args(["-c", "import numpy"])
        .status()
        .is_ok_and(|s| s.success())
}

/// A trainers file registering every fixture script with `python` and the
/// helper on PYTHONPATH.
fn registry(dir: &Path, python: &Path) -> Registry {
    let mut text = String::new();
    let scripts = [
        ("good", "good", ""),
        ("pausing", "good", ", GOOD_PAUSE = \"3\""),
        ("crash", "crash", ""),
        ("garbage", "garbage", ""),
        ("hang", "hang", ""),
        ("stop", "stop", ""),
        ("stubborn", "stubborn", ""),
        ("partial", "partial", ""),
        ("early", "early", ""),
        ("early-result", "early", ", EARLY_RESULT = \"1\""),
    ];
    for (name, file, env) in scripts {
        let script = repo().join(format!("worker/tests/trainers/{file}.py"));
        text.push_str(&format!(
            "[trainers.{name}]\nscript = {:?}\ninterpreter = {:?}\nenv = {{ PYTHONPATH = {:?}{env} }}\n",
            script.display().to_string(),
            python.display().to_string(),
            repo().join("python").display().to_string(),
        ));
    }
    let file = dir.join("trainers.toml");
    std::fs::write(&file, text).unwrap();
    Registry::build(&[], Some(&file), &std::ffi::OsString::from("python3")).unwrap()
}

/// A tiny synthetic SL-Animals data set of three recordings and the split
/// train / val / test = one recording each.
fn data(dir: &Path) -> (Dataset, FoldSplit) {
    let s = generate(
        dir,
        &SynthOptions {
            seed: 4,
            size: SynthSize::Tiny,
            recordings: Some(3),
        },
    )
    .unwrap();
    let r = s.recordings;
    let split = FoldSplit {
        train: vec![r[0].clone()],
        val: vec![r[1].clone()],
        test: vec![r[2].clone()],
    };
    (Dataset::open(dir).unwrap(), split)
}

fn spec(trainer: &str, data: &Path, split: FoldSplit, out: PathBuf, extra: &str) -> JobSpec {
    let text = format!(
        "[data]\nroot = {:?}\ndownscale = 8\n[protocol]\nkind = \"train-val-test\"\n{extra}\n\
         [simulation]\nsteps = 10\n[training]\nepochs = 2\n[trainer]\nname = \"{trainer}\"\nframes = true\n",
        data.display().to_string()
    );
    JobSpec {
        config: ExperimentConfig::from_toml_str(&text).unwrap(),
        variant: Variant::WHOLE,
        seed: 1,
        fold: 0,
        split,
        device: DeviceSpec::Cpu,
        out_dir: out,
        init: None,
        lif_kernels: LifKernels::Auto,
        data_fingerprint: String::new(),
    }
}

/// What the runner told the observer; it stops the job at `stop_at`.
#[derive(Default)]
struct Fake {
    stop_at: Option<u32>,
    epochs: Vec<EpochMetrics>,
    starts: Vec<(u32, u32)>,
    checkpoints: Vec<Progress>,
}

impl Observer for Fake {
    fn on_epoch(&mut self, m: &EpochMetrics) -> Control {
        self.epochs.push(m.clone());
        if self.stop_at == Some(m.epoch) {
            Control::Stop
        } else {
            Control::Continue
        }
    }

    fn on_checkpoint(&mut self, path: &Path) {
        let bytes = std::fs::read(path).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let text = meta.metadata().as_ref().unwrap()[PROGRESS_KEY].clone();
        let progress: Progress = serde_json::from_str(&text).unwrap();
        assert_eq!(recorded_epoch(&bytes), Some(progress.epoch));
        self.checkpoints.push(progress);
    }

    fn on_epoch_start(&mut self, epoch: u32, epochs: u32) {
        self.starts.push((epoch, epochs));
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    registry: Registry,
    data: Dataset,
    split: FoldSplit,
    manifest: Manifest,
}

fn setup() -> Option<(Setup, bool)> {
    let Some(python) = python() else {
        eprintln!("skipped: no Python 3 to run the trainer scripts");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let (data, split) = data(&root.join("data"));
    let numpy = has_numpy(&python);
    Some((
        Setup {
            registry: registry(&root, &python),
            _dir: dir,
            root,
            data,
            split,
            manifest: Manifest {
                device: "cpu".into(),
                ..Manifest::default()
            },
        },
        numpy,
    ))
}

impl Setup {
    fn run(&self, trainer: &str, job: &str, extra: &str, observer: &mut Fake) -> ChildOutcome {
        let spec = spec(
            trainer,
            self.data.root(),
            self.split.clone(),
            self.root.join(job),
            extra,
        );
        let frames_root = self.root.join("frames");
        let job = ScriptJob {
            trainer: self.registry.get(trainer).unwrap(),
            spec: &spec,
            job_id: job,
            attempt: "a-1",
            data: &self.data,
            frames_root: &frames_root,
            grace: Duration::from_millis(500),
            manifest: &self.manifest,
        };
        run(&job, observer)
    }
}

fn failure(outcome: ChildOutcome) -> String {
    match outcome {
        ChildOutcome::Failed { message, .. } => message,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn a_good_script_completes_and_a_stopped_one_resumes() {
    let Some((s, numpy)) = setup() else { return };
    let mut fake = Fake::default();
    let outcome = s.run("good", "job1", "", &mut fake);
    let ChildOutcome::Complete { result, provenance } = outcome else {
        panic!("{outcome:?}")
    };
    // Validation losses 1, 0.5: epoch 2 is selected, with 2 of 19 right.
    assert_eq!(result.best_epoch, 2);
    assert_eq!(result.test_accuracy, 2.0 / 19.0);
    assert_eq!(result.val_loss, Some(0.5));
    assert_eq!(result.confusion.len(), 19);
    assert_eq!(result.epochs, fake.epochs);
    assert_eq!(result.train_seconds, 0.5);
    assert!(!result.optimistic);
    assert_eq!(fake.starts, vec![(1, 2), (2, 2)]);
    assert_eq!(provenance.manifest.trainer.as_deref(), Some("good"));
    let sha = &s.registry.get("good").unwrap().sha256;
    assert_eq!(provenance.manifest.trainer_sha256.as_ref(), Some(sha));
    // The last checkpoint file the script wrote.
    use sha2::Digest;
    let last = hex::encode(sha2::Sha256::digest(b"after epoch 2"));
    assert_eq!(provenance.weights_sha256, last);
    // Each checkpoint's record: the epochs so far as reported, the best so far.
    assert_eq!(fake.checkpoints.len(), 2);
    for (i, p) in fake.checkpoints.iter().enumerate() {
        assert_eq!(p.epoch, i as u32 + 1);
        assert_eq!(p.epochs, fake.epochs[..=i].to_vec());
        assert_eq!(p.best.as_ref().map(|b| b.epoch), Some(i as u32 + 1));
    }
    let job_file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.root.join("job1/job.json")).unwrap()).unwrap();
    assert_eq!(job_file["frames"]["encoding"], "bits");
    assert_eq!(
        job_file["frames"]["shape"],
        serde_json::json!([2, 16, 16, 10])
    );
    if numpy {
        // The helper's numpy decoding of the exported bits gives the native
        // engine's OR frames of the sample (their sum, here).
        let noted = std::fs::read_to_string(s.root.join("job1/frames.txt")).unwrap();
        let first = &s.data.recording_samples(&s.split.train[0]).unwrap()[0];
        let spec = spec("good", s.data.root(), s.split.clone(), PathBuf::new(), "");
        let (frames, _) = frame_specs(&spec.config);
        let ones: f32 = bin(first, &frames, Crop::First).iter().sum();
        assert!(ones > 0.0);
        assert_eq!(noted, format!("[2, 16, 16, 10] {ones}"));
    }

    // Stopped after epoch 1, then resumed from the checkpoint it wrote.
    let mut first = Fake {
        stop_at: Some(1),
        ..Fake::default()
    };
    let outcome = s.run("pausing", "job2", "", &mut first);
    assert_eq!(outcome, ChildOutcome::Stopped { epoch: 1 });
    assert!(checkpoint_path(&s.root.join("job2")).is_file());
    let mut second = Fake::default();
    let outcome = s.run("pausing", "job2", "", &mut second);
    let ChildOutcome::Complete { result, .. } = outcome else {
        panic!("{outcome:?}")
    };
    let noted = std::fs::read_to_string(s.root.join("job2/resumed.txt")).unwrap();
    assert_eq!(noted, "1 after epoch 1");
    assert_eq!(second.starts, vec![(2, 2)]);
    assert_eq!(result.epochs.len(), 2);
    assert_eq!(result.epochs[0], first.epochs[0]);
    assert_eq!(result.best_epoch, 2);
}

#[test]
fn a_crash_fails_with_its_stderr() {
    let Some((s, _)) = setup() else { return };
    let message = failure(s.run("crash", "job", "", &mut Fake::default()));
    assert!(message.contains("exit status 3"), "{message}");
    assert!(message.contains("after epoch 1 of 2"), "{message}");
    assert!(
        message.contains("boom: the data loader fell over on purpose"),
        "{message}"
    );
}

#[test]
fn a_garbage_line_fails_quoting_it_and_the_script_is_killed() {
    let Some((s, _)) = setup() else { return };
    let started = Instant::now();
    let outcome = s.run("garbage", "job", "", &mut Fake::default());
    assert!(
        matches!(
            outcome,
            ChildOutcome::Failed {
                deterministic: true,
                ..
            }
        ),
        "{outcome:?}"
    );
    let message = failure(outcome);
    assert!(message.contains("\"this is not json at all\""), "{message}");
    assert!(message.contains("line 1"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "not left to sleep"
    );
}

#[test]
fn a_silent_script_is_killed_at_the_epoch_timeout() {
    let Some((s, _)) = setup() else { return };
    let started = Instant::now();
    let message = failure(s.run("hang", "job", "epoch_timeout_s = 1", &mut Fake::default()));
    assert!(message.contains("no line for 1 s"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_stop_reaches_the_script_as_sigterm() {
    let Some((s, _)) = setup() else { return };
    let mut fake = Fake {
        stop_at: Some(1),
        ..Fake::default()
    };
    let outcome = s.run("stop", "job", "", &mut fake);
    assert_eq!(outcome, ChildOutcome::Stopped { epoch: 1 });
    let noted = std::fs::read_to_string(s.root.join("job/sigterm.txt")).unwrap();
    assert_eq!(noted, "stopped after epoch 1");
    assert_eq!(fake.checkpoints.len(), 1);
    // A script that ignores SIGTERM is killed after the grace period.
    let started = Instant::now();
    let mut fake = Fake {
        stop_at: Some(1),
        ..Fake::default()
    };
    let outcome = s.run("stubborn", "job3", "", &mut fake);
    assert_eq!(outcome, ChildOutcome::Stopped { epoch: 1 });
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn an_early_end_needs_a_result_and_a_last_line_its_newline() {
    let Some((s, _)) = setup() else { return };
    let message = failure(s.run("early", "job1", "", &mut Fake::default()));
    assert!(
        message.contains("exited 0 after epoch 1 of 2 without a result"),
        "{message}"
    );
    let outcome = s.run("early-result", "job2", "", &mut Fake::default());
    let ChildOutcome::Complete { result, provenance } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!((result.best_epoch, result.test_accuracy), (1, 1.0));
    assert_eq!(result.epochs.len(), 1);
    assert_eq!(provenance.weights_sha256, "", "no checkpoint was written");
    let message = failure(s.run("partial", "job3", "", &mut Fake::default()));
    assert!(message.contains("without its newline"), "{message}");
    assert!(
        message.contains(r#"{\"type\":\"epoch\",\"epoch\":1"#),
        "{message}"
    );
}
