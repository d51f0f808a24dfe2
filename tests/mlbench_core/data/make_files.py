"""Tiny data files in exactly the formats of the real downloads, for the data-layer tests.

- CIFAR-10 python batches: Python 2 cPickle protocol-2 dicts, byte strings as (SHORT_)BINSTRING
  and the numpy globals under ``numpy.core.multiarray``, as the published files hold them
  (Python 3's own protocol-2 pickler would write ``_codecs.encode`` calls instead).
- LIBSVM: ``<label> <index>:<value> ...`` lines, 1-based indices, bzip2-compressed.
- WikiText: token files whose lines start with a space, headings `` = Title = ``, ``<unk>``.
- WMT: line-aligned ``.en``/``.de`` files and newstest SGML (``<srcset>``/``<refset>``).
- Archives: good .tar.gz/.zip, and malicious ones (``../``, absolute paths, links, devices).
"""

from __future__ import annotations

import bz2
import io
import pickle
import stat
import struct
import tarfile
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

CIFAR_BATCHES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
LABEL_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """The pure-Python pickler, writing text the way Python 2 wrote ``str``."""

    dispatch: ClassVar[dict[type, Any]] = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def save_py2_str(self, obj: str | bytes) -> None:
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = obj.__module__
        if module.startswith("numpy._core"):
            module = "numpy.core.multiarray"  # where numpy 1.x (and Python 2) kept it
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode("ascii"))
        self.memoize(obj)


def py2_pickle(obj: object) -> bytes:
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def write_cifar_batch(path: Path, data: object, labels: object, label: str = "batch") -> None:
    batch = {
        "batch_label": label,
        "labels": labels,
        "data": data,
        "filenames": [f"img_{i}.png" for i in range(len(labels))],  # type: ignore[arg-type]
    }
    path.write_bytes(py2_pickle(batch))


def write_cifar10(folder: Path, rows: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """``folder`` filled like ``cifar-10-batches-py`` with ``rows`` images per batch; returns
    the arrays written, by batch name."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written: dict[str, np.ndarray] = {}
    for name in CIFAR_BATCHES:
        data = rng.integers(0, 256, (rows, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, rows)]
        write_cifar_batch(folder / name, data, labels, label=f"{name} of 5")
        written[name] = data
        written[f"{name}.labels"] = np.array(labels, dtype=np.int64)
    meta = {"num_cases_per_batch": rows, "label_names": LABEL_NAMES, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(py2_pickle(meta))
    return written


def libsvm_text(x: np.ndarray, y: np.ndarray) -> str:
    lines = []
    for row, label in zip(x, y, strict=True):
        feats = " ".join(f"{j + 1}:{v:.6g}" for j, v in enumerate(row) if v != 0)
        lines.append(f"{int(label)} {feats}".rstrip())
    return "\n".join(lines) + "\n"


def write_libsvm_bz2(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    path.write_bytes(bz2.compress(libsvm_text(x, y).encode("ascii")))


WIKI_TRAIN = [
    " ",
    " = Valkyria Chronicles III = ",
    " ",
    " Senjō no Valkyria 3 : <unk> Chronicles is a tactical role @-@ playing game . ",
    " The game began development in 2010 , carrying over a large portion of the work . ",
    " ",
]
WIKI_VALID = [" ", " = Homarus gammarus = ", " The game is a tactical game . "]
WIKI_TEST = [" ", " = Robert Boulter = ", " Robert is an English actor . "]


def write_wikitext(folder: Path, train: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in (
        ("wiki.train.tokens", WIKI_TRAIN if train is None else train),
        ("wiki.valid.tokens", WIKI_VALID),
        ("wiki.test.tokens", WIKI_TEST),
    ):
        (folder / name).write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return folder


EN = [
    "Resumption of the session",
    "I declare resumed the session of the European Parliament.",
    "Please rise, then, for this minute' s silence.",
    "The House rose and observed a minute' s silence.",
]
DE = [
    "Wiederaufnahme der Sitzungsperiode",
    "Ich erkläre die Sitzungsperiode des Europäischen Parlaments für wiederaufgenommen.",
    "Ich bitte Sie, sich zu einer Schweigeminute zu erheben.",
    "Das Parlament erhebt sich zu einer Schweigeminute.",
]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def sgm_text(segments: list[str], *, ref: bool, lang: str) -> str:
    head = (
        f'<refset setid="newstest2017" srclang="any" trglang="{lang}">'
        if ref
        else '<srcset setid="newstest2017" srclang="any">'
    )
    body = "".join(f'<seg id="{i}">{s}</seg>\n' for i, s in enumerate(segments, start=1))
    tail = "</refset>" if ref else "</srcset>"
    doc = '<doc sysid="ref" docid="test-doc" genre="news" origlang="en">\n'
    return f"{head}\n{doc}<p>\n{body}</p>\n</doc>\n{tail}\n"


def tar_bytes(
    members: dict[str, bytes], mode: str = "w:gz", extra: list[tarfile.TarInfo] | None = None
) -> bytes:
    """A tar archive of regular files, plus raw headers (links, devices) from ``extra``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:  # type: ignore[call-overload]
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for info in extra or []:
            tar.addfile(info)
    return buffer.getvalue()


def tar_of_tree(root: Path, arcname: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(root, arcname=arcname)
    return buffer.getvalue()


def zip_bytes(
    members: dict[str, bytes], special: dict[str, tuple[int, bytes]] | None = None
) -> bytes:
    """A zip of ``members``, plus ``special`` members with a Unix file mode (links, devices)
    as Info-ZIP stores it: in the high 16 bits of external_attr."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
        for name, (mode, content) in (special or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3  # Unix
            info.external_attr = mode << 16
            zf.writestr(info, content)
    return buffer.getvalue()


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _device(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3  # /dev/null's numbers
    return info


def malicious_archives() -> dict[str, tuple[str, bytes]]:
    """name -> (file name, archive bytes) of archives that must be refused."""
    ok = {"data/ok.txt": b"fine\n"}
    return {
        "tar-dotdot": ("evil.tar.gz", tar_bytes({**ok, "data/../../escaped.txt": b"x"})),
        "tar-absolute": ("evil.tgz", tar_bytes({**ok, "/tmp/mlbench-absolute.txt": b"x"})),
        "tar-symlink": (
            "evil.tar",
            tar_bytes(ok, "w", [_link("data/passwd", "/etc/passwd", tarfile.SYMTYPE)]),
        ),
        "tar-hardlink": (
            "evil.tar.gz",
            tar_bytes(ok, extra=[_link("data/hard", "/etc/passwd", tarfile.LNKTYPE)]),
        ),
        "tar-device": ("evil.tar.gz", tar_bytes(ok, extra=[_device("data/null")])),
        "zip-dotdot": ("evil.zip", zip_bytes({**ok, "../escaped.txt": b"x"})),
        "zip-absolute": ("evil.zip", zip_bytes({**ok, "/tmp/mlbench-absolute.txt": b"x"})),
        "zip-symlink": (
            "evil.zip",
            zip_bytes(ok, special={"data/passwd": (stat.S_IFLNK | 0o777, b"/etc/passwd")}),
        ),
        "zip-device": (
            "evil.zip",
            zip_bytes(ok, special={"data/null": (stat.S_IFCHR | 0o666, b"")}),
        ),
    }
