"""Fetch a data file once per machine: streamed, verified, renamed into place under a lock.

Every worker of a run calls :func:`fetch` for the same file at the same time; a
``filelock.FileLock`` next to the file makes one of them download while the others wait and then
find the verified file. The bytes stream into a temporary file in the same directory and are
renamed into place only once their digest matches, so the final name never holds a partial or
wrong file. Transient failures (connection errors, timeouts, HTTP 5xx/429) are retried with
exponential backoff; a download restarts from the first byte (servers of these archives are not
relied on for ranges).
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
from filelock import FileLock, Timeout
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from mlbench_core import __version__
from mlbench_core.data.archive import extract
from mlbench_core.data.errors import ChecksumMismatch, DatasetUnavailable, one_line

__all__ = ["OFFLINE_ENV", "ChecksumMismatch", "DatasetUnavailable", "extract", "fetch", "offline"]

OFFLINE_ENV = "MLBENCH_OFFLINE"
_CHUNK = 1 << 20
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_HEX = re.compile(r"^[0-9a-f]+$")
log = logging.getLogger(__name__)


def offline() -> bool:
    """True when ``MLBENCH_OFFLINE`` forbids downloads (1/true/yes/on)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def fetch(
    url: str,
    dest_dir: str | os.PathLike[str],
    *,
    sha256: str | None,
    filename: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    attempts: int = 4,
    backoff_s: float = 1.0,
    timeout_s: float = 60.0,
    lock_timeout_s: float = 6 * 3600.0,
) -> Path:
    """``dest_dir/filename`` with the published bytes of ``url``, downloading it if missing.

    ``sha256`` is required as an argument so that every caller decides explicitly; ``None``
    falls back to ``md5`` and/or ``size`` (and a loud warning that the file is not verified by
    a strong hash). A file already in place is verified once and remembered by a small
    ``.<name>.verified`` stamp (size + mtime), so later calls do not rehash gigabytes.
    Raises :class:`DatasetUnavailable` (missing and not downloadable) or
    :class:`ChecksumMismatch` (wrong bytes).
    """
    name = filename or _name_from_url(url)
    _check_filename(name)
    sha256 = _check_hex(sha256, 64, "sha256")
    md5 = _check_hex(md5, 32, "md5")
    if size is not None and size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    folder = Path(dest_dir)
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / name
    lock = FileLock(str(folder / f".{name}.lock"), timeout=lock_timeout_s)
    try:
        with lock:
            if dest.exists():
                _verify_in_place(dest, url, sha256, md5, size)
                return dest
            if offline():
                raise DatasetUnavailable(
                    f"{name} is not in {folder} and downloads are disabled ({OFFLINE_ENV}=1): "
                    f"copy it there from {url}"
                )
            _remove_stale_parts(folder, name)
            _download(url, dest, sha256, md5, size, attempts, backoff_s, timeout_s)
    except Timeout:
        raise DatasetUnavailable(
            f"{name}: another process held {lock.lock_file} for over {lock_timeout_s:.0f} s; "
            "remove the lock file if no download is running"
        ) from None
    return dest


def _download(
    url: str,
    dest: Path,
    sha256: str | None,
    md5: str | None,
    size: int | None,
    attempts: int,
    backoff_s: float,
    timeout_s: float,
) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        retrying = Retrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=backoff_s, max=60),
            retry=retry_if_exception(_is_transient),
            reraise=True,
        )
        headers = {"User-Agent": f"mlbench/{__version__} (dataset download)"}
        with httpx.Client(
            follow_redirects=True, timeout=httpx.Timeout(timeout_s), headers=headers
        ) as client:
            try:
                for attempt in retrying:
                    with attempt:
                        got_sha, got_md5, got_size = _stream_once(client, url, tmp, size)
            except (httpx.HTTPError, _TooLarge) as exc:
                raise DatasetUnavailable(_failure_line(dest, url, exc)) from exc
        _check_digests(url, sha256, md5, size, got_sha, got_md5, got_size, removed=True)
        os.replace(tmp, dest)
        _stamp(dest, got_sha, got_md5)
        if sha256 is None:
            log.info("downloaded %s (sha256 %s)", dest, got_sha)
    finally:
        tmp.unlink(missing_ok=True)


class _TooLarge(Exception):
    """The server sent more bytes than the published size: not the expected file."""


