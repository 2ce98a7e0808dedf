"""The job a worker hands a training script, and what the script says back
(docs/trainers.md)."""

import json
import os
import signal
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from . import _checks as checks
from ._fields import Fields
from .errors import FramesError, JobError
from .frames import ENCODING_OF, FrameSpec, decode, numpy

#: The job file format this helper reads.
FORMAT = 1

#: The splits a job file lists, in this order.
SPLITS = ("train", "val", "test")

#: The protocol under which every epoch reports validation figures.
WITH_VALIDATION = "train-val-test"

#: The variable naming the job file.
JOB_VAR = "SPIKECV_JOB"

#: The variable naming the events file.
EVENTS_VAR = "SPIKECV_EVENTS"


@dataclass(frozen=True)
class Sample:
    """One sample of a split.

    Attributes:
        name: the sample's name (unique in the data set).
        recording: the event file it was cut from, or None when the sample is
            a file of its own.
        start_us: start of the sample's window in the recording (µs), or None.
        end_us: end of the window (µs), or None.
        label: the class index, an index into :attr:`Job.classes`.
        frames_path: the ``.npy`` file of its frames, or None when the job has
            no frames.
    """

    name: str
    recording: Optional[str]
    start_us: Optional[int]
    end_us: Optional[int]
    label: int
    frames_path: Optional[Path]


