"""Checks on the figures a script reports, each failure a ValueError naming
the field (docs/trainers.md, "What the script says back")."""

import math
import numbers


def number(field, value, *, accuracy=False, non_negative=False):
    """`value` as a finite float; accuracies must lie in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError("{}: expected a number, got {!r}".format(field, value))
    v = float(value)
    if not math.isfinite(v):
        raise ValueError("{}: must be finite, got {!r}".format(field, v))
    if accuracy and not 0.0 <= v <= 1.0:
        raise ValueError("{}: an accuracy must lie in [0, 1], got {!r}".format(field, v))
    if non_negative and v < 0.0:
        raise ValueError("{}: must not be negative, got {!r}".format(field, v))
    return v


def integer(field, value):
    """`value` as an int (booleans refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError("{}: expected an integer, got {!r}".format(field, value))
    return int(value)


def confusion(field, value, classes, total):
    """`value` as a ``classes × classes`` list of lists of non-negative ints
    summing to `total` (the test set's size). numpy arrays (anything with
    ``tolist``) are accepted."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise ValueError(
            "{}: expected a {}x{} list of lists, got {!r}".format(field, classes, classes, value)
        )
    if len(value) != classes:
        raise ValueError(
            "{}: expected {} rows (one per class), got {}".format(field, classes, len(value))
        )
    rows = []
    for i, row in enumerate(value):
        if not isinstance(row, (list, tuple)) or len(row) != classes:
            raise ValueError(
                "{}[{}]: expected a row of {} counts, got {!r}".format(field, i, classes, row)
            )
        out = []
        for j, cell in enumerate(row):
            if isinstance(cell, bool) or not isinstance(cell, numbers.Integral) or cell < 0:
                raise ValueError(
                    "{}[{}][{}]: expected a non-negative integer, got {!r}".format(
                        field, i, j, cell
                    )
                )
            out.append(int(cell))
        rows.append(out)
    summed = sum(map(sum, rows))
    if summed != total:
        raise ValueError(
            "{}: the counts sum to {}, the test set has {} samples".format(field, summed, total)
        )
    return rows
