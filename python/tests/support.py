"""Builds job files for the tests in a temporary folder."""

import copy
import json
import os
import signal
import tempfile
import unittest
from pathlib import Path

CLASSES = ["cat", "dog", "owl"]


def sample(name, label, frames=None):
    """A job-file sample entry."""
    return {
        "name": name,
        "recording": "/data/recordings/{}.aedat".format(name.rsplit("_", 1)[0]),
        "start_us": 1000,
        "end_us": 950000,
        "label": label,
        "frames": frames,
    }


def job_dict(root, **overrides):
    """A valid format-1 job (no frames) whose checkpoint_dir is under
    `root`; keyword arguments replace top-level fields."""
    job = {
        "format": 1,
        "job": "8407b358d3444d6e",
        "attempt": "a-12",
        "variant": "whole",
        "seed": 3,
        "fold": 1,
        "protocol": "train-val-test",
        "trainer": {"name": "stbp-pytorch", "params": {"hidden": 128}, "sha256": "ab" * 32},
        "config": {"training": {"lr": 0.001, "batch": 8}},
        "epochs": 5,
        "classes": list(CLASSES),
        "splits": {
            "train": [sample("user01_a_{:02d}".format(i), i % 3) for i in range(6)],
            "val": [sample("user02_a_00", 0), sample("user02_a_01", 1)],
            "test": [sample("user03_a_{:02d}".format(i), i % 3) for i in range(4)],
        },
        "frames": None,
        "device": "cpu",
        "checkpoint_dir": str(Path(root) / "trainer"),
        "resume": None,
        "resume_epoch": None,
    }
    job.update(copy.deepcopy(overrides))
    return job


def write_job(root, job):
    """Writes `job` as JSON to `root`/job.json and returns its path."""
    path = Path(root) / "job.json"
    path.write_text(json.dumps(job), encoding="utf-8")
    return path


def read_events(path):
    """The JSON lines of an events file, parsed."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


class TempCase(unittest.TestCase):
    """A test case with a temporary folder `self.root`, an events path
    `self.events`, and the SIGTERM handler restored after each test."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.root = Path(self._tmp.name)
        self.events = self.root / "events.jsonl"
        (self.root / "trainer").mkdir()
        self._sigterm = signal.getsignal(signal.SIGTERM)
        self._environ = dict(os.environ)

    def tearDown(self):
        signal.signal(signal.SIGTERM, self._sigterm)
        os.environ.clear()
        os.environ.update(self._environ)
        self._tmp.cleanup()

    def job(self, **overrides):
        """A Job over `job_dict(self.root, **overrides)`."""
        from spikecv_trainer import Job

        path = write_job(self.root, job_dict(self.root, **overrides))
        return Job.from_file(path, self.events)
