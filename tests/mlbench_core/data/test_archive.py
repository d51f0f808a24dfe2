"""Safe, atomic extraction: good archives unpack, malicious ones are refused whole."""

from __future__ import annotations

import bz2
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from mlbench_core.data.archive import MARKER, UnsafeArchive, extract
from mlbench_core.data.errors import DataFormatError, DatasetUnavailable
from tests.mlbench_core.data.make_files import malicious_archives, tar_bytes, zip_bytes

GOOD = {"top/a.txt": b"alpha\n", "top/sub/b.txt": b"beta\n"}


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("good.tar.gz", lambda: tar_bytes(GOOD)),
        ("good.tgz", lambda: tar_bytes(GOOD)),
        ("good.tar", lambda: tar_bytes(GOOD, mode="w")),
        ("good.tar.bz2", lambda: tar_bytes(GOOD, mode="w:bz2")),
        ("good.zip", lambda: zip_bytes(GOOD)),
    ],
)
def test_extracts_good_archives(tmp_path: Path, name: str, make: object) -> None:
    archive = tmp_path / name
    archive.write_bytes(make())  # type: ignore[operator]
    out = extract(archive, tmp_path / "out")
    assert out == tmp_path / "out"
    assert (out / "top/a.txt").read_bytes() == b"alpha\n"
    assert (out / "top/sub/b.txt").read_bytes() == b"beta\n"
    assert (out / MARKER).is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


def test_single_file_bz2(tmp_path: Path) -> None:
    archive = tmp_path / "epsilon_normalized.t.bz2"
    archive.write_bytes(bz2.compress(b"1 1:0.5\n"))
    out = extract(archive, tmp_path / "eps")
    assert (out / "epsilon_normalized.t").read_bytes() == b"1 1:0.5\n"


def test_completed_extraction_is_reused(tmp_path: Path) -> None:
    archive = tmp_path / "good.zip"
    archive.write_bytes(zip_bytes(GOOD))
    out = extract(archive, tmp_path / "out")
    (out / "top/a.txt").write_bytes(b"edited")
    archive.write_bytes(b"not an archive any more")  # not read again: the marker says done
    assert extract(archive, tmp_path / "out") == out
    assert (out / "top/a.txt").read_bytes() == b"edited"


@pytest.mark.parametrize("case", sorted(malicious_archives()))
def test_refuses_malicious_archives(tmp_path: Path, case: str) -> None:
    filename, content = malicious_archives()[case]
    work = tmp_path / "work"
    work.mkdir()
    archive = work / filename
    archive.write_bytes(content)
    with pytest.raises(UnsafeArchive) as err:
        extract(archive, work / "out")
    assert "refusing member" in str(err.value) and "\n" not in str(err.value)
    # Nothing extracted, not even the harmless member, and nothing written outside.
    assert not (work / "out").exists()
    assert sorted(p.name for p in work.iterdir() if not p.name.startswith(".")) == [filename]
    assert [p for p in work.iterdir() if p.name.endswith(".partial")] == []
    assert not (tmp_path / "escaped.txt").exists()
    assert not Path("/tmp/mlbench-absolute.txt").exists()


def test_malicious_archives_really_hold_what_they_claim(tmp_path: Path) -> None:
    # Guards the generator: the refusals above must be of the intended members.
    archives = malicious_archives()
    names = {}
    for case, (filename, content) in archives.items():
        path = tmp_path / f"{case}-{filename}"
        path.write_bytes(content)
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                names[case] = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
        else:
            with tarfile.open(path) as tar:
                names[case] = {m.name: m.type for m in tar.getmembers()}
    assert "data/../../escaped.txt" in names["tar-dotdot"]
    assert "/tmp/mlbench-absolute.txt" in names["tar-absolute"]
    assert names["tar-symlink"]["data/passwd"] == tarfile.SYMTYPE
    assert names["tar-hardlink"]["data/hard"] == tarfile.LNKTYPE
    assert names["tar-device"]["data/null"] == tarfile.CHRTYPE
    assert "../escaped.txt" in names["zip-dotdot"]
    assert "/tmp/mlbench-absolute.txt" in names["zip-absolute"]
    assert stat.S_ISLNK(names["zip-symlink"]["data/passwd"])
    assert stat.S_ISCHR(names["zip-device"]["data/null"])


def test_partial_destination_is_not_taken_for_done(tmp_path: Path) -> None:
    archive = tmp_path / "good.zip"
    archive.write_bytes(zip_bytes(GOOD))
    (tmp_path / "out").mkdir()
    with pytest.raises(DataFormatError, match=f"no {MARKER}"):
        extract(archive, tmp_path / "out")


@pytest.mark.parametrize(
    ("name", "content", "error", "needle"),
    [
        ("x.rar", b"Rar!", ValueError, "unsupported archive type"),
        ("x.tar.gz", b"\x1f\x8b not really gzip", DataFormatError, "not a readable tar"),
        ("x.zip", b"PK\x03\x04 broken", DataFormatError, "not a readable zip"),
        ("x.bz2", b"BZh9 broken", DataFormatError, "bzip2"),
    ],
)
def test_unreadable_archives(
    tmp_path: Path, name: str, content: bytes, error: type[Exception], needle: str
) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(error, match=needle):
        extract(tmp_path / name, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_archive(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable, match="no such file"):
        extract(tmp_path / "nope.zip", tmp_path / "out")
