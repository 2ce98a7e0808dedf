//! One job as named steps: [`check_split`] → [`prepare_device`] →
//! [`build_net_and_optimizer`] → [`resume`] → [`open_source`] → per epoch
//! [`run_epoch`] (train, evaluate, select the best) and [`save_checkpoint`]
//! (in the background from a GPU: [`CheckpointWriter`]), until the last
//! epoch or early stopping (`training.patience`) → [`write_outputs`].

use std::path::Path;
use std::time::Instant;

use spikecv_common::experiment::job::{EpochMetrics, JobResult, LayerRate};
use spikecv_common::experiment::sections::{ProtocolKind, TrainingConfig};
use tch::{Device, Tensor, nn};

use super::step::{Evaluation, PassSpec, evaluate, guarded, train_epoch};
use super::{
    BEST_WEIGHTS, Control, FINAL_WEIGHTS, JobShape, JobSpec, Observer, PREFETCH_WORKERS,
    TENSORBOARD_DIR, TrainError, checkpoint_path, epoch_samples, job_key, outputs, protocol,
};
use crate::cache::FrameCache;
use crate::checkpoint::{
    BestSoFar, Checkpoint, CheckpointError, CheckpointWriter, FORMAT_VERSION, Progress,
};
use crate::loader::{SampleRef, SampleSource, WithCache, source_samples};
use crate::model::{ConvLayout, Net};
use crate::optim::Optimizer;
use crate::tensorboard::EventWriter;
use crate::weights;

/// Trains a job whose samples come from `source`, with explicit shapes.
/// Resumes from the checkpoint in `out_dir` when there is one.
pub fn run_job_on<S: SampleSource + ?Sized>(
    spec: &JobSpec,
    source: &S,
    shape: &JobShape,
    observer: &mut dyn Observer,
) -> Result<JobResult, TrainError> {
    check_split(spec)?;
    let device = prepare_device(spec)?;
    let mut trainee = build_net_and_optimizer(spec, shape, device)?;
    let mut state = resume(spec, shape, &mut trainee, device)?;
    let t = &spec.config.training;
    let cache = open_source(spec, source, shape, device, &state)?;
    let source = WithCache {
        inner: source,
        cache,
    };
    let board_dir = spec.out_dir.join(TENSORBOARD_DIR);
    let mut board = EventWriter::create(&board_dir).map_err(io(&board_dir))?;
    let sets = Sets::new(spec, &source, shape, device)?;
    let ckpt_path = checkpoint_path(&spec.out_dir);
    let mut writer = CheckpointWriter::new();
    for epoch in state.progress.epoch + 1..=t.epochs {
        // A checkpoint written at the epoch that ran out of patience.
        if protocol::patience_exhausted(&state.progress.epochs, t.patience) {
            break;
        }
        let mut notifying = Notifying {
            inner: &mut *observer,
            writer: &mut writer,
            failed: None,
        };
        let m = run_epoch(
            spec,
            &source,
            &sets,
            &mut trainee,
            &mut state,
            epoch,
            &mut notifying,
        );
        if let Some(e) = notifying.failed {
            return Err(e.into());
        }
        let m = m?;
        outputs::log_epoch(&mut board, &m);
        state.progress.epochs.push(m.clone());
        let control = observer.on_epoch(&m);
        let patience_out = protocol::patience_exhausted(&state.progress.epochs, t.patience);
        let due = t.checkpoint_every > 0 && epoch % t.checkpoint_every == 0;
        let last = control == Control::Stop || epoch == t.epochs || patience_out;
        if due || last {
            save_checkpoint(&ckpt_path, &trainee, &state, device, &mut writer, observer)?;
        }
        if last && let Some(written) = writer.wait()? {
            observer.on_checkpoint(&written);
        }
        if control == Control::Stop {
            return Err(TrainError::Stopped { epoch });
        }
        if patience_out {
            tracing::info!(
                epoch,
                epochs = t.epochs,
                patience = t.patience,
                "no better validation accuracy for `patience` epochs; stopping early"
            );
            break;
        }
    }
    let result = write_outputs(spec, shape, &trainee, &state)?;
    let _ = board.flush();
    Ok(result)
}

/// An I/O error on `path` as a [`TrainError`].
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + use<> {
    let path = path.to_owned();
    move |source| TrainError::Io { path, source }
}

