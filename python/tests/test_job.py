"""Reading the job file: attributes, samples, and errors that name what is
wrong."""

import os

from spikecv_trainer import Job, JobError, Sample

from .support import CLASSES, TempCase, job_dict, write_job


class FromEnv(TempCase):
    def test_reads_the_files_named_by_the_variables(self):
        path = write_job(self.root, job_dict(self.root))
        os.environ["SPIKECV_JOB"] = str(path)
        os.environ["SPIKECV_EVENTS"] = str(self.events)
        job = Job.from_env()
        self.assertEqual(job.job_path, path)
        self.assertEqual(job.events_path, self.events)

    def test_missing_job_variable_is_named(self):
        os.environ.pop("SPIKECV_JOB", None)
        os.environ["SPIKECV_EVENTS"] = str(self.events)
        with self.assertRaises(JobError) as e:
            Job.from_env()
        self.assertIn("$SPIKECV_JOB", str(e.exception))
        self.assertIn("not set", str(e.exception))

    def test_empty_events_variable_is_named(self):
        os.environ["SPIKECV_JOB"] = str(write_job(self.root, job_dict(self.root)))
        os.environ["SPIKECV_EVENTS"] = ""
        with self.assertRaises(JobError) as e:
            Job.from_env()
        self.assertIn("$SPIKECV_EVENTS", str(e.exception))
        self.assertIn("empty", str(e.exception))

    def test_missing_file_is_named(self):
        missing = self.root / "nope.json"
        os.environ["SPIKECV_JOB"] = str(missing)
        os.environ["SPIKECV_EVENTS"] = str(self.events)
        with self.assertRaises(JobError) as e:
            Job.from_env()
        self.assertIn(str(missing), str(e.exception))


class Attributes(TempCase):
    def test_fields_become_attributes(self):
        job = self.job()
        self.assertEqual(job.id, "8407b358d3444d6e")
        self.assertEqual(job.attempt, "a-12")
        self.assertEqual(job.variant, "whole")
        self.assertEqual(job.seed, 3)
        self.assertEqual(job.fold, 1)
        self.assertEqual(job.protocol, "train-val-test")
        self.assertEqual(job.config, {"training": {"lr": 0.001, "batch": 8}})
        self.assertEqual(job.params, {"hidden": 128})
        self.assertEqual(job.trainer_name, "stbp-pytorch")
        self.assertEqual(job.trainer_sha256, "ab" * 32)
        self.assertEqual(job.classes, CLASSES)
        self.assertEqual(job.epochs, 5)
        self.assertEqual(job.device, "cpu")
        self.assertEqual(job.checkpoint_dir, self.root / "trainer")
        self.assertIsNone(job.resume_path)
        self.assertIsNone(job.resume_epoch)
        self.assertFalse(job.has_frames)
        self.assertIsNone(job.frames_spec)
        self.assertEqual(job.next_epoch, 1)
        self.assertEqual(job.completed_epochs, 0)

    def test_resume_attributes(self):
        ckpt = self.root / "resume.pt"
        job = self.job(resume=str(ckpt), resume_epoch=2)
        self.assertEqual(job.resume_path, ckpt)
        self.assertEqual(job.resume_epoch, 2)
        self.assertEqual(job.next_epoch, 3)
        self.assertEqual(job.completed_epochs, 2)

    def test_relative_paths_are_taken_from_the_job_files_folder(self):
        job = self.job(checkpoint_dir="trainer", resume="ck/r.pt", resume_epoch=1)
        self.assertEqual(job.checkpoint_dir, self.root / "trainer")
        self.assertEqual(job.resume_path, self.root / "ck" / "r.pt")

    def test_samples_per_split(self):
        job = self.job()
        train = job.samples("train")
        self.assertEqual(len(train), 6)
        self.assertEqual(len(job.samples("val")), 2)
        self.assertEqual(len(job.samples("test")), 4)
        first = train[0]
        self.assertIsInstance(first, Sample)
        self.assertEqual(first.name, "user01_a_00")
        self.assertEqual(first.recording, "/data/recordings/user01_a.aedat")
        self.assertEqual((first.start_us, first.end_us), (1000, 950000))
        self.assertEqual([s.label for s in train], [0, 1, 2, 0, 1, 2])
        self.assertIsNone(first.frames_path)
        # A copy: changing it leaves the job's list alone.
        train.clear()
        self.assertEqual(len(job.samples("train")), 6)

    def test_samples_of_files_of_their_own(self):
        d = job_dict(self.root)
        d["splits"]["test"][0].update(recording=None, start_us=None, end_us=None)
        job = Job.from_file(write_job(self.root, d), self.events)
        s = job.samples("test")[0]
        self.assertEqual((s.recording, s.start_us, s.end_us), (None, None, None))

    def test_unknown_split_is_refused(self):
        job = self.job()
        with self.assertRaises(ValueError) as e:
            job.samples("dev")
        self.assertIn("'dev'", str(e.exception))
        self.assertIn("train, val, test", str(e.exception))

    def test_null_fold_is_kept(self):
        self.assertIsNone(self.job(fold=None).fold)


