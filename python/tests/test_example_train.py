"""examples/pytorch-stbp/train.py end to end on a tiny hand-made job: random
OR frames for 3 classes, 2 x 16 x 16 x T=4, run as the worker runs it (a
subprocess with $SPIKECV_JOB and $SPIKECV_EVENTS)."""

import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import unittest
from pathlib import Path

from .support import TempCase, read_events

TRAIN = Path(__file__).resolve().parents[2] / "examples" / "pytorch-stbp" / "train.py"
HAVE = all(importlib.util.find_spec(m) is not None for m in ("numpy", "torch"))
CLASSES = ["a", "b", "c"]
X, Y, T = 16, 16, 4


@unittest.skipUnless(HAVE, "numpy or torch is not installed")
@unittest.skipUnless(TRAIN.is_file(), "examples/pytorch-stbp/train.py is not in this tree")
class TrainScript(TempCase):
    def setUp(self):
        super().setUp()
        import numpy as np

        rng = np.random.default_rng(7)
        frames_dir = self.root / "frames"
        frames_dir.mkdir()
        self.splits = {"train": [], "val": [], "test": []}
        per_class = {"train": 4, "val": 1, "test": 2}
        for split, count in per_class.items():
            for label in range(len(CLASSES)):
                for i in range(count):
                    name = "{}_{}_{}".format(split, CLASSES[label], i)
                    # Each class fires more in its own band of rows, so there is
                    # something to learn; the bits are random otherwise.
                    density = np.full((2, X, Y, T), 0.05)
                    density[:, label * 5:label * 5 + 5] = 0.5
                    bits = (rng.random((2, X, Y, T)) < density).astype(np.uint8)
                    path = frames_dir / (name + ".npy")
                    np.save(path, np.packbits(bits, axis=-1, bitorder="little"))
                    self.splits[split].append({
                        "name": name, "recording": None, "start_us": None, "end_us": None,
                        "label": label, "frames": str(path),
                    })

    def job_file(self, name, **overrides):
        job = {
            "format": 1, "job": "0123456789abcdef", "attempt": "a-1", "variant": "whole",
            "seed": 5, "fold": 0, "protocol": "train-val-test",
            "trainer": {"name": "stbp-pytorch", "params": {"hidden": 32}, "sha256": None},
            "config": {"training": {"lr": 0.001, "batch": 4, "test_batch": 8},
                       "simulation": {"steps": T, "dt_ms": 30, "a": 0.5, "vth": 0.3,
                                      "tau": 0.3}},
            "epochs": 2, "classes": CLASSES, "splits": self.splits,
            "frames": {"steps": T, "dt_ms": 30, "bin_mode": "OR", "shape": [2, X, Y, T],
                       "encoding": "bits"},
            "device": "cpu", "checkpoint_dir": str(self.root / name / "trainer"),
            "resume": None, "resume_epoch": None,
        }
        job.update(overrides)
        (self.root / name).mkdir(exist_ok=True)
        path = self.root / name / "job.json"
        path.write_text(json.dumps(job), encoding="utf-8")
        return path, self.root / name / "events.jsonl"

    def env(self, job_path, events):
        env = dict(os.environ, SPIKECV_JOB=str(job_path), SPIKECV_EVENTS=str(events),
                   SPIKECV_DEVICE="cpu", CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
        env.pop("PYTHONPATH", None)
        return env

    def start(self, job_path, events):
        return subprocess.Popen([sys.executable, str(TRAIN)], env=self.env(job_path, events),
                                cwd=str(job_path.parent), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def run_script(self, job_path, events, timeout=120):
        return subprocess.run([sys.executable, str(TRAIN)], env=self.env(job_path, events),
                              cwd=str(job_path.parent), capture_output=True, text=True,
                              timeout=timeout)

    def check_epoch(self, line):
        self.assertEqual(line["type"], "epoch")
        for key in ("train_loss", "val_loss", "test_loss", "epoch_seconds"):
            self.assertTrue(math.isfinite(line[key]), key)
        for key in ("train_accuracy", "val_accuracy", "test_accuracy"):
            self.assertTrue(0.0 <= line[key] <= 1.0, key)
        confusion = line["confusion"]
        self.assertEqual(len(confusion), 3)
        self.assertEqual(sum(map(sum, confusion)), len(self.splits["test"]))
        right = sum(confusion[i][i] for i in range(3))
        self.assertAlmostEqual(line["test_accuracy"], right / len(self.splits["test"]))

    def test_trains_checkpoints_and_resumes(self):
        job_path, events = self.job_file("first")
        # The worker resumes from a copy of an epoch-1 checkpoint, which the
        # two-epoch run overwrites; a one-epoch run of the same job, started
        # beside it, keeps one.
        one_path, one_events = self.job_file("one", epochs=1)
        procs = [self.start(job_path, events), self.start(one_path, one_events)]
        try:
            results = [proc.communicate(timeout=120) for proc in procs]
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
        for proc, (_, stderr) in zip(procs, results):
            self.assertEqual(proc.returncode, 0, stderr)
        lines = read_events(events)
        self.assertEqual([(l["type"], l["epoch"]) for l in lines],
                         [("epoch", 1), ("checkpoint", 1), ("epoch", 2), ("checkpoint", 2)])
        for line in lines[::2]:
            self.check_epoch(line)
        ckpt = Path(lines[-1]["path"])
        self.assertTrue(ckpt.is_file())
        self.assertEqual(ckpt.parent, (self.root / "first" / "trainer").resolve())
        self.assertNotIn("result", [l["type"] for l in lines])

        one = read_events(one_events)
        self.assertEqual(one[0], dict(lines[0], epoch_seconds=one[0]["epoch_seconds"],
                                      samples_per_second=one[0]["samples_per_second"]))
        copy = self.root / "resume.pt"
        shutil.copy(one[-1]["path"], copy)

        resumed_path, resumed_events = self.job_file("resumed", resume=str(copy),
                                                     resume_epoch=1)
        done = self.run_script(resumed_path, resumed_events)
        self.assertEqual(done.returncode, 0, done.stderr)
        resumed = read_events(resumed_events)
        self.assertEqual([(l["type"], l["epoch"]) for l in resumed],
                         [("epoch", 2), ("checkpoint", 2)])
        self.check_epoch(resumed[0])
        # Same seed, same data order, same threads: epoch 2 after a resume is
        # the epoch 2 of the run that went straight through.
        for key in ("train_loss", "train_accuracy", "val_loss", "test_loss", "confusion"):
            self.assertEqual(resumed[0][key], lines[2][key], key)

    def test_sigterm_stops_after_a_reported_checkpoint(self):
        job_path, events = self.job_file("stop", epochs=10_000)
        proc = self.start(job_path, events)
        try:
            deadline = time.monotonic() + 60
            while not any(l["type"] == "checkpoint" for l in read_events(events)):
                self.assertIsNone(proc.poll(), "train.py ended early")
                self.assertLess(time.monotonic(), deadline, "no checkpoint within 60 s")
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        self.assertEqual(proc.returncode, 0, stderr)
        self.assertIn("stop requested", stderr)
        lines = read_events(events)
        epochs = [l["epoch"] for l in lines if l["type"] == "epoch"]
        checkpoints = [l for l in lines if l["type"] == "checkpoint"]
        self.assertLess(len(epochs), 10_000)
        self.assertEqual(epochs, list(range(1, len(epochs) + 1)))
        self.assertEqual(lines[-1]["type"], "checkpoint")
        self.assertEqual(checkpoints[-1]["epoch"], epochs[-1])
        import torch

        state = torch.load(checkpoints[-1]["path"], weights_only=True)
        self.assertEqual(state["epoch"], epochs[-1])

    def test_refuses_a_job_without_frames(self):
        job_path, events = self.job_file("noframes", frames=None)
        for s in json.loads(job_path.read_text())["splits"]["train"]:
            self.assertIsNotNone(s["frames"])
        done = self.run_script(job_path, events)
        self.assertEqual(done.returncode, 2)
        self.assertIn("[trainer] frames = true", done.stderr)
        self.assertEqual(read_events(events), [])

    def test_refuses_an_unknown_param(self):
        job_path, events = self.job_file(
            "badparam", trainer={"name": "stbp-pytorch", "params": {"hiden": 8}})
        done = self.run_script(job_path, events)
        self.assertEqual(done.returncode, 2)
        self.assertIn("hiden", done.stderr)

    def test_refuses_bfloat16(self):
        job_path, events = self.job_file(
            "bf16", config={"training": {"precision": "bf16"}})
        done = self.run_script(job_path, events)
        self.assertEqual(done.returncode, 2)
        self.assertIn("config.training.precision = 'bf16'", done.stderr)
        self.assertEqual(read_events(events), [])


@unittest.skipUnless(HAVE, "numpy or torch is not installed")
@unittest.skipUnless(TRAIN.is_file(), "examples/pytorch-stbp/train.py is not in this tree")
class LifGradient(unittest.TestCase):
    """The script's LIF under autograd gives STBP's gradient through time as
    docs/semantics.md and worker/src/lif/through_time.rs write it out:
    delta_t = (g_t - delta_{t+1} tau u_t) m_t / a + delta_{t+1} tau (1 - o_t),
    m_t = [|u_t - vth| < a/2], delta_T = 0."""

    def test_matches_the_written_out_recurrence(self):
        import numpy as np
        import torch

        spec = importlib.util.spec_from_file_location("pytorch_stbp_train", TRAIN)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        tau, vth, a = 0.3, 0.3, 0.5
        lif = module.build(torch)(10, 10, 3, 4, (tau, vth, a)).lif
        rng = np.random.default_rng(11)
        steps = 7
        xs = rng.uniform(-0.2, 0.8, size=(steps, 5, 6))
        gs = rng.normal(size=(steps, 5, 6))
        x = torch.tensor(xs, requires_grad=True)
        out = lif(x)
        out.backward(torch.tensor(gs))

        u = np.zeros_like(xs)
        o = np.zeros_like(xs)
        for t in range(steps):
            u[t] = xs[t] if t == 0 else tau * u[t - 1] * (1 - o[t - 1]) + xs[t]
            o[t] = u[t] > vth
        m = (np.abs(u - vth) < a / 2).astype(np.float64)
        delta = np.zeros_like(xs)
        after = np.zeros_like(xs[0])
        for t in reversed(range(steps)):
            delta[t] = (gs[t] - after * tau * u[t]) * m[t] / a + after * tau * (1 - o[t])
            after = delta[t]
        np.testing.assert_array_equal(out.detach().numpy(), o)
        self.assertGreater(m.sum(), 10)  # the surrogate window is exercised
        np.testing.assert_allclose(x.grad.numpy(), delta, rtol=1e-12, atol=1e-12)


if __name__ == "__main__":
    unittest.main()
