"""fetch() against a real HTTP server on 127.0.0.1: verification, retries, offline, locking."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from mlbench_core.data.download import ChecksumMismatch, DatasetUnavailable, fetch
from mlbench_core.data.sources import Source, fetch_source
from tests.conftest import free_port
from tests.mlbench_core.data.http_server import FileServer

BODY = os.urandom(200_000)
SHA = hashlib.sha256(BODY).hexdigest()
MD5 = hashlib.md5(BODY).hexdigest()


@pytest.fixture(autouse=True)
def _online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLBENCH_OFFLINE", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_downloads_verifies_and_stamps(tmp_path: Path) -> None:
    with FileServer({"/d/a.bin": BODY}) as server:
        got = fetch(server.url("/d/a.bin"), tmp_path, sha256=SHA, md5=MD5, size=len(BODY))
        assert got == tmp_path / "a.bin"
        assert got.read_bytes() == BODY
        # A second call finds the verified file and does not ask the server again.
        assert fetch(server.url("/d/a.bin"), tmp_path, sha256=SHA) == got
        assert server.gets["/d/a.bin"] == 1
    assert leftovers(tmp_path) == []


def test_sha256_mismatch_removes_the_download(tmp_path: Path) -> None:
    wrong = "0" * 64
    with FileServer({"/a.bin": BODY}) as server, pytest.raises(ChecksumMismatch) as err:
        fetch(server.url("/a.bin"), tmp_path, sha256=wrong)
    message = str(err.value)
    assert f"has sha256 {SHA}, expected {wrong}" in message and "removed" in message
    assert "\n" not in message
    assert not (tmp_path / "a.bin").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("md5", "size", "needle"),
    [("f" * 32, None, "has md5"), (None, len(BODY) + 1, f"has {len(BODY)} bytes")],
)
def test_md5_or_size_mismatch(
    tmp_path: Path, md5: str | None, size: int | None, needle: str
) -> None:
    with FileServer({"/a.bin": BODY}) as server, pytest.raises(ChecksumMismatch, match=needle):
        fetch(server.url("/a.bin"), tmp_path, sha256=None, md5=md5, size=size)
    assert not (tmp_path / "a.bin").exists()


def test_oversized_response_is_cut_off(tmp_path: Path) -> None:
    with (
        FileServer({"/a.bin": BODY}) as server,
        pytest.raises(DatasetUnavailable, match="more than"),
    ):
        fetch(server.url("/a.bin"), tmp_path, sha256=None, size=1000, attempts=1)
    assert list(tmp_path.glob("a.bin*")) == []


def test_no_sha256_warns_loudly_with_the_digest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with FileServer({"/a.bin": BODY}) as server, caplog.at_level(logging.WARNING):
        fetch(server.url("/a.bin"), tmp_path, sha256=None, md5=MD5)
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert "UNVERIFIED" in warning and "checked only md5" in warning and SHA in warning


def test_connection_refused_says_offline(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/cifar-10-python.tar.gz"  # nothing listens there
    with pytest.raises(DatasetUnavailable) as err:
        fetch(url, tmp_path / "cifar10", sha256=SHA, attempts=2, backoff_s=0.01)
    message = str(err.value)
    assert "\n" not in message
    assert "cifar-10-python.tar.gz" in message  # what is missing
    assert str(tmp_path / "cifar10") in message  # where it was looked for
    assert url in message and "offline" in message


def test_offline_env_forbids_downloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLBENCH_OFFLINE", "1")
    with FileServer({"/a.bin": BODY}) as server:
        with pytest.raises(DatasetUnavailable, match="MLBENCH_OFFLINE=1"):
            fetch(server.url("/a.bin"), tmp_path, sha256=SHA)
        assert server.gets["/a.bin"] == 0
        # A file already in place is still served offline.
        (tmp_path / "a.bin").write_bytes(BODY)
        assert fetch(server.url("/a.bin"), tmp_path, sha256=SHA).read_bytes() == BODY


def test_transient_errors_are_retried(tmp_path: Path) -> None:
    with FileServer({"/a.bin": BODY}) as server:
        server.failures["/a.bin"] = [503, 500]
        fetch(server.url("/a.bin"), tmp_path, sha256=SHA, attempts=3, backoff_s=0.01)
        assert server.gets["/a.bin"] == 3


def test_not_found_is_not_retried(tmp_path: Path) -> None:
    with FileServer({}) as server:
        with pytest.raises(DatasetUnavailable, match="HTTP 404"):
            fetch(server.url("/gone.zip"), tmp_path, sha256=SHA, attempts=4, backoff_s=0.01)
        assert server.gets["/gone.zip"] == 1


def test_wrong_file_in_place_is_reported_not_deleted(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"something else")
    with FileServer({"/a.bin": BODY}) as server:
        with pytest.raises(ChecksumMismatch, match="delete it to download it again"):
            fetch(server.url("/a.bin"), tmp_path, sha256=SHA)
        assert server.gets["/a.bin"] == 0
    assert (tmp_path / "a.bin").read_bytes() == b"something else"


def test_changed_file_is_verified_again(tmp_path: Path) -> None:
    with FileServer({"/a.bin": BODY}) as server:
        path = fetch(server.url("/a.bin"), tmp_path, sha256=SHA)
    path.write_bytes(BODY[:-1] + b"?")  # the stamp no longer matches size/mtime
    with pytest.raises(ChecksumMismatch):
        fetch("http://127.0.0.1:9/a.bin", tmp_path, sha256=SHA)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"sha256": "abc"}, "64 hex digits"),
        ({"sha256": None, "filename": "../x"}, "unsafe"),
        ({"sha256": None, "filename": ".hidden"}, "unsafe"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, str | None], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        fetch("http://127.0.0.1:9/a.bin", tmp_path, **kwargs)  # type: ignore[arg-type]


def test_fetch_source_uses_name_and_digests(tmp_path: Path) -> None:
    with FileServer({"/mirror/x": BODY}) as server:
        source = Source(server.url("/mirror/x"), "named.bin", sha256=SHA, md5=MD5, size=len(BODY))
        assert fetch_source(source, tmp_path).name == "named.bin"


def _fetch_in_child(url: str, dest: str, sha: str, go: Any) -> None:
    go.wait(60)  # all three call fetch at the same moment
    fetch(url, dest, sha256=sha)


def test_concurrent_processes_download_once(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    # Started together and slowed down, the three downloads would overlap: only the lock
    # can keep them to one request.
    with FileServer({"/big.bin": BODY}, chunk_delay_s=0.05) as server:
        url = server.url("/big.bin")
        args = (url, str(tmp_path), SHA, go)
        procs = [ctx.Process(target=_fetch_in_child, args=args) for _ in range(3)]
        for proc in procs:
            proc.start()
        go.set()
        for proc in procs:
            proc.join(timeout=120)
        assert [p.exitcode for p in procs] == [0, 0, 0]
        assert server.gets["/big.bin"] == 1
    assert (tmp_path / "big.bin").read_bytes() == BODY
    assert leftovers(tmp_path) == []
