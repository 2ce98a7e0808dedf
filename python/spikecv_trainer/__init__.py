"""spikecv_trainer: the script's side of the contract between a spikecv
worker and a training script (docs/trainers.md in the spikecv repository).

A script typically does::

    from spikecv_trainer import Job

    job = Job.from_env()                  # $SPIKECV_JOB, $SPIKECV_EVENTS
    for epoch in range(job.next_epoch, job.epochs + 1):
        ...                               # train on job.frames_batch(...)
        job.report_epoch(epoch, loss, acc, val_loss=..., val_accuracy=...,
                         test_loss=..., test_accuracy=..., confusion=...)
        job.save_checkpoint(path, epoch)  # a file under job.checkpoint_dir
        if job.should_stop():             # SIGTERM from the worker
            raise SystemExit(0)
    job.finish()                          # the worker selects the epoch

Only the standard library is needed; numpy is imported when frames are
decoded.
"""

from .errors import FramesError, JobError
from .frames import FrameSpec
from .job import EVENTS_VAR, FORMAT, JOB_VAR, SPLITS, Job, Sample

#: The helper's version.
__version__ = "0.1.0"

__all__ = [
    "EVENTS_VAR",
    "FORMAT",
    "FrameSpec",
    "FramesError",
    "JOB_VAR",
    "Job",
    "JobError",
    "SPLITS",
    "Sample",
    "__version__",
]