/// The config is valid and no set the protocol uses is empty.
fn check_split(spec: &JobSpec) -> Result<(), TrainError> {
    spec.config.validate()?;
    let split = &spec.split;
    if split.train.is_empty() {
        return Err(TrainError::EmptySet { set: "train" });
    }
    if split.test.is_empty() {
        return Err(TrainError::EmptySet { set: "test" });
    }
    if spec.config.protocol.kind == ProtocolKind::TrainValTest && split.val.is_empty() {
        return Err(TrainError::EmptySet { set: "val" });
    }
    Ok(())
}

/// Makes the output folder and sets up the device: on CUDA the process-wide
/// switches exactly as the config asks (deterministic algorithms, TF32; both
/// set on or off, so nothing is left from an earlier job of the process), and
/// a stream of the pool as this thread's current stream, taken once per
/// thread: the jobs of one GPU (one process or thread each) overlap instead
/// of queueing on the default stream, and the blocks the caching allocator
/// keeps for a finished job serve the next one of the thread (a block is
/// reused only on the stream that made it).
fn prepare_device(spec: &JobSpec) -> Result<Device, TrainError> {
    std::fs::create_dir_all(&spec.out_dir).map_err(io(&spec.out_dir))?;
    let device = spec.device.to_tch();
    let Device::Cuda(index) = device else {
        return Ok(device);
    };
    let torch = |during: &'static str| {
        move |e: String| TrainError::Torch {
            during,
            message: e.lines().next().unwrap_or_default().to_owned(),
        }
    };
    crate::settings::ProcessSettings::of(&spec.config.training)
        .apply()
        .map_err(|e| torch("setting TF32 and determinism")(e.to_string()))?;
    let current = crate::cuda_host::current_stream(index)
        .map_err(|e| torch("reading the thread's CUDA stream")(e.to_string()))?;
    if current == 0 {
        let stream = crate::cuda_host::use_pool_stream(index)
            .map_err(|e| torch("taking a CUDA stream for the job")(e.to_string()))?;
        tracing::debug!(device = index, stream, "the thread's CUDA stream");
    }
    Ok(device)
}

/// The network being trained and what steps it.
struct Trainee {
    /// Keeps the variables alive.
    _vs: nn::VarStore,
    net: Net,
    names: Vec<String>,
    params: Vec<Tensor>,
    optimizer: Optimizer,
}

/// The seeded network (or the `init` weights) and a fresh optimiser.
fn build_net_and_optimizer(
    spec: &JobSpec,
    shape: &JobShape,
    device: Device,
) -> Result<Trainee, TrainError> {
    let t = &spec.config.training;
    let arch = super::architecture(&spec.config, shape.net)?;
    let (vs, mut net) = guarded(device, "building the network", || {
        Net::seeded(arch, spec.seed, device)
    })?;
    net.set_lif_kernels(spec.lif_kernels);
    net.set_precision(t.precision);
    net.set_conv_layout(ConvLayout::for_device(device));
    if let Some(init) = &spec.init {
        weights::load(&net, init)?;
    }
    let names = net.param_names().to_vec();
    let params: Vec<Tensor> = net.parameters();
    let param_refs: Vec<&Tensor> = params.iter().collect();
    let optimizer = Optimizer::new(t.optimizer, t.lr, t.momentum, &param_refs);
    Ok(Trainee {
        _vs: vs,
        net,
        names,
        params,
        optimizer,
    })
}

/// What a job carries from epoch to epoch (and in its checkpoint).
struct JobState {
    progress: Progress,
    /// The selected weights, on the CPU.
    best_weights: Option<Vec<Tensor>>,
}

/// The state of a new job, or the one in its checkpoint (weights and
/// optimiser state restored into `trainee`).
fn resume(
    spec: &JobSpec,
    shape: &JobShape,
    trainee: &mut Trainee,
    device: Device,
) -> Result<JobState, TrainError> {
    let t = &spec.config.training;
    let key = job_key(spec, shape);
    let ckpt_path = checkpoint_path(&spec.out_dir);
    if !ckpt_path.exists() {
        return Ok(JobState {
            progress: Progress {
                format: FORMAT_VERSION,
                job_key: key,
                epoch: 0,
                optimizer_step: 0,
                lr: t.lr,
                train_seconds: 0.0,
                epochs: Vec::new(),
                best: None,
            },
            best_weights: None,
        });
    }
    let ckpt = Checkpoint::load(&ckpt_path, &key)?;
    weights::assign(&trainee.net, &ckpt_path, &|n| ckpt.tensor("model", n))?;
    let optimizer = &mut trainee.optimizer;
    optimizer
        .load_state(&trainee.names, ckpt.progress.optimizer_step, &|n| {
            ckpt.tensor("optim", n).map(|t| t.to_device(device))
        })
        .map_err(|source| TrainError::OptimizerState {
            path: ckpt_path.clone(),
            source,
        })?;
    optimizer.set_lr(ckpt.progress.lr);
    let mut best_weights = None;
    if ckpt.progress.best.is_some() {
        let found: Option<Vec<Tensor>> = trainee
            .names
            .iter()
            .map(|n| ckpt.tensor("best", n))
            .collect();
        best_weights = found;
    }
    tracing::info!(path = %ckpt_path.display(), epoch = ckpt.progress.epoch, "resuming from checkpoint");
    Ok(JobState {
        progress: ckpt.progress,
        best_weights,
    })
}

