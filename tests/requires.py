"""What a test needs but this machine lacks (a server, a binary, root): one rule for all.

The README's test command must work on a fresh machine with only Python, where these may be
missing: there the test skips and says what is missing. CI (``CI`` set) provides them all in
``.ci/run``, so there a missing one is a defect that a skip would hide: the test fails.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(message: str) -> NoReturn:
    """Skip on a developer's machine, fail in CI; ``message`` says what is missing."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
