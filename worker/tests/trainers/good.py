"""A trainer that trains nothing: it reports made-up figures for every epoch
(test accuracy epoch/|test|, validation loss 1/epoch), writes a checkpoint
after each and lets the worker select. Notes what it resumed from, and the
first training sample's frames' shape when the job has frames, in files of
its working folder (the job's). With $GOOD_PAUSE set it waits up to that
many seconds after each checkpoint for a SIGTERM."""

import os
import time
from pathlib import Path

from spikecv_trainer import Job

job = Job.from_env()
tests = job.samples("test")
classes = len(job.classes)


def confusion(correct):
    m = [[0] * classes for _ in range(classes)]
    for i, s in enumerate(tests):
        m[s.label][s.label if i < correct else (s.label + 1) % classes] += 1
    return m


if job.resume_path is not None:
    Path("resumed.txt").write_text(
        "{} {}".format(job.resume_epoch, job.resume_path.read_text())
    )
if job.has_frames:
    first = job.samples("train")[0]
    Path("frames.txt").write_text(
        "{} {}".format(list(job.load_frames(first).shape), int(job.load_frames(first).sum()))
    )
for epoch in range(job.next_epoch, job.epochs + 1):
    val = {}
    if job.protocol == "train-val-test":
        val = {"val_loss": 1.0 / epoch, "val_accuracy": 0.5}
    job.report_epoch(
        epoch, 2.0 / epoch, 0.1 * epoch, test_loss=1.5 / epoch,
        test_accuracy=epoch / len(tests), confusion=confusion(epoch), epoch_seconds=0.25, **val
    )
    state = job.checkpoint_dir / "state.txt"
    state.write_text("after epoch {}".format(epoch))
    job.save_checkpoint(state, epoch)
    deadline = time.monotonic() + float(os.environ.get("GOOD_PAUSE", "0"))
    while not job.should_stop() and time.monotonic() < deadline:
        time.sleep(0.02)
    if job.should_stop():
        raise SystemExit(0)
job.finish()
