"""Writes a line that is not JSON to the events file, then lingers."""

import os
import time

with open(os.environ["SPIKECV_EVENTS"], "a") as f:
    f.write("this is not json at all\n")
time.sleep(60)
