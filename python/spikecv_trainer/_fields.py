"""Typed reads of the job file's fields, each failure a JobError naming the
file and the field."""

import numbers
from pathlib import Path

from .errors import JobError

_MISSING = object()


class Fields:
    """Reads fields of one JSON object of the job file at `path`, under the
    dotted prefix `where` (empty for the top level)."""

    def __init__(self, path, obj, where=""):
        self.path = path
        self.where = where
        if not isinstance(obj, dict):
            raise self.error(None, "expected an object, got {}".format(_kind(obj)))
        self.obj = obj

    def name(self, key):
        """The dotted name of `key` under this object."""
        if key is None:
            return self.where or "(top level)"
        if isinstance(key, int):
            return "{}[{}]".format(self.where, key)
        return "{}.{}".format(self.where, key) if self.where else key

    def error(self, key, what):
        """A JobError for field `key` of this object."""
        return JobError("job file {}: field {}: {}".format(self.path, self.name(key), what))

    def raw(self, key, *, optional=False):
        """The value of `key`; missing is an error unless `optional` (then
        None)."""
        value = self.obj.get(key, _MISSING)
        if value is _MISSING:
            if optional:
                return None
            raise self.error(key, "missing")
        return value

    def sub(self, key, *, nullable=False):
        """The object under `key` as Fields (None when null and `nullable`)."""
        value = self.raw(key)
        if value is None and nullable:
            return None
        return Fields(self.path, value, self.name(key))

    def string(self, key, *, nullable=False, non_empty=True):
        """A string field."""
        value = self.raw(key)
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            raise self.error(key, "expected a string, got {}".format(_kind(value)))
        if non_empty and not value:
            raise self.error(key, "expected a non-empty string")
        return value

    def integer(self, key, *, nullable=False, minimum=None):
        """An integer field (JSON booleans are refused)."""
        value = self.raw(key)
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, "expected an integer, got {}".format(_kind(value)))
        if minimum is not None and value < minimum:
            raise self.error(key, "expected at least {}, got {}".format(minimum, value))
        return value

    def array(self, key):
        """A list field."""
        value = self.raw(key)
        if not isinstance(value, list):
            raise self.error(key, "expected a list, got {}".format(_kind(value)))
        return value

    def obj_field(self, key):
        """An object field, as a plain dict."""
        value = self.raw(key)
        if not isinstance(value, dict):
            raise self.error(key, "expected an object, got {}".format(_kind(value)))
        return value

    def choice(self, key, allowed):
        """A string field that must be one of `allowed`."""
        value = self.string(key)
        if value not in allowed:
            raise self.error(
                key, "expected one of {}, got {!r}".format(", ".join(allowed), value)
            )
        return value

    def path_field(self, key, base, *, nullable=False):
        """A path field; a relative path is taken from `base` (the job file's
        folder)."""
        value = self.string(key, nullable=nullable)
        if value is None:
            return None
        p = Path(value)
        return p if p.is_absolute() else base / p


def _kind(value):
    """A short description of a JSON value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean ({})".format(str(value).lower())
    if isinstance(value, numbers.Number):
        return "a number ({!r})".format(value)
    if isinstance(value, str):
        return "a string ({!r})".format(value if len(value) <= 40 else value[:40] + "...")
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
