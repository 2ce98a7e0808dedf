"""The exceptions the helper raises.

Both derive from :class:`ValueError`, so a script that only wants to stop on
bad input can catch that; their messages name the variable, file or field
that is wrong.
"""


class JobError(ValueError):
    """The job cannot be read: an environment variable is missing, the job
    file is unreadable or not JSON, or one of its fields is missing or has the
    wrong type or value. The message names the variable, the file and the
    field (dotted, with list indices: ``splits.train[3].label``)."""


class FramesError(ValueError):
    """A sample's frames cannot be given: the job has no frames (the
    experiment lacks ``[trainer] frames = true``), or a ``.npy`` file is
    missing, unreadable, or of another type or shape than the job file
    announces. The message names the file."""
