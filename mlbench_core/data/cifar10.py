"""CIFAR-10 from the "python version" pickle batches, validated, as uint8 image tensors.

The archive's ``cifar-10-batches-py/`` holds ``data_batch_1`` .. ``data_batch_5`` (training),
``test_batch`` and ``batches.meta``: Python 2 pickles of dicts whose ``data`` is a
``num_cases_per_batch x 3072`` uint8 array (1024 red, then green, then blue values of a 32x32
image in row-major order) and whose ``labels`` is a list of ints 0-9. The whole set is 180 MB
as uint8, so tasks keep it on the device and augment whole batches there (``augment.py``).

The batches are unpickled with an allow-list of the few numpy constructors a plain array needs:
a pickle can run arbitrary code, and the data directory may be a shared volume.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlbench_core.data.archive import extract
from mlbench_core.data.errors import DataFormatError, DatasetUnavailable
from mlbench_core.data.sources import CIFAR10_PYTHON, Source, fetch_source

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
BATCH_DIR = "cifar-10-batches-py"
N_CLASSES = 10
ROW_BYTES = 3 * 32 * 32


@dataclass
class Cifar10:
    """Images N x 3 x 32 x 32 uint8 and labels N int64, for both splits."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    label_names: list[str]

    def to(self, device: torch.device | str) -> Cifar10:
        return Cifar10(
            self.train_x.to(device),
            self.train_y.to(device),
            self.test_x.to(device),
            self.test_y.to(device),
            self.label_names,
        )


def prepare_cifar10(data_dir: str | os.PathLike[str], *, source: Source = CIFAR10_PYTHON) -> Path:
    """The ``cifar-10-batches-py`` directory under ``data_dir/cifar10``, fetched if missing.

    Safe to call from every rank at once: the download and the extraction are locked.
    ``source`` may name a mirror (with the same digests).
    """
    root = Path(data_dir) / "cifar10"
    if _complete(root / BATCH_DIR):  # pre-staged by hand (a shared volume, a copied tree)
        return root / BATCH_DIR
    archive = fetch_source(source, root)
    batches = extract(archive, root / "cifar-10-python") / BATCH_DIR
    if not _complete(batches):
        raise DatasetUnavailable(f"{archive} did not contain {BATCH_DIR}/ with all six batches")
    return batches


def _complete(batches: Path) -> bool:
    return all((batches / n).is_file() for n in (*TRAIN_BATCHES, TEST_BATCH, META))


def load_cifar10(batches_dir: str | os.PathLike[str]) -> Cifar10:
    """Read and validate all batches in ``batches_dir`` (tensors on the CPU)."""
    folder = Path(batches_dir)
    meta = _unpickle(folder / META)
    rows = meta.get("num_cases_per_batch")
    names = meta.get("label_names")
    if not isinstance(rows, int) or rows <= 0:
        raise DataFormatError(f"{folder / META}: num_cases_per_batch is {rows!r}, not a count")
    if not (isinstance(names, list) and len(names) == N_CLASSES):
        raise DataFormatError(f"{folder / META}: label_names is not a list of {N_CLASSES} names")
    train = [_read_batch(folder / name, rows) for name in TRAIN_BATCHES]
    test_x, test_y = _read_batch(folder / TEST_BATCH, rows)
    return Cifar10(
        train_x=torch.cat([x for x, _ in train]),
        train_y=torch.cat([y for _, y in train]),
        test_x=test_x,
        test_y=test_y,
        label_names=[_text(n) for n in names],
    )


def _read_batch(path: Path, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    batch = _unpickle(path)
    for key in ("data", "labels"):
        if key not in batch:
            raise DataFormatError(f"{path}: no {key!r} entry (keys: {sorted(batch)})")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        kind = getattr(data, "dtype", type(data).__name__)
        raise DataFormatError(f"{path}: data is {kind}, expected a uint8 array")
    if data.shape != (rows, ROW_BYTES):
        raise DataFormatError(f"{path}: data has shape {data.shape}, expected ({rows}, 3072)")
    try:
        raw_labels = np.asarray(batch["labels"])
    except (TypeError, ValueError) as exc:
        raise DataFormatError(f"{path}: labels are not a list of integers ({exc})") from None
    if raw_labels.dtype.kind not in "iu":  # a float or string would be truncated or fail later
        raise DataFormatError(f"{path}: labels are {raw_labels.dtype}, expected integers")
    labels = raw_labels.astype(np.int64)
    if labels.shape != (rows,):
        raise DataFormatError(f"{path}: {labels.size} labels for {rows} images")
    bad = (labels < 0) | (labels >= N_CLASSES)
    if bad.any():
        raise DataFormatError(
            f"{path}: label {int(labels[bad][0])} outside 0-{N_CLASSES - 1} "
            f"(at row {int(bad.argmax())})"
        )
    images = torch.from_numpy(np.ascontiguousarray(data).reshape(rows, 3, 32, 32).copy())
    return images, torch.from_numpy(labels)


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings and numpy arrays; refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        if name == "_reconstruct":
            return _reconstruct
        return getattr(np, name)


def _reconstruct(cls: type, shape: Any, dtype: Any) -> np.ndarray:
    # What numpy's own _reconstruct does for a plain ndarray: an empty array whose state
    # (__setstate__) the pickle fills in next.
    if cls is not np.ndarray:
        raise pickle.UnpicklingError(f"array subclass {cls!r} is not allowed")
    return np.ndarray.__new__(cls, shape, dtype)


def _unpickle(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DatasetUnavailable(f"CIFAR-10 file {path.name} is missing from {path.parent}")
    try:
        with path.open("rb") as f:
            # latin1 turns the Python 2 byte strings into str keys and lets numpy read
            # the array bytes unchanged.
            obj = _ArrayUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise DataFormatError(f"{path}: not a CIFAR-10 pickle batch ({exc})") from None
    if not isinstance(obj, dict):
        raise DataFormatError(f"{path}: holds a {type(obj).__name__}, expected a dict")
    return {_text(k): v for k, v in obj.items()}


def _text(value: object) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)