/// The frame cache the job's batches come from, when there are epochs left.
fn open_source<S: SampleSource + ?Sized>(
    spec: &JobSpec,
    source: &S,
    shape: &JobShape,
    device: Device,
    state: &JobState,
) -> Result<Option<std::sync::Arc<FrameCache>>, TrainError> {
    let t = &spec.config.training;
    if state.progress.epoch >= t.epochs {
        return Ok(None);
    }
    Ok(crate::cache::for_job(
        source,
        &spec.split,
        &shape.train,
        &shape.test,
        t.random_crop,
        device,
    )?)
}

/// The job's sample sets and how each pass runs.
struct Sets {
    train: Vec<SampleRef>,
    val: Vec<SampleRef>,
    test: Vec<SampleRef>,
    train_pass: PassSpec,
    test_pass: PassSpec,
}

impl Sets {
    fn new<S: SampleSource + ?Sized>(
        spec: &JobSpec,
        source: &S,
        shape: &JobShape,
        device: Device,
    ) -> Result<Sets, TrainError> {
        let t = &spec.config.training;
        let classes = shape.net.classes as usize;
        let train_pass = PassSpec {
            frames: shape.train,
            batch: t.batch as usize,
            workers: PREFETCH_WORKERS,
            device,
            classes,
        };
        Ok(Sets {
            train: source_samples(source, &spec.split.train, classes)?,
            val: source_samples(source, &spec.split.val, classes)?,
            test: source_samples(source, &spec.split.test, classes)?,
            train_pass,
            test_pass: PassSpec {
                frames: shape.test,
                batch: t.test_batch as usize,
                ..train_pass
            },
        })
    }
}

/// One epoch: trains, evaluates as the protocol asks, keeps the selected
/// weights, decays the learning rate; returns the epoch's metrics.
fn run_epoch<S: SampleSource + ?Sized>(
    spec: &JobSpec,
    source: &S,
    sets: &Sets,
    trainee: &mut Trainee,
    state: &mut JobState,
    epoch: u32,
    observer: &mut dyn Observer,
) -> Result<EpochMetrics, TrainError> {
    let t = &spec.config.training;
    observer.on_epoch_start(epoch, t.epochs);
    let started = Instant::now();
    let samples = epoch_samples(spec, &sets.train, epoch);
    let stats = train_epoch(
        source,
        &samples,
        &sets.train_pass,
        &trainee.net,
        &mut trainee.optimizer,
        observer,
    )?;
    if !stats.loss.is_finite() {
        return Err(TrainError::NonFiniteLoss { epoch });
    }
    let (val, test) = evaluate_and_select(spec, source, sets, trainee, state, epoch)?;
    decay_lr(t, &mut trainee.optimizer, epoch);
    let seconds = started.elapsed().as_secs_f64();
    let progress = &mut state.progress;
    progress.train_seconds += seconds;
    progress.epoch = epoch;
    progress.optimizer_step = trainee.optimizer.steps();
    progress.lr = trainee.optimizer.lr();
    Ok(EpochMetrics {
        epoch,
        train_loss: stats.loss,
        train_accuracy: stats.accuracy,
        val_loss: val.as_ref().map(|v| v.loss),
        val_accuracy: val.as_ref().map(|v| v.accuracy),
        test_loss: test.as_ref().map(|v| v.loss),
        test_accuracy: test.as_ref().map(|v| v.accuracy),
        epoch_seconds: seconds,
        samples_per_second: if stats.seconds > 0.0 {
            stats.samples as f64 / stats.seconds
        } else {
            0.0
        },
        firing_rates: layer_rates(
            &stats.firing_rates,
            val.as_ref()
                .or(test.as_ref())
                .map(|e| e.firing_rates.as_slice()),
        ),
    })
}

/// Most LIF layers whose rates an epoch reports (what the coordinator
/// accepts); a deeper network reports none.
const MAX_RATE_LAYERS: usize = 64;

