"""Reports epoch 1 with a checkpoint, then waits for the worker's SIGTERM:
notes it in sigterm.txt and exits 0 as the contract asks."""

import sys
import time
from pathlib import Path

from spikecv_trainer import Job

job = Job.from_env()
job.report_epoch(1, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5)
state = job.checkpoint_dir / "state.bin"
state.write_bytes(bytes(range(256)))
job.save_checkpoint(state, 1)
deadline = time.monotonic() + 30
while not job.should_stop() and time.monotonic() < deadline:
    time.sleep(0.02)
if not job.should_stop():
    sys.exit(5)
Path("sigterm.txt").write_text("stopped after epoch 1")
