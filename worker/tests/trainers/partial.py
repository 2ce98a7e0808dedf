"""Leaves its last events line without a newline and exits 0."""

import os

with open(os.environ["SPIKECV_EVENTS"], "a") as f:
    f.write('{"type":"epoch","epoch":1')
