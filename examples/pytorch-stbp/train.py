#!/usr/bin/env python3
"""SLANIMALSNet trained with STBP in plain PyTorch, as a spikecv trainer.

The worker starts this script with $SPIKECV_JOB and $SPIKECV_EVENTS set
(docs/trainers.md); it reads the exported frames through the spikecv_trainer
helper, trains the network docs/semantics.md describes ("Network and
training"), and reports every epoch and checkpoint back. See README.md next to
it for the settings it reads and the params it takes.
"""

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: Params this trainer takes from [trainer.params], with their defaults.
PARAMS = {"hidden": 200}

#: The checkpoint file's own format (what the file holds, not the job's).
CHECKPOINT_FORMAT = 1


def import_helper():
    """The spikecv_trainer package: installed, or else from the repository's
    python/ folder two levels above this file (a clone without pip
    install)."""
    try:
        import spikecv_trainer
    except ImportError:
        fallback = Path(__file__).resolve().parent.parent.parent / "python"
        if not (fallback / "spikecv_trainer" / "__init__.py").is_file():
            raise ImportError(
                "train.py needs the spikecv_trainer helper: pip install ./python from the "
                "spikecv repository (it is not installed, and {} does not hold it)".format(
                    fallback
                )
            ) from None
        sys.path.insert(0, str(fallback))
        import spikecv_trainer
    return spikecv_trainer


class TrainerError(Exception):
    """A job this trainer cannot run as asked; the message says why."""


@dataclass
class Settings:
    """What a run reads from the job: the config's training and simulation
    settings and the trainer's params."""

    hidden: int
    lr: float
    batch: int
    test_batch: int
    optimizer: str
    momentum: float
    lr_decay_every: int
    lr_decay: float
    shuffle: bool
    deterministic: bool
    tf32: bool
    tau: float
    vth: float
    a: float


def _section(config, name):
    value = config.get(name, {})
    if not isinstance(value, dict):
        raise TrainerError("config.{}: expected a table, got {!r}".format(name, value))
    return value


