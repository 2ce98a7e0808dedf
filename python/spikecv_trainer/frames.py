"""Decoding the ``.npy`` frames a worker exports (docs/trainers.md, "The job,
handed to the script") into the network input, float32 ``[2, X, Y, T]``.

numpy is imported here only when a file is decoded, so the rest of the helper
works without it.
"""

from dataclasses import dataclass
from typing import Tuple

from .errors import FramesError

#: Bin modes and the encoding each is exported in.
ENCODING_OF = {"OR": "bits", "SUM": "counts", "SUM_NORM": "counts"}


@dataclass(frozen=True)
class FrameSpec:
    """How the job's frames were binned and stored (the job file's
    ``frames`` object).

    Attributes:
        steps: T, the time windows kept per sample.
        dt_ms: the window length in milliseconds.
        bin_mode: ``"OR"``, ``"SUM"`` or ``"SUM_NORM"``.
        shape: the decoded shape ``(2, X, Y, T)``.
        encoding: ``"bits"`` (OR) or ``"counts"`` (SUM, SUM_NORM).
    """

    steps: int
    dt_ms: int
    bin_mode: str
    shape: Tuple[int, int, int, int]
    encoding: str

    @property
    def stored_shape(self):
        """The shape of the array in the file: ``(2, X, Y, ceil(T/8))`` for
        bits, ``(2, X, Y, T)`` for counts."""
        c, x, y, t = self.shape
        if self.encoding == "bits":
            return (c, x, y, (t + 7) // 8)
        return (c, x, y, t)


def numpy():
    """Imports numpy, or raises ImportError saying why the helper needs it."""
    try:
        import numpy as np
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "spikecv_trainer needs numpy to decode frames (pip install numpy): {}".format(e)
        ) from e
    return np


def decode(path, spec):
    """Loads the ``.npy`` file at `path` and returns its frames as a float32
    array of shape `spec.shape` = ``(2, X, Y, T)``.

    - bits: ``uint8`` ``(2, X, Y, ceil(T/8))``; the T bits of each pixel are
      unpacked little-endian along the last axis, giving 0.0 or 1.0.
    - counts: ``uint8``, ``uint16`` or ``uint32`` ``(2, X, Y, T)``, converted
      to float32;
      under SUM_NORM every value is divided (in float32) by the sample's
      largest count, and a sample without events stays all zeros.

    Raises FramesError naming the file when it is missing, unreadable, or of
    another dtype or shape.
    """
    np = numpy()
    try:
        stored = np.load(str(path), allow_pickle=False)
    except FileNotFoundError:
        raise FramesError("frames file {} does not exist".format(path)) from None
    except (OSError, ValueError) as e:
        raise FramesError("frames file {} cannot be read as .npy: {}".format(path, e)) from None
    if not isinstance(stored, np.ndarray):
        raise FramesError("frames file {} holds several arrays, not one".format(path))
    want = spec.stored_shape
    if spec.encoding == "bits":
        if stored.dtype != np.uint8:
            raise FramesError(
                "frames file {}: encoding bits wants dtype uint8, the file has {}".format(
                    path, stored.dtype
                )
            )
    elif stored.dtype not in (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.uint32)):
        raise FramesError(
            "frames file {}: encoding counts wants dtype uint8, uint16 or uint32, the file "
            "has {}".format(path, stored.dtype)
        )
    if tuple(stored.shape) != want:
        raise FramesError(
            "frames file {}: encoding {} of shape {} wants an array of shape {}, "
            "the file has {}".format(
                path, spec.encoding, list(spec.shape), list(want), list(stored.shape)
            )
        )
    if spec.encoding == "bits":
        bits = np.unpackbits(stored, axis=-1, count=spec.steps, bitorder="little")
        return bits.astype(np.float32)
    out = stored.astype(np.float32)
    if spec.bin_mode == "SUM_NORM":
        largest = out.max() if out.size else np.float32(0)
        if largest > 0:
            out /= np.float32(largest)
    return out
