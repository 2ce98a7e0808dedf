"""The lines a script writes to the events file, and the checks made before
each is written."""

import math
import time
import unittest

from .support import TempCase, read_events

# A test confusion matrix for the 4 test samples of support.job_dict.
CONFUSION = [[1, 0, 1], [0, 1, 0], [0, 0, 1]]


class Epochs(TempCase):
    def test_an_epoch_line_is_written_and_flushed(self):
        job = self.job()
        record = job.report_epoch(1, 2.9, 0.1, val_loss=2.8, val_accuracy=0.5, test_loss=2.7,
                                  test_accuracy=0.75, confusion=CONFUSION, epoch_seconds=12.5,
                                  samples_per_second=70.1)
        lines = read_events(self.events)
        self.assertEqual(lines, [record])
        self.assertEqual(lines[0], {
            "type": "epoch", "epoch": 1, "train_loss": 2.9, "train_accuracy": 0.1,
            "val_loss": 2.8, "val_accuracy": 0.5, "test_loss": 2.7, "test_accuracy": 0.75,
            "confusion": CONFUSION, "epoch_seconds": 12.5, "samples_per_second": 70.1,
        })
        self.assertTrue(self.events.read_text().endswith("\n"))

    def test_lines_append_and_epochs_count_up(self):
        job = self.job()
        for e in (1, 2, 3):
            job.report_epoch(e, 1.0 / e, 0.5, val_loss=1.0, val_accuracy=0.5)
        self.assertEqual([r["epoch"] for r in read_events(self.events)], [1, 2, 3])
        self.assertEqual(job.next_epoch, 4)
        self.assertEqual(job.completed_epochs, 3)

    def test_test_figures_may_be_left_out(self):
        job = self.job()
        job.report_epoch(1, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5)
        line = read_events(self.events)[0]
        self.assertNotIn("test_loss", line)
        self.assertNotIn("confusion", line)
        self.assertNotIn("samples_per_second", line)

    def test_epoch_seconds_defaults_to_the_time_since_the_last_report(self):
        job = self.job()
        time.sleep(0.05)
        first = job.report_epoch(1, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5)
        second = job.report_epoch(2, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5)
        self.assertGreaterEqual(first["epoch_seconds"], 0.05)
        self.assertLess(second["epoch_seconds"], first["epoch_seconds"])
        self.assertGreaterEqual(second["epoch_seconds"], 0.0)

    def test_numpy_scalars_and_arrays_are_accepted(self):
        try:
            import numpy as np
        except ImportError:
            self.skipTest("numpy is not installed")
        job = self.job()
        job.report_epoch(np.int64(1), np.float32(0.25), np.float64(0.5),
                         val_loss=np.float32(1.5), val_accuracy=0.5, test_loss=1.0,
                         test_accuracy=0.5, confusion=np.array(CONFUSION, dtype=np.int64))
        line = read_events(self.events)[0]
        self.assertEqual(line["train_loss"], 0.25)
        self.assertEqual(line["confusion"], CONFUSION)

    def test_after_a_resume_epochs_start_after_the_resumed_one(self):
        job = self.job(resume=str(self.root / "r.pt"), resume_epoch=2)
        with self.assertRaises(ValueError) as e:
            job.report_epoch(1, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5)
        self.assertIn("expected 3", str(e.exception))
        job.report_epoch(3, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5)
        self.assertEqual([r["epoch"] for r in read_events(self.events)], [3])


