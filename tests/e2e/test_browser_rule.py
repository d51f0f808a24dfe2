"""The missing-browser rule: skip on a developer's machine, fail in CI (as ``tests/pg.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import conftest


def test_missing_browser_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no Chromium"):
        conftest.unavailable("no Chromium found")


def test_missing_browser_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="no Chromium"):
        conftest.unavailable("no Chromium found")


def test_chromium_path_prefers_the_override(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "my-chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("MLBENCH_CHROMIUM", str(fake))
    assert conftest.chromium_path() == str(fake)


def test_a_wrong_override_means_no_browser(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLBENCH_CHROMIUM", str(tmp_path / "absent"))
    assert conftest.chromium_path() is None