def _stream_once(
    client: httpx.Client, url: str, tmp: Path, size: int | None
) -> tuple[str, str, int]:
    """One full GET into ``tmp`` (truncated first); returns (sha256, md5, bytes)."""
    sha, md = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    count = 0
    with client.stream("GET", url) as response, tmp.open("wb") as out:
        response.raise_for_status()
        for chunk in response.iter_bytes(_CHUNK):
            count += len(chunk)
            if size is not None and count > size:
                raise _TooLarge(f"more than the published {size} bytes")
            out.write(chunk)
            sha.update(chunk)
            md.update(chunk)
        out.flush()
        os.fsync(out.fileno())  # the rename must never expose bytes still in flight
    return sha.hexdigest(), md.hexdigest(), count


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in _TRANSIENT_STATUS
    return isinstance(exc, httpx.TransportError)


def _failure_line(dest: Path, url: str, exc: BaseException) -> str:
    where = f"{dest.name} is not in {dest.parent} and downloading it from {url} failed"
    if isinstance(exc, httpx.ConnectError):
        return (
            f"{where}: cannot connect ({one_line(exc)}); this machine appears to be offline - "
            f"copy {dest.name} into {dest.parent} by hand"
        )
    if isinstance(exc, httpx.HTTPStatusError):
        return f"{where}: the server answered HTTP {exc.response.status_code}"
    return f"{where}: {type(exc).__name__}: {one_line(exc)}"


def _verify_in_place(
    dest: Path, url: str, sha256: str | None, md5: str | None, size: int | None
) -> None:
    stat = dest.stat()
    stamp = _read_stamp(dest)
    if (
        stamp is not None
        and stamp.get("size") == stat.st_size
        and stamp.get("mtime_ns") == stat.st_mtime_ns
        and (sha256 is None or stamp.get("sha256") == sha256)
        and (md5 is None or stamp.get("md5") == md5)
    ):
        return
    got_sha, got_md5, got_size = _hash_file(dest)
    # A file in place was put there by a person or by an earlier verified download; never
    # delete it: say what is wrong and let its owner decide.
    _check_digests(url, sha256, md5, size, got_sha, got_md5, got_size, removed=False, path=dest)
    _stamp(dest, got_sha, got_md5)


def _check_digests(
    url: str,
    sha256: str | None,
    md5: str | None,
    size: int | None,
    got_sha: str,
    got_md5: str,
    got_size: int,
    *,
    removed: bool,
    path: Path | None = None,
) -> None:
    what = f"the download of {url}" if path is None else f"{path}"
    fix = "; the file was removed" if removed else "; delete it to download it again"
    if sha256 is not None and got_sha != sha256:
        raise ChecksumMismatch(f"{what} has sha256 {got_sha}, expected {sha256}{fix}")
    if md5 is not None and got_md5 != md5:
        raise ChecksumMismatch(f"{what} has md5 {got_md5}, expected {md5}{fix}")
    if size is not None and got_size != size:
        raise ChecksumMismatch(f"{what} has {got_size} bytes, expected {size}{fix}")
    if sha256 is None:
        checks = " and ".join(c for c, v in (("md5", md5), ("size", size)) if v is not None)
        log.warning(
            "UNVERIFIED: %s has no published sha256; checked only %s; its sha256 is %s",
            what,
            checks or "nothing",
            got_sha,
        )


def _hash_file(path: Path) -> tuple[str, str, int]:
    sha, md = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    count = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
            md.update(chunk)
            count += len(chunk)
    return sha.hexdigest(), md.hexdigest(), count


def _stamp_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.verified")


def _stamp(dest: Path, sha256: str, md5: str) -> None:
    stat = dest.stat()
    record = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256, "md5": md5}
    _stamp_path(dest).write_text(json.dumps(record))


def _read_stamp(dest: Path) -> dict[str, object] | None:
    try:
        data = json.loads(_stamp_path(dest).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _remove_stale_parts(folder: Path, name: str) -> None:
    # Only the lock holder downloads, so any .part file left is from a killed process.
    for part in folder.glob(f".{glob.escape(name)}.*.part"):
        part.unlink(missing_ok=True)


def _name_from_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise ValueError(f"only http(s) URLs can be fetched, got {url!r}")
    name = unquote(parts.path.rsplit("/", 1)[-1])
    if not name:
        raise ValueError(f"cannot take a file name from {url!r}; pass filename=")
    return name


def _check_filename(name: str) -> None:
    if name in {".", ".."} or "/" in name or "\\" in name or "\0" in name or name.startswith("."):
        raise ValueError(f"unsafe download file name {name!r}")


def _check_hex(value: str | None, length: int, what: str) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if len(value) != length or not _HEX.match(value):
        raise ValueError(f"{what} must be {length} hex digits, got {value!r}")
    return value
