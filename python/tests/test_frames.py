"""Decoding exported frames. The files are written with numpy's own
np.packbits / np.save, and the expected values come from numpy, not from the
helper."""

import unittest

from spikecv_trainer import FramesError

from .support import TempCase, job_dict, write_job

try:
    import numpy as np
except ImportError:  # pragma: no cover - depends on the environment
    np = None


def frames_spec(mode, x, y, t):
    return {
        "steps": t,
        "dt_ms": 30,
        "bin_mode": mode,
        "shape": [2, x, y, t],
        "encoding": "bits" if mode == "OR" else "counts",
    }


@unittest.skipIf(np is None, "numpy is not installed")
class Decoding(TempCase):
    def make(self, mode, arrays, x, y, t, labels=None):
        """A job whose test split has one sample per stored array (written
        as given); returns the Job."""
        from spikecv_trainer import Job

        d = job_dict(self.root, frames=frames_spec(mode, x, y, t))
        samples = []
        for i, stored in enumerate(arrays):
            path = self.root / "s{}.npy".format(i)
            np.save(path, stored)
            label = labels[i] if labels else i % 3
            samples.append({"name": "u_{}".format(i), "recording": None, "start_us": None,
                            "end_us": None, "label": label, "frames": str(path)})
        for split in ("train", "val"):
            for s in d["splits"][split]:
                s["frames"] = str(self.root / "unused.npy")
        d["splits"]["test"] = samples
        return Job.from_file(write_job(self.root, d), self.events)

    def test_or_bits_unpack_little_endian(self):
        rng = np.random.default_rng(1)
        for t in (1, 5, 8, 12, 50):
            with self.subTest(t=t):
                bits = (rng.random((2, 6, 7, t)) < 0.3).astype(np.uint8)
                packed = np.packbits(bits, axis=-1, bitorder="little")
                job = self.make("OR", [packed], 6, 7, t)
                got = job.load_frames(job.samples("test")[0])
                self.assertEqual(got.dtype, np.float32)
                self.assertEqual(got.shape, (2, 6, 7, t))
                np.testing.assert_array_equal(got, bits.astype(np.float32))

    def test_one_bit_lands_on_its_window(self):
        bits = np.zeros((2, 3, 3, 10), dtype=np.uint8)
        bits[1, 2, 0, 9] = 1
        job = self.make("OR", [np.packbits(bits, axis=-1, bitorder="little")], 3, 3, 10)
        got = job.load_frames(job.samples("test")[0])
        self.assertEqual(got.sum(), 1.0)
        self.assertEqual(got[1, 2, 0, 9], 1.0)

    def test_sum_counts_uint8_uint16_and_uint32(self):
        rng = np.random.default_rng(2)
        small = rng.integers(0, 200, size=(2, 4, 5, 6), dtype=np.uint8)
        large = rng.integers(0, 3000, size=(2, 4, 5, 6), dtype=np.uint16)
        huge = rng.integers(0, 70000, size=(2, 4, 5, 6), dtype=np.uint32)
        job = self.make("SUM", [small, large, huge], 4, 5, 6)
        a, b, c = job.samples("test")
        np.testing.assert_array_equal(job.load_frames(a), small.astype(np.float32))
        np.testing.assert_array_equal(job.load_frames(b), large.astype(np.float32))
        np.testing.assert_array_equal(job.load_frames(c), huge.astype(np.float32))
        self.assertEqual(job.load_frames(b).dtype, np.float32)

    def test_sum_norm_divides_by_the_samples_largest_count(self):
        rng = np.random.default_rng(3)
        counts = rng.integers(0, 7, size=(2, 4, 4, 3), dtype=np.uint8)
        other = rng.integers(0, 1000, size=(2, 4, 4, 3), dtype=np.uint16)
        empty = np.zeros((2, 4, 4, 3), dtype=np.uint8)
        job = self.make("SUM_NORM", [counts, other, empty], 4, 4, 3)
        a, b, c = job.samples("test")
        for s, stored in ((a, counts), (b, other)):
            want = stored.astype(np.float32) / np.float32(stored.max())
            got = job.load_frames(s)
            self.assertEqual(got.dtype, np.float32)
            np.testing.assert_array_equal(got, want)
            self.assertEqual(got.max(), 1.0)
        zeros = job.load_frames(c)
        np.testing.assert_array_equal(zeros, np.zeros((2, 4, 4, 3), dtype=np.float32))
        self.assertFalse(np.isnan(zeros).any())

    def test_batch_stacks_frames_and_labels(self):
        rng = np.random.default_rng(4)
        stored = [rng.integers(0, 9, size=(2, 3, 3, 4), dtype=np.uint8) for _ in range(3)]
        job = self.make("SUM", stored, 3, 3, 4, labels=[2, 0, 1])
        xs, labels = job.frames_batch(job.samples("test"))
        self.assertEqual(xs.shape, (3, 2, 3, 3, 4))
        self.assertEqual(xs.dtype, np.float32)
        np.testing.assert_array_equal(xs, np.stack(stored).astype(np.float32))
        np.testing.assert_array_equal(labels, np.array([2, 0, 1]))
        self.assertEqual(labels.dtype, np.int64)

    def test_frames_iterates_a_split_in_order(self):
        stored = [np.full((2, 2, 2, 3), i, dtype=np.uint8) for i in range(3)]
        job = self.make("SUM", stored, 2, 2, 3)
        seen = [(s.name, float(f[0, 0, 0, 0])) for s, f in job.frames("test")]
        self.assertEqual(seen, [("u_0", 0.0), ("u_1", 1.0), ("u_2", 2.0)])
        with self.assertRaises(ValueError):
            job.frames("dev")

    def test_wrong_shape_names_the_file(self):
        packed = np.zeros((2, 4, 4, 2), dtype=np.uint8)  # T = 4 needs 1 byte, not 2
        job = self.make("OR", [packed], 4, 4, 4)
        s = job.samples("test")[0]
        with self.assertRaises(FramesError) as e:
            job.load_frames(s)
        self.assertIn(str(s.frames_path), str(e.exception))
        self.assertIn("[2, 4, 4, 1]", str(e.exception))

    def test_wrong_dtype_names_the_file(self):
        job = self.make("SUM", [np.zeros((2, 2, 2, 3), dtype=np.float32)], 2, 2, 3)
        s = job.samples("test")[0]
        with self.assertRaises(FramesError) as e:
            job.load_frames(s)
        self.assertIn(str(s.frames_path), str(e.exception))
        self.assertIn("float32", str(e.exception))

    def test_missing_file_names_it(self):
        job = self.make("SUM", [np.zeros((2, 2, 2, 3), dtype=np.uint8)], 2, 2, 3)
        s = job.samples("train")[0]
        with self.assertRaises(FramesError) as e:
            job.load_frames(s)
        self.assertIn(str(self.root / "unused.npy"), str(e.exception))
        self.assertIn("does not exist", str(e.exception))


class NoFrames(TempCase):
    def test_a_job_without_frames_says_what_to_set(self):
        job = self.job()
        for call in (lambda: job.load_frames(job.samples("train")[0]),
                     lambda: job.frames("train"),
                     lambda: job.frames_batch(job.samples("train"))):
            with self.assertRaises(FramesError) as e:
                call()
            self.assertIn("[trainer] frames = true", str(e.exception))


if __name__ == "__main__":
    unittest.main()