def _int(where, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TrainerError("{}: expected an integer >= {}, got {!r}".format(where, minimum, value))
    return value


def _float(where, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TrainerError("{}: expected a number, got {!r}".format(where, value))
    return float(value)


def read_settings(job):
    """The run's Settings, or TrainerError naming the setting this trainer
    cannot honour. Config keys left out take the native engine's defaults."""
    unknown = sorted(set(job.params) - set(PARAMS))
    if unknown:
        raise TrainerError(
            "trainer.params: unknown key(s) {}; this trainer takes {}".format(
                ", ".join(unknown), ", ".join(sorted(PARAMS))
            )
        )
    params = dict(PARAMS, **job.params)
    config = job.config
    if config.get("network") is not None:
        raise TrainerError(
            "config.network: this trainer builds only the reference SLANIMALSNet; "
            "leave [network] out or use the native trainer"
        )
    training = _section(config, "training")
    simulation = _section(config, "simulation")
    if not job.has_frames:
        raise TrainerError(
            "job {} has no frames: this trainer reads the exported frames, so the "
            "experiment needs [trainer] frames = true".format(job.id)
        )
    steps = job.frames_spec.steps
    if training.get("random_crop", False):
        raise TrainerError(
            "config.training.random_crop: the worker exports the first T windows of each "
            "sample, so this trainer cannot draw random crops; set it to false"
        )
    test_steps = training.get("test_steps", steps)
    if test_steps != steps:
        raise TrainerError(
            "config.training.test_steps = {} differs from the exported frames' T = {}; "
            "this trainer evaluates on the exported frames".format(test_steps, steps)
        )
    precision = training.get("precision", "f32")
    if precision != "f32":
        raise TrainerError(
            "config.training.precision = {!r}: this trainer computes in float32 only; "
            "leave it out or use the native trainer".format(precision)
        )
    optimizer = training.get("optimizer", "adam")
    if optimizer not in ("adam", "sgd"):
        raise TrainerError(
            "config.training.optimizer: expected adam or sgd, got {!r}".format(optimizer)
        )
    return Settings(
        hidden=_int("trainer.params.hidden", params["hidden"], 1),
        lr=_float("config.training.lr", training.get("lr", 1e-3)),
        batch=_int("config.training.batch", training.get("batch", 8), 1),
        test_batch=_int("config.training.test_batch", training.get("test_batch", 32), 1),
        optimizer=optimizer,
        momentum=_float("config.training.momentum", training.get("momentum", 0.9)),
        lr_decay_every=_int("config.training.lr_decay_every",
                            training.get("lr_decay_every", 0), 0),
        lr_decay=_float("config.training.lr_decay", training.get("lr_decay", 1.0)),
        shuffle=bool(training.get("shuffle", False)),
        deterministic=bool(training.get("deterministic", False)),
        tf32=bool(training.get("tf32", True)),
        tau=_float("config.simulation.tau", simulation.get("tau", 0.3)),
        vth=_float("config.simulation.vth", simulation.get("vth", 0.3)),
        a=_float("config.simulation.a", simulation.get("a", 0.5)),
    )


def build(torch):
    """The network's classes, defined once torch is imported (so that a job
    this trainer refuses is refused before the slow import)."""
    nn = torch.nn
    functional = torch.nn.functional

    class Spike(torch.autograd.Function):
        """Heaviside forward, `o = [u > vth]`; STBP's rectangular surrogate
        backward, `do/du = [|u - vth| < a/2] / a`."""

        @staticmethod
        def forward(ctx, u, vth, a):
            ctx.save_for_backward(u)
            ctx.vth, ctx.a = vth, a
            return (u > vth).to(u.dtype)

        @staticmethod
        def backward(ctx, grad):
            (u,) = ctx.saved_tensors
            window = ((u - ctx.vth).abs() < ctx.a / 2).to(grad.dtype)
            return grad * window / ctx.a, None, None

    class Lif(nn.Module):
        """LIF neurons over time on a time-major input `[T, N, ...]`:
        `u_t = tau * u_{t-1} * (1 - o_{t-1}) + x_t` (u_{-1} = o_{-1} = 0),
        `o_t = Spike(u_t)`. Gradients flow through the leak and through the
        reset term `o_{t-1}`."""

        def __init__(self, tau, vth, a):
            super().__init__()
            self.tau, self.vth, self.a = tau, vth, a

        def forward(self, x):
            spikes = []
            u = o = None
            for t in range(x.shape[0]):
                u = x[t] if u is None else (u * self.tau) * (1.0 - o) + x[t]
                o = Spike.apply(u, self.vth, self.a)
                spikes.append(o)
            return torch.stack(spikes)

    class SLAnimalsNet(nn.Module):
        """conv 2->20 3x3 (no padding), LIF, avg-pool 2, conv 20->50 3x3, LIF,
        avg-pool 2, flatten channel-major, linear -> hidden, LIF, linear
        hidden -> classes, LIF; output: spike count over T divided by T.
        Layers are created in that order with PyTorch's default
        initialisation, as the native engine creates them."""

        def __init__(self, x, y, classes, hidden, lif):
            super().__init__()
            fx, fy = pooled(x), pooled(y)
            self.conv1 = nn.Conv2d(2, 20, 3)
            self.conv2 = nn.Conv2d(20, 50, 3)
            self.fc1 = nn.Linear(50 * fx * fy, hidden)
            self.fc2 = nn.Linear(hidden, classes)
            self.lif = Lif(*lif)

        def through_time(self, h, steps, n):
            """Runs the LIF on a time-folded `[T*N, ...]` tensor."""
            shape = h.shape[1:]
            return self.lif(h.reshape(steps, n, *shape)).reshape(steps * n, *shape)

        def forward(self, frames):
            n, c, x, y, steps = frames.shape
            # [N, 2, X, Y, T] -> time folded into the batch, time-major: [T*N, 2, X, Y].
            h = frames.permute(4, 0, 1, 2, 3).reshape(steps * n, c, x, y)
            h = functional.avg_pool2d(self.through_time(self.conv1(h), steps, n), 2)
            h = functional.avg_pool2d(self.through_time(self.conv2(h), steps, n), 2)
            h = self.through_time(self.fc1(h.reshape(steps * n, -1)), steps, n)
            out = self.lif(self.fc2(h).reshape(steps, n, -1))
            return out.sum(0) / steps

    return SLAnimalsNet


def pooled(size):
    """A spatial size after conv 3x3, pool 2, conv 3x3, pool 2 (no padding,
    floor)."""
    return ((size - 2) // 2 - 2) // 2


class Stopped(Exception):
    """The worker asked the script to stop in the middle of an epoch."""


def train_epoch(job, torch, model, optimizer, samples, settings, device, classes):
    """One pass over `samples` in batches; returns (mean of the batches' MSE,
    accuracy, seconds). Raises Stopped between batches once the worker asks."""
    model.train()
    start = time.monotonic()
    losses, correct = [], 0
    for first in range(0, len(samples), settings.batch):
        if job.should_stop():
            raise Stopped()
        xs, labels = job.frames_batch(samples[first:first + settings.batch])
        xs, labels = torch.from_numpy(xs).to(device), torch.from_numpy(labels).to(device)
        target = torch.nn.functional.one_hot(labels, classes).to(xs.dtype)
        optimizer.zero_grad()
        rates = model(xs)
        loss = torch.nn.functional.mse_loss(rates, target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        correct += int((rates.argmax(1) == labels).sum().item())
    seconds = time.monotonic() - start
    mean = sum(losses) / len(losses) if losses else 0.0
    return mean, (correct / len(samples) if samples else 0.0), seconds


def evaluate(job, torch, model, samples, settings, device, classes):
    """(loss, accuracy, confusion) on `samples`: the squared error summed
    over classes and averaged over samples, the share classified right, and
    the `[true][predicted]` counts. Raises Stopped between batches once the
    worker asks."""
    model.eval()
    sse, confusion = 0.0, torch.zeros(classes * classes, dtype=torch.int64)
    with torch.no_grad():
        for first in range(0, len(samples), settings.test_batch):
            if job.should_stop():
                raise Stopped()
            xs, labels = job.frames_batch(samples[first:first + settings.test_batch])
            xs, labels = torch.from_numpy(xs).to(device), torch.from_numpy(labels).to(device)
            rates = model(xs)
            target = torch.nn.functional.one_hot(labels, classes).to(rates.dtype)
            sse += float(((rates - target) ** 2).sum(dtype=torch.float64).item())
            pairs = (labels * classes + rates.argmax(1)).cpu()
            confusion += torch.bincount(pairs, minlength=classes * classes)
    matrix = confusion.reshape(classes, classes).tolist()
    n = len(samples)
    right = sum(matrix[i][i] for i in range(classes))
    return sse / max(n, 1), (right / n if n else 0.0), matrix


def save(job, torch, path, epoch, model, optimizer, arch):
    """Writes the checkpoint atomically (a temporary file renamed over
    `path`) and reports it."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "job": job.id,
        "epoch": epoch,
        "arch": arch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    job.save_checkpoint(path, epoch)


def resume(job, torch, model, optimizer, arch, device):
    """Loads job.resume_path into the model and optimiser, checking that it
    holds job.resume_epoch epochs of this network."""
    path = job.resume_path
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # unreadable, not a torch file, or not weights alone
        first = (str(e).strip().splitlines() or [""])[0]
        raise TrainerError("cannot load the resume checkpoint {}: {}: {}".format(
            path, type(e).__name__, first)) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TrainerError(
            "resume checkpoint {} was not written by this trainer (format {})".format(
                path, CHECKPOINT_FORMAT
            )
        )
    if state.get("epoch") != job.resume_epoch:
        raise TrainerError(
            "resume checkpoint {} holds epoch {}, the job file says resume_epoch = {}".format(
                path, state.get("epoch"), job.resume_epoch
            )
        )
    if state.get("arch") != arch:
        raise TrainerError(
            "resume checkpoint {} is of another network {}, this job builds {}".format(
                path, state.get("arch"), arch
            )
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])


def run(job, settings):
    """Trains the job's remaining epochs; returns the exit status."""
    if settings.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    if settings.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.allow_tf32 = settings.tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    if job.device == "cuda" and not torch.cuda.is_available():
        raise TrainerError("the job's device is cuda, but PyTorch sees no CUDA device")
    device = torch.device(job.device)

    _, x, y, steps = job.frames_spec.shape
    if pooled(x) < 1 or pooled(y) < 1:
        raise TrainerError(
            "frames of {} x {} are too small for SLANIMALSNet (10 x 10 at least)".format(x, y)
        )
    classes = len(job.classes)
    arch = {"x": x, "y": y, "classes": classes, "hidden": settings.hidden}
    net = build(torch)
    torch.manual_seed(job.seed)
    model = net(x, y, classes, settings.hidden, (settings.tau, settings.vth, settings.a))
    model.to(device)
    if settings.optimizer == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr,
                                    momentum=settings.momentum)
    if job.resume_path is not None:
        resume(job, torch, model, optimizer, arch, device)

    job.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    path = job.checkpoint_dir / "ckpt.pt"
    train = job.samples("train")
    val = job.samples("val") if job.protocol == "train-val-test" else None
    test = job.samples("test")
    log = sys.stderr
    for epoch in range(job.next_epoch, job.epochs + 1):
        try:
            if job.should_stop():
                raise Stopped()
            started = time.monotonic()
            order = train
            if settings.shuffle:
                # Drawn from (seed, epoch) alone, so a resumed run sees the same order.
                gen = torch.Generator().manual_seed(job.seed * 1_000_003 + epoch)
                order = [train[i] for i in torch.randperm(len(train), generator=gen).tolist()]
            loss, accuracy, seconds = train_epoch(job, torch, model, optimizer, order, settings,
                                                  device, classes)
            figures = {}
            if val is not None:
                v_loss, v_acc, _ = evaluate(job, torch, model, val, settings, device, classes)
                figures.update(val_loss=v_loss, val_accuracy=v_acc)
            t_loss, t_acc, confusion = evaluate(job, torch, model, test, settings, device,
                                                classes)
        except Stopped:
            return stop(job, log)
        job.report_epoch(epoch, loss, accuracy, test_loss=t_loss, test_accuracy=t_acc,
                         confusion=confusion, epoch_seconds=time.monotonic() - started,
                         samples_per_second=len(train) / seconds if seconds > 0 else None,
                         **figures)
        print("epoch {}/{}: train loss {:.4f} acc {:.3f}{}, test loss {:.4f} acc {:.3f}".format(
            epoch, job.epochs, loss, accuracy,
            ", val loss {:.4f} acc {:.3f}".format(figures["val_loss"], figures["val_accuracy"])
            if figures else "", t_loss, t_acc), file=log, flush=True)
        if settings.lr_decay_every and epoch % settings.lr_decay_every == 0:
            for group in optimizer.param_groups:
                group["lr"] *= settings.lr_decay
        save(job, torch, path, epoch, model, optimizer, arch)
    job.finish()
    return 0


def stop(job, log):
    """Ends the run early because the worker asked. Every epoch done was
    checkpointed and reported as it ended (or, before the first, the worker
    holds the checkpoint it resumed from), so the last reported checkpoint
    is the training state to resume from; a partly trained epoch is dropped.
    Exits 0 without a result."""
    print("stop requested: ending after epoch {} (its checkpoint is reported)".format(
        job.completed_epochs), file=log, flush=True)
    return 0


def main():
    """Runs the job the worker handed over; returns the exit status."""
    try:
        helper = import_helper()
    except ImportError as e:
        print("train.py: {}".format(e), file=sys.stderr)
        return 2
    try:
        job = helper.Job.from_env()
        settings = read_settings(job)
        return run(job, settings)
    except (helper.JobError, helper.FramesError, TrainerError) as e:
        print("train.py: {}".format(e), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