class EpochChecks(TempCase):
    """Each refused report raises ValueError naming the field, and writes
    nothing."""

    def refused(self, job, field, *args, **kwargs):
        before = read_events(self.events)
        with self.assertRaises(ValueError) as e:
            job.report_epoch(*args, **kwargs)
        self.assertIn(field, str(e.exception))
        self.assertEqual(read_events(self.events), before)
        return str(e.exception)

    def test_non_finite_figures(self):
        job = self.job()
        self.refused(job, "train_loss", 1, math.nan, 0.5, val_loss=1.0, val_accuracy=0.5)
        self.refused(job, "val_loss", 1, 1.0, 0.5, val_loss=math.inf, val_accuracy=0.5)
        self.refused(job, "test_loss", 1, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5,
                     test_loss=-math.inf, test_accuracy=0.5)

    def test_not_a_number(self):
        job = self.job()
        self.refused(job, "train_accuracy", 1, 1.0, "0.5", val_loss=1.0, val_accuracy=0.5)
        self.refused(job, "train_accuracy", 1, 1.0, True, val_loss=1.0, val_accuracy=0.5)

    def test_accuracies_lie_in_0_1(self):
        job = self.job()
        self.refused(job, "train_accuracy", 1, 1.0, 1.5, val_loss=1.0, val_accuracy=0.5)
        self.refused(job, "val_accuracy", 1, 1.0, 0.5, val_loss=1.0, val_accuracy=-0.1)
        self.refused(job, "test_accuracy", 1, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5,
                     test_loss=1.0, test_accuracy=2.0)

    def test_epochs_without_gaps(self):
        job = self.job()
        self.refused(job, "epoch", 2, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5)
        self.refused(job, "epoch", 0, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5)
        self.refused(job, "epoch", 1.0, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5)
        job.report_epoch(1, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5)
        self.refused(job, "epoch", 1, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5)
        self.refused(job, "epoch", 3, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5)

    def test_no_epoch_beyond_the_jobs_epochs(self):
        job = self.job(epochs=1)
        job.report_epoch(1, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5)
        msg = self.refused(job, "epoch", 2, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5)
        self.assertIn("1 epochs", msg)

    def test_validation_required_under_train_val_test(self):
        job = self.job()
        msg = self.refused(job, "val_loss", 1, 1.0, 0.5, val_accuracy=0.5)
        self.assertIn("train-val-test", msg)
        self.refused(job, "val_accuracy", 1, 1.0, 0.5, val_loss=0.5)

    def test_validation_refused_under_other_protocols(self):
        for protocol in ("train-test", "official"):
            with self.subTest(protocol=protocol):
                job = self.job(protocol=protocol)
                msg = self.refused(job, "val_loss", 1, 1.0, 0.5, val_loss=1.0)
                self.assertIn(protocol, msg)
                self.refused(job, "val_accuracy", 1, 1.0, 0.5, val_accuracy=0.5)
                job.report_epoch(1, 1.0, 0.5)

    def test_test_figures_go_together(self):
        job = self.job()
        self.refused(job, "test_accuracy", 1, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5,
                     test_loss=1.0)

    def test_confusion_shape(self):
        job = self.job()
        kw = dict(val_loss=1.0, val_accuracy=0.5, test_loss=1.0, test_accuracy=0.5)
        msg = self.refused(job, "confusion", 1, 1.0, 0.5, confusion=[[4, 0], [0, 0]], **kw)
        self.assertIn("3 rows", msg)
        self.refused(job, "confusion[1]", 1, 1.0, 0.5, confusion=[[2, 0, 0], [2, 0], [0, 0, 0]],
                     **kw)

    def test_confusion_counts(self):
        job = self.job()
        kw = dict(val_loss=1.0, val_accuracy=0.5, test_loss=1.0, test_accuracy=0.5)
        self.refused(job, "confusion[0][1]", 1, 1.0, 0.5,
                     confusion=[[2, -1, 0], [0, 2, 0], [0, 0, 1]], **kw)
        self.refused(job, "confusion[2][2]", 1, 1.0, 0.5,
                     confusion=[[2, 0, 0], [0, 1, 0], [0, 0, 1.0]], **kw)
        msg = self.refused(job, "confusion", 1, 1.0, 0.5,
                           confusion=[[2, 0, 0], [0, 2, 0], [0, 0, 1]], **kw)
        self.assertIn("sum to 5", msg)
        self.assertIn("4 samples", msg)

    def test_confusion_needs_the_test_figures(self):
        job = self.job()
        self.refused(job, "confusion", 1, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5,
                     confusion=CONFUSION)


class Checkpoints(TempCase):
    def write(self, name="ckpt.pt", folder=None):
        folder = folder or self.root / "trainer"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_bytes(b"state")
        return path

    def test_a_checkpoint_line_carries_the_resolved_path(self):
        job = self.job()
        job.report_epoch(1, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5)
        path = self.write(folder=self.root / "trainer" / "sub")
        # A path with "..", relative parts resolved.
        roundabout = self.root / "trainer" / "sub" / ".." / "sub" / "ckpt.pt"
        record = job.save_checkpoint(roundabout, 1)
        self.assertEqual(read_events(self.events)[-1], record)
        self.assertEqual(record, {"type": "checkpoint", "epoch": 1,
                                  "path": str(path.resolve())})

    def test_refused_outside_the_checkpoint_dir(self):
        job = self.job()
        job.report_epoch(1, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5)
        elsewhere = self.write(folder=self.root / "elsewhere")
        with self.assertRaises(ValueError) as e:
            job.save_checkpoint(elsewhere, 1)
        self.assertIn("path", str(e.exception))
        self.assertIn("not under checkpoint_dir", str(e.exception))
        sneaky = self.root / "trainer" / ".." / "elsewhere" / "ckpt.pt"
        with self.assertRaises(ValueError):
            job.save_checkpoint(sneaky, 1)
        self.assertEqual(len(read_events(self.events)), 1)

    def test_refused_when_the_file_is_missing(self):
        job = self.job()
        job.report_epoch(1, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5)
        with self.assertRaises(ValueError) as e:
            job.save_checkpoint(self.root / "trainer" / "none.pt", 1)
        self.assertIn("does not exist", str(e.exception))

    def test_the_epoch_is_the_last_one_done(self):
        job = self.job()
        path = self.write()
        with self.assertRaises(ValueError) as e:
            job.save_checkpoint(path, 1)
        self.assertIn("no epoch has been reported", str(e.exception))
        job.report_epoch(1, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5)
        job.report_epoch(2, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5)
        with self.assertRaises(ValueError) as e:
            job.save_checkpoint(path, 1)
        self.assertIn("epoch", str(e.exception))
        self.assertIn("2", str(e.exception))
        job.save_checkpoint(path, 2)

    def test_after_a_resume_the_resumed_epoch_may_be_saved_again(self):
        job = self.job(resume=str(self.root / "r.pt"), resume_epoch=2)
        record = job.save_checkpoint(self.write(), 2)
        self.assertEqual(record["epoch"], 2)


