"""Reports epoch 1 with a checkpoint, then ignores SIGTERM and sleeps."""

import signal
import time

from spikecv_trainer import Job

job = Job.from_env()
signal.signal(signal.SIGTERM, signal.SIG_IGN)
job.report_epoch(1, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5)
state = job.checkpoint_dir / "state.txt"
state.write_text("1")
job.save_checkpoint(state, 1)
time.sleep(60)
