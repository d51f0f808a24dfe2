"""Errors of the data layer: every message is one line a user can act on."""

from __future__ import annotations


class DatasetUnavailable(RuntimeError):
    """A data set is not on disk and could not be fetched (offline, refused, not found)."""


class ChecksumMismatch(DatasetUnavailable):
    """A file's bytes are not the published ones; the bad download was removed."""


class DataFormatError(ValueError):
    """A data file exists but is not in the expected format (shape, labels, line counts...)."""
