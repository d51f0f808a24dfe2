"""Fixtures shared by every test folder."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests import leaks
from tests.pg import fresh_database

_TOKEN = pytest.StashKey[str]()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """URL of an empty database on the real PostgreSQL server (skips where none runs)."""
    with fresh_database() as url:
        yield url


_LEAKS: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_TOKEN] = leaks.mark_session()


@pytest.fixture(scope="module", autouse=True)
def _no_leaked_processes(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each module (tests/leaks.py): kill what it orphaned, and remember it."""
    yield
    token = request.config.stash[_TOKEN]
    for line in leaks.reap(leaks.orphans(token)):
        _LEAKS.append(f"{request.module.__name__}: {line}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _LEAKS:
        terminalreporter.section("processes left running (killed)", red=True)
        for line in _LEAKS:
            terminalreporter.line(line)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _LEAKS and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
