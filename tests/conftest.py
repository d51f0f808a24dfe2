"""Fixtures shared by every test folder."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.pg import fresh_database


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """URL of an empty database on the real PostgreSQL server (skips where none runs)."""
    with fresh_database() as url:
        yield url
