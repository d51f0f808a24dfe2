"""Errors of the data layer: every message is one line a user can act on."""

from __future__ import annotations


class DatasetUnavailable(RuntimeError):
    """A data set is not on disk and could not be fetched (offline, refused, not found)."""


class ChecksumMismatch(DatasetUnavailable):
    """A file's bytes are not the published ones; the bad download was removed."""


class DataFormatError(ValueError):
    """A data file exists but is not in the expected format (shape, labels, line counts...)."""


def one_line(exc: BaseException) -> str:
    """An exception's text on one line (tarfile, for one, lists every method it tried)."""
    return " ".join(str(exc).split()) or type(exc).__name__
