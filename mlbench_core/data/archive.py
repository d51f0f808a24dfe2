"""Safe, atomic extraction of downloaded archives (.tar, .tar.gz/.tgz, .tar.bz2, .zip, .bz2).

An archive is untrusted input even after its checksum matched (a checksum pins bytes, it does
not vouch for them), so every member is checked before it is written: no absolute paths, no
``..`` components, no symbolic or hard links, no devices or FIFOs. Tar members additionally go
through tarfile's ``filter="data"``, a second, independent line of defence. Members land in a
temporary directory next to ``dest`` that is renamed to ``dest`` only after everything was
written and a marker file was added: a crash leaves either nothing or a complete tree, and
concurrent workers serialise on a lock so that one extracts while the others wait.
"""

from __future__ import annotations

import bz2
import lzma
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from mlbench_core.data.errors import DataFormatError, DatasetUnavailable, one_line

__all__ = ["MARKER", "UnsafeArchive", "extract"]

MARKER = ".mlbench-extracted"
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz")
_CHUNK = 1 << 20


class UnsafeArchive(DataFormatError):
    """An archive member would escape the destination or is not a plain file or directory."""


def extract(
    archive: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    lock_timeout_s: float = 6 * 3600.0,
) -> Path:
    """Extract ``archive`` into the directory ``dest`` (created) and return ``dest``.

    A ``.bz2`` that is not a tar holds one file: it is decompressed to ``dest/<name minus
    .bz2>``. Returns at once when ``dest`` already holds a completed extraction.
    """
    src = Path(archive)
    out = Path(dest)
    if not src.is_file():
        raise DatasetUnavailable(f"cannot extract {src}: no such file")
    extractor = _extractor_for(src)
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out.parent / f".{out.name}.extract.lock"), timeout=lock_timeout_s):
        if (out / MARKER).is_file():
            return out
        if out.exists():
            raise DataFormatError(
                f"{out} exists but holds no completed extraction (no {MARKER}); "
                "remove it to extract again"
            )
        # Only the lock holder extracts, so leftovers are from a killed process.
        for stale in out.parent.glob(f".{out.name}.*.partial"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial"))
        try:
            extractor(src, tmp)
            (tmp / MARKER).write_text(f"{src.name}\n")
            os.rename(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out


def _extractor_for(src: Path) -> Callable[[Path, Path], None]:
    name = src.name.lower()
    if name.endswith(_TAR_SUFFIXES):
        return _extract_tar
    if name.endswith(".zip"):
        return _extract_zip
    if name.endswith(".bz2"):
        return _extract_bz2
    raise ValueError(
        f"cannot extract {src}: unsupported archive type "
        "(expected .tar, .tar.gz, .tgz, .tar.bz2, .tar.xz, .zip or .bz2)"
    )


def _check_name(src: Path, name: str) -> None:
    if not name or "\0" in name:
        raise UnsafeArchive(f"{src}: refusing member {name!r}: empty or NUL in name")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise UnsafeArchive(f"{src}: refusing member {name!r}: absolute path")
    if ".." in re.split(r"[\\/]+", name):
        raise UnsafeArchive(f"{src}: refusing member {name!r}: path traversal ('..')")


def _check_inside(src: Path, root: Path, name: str) -> None:
    # Belt and braces after the name checks: the resolved target must stay under root.
    target = (root / name).resolve()
    if not target.is_relative_to(root.resolve()):
        raise UnsafeArchive(f"{src}: refusing member {name!r}: resolves outside the destination")


def _extract_tar(src: Path, root: Path) -> None:
    try:
        with tarfile.open(src, "r:*") as tar:
            # One pass: check each header, then extract it. A bad member found late aborts the
            # whole extraction, and the temporary tree with the earlier members is deleted.
            for member in tar:
                _check_name(src, member.name)
                if member.issym() or member.islnk():
                    kind = "symbolic link" if member.issym() else "hard link"
                    raise UnsafeArchive(
                        f"{src}: refusing member {member.name!r}: {kind} to {member.linkname!r}"
                    )
                if member.ischr() or member.isblk() or member.isfifo():
                    raise UnsafeArchive(
                        f"{src}: refusing member {member.name!r}: device file or FIFO"
                    )
                if not (member.isfile() or member.isdir()):
                    raise UnsafeArchive(
                        f"{src}: refusing member {member.name!r}: not a file or directory"
                    )
                _check_inside(src, root, member.name)
                tar.extract(member, root, filter="data")
            # tarfile stops at the end-of-archive blocks, before a compressed stream's trailer:
            # read on to its end so gzip's CRC and length (and bzip2/xz end checks) are
            # verified, and a corrupted member is not extracted silently.
            while tar.fileobj is not None and tar.fileobj.read(1 << 20):
                pass
    except tarfile.FilterError as exc:
        raise UnsafeArchive(f"{src}: refusing member: {one_line(exc)}") from exc
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise DataFormatError(f"{src}: not a readable tar archive: {one_line(exc)}") from exc
    except OSError as exc:
        if not _is_decode_error(exc):
            raise
        raise DataFormatError(f"{src}: not a readable tar archive: {one_line(exc)}") from exc


def _extract_zip(src: Path, root: Path) -> None:
    try:
        with zipfile.ZipFile(src) as zf:
            infos = zf.infolist()
            for info in infos:  # all checks first: zip has a central directory to read
                _check_name(src, info.filename)
                kind = stat.S_IFMT(info.external_attr >> 16)
                if kind == stat.S_IFLNK:
                    raise UnsafeArchive(f"{src}: refusing member {info.filename!r}: symbolic link")
                # Many zip writers store permission bits only (file type 0): a plain file.
                if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                    raise UnsafeArchive(
                        f"{src}: refusing member {info.filename!r}: not a file or directory"
                    )
                _check_inside(src, root, info.filename)
            for info in infos:
                zf.extract(info, root)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        # zlib.error: a damaged deflate stream (before the CRC check could say "Bad CRC");
        # NotImplementedError: a compression method zipfile lacks.
        raise DataFormatError(f"{src}: not a readable zip archive: {one_line(exc)}") from exc


def _extract_bz2(src: Path, root: Path) -> None:
    target = root / src.name[: -len(".bz2")]
    try:
        with bz2.open(src, "rb") as fin, target.open("wb") as fout:
            shutil.copyfileobj(fin, fout, _CHUNK)
    except EOFError as exc:
        raise DataFormatError(f"{src}: truncated bzip2 file: {one_line(exc)}") from exc
    except OSError as exc:
        if not _is_decode_error(exc):
            raise
        raise DataFormatError(f"{src}: not a readable bzip2 file: {one_line(exc)}") from exc


def _is_decode_error(exc: OSError) -> bool:
    # Decompressors raise OSError without an errno for bad data; a full disk or a permission
    # problem carries one and must surface as what it is.
    return exc.errno is None
