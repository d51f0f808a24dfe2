"""Fixtures of the distributed-optimizer tests."""

from __future__ import annotations

import pytest

from tests.mlbench_core.optim.common import save_digits


@pytest.fixture(scope="session")
def digits_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The digits split as a tensor file, made once per session for the rank processes."""
    return save_digits(tmp_path_factory.mktemp("digits") / "digits.pt")