/// The epoch's firing rates: each LIF layer's training rate and, when an
/// evaluation pass ran (validation, else test), its rate there.
fn layer_rates(train: &[(String, f64)], eval: Option<&[(String, f64)]>) -> Vec<LayerRate> {
    if train.len() > MAX_RATE_LAYERS {
        tracing::warn!(
            layers = train.len(),
            "more LIF layers than an epoch reports; firing rates left out"
        );
        return Vec::new();
    }
    train
        .iter()
        .enumerate()
        .map(|(i, (layer, rate))| LayerRate {
            layer: layer.clone(),
            train: *rate,
            eval: eval
                .and_then(|e| e.get(i))
                .filter(|(name, _)| name == layer)
                .map(|(_, r)| *r),
        })
        .collect()
}

/// Validation and test passes as the protocol asks, and the selection: when
/// the epoch improves, its record and a CPU copy of its weights are kept.
fn evaluate_and_select<S: SampleSource + ?Sized>(
    spec: &JobSpec,
    source: &S,
    sets: &Sets,
    trainee: &Trainee,
    state: &mut JobState,
    epoch: u32,
) -> Result<(Option<Evaluation>, Option<Evaluation>), TrainError> {
    let kind = spec.config.protocol.kind;
    let pass =
        |samples: &[SampleRef]| evaluate(source, samples, &sets.test_pass, &trainee.net, false);
    let val = match kind {
        ProtocolKind::TrainValTest => Some(pass(&sets.val)?),
        _ => None,
    };
    let mut test = match kind {
        ProtocolKind::TrainTest => Some(pass(&sets.test)?),
        _ => None,
    };
    let selected = protocol::improves(
        kind,
        state.progress.best.as_ref(),
        val.as_ref().map(|v| v.loss),
        test.as_ref().map(|e| e.accuracy),
    );
    if selected && test.is_none() {
        test = Some(pass(&sets.test)?);
    }
    if let Some(test) = test.as_ref().filter(|_| selected) {
        state.progress.best = Some(BestSoFar {
            epoch,
            val_loss: val.as_ref().map(|v| v.loss),
            val_accuracy: val.as_ref().map(|v| v.accuracy),
            test_loss: test.loss,
            test_accuracy: test.accuracy,
            confusion: test.confusion.clone(),
        });
        state.best_weights = Some(
            trainee
                .params
                .iter()
                .map(|p| p.detach().to_device(Device::Cpu).copy())
                .collect(),
        );
    }
    Ok((val, test))
}

/// Multiplies the learning rate by `lr_decay` every `lr_decay_every` epochs.
fn decay_lr(t: &TrainingConfig, optimizer: &mut Optimizer, epoch: u32) {
    if t.lr_decay_every > 0 && epoch.is_multiple_of(t.lr_decay_every) {
        optimizer.set_lr(optimizer.lr() * t.lr_decay);
    }
}

/// Passes a job's progress on, and tells it of a checkpoint written in the
/// background as soon as a batch ends after the write.
struct Notifying<'a> {
    inner: &'a mut dyn Observer,
    writer: &'a mut CheckpointWriter,
    /// The background write failed (the epoch is then abandoned).
    failed: Option<CheckpointError>,
}

impl Observer for Notifying<'_> {
    fn on_epoch(&mut self, m: &EpochMetrics) -> Control {
        self.inner.on_epoch(m)
    }

    fn on_checkpoint(&mut self, path: &Path) {
        self.inner.on_checkpoint(path);
    }

    fn on_batch(&mut self, done: usize, total: usize) {
        self.inner.on_batch(done, total);
        if self.failed.is_none() && self.writer.is_done() {
            match self.writer.wait() {
                Ok(Some(path)) => self.inner.on_checkpoint(&path),
                Ok(None) => {}
                Err(e) => self.failed = Some(e),
            }
        }
    }

    fn on_epoch_start(&mut self, epoch: u32, epochs: u32) {
        self.inner.on_epoch_start(epoch, epochs);
    }
}

/// Writes the job's checkpoint: weights, optimiser state, best weights,
/// progress. On the CPU at once; from a GPU through `writer`, in the
/// background (the observer hears of it once written).
fn save_checkpoint(
    path: &Path,
    trainee: &Trainee,
    state: &JobState,
    device: Device,
    writer: &mut CheckpointWriter,
    observer: &mut dyn Observer,
) -> Result<(), TrainError> {
    let mut tensors = std::collections::HashMap::new();
    for (n, p) in &trainee.net.named_parameters() {
        tensors.insert(format!("model.{n}"), p.shallow_clone());
    }
    for (n, s) in trainee.optimizer.state_tensors(&trainee.names) {
        tensors.insert(format!("optim.{n}"), s);
    }
    if let Some(best) = &state.best_weights {
        for (n, b) in trainee.names.iter().zip(best) {
            tensors.insert(format!("best.{n}"), b.shallow_clone());
        }
    }
    let checkpoint = Checkpoint {
        progress: state.progress.clone(),
        tensors,
    };
    if device.is_cuda() {
        if let Some(written) = writer.submit(checkpoint, path, device)? {
            observer.on_checkpoint(&written);
        }
    } else {
        checkpoint.save(path)?;
        observer.on_checkpoint(path);
    }
    Ok(())
}

