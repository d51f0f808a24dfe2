"""WMT17 English-German: line-aligned parallel text and the newstest2017 validation set.

Training data are the four en-de corpora of the WMT17 news task from statmt.org (Europarl v7,
Common Crawl, News Commentary v12, Rapid 2016): pairs of files, ``*.en`` and ``*.de``, where
line i of one is the translation of line i of the other. Validation is newstest2017 en->de as
sacrebleu's ``wmt17`` test set defines it: the segments of the two SGML files, whitespace
collapsed the way sacrebleu does, written out once as plain ``newstest2017.en/.de`` files.
Subword encoding is in ``bpe.py``, batching by tokens in ``batching.py``.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from mlbench_core.data.archive import extract
from mlbench_core.data.errors import DataFormatError, DatasetUnavailable
from mlbench_core.data.sources import (
    WMT17_ENDE_TEST,
    WMT17_ENDE_TRAIN,
    WMT17_TEST,
    Source,
    fetch_source,
)

_SEG = re.compile(r"<seg[^>]*>(.*)</seg>")


@dataclass(frozen=True)
class WmtFiles:
    """Plain-text file pairs (English, German)."""

    train: list[tuple[Path, Path]]
    valid: tuple[Path, Path]


def prepare_wmt17_ende(
    data_dir: str | os.PathLike[str],
    *,
    train: bool = True,
    train_sources: Sequence[tuple[Source, str, str]] = WMT17_ENDE_TRAIN,
    test_source: Source = WMT17_TEST,
) -> WmtFiles:
    """Fetch and unpack what is missing under ``data_dir/wmt17``; ``train=False`` skips the
    2 GB of training archives (evaluation only). The sources may name mirrors."""
    root = Path(data_dir) / "wmt17"
    pairs: list[tuple[Path, Path]] = []
    if train:
        for source, en, de in train_sources:
            folder = _unpacked(source, root)
            pairs.append((folder / en, folder / de))
    test = _unpacked(test_source, root)
    valid = (root / "newstest2017.en", root / "newstest2017.de")
    with FileLock(str(root / ".newstest2017.lock")):
        if not all(p.is_file() for p in valid):
            src = read_sgm(test / WMT17_ENDE_TEST[0])
            ref = read_sgm(test / WMT17_ENDE_TEST[1])
            if len(src) != len(ref):
                raise DataFormatError(
                    f"{test}: newstest2017 has {len(src)} English but {len(ref)} German segments"
                )
            _write_lines(valid[0], src)
            _write_lines(valid[1], ref)
    for en_path, de_path in [*pairs, valid]:
        for path in (en_path, de_path):
            if not path.is_file():
                raise DatasetUnavailable(f"WMT17 file {path.name} is missing from {path.parent}")
    return WmtFiles(train=pairs, valid=valid)


def _unpacked(source: Source, root: Path) -> Path:
    archive = fetch_source(source, root / "archives")
    stem = source.filename.removesuffix(".tgz")
    return extract(archive, root / "extracted" / stem)


def read_sgm(path: str | os.PathLike[str]) -> list[str]:
    """The ``<seg>`` texts of a WMT SGML file, stripped, inner whitespace runs collapsed."""
    src = Path(path)
    if not src.is_file():
        raise DatasetUnavailable(f"WMT SGML file {src.name} is missing from {src.parent}")
    segments = []
    with src.open(encoding="utf-8") as f:
        for line in f:
            if line.lstrip().startswith("<seg "):
                match = _SEG.search(line)
                if match is None:
                    raise DataFormatError(f"{src}: unterminated <seg> in {line.strip()[:60]!r}")
                segments.append(" ".join(match.group(1).split()))
    if not segments:
        raise DataFormatError(f"{src}: holds no <seg> elements")
    return segments


def read_parallel(
    src_path: str | os.PathLike[str],
    tgt_path: str | os.PathLike[str],
    *,
    drop_empty: bool = False,
) -> tuple[list[str], list[str]]:
    """Both sides of a line-aligned pair of files, each line stripped.

    ``drop_empty`` removes pairs where either side is blank (Common Crawl has some); the
    line counts must match either way.
    """
    src_lines = _read_lines(Path(src_path))
    tgt_lines = _read_lines(Path(tgt_path))
    if len(src_lines) != len(tgt_lines):
        raise DataFormatError(
            f"{src_path} has {len(src_lines)} lines but {tgt_path} has {len(tgt_lines)}: "
            "parallel files must be line-aligned"
        )
    if drop_empty:
        kept = [(s, t) for s, t in zip(src_lines, tgt_lines, strict=True) if s and t]
        src_lines = [s for s, _ in kept]
        tgt_lines = [t for _, t in kept]
    return src_lines, tgt_lines


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetUnavailable(f"parallel text file {path.name} is missing from {path.parent}")
    try:
        # newline="\n": a stray carriage return inside a sentence must not split it in two,
        # or every later line would pair with the wrong translation.
        with path.open(encoding="utf-8", newline="\n") as f:
            return [line.strip() for line in f]
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path}: not UTF-8 text ({exc})") from None


def _write_lines(path: Path, lines: list[str]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(f"{line}\n" for line in lines)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
