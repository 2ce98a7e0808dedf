"""SIGTERM from the worker turns into should_stop()."""

import os
import signal
import unittest

from .support import TempCase


@unittest.skipUnless(hasattr(signal, "SIGTERM") and hasattr(os, "kill"), "no SIGTERM here")
class Stop(TempCase):
    def test_sigterm_sets_should_stop(self):
        job = self.job()
        self.assertFalse(job.should_stop())
        self.assertFalse(job.stop_requested)
        os.kill(os.getpid(), signal.SIGTERM)
        # The Python-level handler runs at the next bytecode boundary of the
        # main thread, i.e. right away here.
        self.assertTrue(job.should_stop())
        self.assertTrue(job.stop_requested)

    def test_the_handler_is_installed_when_the_job_is_created(self):
        before = signal.getsignal(signal.SIGTERM)
        job = self.job()
        self.assertIsNot(signal.getsignal(signal.SIGTERM), before)
        self.assertEqual(signal.getsignal(signal.SIGTERM), job._on_sigterm)

    def test_no_handler_when_asked_not_to(self):
        from spikecv_trainer import Job

        from .support import job_dict, write_job

        before = signal.getsignal(signal.SIGTERM)
        job = Job.from_file(write_job(self.root, job_dict(self.root)), self.events,
                            handle_sigterm=False)
        self.assertEqual(signal.getsignal(signal.SIGTERM), before)
        self.assertFalse(job.should_stop())


if __name__ == "__main__":
    unittest.main()