class Malformed(TempCase):
    def load(self, job):
        return Job.from_file(write_job(self.root, job), self.events)

    def refused(self, job, *words):
        with self.assertRaises(JobError) as e:
            self.load(job)
        message = str(e.exception)
        self.assertIn(str(self.root / "job.json"), message)
        for w in words:
            self.assertIn(w, message)
        return message

    def test_not_json(self):
        (self.root / "job.json").write_text("{\"format\": 1,", encoding="utf-8")
        with self.assertRaises(JobError) as e:
            Job.from_file(self.root / "job.json", self.events)
        self.assertIn("not valid JSON", str(e.exception))
        self.assertIn(str(self.root / "job.json"), str(e.exception))

    def test_other_format(self):
        self.refused(job_dict(self.root, format=2), "field format", "format 1", "has 2")

    def test_missing_field(self):
        d = job_dict(self.root)
        del d["classes"]
        self.refused(d, "field classes", "missing")

    def test_wrong_type(self):
        self.refused(job_dict(self.root, epochs="30"), "field epochs", "integer")

    def test_boolean_is_not_an_integer(self):
        self.refused(job_dict(self.root, seed=True), "field seed", "boolean")

    def test_bad_device(self):
        self.refused(job_dict(self.root, device="tpu"), "field device", "'tpu'")

    def test_sample_field_is_named_with_its_index(self):
        d = job_dict(self.root)
        d["splits"]["train"][3]["label"] = "dog"
        self.refused(d, "field splits.train[3].label", "integer")

    def test_label_beyond_the_classes(self):
        d = job_dict(self.root)
        d["splits"]["val"][1]["label"] = 3
        self.refused(d, "field splits.val[1].label", "3 classes")

    def test_missing_split(self):
        d = job_dict(self.root)
        del d["splits"]["val"]
        self.refused(d, "field splits.val", "missing")

    def test_missing_trainer_params(self):
        d = job_dict(self.root)
        del d["trainer"]["params"]
        self.refused(d, "field trainer.params", "missing")

    def test_resume_without_its_epoch(self):
        self.refused(
            job_dict(self.root, resume="/x/ckpt.pt"), "field resume_epoch", "both null or both set"
        )

    def test_resume_epoch_beyond_the_epochs(self):
        self.refused(
            job_dict(self.root, resume="/x/c.pt", resume_epoch=6), "field resume_epoch", "5 epochs"
        )

    def test_frames_encoding_must_match_the_bin_mode(self):
        frames = {"steps": 4, "dt_ms": 30, "bin_mode": "OR", "shape": [2, 8, 8, 4],
                  "encoding": "counts"}
        self.refused(job_dict(self.root, frames=frames), "field frames.encoding", "bits")

    def test_frames_shape_must_end_in_the_steps(self):
        frames = {"steps": 4, "dt_ms": 30, "bin_mode": "SUM", "shape": [2, 8, 8, 5],
                  "encoding": "counts"}
        self.refused(job_dict(self.root, frames=frames), "field frames.shape[3]", "steps = 4")

    def test_frames_need_a_file_per_sample(self):
        frames = {"steps": 4, "dt_ms": 30, "bin_mode": "SUM", "shape": [2, 8, 8, 4],
                  "encoding": "counts"}
        self.refused(job_dict(self.root, frames=frames), "field splits.train[0].frames")


if __name__ == "__main__":
    import unittest

    unittest.main()