class Job:
    """A training job as the worker hands it over: what to train (config,
    params, splits, frames, epochs) and the channel back (the events file).

    Build it with :meth:`from_env` in a script the worker started (or with
    :meth:`from_file`). Creating a Job installs a SIGTERM handler (see
    :meth:`should_stop`).

    Attributes:
        id: the job's id.
        attempt: this attempt's id.
        variant: the data set variant (``"whole"``, ``"reduced"``, ...).
        seed: the job's seed.
        fold: the cross-validation fold (None where the job file has null).
        protocol: ``"train-val-test"``, ``"train-test"`` or ``"official"``.
        config: the experiment's config with the sweep's values applied (dict).
        params: the trainer's params, ``[trainer.params]`` (dict).
        trainer_name: the trainer's registered name.
        trainer_sha256: the hash of the script the worker registered (or None).
        classes: the class names; a label indexes this list.
        epochs: how many epochs the job trains in all.
        device: ``"cpu"`` or ``"cuda"`` (the one GPU the script sees).
        checkpoint_dir: the folder checkpoints are written under (Path).
        resume_path: a checkpoint to resume from (Path), or None.
        resume_epoch: the epochs that checkpoint holds, or None.
        frames_spec: how the frames are stored (FrameSpec), or None without
            frames.
        job_path: the job file.
        events_path: the events file lines are appended to.
    """

    def __init__(self, job_path, events_path, *, handle_sigterm=True):
        """Reads the job file at `job_path`; reports go to `events_path`.
        Prefer :meth:`from_env` or :meth:`from_file`. Raises JobError when the
        file is unreadable or a field is wrong."""
        self.job_path = Path(job_path)
        self.events_path = Path(events_path)
        self._read(self.job_path)
        self._last_epoch = None
        self._checkpointed = None
        self._epochs_seen = []
        self._finished = False
        self._clock = time.monotonic()
        self._stop = False
        if handle_sigterm:
            self._install_sigterm()

    # -- construction ------------------------------------------------------

    @classmethod
    def from_env(cls, *, handle_sigterm=True):
        """The job of the script's worker: reads the file named by
        ``$SPIKECV_JOB`` and appends reports to ``$SPIKECV_EVENTS``.

        Raises JobError naming the variable when one is unset or empty, or
        naming the file and the field when the job file is unreadable, not
        JSON, of another ``format`` than 1, or has a missing or malformed
        field. With `handle_sigterm` (the default) SIGTERM sets
        :attr:`stop_requested`.
        """
        paths = []
        for var, what in ((JOB_VAR, "the job file"), (EVENTS_VAR, "the events file")):
            value = os.environ.get(var)
            if not value:
                raise JobError(
                    "${} is {}: the worker sets it to the path of {}; "
                    "is this script running under a spikecv worker?".format(
                        var, "empty" if value == "" else "not set", what
                    )
                )
            paths.append(value)
        return cls(paths[0], paths[1], handle_sigterm=handle_sigterm)

    @classmethod
    def from_file(cls, job_path, events_path, *, handle_sigterm=True):
        """The job in the file `job_path`, reporting to `events_path` (for
        tests and runs outside a worker). See :meth:`from_env`."""
        return cls(job_path, events_path, handle_sigterm=handle_sigterm)

    def _read(self, path):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise JobError("cannot read the job file {}: {}".format(path, e)) from None
        try:
            data = json.loads(text)
        except ValueError as e:
            raise JobError("job file {} is not valid JSON: {}".format(path, e)) from None
        top = Fields(path, data)
        fmt = top.integer("format")
        if fmt != FORMAT:
            raise top.error(
                "format", "this helper reads format {}, the file has {}".format(FORMAT, fmt)
            )
        base = path.parent
        self.id = top.string("job")
        self.attempt = top.string("attempt")
        self.variant = top.string("variant")
        self.seed = top.integer("seed")
        self.fold = top.integer("fold", nullable=True, minimum=0)
        self.protocol = top.string("protocol")
        trainer = top.sub("trainer")
        self.trainer_name = trainer.string("name")
        self.params = trainer.obj_field("params")
        self.trainer_sha256 = (
            trainer.string("sha256", nullable=True) if "sha256" in trainer.obj else None
        )
        self.config = top.obj_field("config")
        self.epochs = top.integer("epochs", minimum=1)
        classes = top.array("classes")
        for i, c in enumerate(classes):
            if not isinstance(c, str):
                raise Fields(path, {}, top.name("classes")).error(i, "expected a string")
        if not classes:
            raise top.error("classes", "expected at least one class")
        self.classes = list(classes)
        self.device = top.choice("device", ("cpu", "cuda"))
        self.checkpoint_dir = top.path_field("checkpoint_dir", base)
        self.resume_path = top.path_field("resume", base, nullable=True)
        self.resume_epoch = top.integer("resume_epoch", nullable=True, minimum=0)
        if (self.resume_path is None) != (self.resume_epoch is None):
            raise top.error(
                "resume_epoch" if self.resume_epoch is None else "resume",
                "resume and resume_epoch must be both null or both set",
            )
        if self.resume_epoch is not None and self.resume_epoch > self.epochs:
            raise top.error(
                "resume_epoch",
                "{} is beyond the job's {} epochs".format(self.resume_epoch, self.epochs),
            )
        self.frames_spec = self._read_frame_spec(top)
        splits = top.sub("splits")
        self._splits = {}
        for split in SPLITS:
            items = splits.array(split)
            where = Fields(path, {}, splits.name(split))
            self._splits[split] = [
                self._read_sample(Fields(path, item, where.name(i)), base)
                for i, item in enumerate(items)
            ]

    def _read_frame_spec(self, top):
        frames = top.sub("frames", nullable=True)
        if frames is None:
            return None
        steps = frames.integer("steps", minimum=1)
        dt_ms = frames.integer("dt_ms", minimum=1)
        bin_mode = frames.choice("bin_mode", tuple(ENCODING_OF))
        encoding = frames.choice("encoding", ("bits", "counts"))
        if encoding != ENCODING_OF[bin_mode]:
            raise frames.error(
                "encoding",
                "bin_mode {} is exported as {!r}, the file says {!r}".format(
                    bin_mode, ENCODING_OF[bin_mode], encoding
                ),
            )
        shape = frames.array("shape")
        dims = Fields(top.path, {}, frames.name("shape"))
        if len(shape) != 4:
            raise frames.error("shape", "expected [2, X, Y, T], got {!r}".format(shape))
        for i, d in enumerate(shape):
            if isinstance(d, bool) or not isinstance(d, int) or d < 1:
                raise dims.error(i, "expected a positive integer, got {!r}".format(d))
        if shape[0] != 2:
            raise dims.error(0, "expected 2 (the polarities), got {}".format(shape[0]))
        if shape[3] != steps:
            raise dims.error(
                3, "T = {} differs from frames.steps = {}".format(shape[3], steps)
            )
        return FrameSpec(steps, dt_ms, bin_mode, tuple(shape), encoding)

    def _read_sample(self, f, base):
        label = f.integer("label", minimum=0)
        if label >= len(self.classes):
            raise f.error(
                "label", "{} is not a class index (the job has {} classes)".format(
                    label, len(self.classes)
                )
            )
        if self.frames_spec is None:
            frames = f.path_field("frames", base, nullable=True) if "frames" in f.obj else None
        else:
            frames = f.path_field("frames", base)
        return Sample(
            name=f.string("name"),
            recording=f.string("recording", nullable=True),
            start_us=f.integer("start_us", nullable=True),
            end_us=f.integer("end_us", nullable=True),
            label=label,
            frames_path=frames,
        )

    # -- samples and frames -----------------------------------------------

    def samples(self, split):
        """The samples of `split` (``"train"``, ``"val"`` or ``"test"``) in
        the job file's order, as a new list of :class:`Sample`. Raises
        ValueError for any other split name."""
        if split not in self._splits:
            raise ValueError(
                "split: expected one of {}, got {!r}".format(", ".join(SPLITS), split)
            )
        return list(self._splits[split])

    @property
    def has_frames(self):
        """Whether the worker exported frames for this job
        (``[trainer] frames = true``)."""
        return self.frames_spec is not None

    def _require_frames(self):
        if self.frames_spec is None:
            raise FramesError(
                "job {} has no frames (job file {}: frames is null): the experiment "
                "needs [trainer] frames = true for the worker to export them".format(
                    self.id, self.job_path
                )
            )
        return self.frames_spec

    def load_frames(self, sample):
        """One sample's frames: a float32 numpy array ``(2, X, Y, T)``, decoded
        as docs/trainers.md says (bits unpacked to 0/1; counts as float32,
        divided by the sample's largest count under SUM_NORM). Raises
        FramesError when the job has no frames or the file is wrong; needs
        numpy."""
        spec = self._require_frames()
        if sample.frames_path is None:
            raise FramesError("sample {} has no frames file".format(sample.name))
        return decode(sample.frames_path, spec)

    def frames(self, split):
        """An iterator of ``(sample, frames)`` over the samples of `split` in
        order, loading one file at a time as it goes (see
        :meth:`load_frames`): a whole split of SL-Animals as float32 would not
        fit in memory on most machines. A bad split name or a job without
        frames raises at the call, not at the first item."""
        self._require_frames()
        samples = self.samples(split)
        return ((sample, self.load_frames(sample)) for sample in samples)

    def frames_batch(self, samples):
        """The frames of `samples` stacked into one float32 array
        ``(N, 2, X, Y, T)`` and their labels as an int64 array ``(N,)``."""
        spec = self._require_frames()
        np = numpy()
        samples = list(samples)
        out = np.empty((len(samples),) + tuple(spec.shape), dtype=np.float32)
        for i, sample in enumerate(samples):
            out[i] = self.load_frames(sample)
        labels = np.array([s.label for s in samples], dtype=np.int64)
        return out, labels

    # -- stopping -----------------------------------------------------------

    def _install_sigterm(self):
        if threading.current_thread() is not threading.main_thread():
            warnings.warn(
                "spikecv_trainer: the Job was created outside the main thread, so no "
                "SIGTERM handler was installed and should_stop() stays False",
                RuntimeWarning,
                stacklevel=3,
            )
            return
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum, frame):
        self._stop = True

    @property
    def stop_requested(self):
        """True once SIGTERM has arrived (see :meth:`should_stop`)."""
        return self._stop

    def should_stop(self):
        """Whether the worker asked the script to stop (the job was pruned,
        cancelled or lost its lease, or the worker drains).

        Creating the Job replaces the process's SIGTERM handler (from the main
        thread) with one that only sets this flag; the handler it replaces,
        including Python's default of ending the process, is not called. A
        script should check this between batches or epochs and then write a
        checkpoint, report it with :meth:`save_checkpoint` and exit 0; the
        worker sends SIGKILL after its grace period.
        """
        return self._stop

    # -- reports --------------------------------------------------------------

    def _emit(self, record):
        line = (json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n").encode()
        fd = os.open(str(self.events_path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(line)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)

    def _check_open(self, what):
        if self._finished:
            raise RuntimeError("{} after finish(): the job has ended".format(what))

    @property
    def next_epoch(self):
        """The epoch :meth:`report_epoch` expects next: 1, or
        ``resume_epoch + 1`` after a resume, then one more per report."""
        if self._last_epoch is not None:
            return self._last_epoch + 1
        return (self.resume_epoch or 0) + 1

    @property
    def completed_epochs(self):
        """The epochs done so far: the last one reported, else
        ``resume_epoch``, else 0."""
        if self._last_epoch is not None:
            return self._last_epoch
        return self.resume_epoch or 0

    def _figures(self, record, kind, val_loss, val_accuracy, test_loss, test_accuracy,
                 confusion, *, need_test):
        """Checks and adds the validation and test figures to `record`."""
        if self.protocol == WITH_VALIDATION:
            for name, value in (("val_loss", val_loss), ("val_accuracy", val_accuracy)):
                if value is None:
                    raise ValueError(
                        "{}: required under protocol {} ({})".format(name, self.protocol, kind)
                    )
            record["val_loss"] = checks.number("val_loss", val_loss)
            record["val_accuracy"] = checks.number("val_accuracy", val_accuracy, accuracy=True)
        else:
            for name, value in (("val_loss", val_loss), ("val_accuracy", val_accuracy)):
                if value is not None:
                    raise ValueError(
                        "{}: protocol {} has no validation set; leave it out".format(
                            name, self.protocol
                        )
                    )
        if need_test:
            for name, value in (("test_loss", test_loss), ("test_accuracy", test_accuracy),
                                ("confusion", confusion)):
                if value is None:
                    raise ValueError("{}: required in a {}".format(name, kind))
        if (test_loss is None) != (test_accuracy is None):
            missing = "test_loss" if test_loss is None else "test_accuracy"
            raise ValueError(
                "{}: test_loss and test_accuracy go together (give both or neither)".format(
                    missing
                )
            )
        if test_loss is not None:
            record["test_loss"] = checks.number("test_loss", test_loss)
            record["test_accuracy"] = checks.number("test_accuracy", test_accuracy, accuracy=True)
        if confusion is not None:
            if test_accuracy is None:
                raise ValueError(
                    "confusion: the test confusion matrix needs test_loss and test_accuracy "
                    "of the same epoch"
                )
            record["confusion"] = checks.confusion(
                "confusion", confusion, len(self.classes), len(self._splits["test"])
            )

    def report_epoch(self, epoch, train_loss, train_accuracy, *, val_loss=None,
                     val_accuracy=None, test_loss=None, test_accuracy=None, confusion=None,
                     epoch_seconds=None, samples_per_second=None):
        """Appends an ``epoch`` line to the events file (flushed and fsynced)
        and returns the record written.

        Checked first, raising ValueError that names the field and writing
        nothing: `epoch` must be :attr:`next_epoch` (epochs count up without
        gaps from 1, or from ``resume_epoch + 1``) and at most :attr:`epochs`;
        every figure must be a finite number and accuracies lie in [0, 1];
        `val_loss` and `val_accuracy` are required under ``train-val-test``
        and refused under the other protocols; `test_loss` and
        `test_accuracy` go together (leave both out in an epoch that did not
        test); `confusion`, the test confusion matrix ``[true][predicted]``,
        must be ``classes × classes`` non-negative integers summing to the
        test split's size (needed for the epoch the protocol selects unless
        :meth:`finish` gets figures). `epoch_seconds` defaults to the wall
        time since the previous report, or since the Job was created;
        `samples_per_second` is left out when None.
        """
        self._check_open("report_epoch")
        epoch = checks.integer("epoch", epoch)
        if epoch != self.next_epoch:
            raise ValueError(
                "epoch: expected {} (epochs count up from {} without gaps), got {}".format(
                    self.next_epoch, (self.resume_epoch or 0) + 1, epoch
                )
            )
        if epoch > self.epochs:
            raise ValueError("epoch: {} is beyond the job's {} epochs".format(epoch, self.epochs))
        now = time.monotonic()
        record = {
            "type": "epoch",
            "epoch": epoch,
            "train_loss": checks.number("train_loss", train_loss),
            "train_accuracy": checks.number("train_accuracy", train_accuracy, accuracy=True),
        }
        self._figures(record, "epoch line", val_loss, val_accuracy, test_loss, test_accuracy,
                      confusion, need_test=False)
        if epoch_seconds is None:
            epoch_seconds = now - self._clock
        record["epoch_seconds"] = checks.number("epoch_seconds", epoch_seconds, non_negative=True)
        if samples_per_second is not None:
            record["samples_per_second"] = checks.number(
                "samples_per_second", samples_per_second, non_negative=True
            )
        self._emit(record)
        self._clock = now
        self._last_epoch = epoch
        self._epochs_seen.append(record)
        return record

    def save_checkpoint(self, path, epoch):
        """Tells the worker that the file at `path` holds the training state
        after `epoch` epochs, and returns the record written.

        The worker copies the file before reading on, so the script may
        overwrite it afterwards. Raises ValueError when the file does not
        exist, lies outside :attr:`checkpoint_dir`, or `epoch` is not the
        last epoch done (:attr:`completed_epochs`: the last reported, or
        ``resume_epoch`` before any report). The line carries the resolved
        absolute path.
        """
        self._check_open("save_checkpoint")
        epoch = checks.integer("epoch", epoch)
        done = self.completed_epochs
        if done == 0:
            raise ValueError(
                "epoch: no epoch has been reported yet, so there is nothing to checkpoint"
            )
        if epoch != done:
            raise ValueError(
                "epoch: a checkpoint holds the state after the last epoch done, {}; got {}".format(
                    done, epoch
                )
            )
        resolved = Path(path).resolve()
        if not resolved.is_file():
            raise ValueError("path: checkpoint file {} does not exist".format(path))
        root = self.checkpoint_dir.resolve()
        if root != resolved and root not in resolved.parents:
            raise ValueError(
                "path: checkpoint file {} is not under checkpoint_dir {}".format(resolved, root)
            )
        record = {"type": "checkpoint", "epoch": epoch, "path": str(resolved)}
        self._emit(record)
        self._checkpointed = epoch
        return record

    def _selected(self):
        """The epoch record the worker would select by the protocol's rule
        among this run's epochs, or None when the rule is unknown."""
        seen = self._epochs_seen
        if self.protocol == "train-val-test":
            best = min(r["val_loss"] for r in seen)
            return next(r for r in seen if r["val_loss"] == best)
        if self.protocol == "train-test":
            tested = [r for r in seen if "test_accuracy" in r]
            if not tested:
                raise ValueError(
                    "finish: no epoch reported test figures, so the worker cannot select "
                    "one under protocol train-test"
                )
            best = max(r["test_accuracy"] for r in tested)
            return next(r for r in tested if r["test_accuracy"] == best)
        if self.protocol == "official":
            return seen[-1]
        return None

    def finish(self, best_epoch=None, test_accuracy=None, test_loss=None, val_accuracy=None,
               val_loss=None, confusion=None):
        """Ends the job's reports; returns the ``result`` record written, or
        None.

        Without arguments nothing is written: the worker selects an epoch from
        the epoch lines by the protocol's rule. When every epoch was reported
        in this run (no resume), that epoch is checked here to carry
        `test_loss`, `test_accuracy` and `confusion`, raising ValueError naming
        the epoch otherwise.

        With figures, a ``result`` line is written: `best_epoch` (an epoch
        done, 1 to :attr:`completed_epochs`), `test_accuracy`, `test_loss` and
        `confusion` are required, and the validation figures as in
        :meth:`report_epoch`. Either way, nothing more can be reported after
        it; the script should then exit 0.
        """
        self._check_open("finish")
        given = (best_epoch, test_accuracy, test_loss, val_accuracy, val_loss, confusion)
        if all(v is None for v in given):
            if self.completed_epochs == 0:
                raise ValueError(
                    "finish: no epoch was reported, and without epochs or a result the "
                    "worker fails the attempt"
                )
            if self.resume_epoch is None and self._epochs_seen:
                chosen = self._selected()
                if chosen is not None:
                    missing = [k for k in ("test_loss", "test_accuracy", "confusion")
                               if k not in chosen]
                    if missing:
                        raise ValueError(
                            "finish: protocol {} selects epoch {}, which lacks {}; report them "
                            "for that epoch or pass a result to finish()".format(
                                self.protocol, chosen["epoch"], ", ".join(missing)
                            )
                        )
            self._finished = True
            return None
        if best_epoch is None:
            raise ValueError("best_epoch: required in a result")
        best_epoch = checks.integer("best_epoch", best_epoch)
        if not 1 <= best_epoch <= self.completed_epochs:
            raise ValueError(
                "best_epoch: expected an epoch done, 1 to {}, got {}".format(
                    self.completed_epochs, best_epoch
                )
            )
        record = {"type": "result", "best_epoch": best_epoch}
        self._figures(record, "result", val_loss, val_accuracy, test_loss, test_accuracy,
                      confusion, need_test=True)
        self._emit(record)
        self._finished = True
        return record
