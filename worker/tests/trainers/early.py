"""Reports epoch 1 of 2; with $EARLY_RESULT it sends a result for it (an
early stop), else it just exits 0."""

import os

from spikecv_trainer import Job

job = Job.from_env()
tests = job.samples("test")
confusion = [[0] * len(job.classes) for _ in job.classes]
for s in tests:
    confusion[s.label][s.label] += 1
job.report_epoch(1, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5)
if os.environ.get("EARLY_RESULT"):
    job.finish(best_epoch=1, test_accuracy=1.0, test_loss=0.25, val_loss=1.0,
               val_accuracy=0.5, confusion=confusion)