/// The final and best weights, `metrics.json` and `config.toml`; the result.
fn write_outputs(
    spec: &JobSpec,
    shape: &JobShape,
    trainee: &Trainee,
    state: &JobState,
) -> Result<JobResult, TrainError> {
    let progress = &state.progress;
    let best = progress
        .best
        .clone()
        .ok_or(TrainError::EmptySet { set: "train" })?;
    weights::save(&trainee.net, &spec.out_dir.join(FINAL_WEIGHTS))?;
    if let Some(best_weights) = &state.best_weights {
        let arch = super::architecture(&spec.config, shape.net)?;
        let (_best_vs, best_net) = Net::seeded(arch, spec.seed, Device::Cpu);
        weights::assign(&best_net, &spec.out_dir.join(BEST_WEIGHTS), &|n| {
            trainee
                .names
                .iter()
                .position(|m| m == n)
                .map(|i| best_weights[i].shallow_clone())
        })?;
        weights::save(&best_net, &spec.out_dir.join(BEST_WEIGHTS))?;
    }
    let result = JobResult {
        best_epoch: best.epoch,
        test_accuracy: best.test_accuracy,
        test_loss: best.test_loss,
        val_accuracy: best.val_accuracy,
        val_loss: best.val_loss,
        confusion: best.confusion,
        train_seconds: progress.train_seconds,
        epochs: progress.epochs.clone(),
        optimistic: spec.config.protocol.kind == ProtocolKind::TrainTest,
    };
    outputs::write_job_files(spec, &result)?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;
    use std::path::PathBuf;

    use super::*;

    /// Records what a job tells its observer.
    #[derive(Default)]
    struct Heard {
        batches: usize,
        checkpoints: Vec<PathBuf>,
    }

    impl Observer for Heard {
        fn on_epoch(&mut self, _m: &EpochMetrics) -> Control {
            Control::Continue
        }
        fn on_checkpoint(&mut self, path: &Path) {
            self.checkpoints.push(path.to_owned());
        }
        fn on_batch(&mut self, _done: usize, _total: usize) {
            self.batches += 1;
        }
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            progress: Progress {
                format: FORMAT_VERSION,
                job_key: "k".into(),
                epoch: 1,
                optimizer_step: 1,
                lr: 0.1,
                train_seconds: 0.0,
                epochs: Vec::new(),
                best: None,
            },
            tensors: HashMap::from([("model.w".to_owned(), Tensor::from_slice(&[1.0f32, 2.0]))]),
        }
    }

    /// Blocks until the writer's thread has ended (not timed: it always ends).
    fn until_done(writer: &CheckpointWriter) {
        while !writer.is_done() {
            std::thread::yield_now();
        }
    }

    /// A checkpoint written in the background reaches the observer at the
    /// first batch after the write, once; a failed write stops the epoch.
    #[test]
    fn a_background_checkpoint_is_announced_at_the_next_batch_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.safetensors");
        let mut writer = CheckpointWriter::new();
        let mut heard = Heard::default();
        writer.submit(checkpoint(), &path, Device::Cpu).unwrap();
        until_done(&writer);
        let mut notifying = Notifying {
            inner: &mut heard,
            writer: &mut writer,
            failed: None,
        };
        notifying.on_batch(1, 2);
        notifying.on_batch(2, 2);
        assert!(notifying.failed.is_none());
        assert_eq!(heard.batches, 2);
        assert_eq!(heard.checkpoints, vec![path.clone()]);
        assert!(path.exists());

        let bad = dir.path().join("gone").join("checkpoint.safetensors");
        writer.submit(checkpoint(), &bad, Device::Cpu).unwrap();
        until_done(&writer);
        let mut notifying = Notifying {
            inner: &mut heard,
            writer: &mut writer,
            failed: None,
        };
        notifying.on_batch(1, 2);
        let failed = notifying.failed.take();
        assert!(
            matches!(failed, Some(CheckpointError::File(_))),
            "{failed:?}"
        );
        assert_eq!(
            heard.checkpoints.len(),
            1,
            "a failed write is not announced"
        );
    }
}
