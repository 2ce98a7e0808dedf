"""Reports one epoch, then fails with a message on stderr."""

import sys

from spikecv_trainer import Job

job = Job.from_env()
job.report_epoch(1, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5)
print("boom: the data loader fell over on purpose", file=sys.stderr)
sys.exit(3)