class Finish(TempCase):
    FULL = dict(val_loss=1.0, val_accuracy=0.5, test_loss=1.2, test_accuracy=0.75,
                confusion=CONFUSION)

    def test_without_arguments_nothing_is_written(self):
        job = self.job()
        job.report_epoch(1, 1.0, 0.5, **self.FULL)
        self.assertIsNone(job.finish())
        self.assertEqual(len(read_events(self.events)), 1)

    def test_nothing_is_reported_after_finish(self):
        job = self.job()
        job.report_epoch(1, 1.0, 0.5, **self.FULL)
        job.finish()
        with self.assertRaises(RuntimeError):
            job.report_epoch(2, 1.0, 0.5, **self.FULL)
        with self.assertRaises(RuntimeError):
            job.finish()

    def test_without_epochs_finish_refuses(self):
        job = self.job()
        with self.assertRaises(ValueError) as e:
            job.finish()
        self.assertIn("no epoch", str(e.exception))

    def test_the_selected_epoch_must_carry_test_figures(self):
        job = self.job()
        job.report_epoch(1, 1.0, 0.5, val_loss=0.5, val_accuracy=0.5)  # lowest val loss
        job.report_epoch(2, 1.0, 0.5, **self.FULL)
        with self.assertRaises(ValueError) as e:
            job.finish()
        self.assertIn("epoch 1", str(e.exception))
        self.assertIn("confusion", str(e.exception))

    def test_train_test_selects_the_best_test_accuracy(self):
        job = self.job(protocol="train-test")
        job.report_epoch(1, 1.0, 0.5, test_loss=1.0, test_accuracy=0.5)
        job.report_epoch(2, 1.0, 0.5, test_loss=1.0, test_accuracy=0.75, confusion=CONFUSION)
        self.assertIsNone(job.finish())

    def test_official_selects_the_last_epoch(self):
        job = self.job(protocol="official")
        job.report_epoch(1, 1.0, 0.5, test_loss=1.0, test_accuracy=0.5, confusion=CONFUSION)
        job.report_epoch(2, 1.0, 0.5)
        with self.assertRaises(ValueError) as e:
            job.finish()
        self.assertIn("epoch 2", str(e.exception))

    def test_a_result_line(self):
        job = self.job()
        job.report_epoch(1, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5)
        job.report_epoch(2, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5)
        record = job.finish(best_epoch=2, **self.FULL)
        self.assertEqual(read_events(self.events)[-1], record)
        self.assertEqual(record, {"type": "result", "best_epoch": 2, "val_loss": 1.0,
                                  "val_accuracy": 0.5, "test_loss": 1.2, "test_accuracy": 0.75,
                                  "confusion": CONFUSION})

    def test_result_checks(self):
        job = self.job()
        job.report_epoch(1, 1.0, 0.5, val_loss=1.0, val_accuracy=0.5)
        cases = [
            ("confusion", dict(best_epoch=1, **dict(self.FULL, confusion=None))),
            ("best_epoch", dict(self.FULL)),
            ("best_epoch", dict(best_epoch=2, **self.FULL)),
            ("val_loss", dict(best_epoch=1, **dict(self.FULL, val_loss=None))),
            ("test_accuracy", dict(best_epoch=1, **dict(self.FULL, test_accuracy=1.5))),
            ("test_loss", dict(best_epoch=1, **dict(self.FULL, test_loss=math.nan))),
        ]
        for field, kwargs in cases:
            with self.subTest(field=field, kwargs=kwargs):
                with self.assertRaises(ValueError) as e:
                    job.finish(**kwargs)
                self.assertIn(field, str(e.exception))
        self.assertEqual(len(read_events(self.events)), 1)
        job.finish(best_epoch=1, **self.FULL)

    def test_result_refuses_validation_without_a_validation_set(self):
        job = self.job(protocol="train-test")
        job.report_epoch(1, 1.0, 0.5)
        with self.assertRaises(ValueError) as e:
            job.finish(best_epoch=1, **self.FULL)
        self.assertIn("val_loss", str(e.exception))


if __name__ == "__main__":
    unittest.main()
