"""LIBSVM / svmlight text files (epsilon) as tensors, read straight from the .bz2 download.

``<label> <index>:<value> ...`` per line, 1-based feature indices. epsilon has 2000 dense
features and labels -1/+1 (mapped to 0/1 for a cross-entropy or logistic loss); its training
file is about 12 GB of text, which takes minutes to parse. With ``cache_dir`` the parsed arrays
are saved once (under a lock, atomically) as .npy files that later loads map into memory, so
eight workers on one machine neither parse eight times nor hold eight private copies.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock
from scipy import sparse

from mlbench_core.data.errors import DataFormatError, DatasetUnavailable
from mlbench_core.data.sources import EPSILON_TEST, EPSILON_TRAIN, Source, fetch_source

EPSILON_FEATURES = 2000


def prepare_epsilon(
    data_dir: str | os.PathLike[str],
    *,
    train_source: Source = EPSILON_TRAIN,
    test_source: Source = EPSILON_TEST,
) -> tuple[Path, Path]:
    """(train, test) ``.bz2`` files under ``data_dir/epsilon``, fetched if missing."""
    root = Path(data_dir) / "epsilon"
    return fetch_source(train_source, root), fetch_source(test_source, root)


def load_libsvm(
    path: str | os.PathLike[str],
    n_features: int = EPSILON_FEATURES,
    *,
    dense: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(features float32 N x n_features, labels int64 in {0, 1}) from a binary LIBSVM file.

    ``dense=False`` returns the features as a CSR tensor (for sparse data sets); the cache is
    used for dense results only. Plain, ``.bz2`` and ``.gz`` files are read alike.
    """
    src = Path(path)
    if n_features <= 0:
        raise ValueError(f"n_features must be positive, got {n_features}")
    if not src.is_file():
        raise DatasetUnavailable(f"LIBSVM file {src.name} is missing from {src.parent}")
    if dense and cache_dir is not None:
        return _cached_dense(src, n_features, Path(cache_dir))
    x, y = _parse(src, n_features)
    labels = torch.from_numpy(y)
    if dense:
        return torch.from_numpy(x.toarray()), labels
    with warnings.catch_warnings():
        # torch notes once per process that CSR support is "beta"; it is what we want here.
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        csr = torch.sparse_csr_tensor(
            torch.from_numpy(x.indptr.astype(np.int64)),
            torch.from_numpy(x.indices.astype(np.int64)),
            torch.from_numpy(x.data),
            size=x.shape,
            check_invariants=False,  # scipy built and checked this CSR structure already
        )
    return csr, labels


def _parse(src: Path, n_features: int) -> tuple[sparse.csr_matrix, np.ndarray]:
    from sklearn.datasets import load_svmlight_file

    try:
        # zero_based=False: LIBSVM indices start at 1, so an index 0 is an error, not a shift.
        x, y = load_svmlight_file(
            str(src), n_features=n_features, dtype=np.float32, zero_based=False
        )
    except ValueError as exc:
        raise DataFormatError(
            f"{src}: not a LIBSVM file with {n_features} features: {exc}"
        ) from None
    except (OSError, EOFError) as exc:
        raise DataFormatError(f"{src}: cannot be read: {exc}") from None
    if x.shape[0] == 0:
        raise DataFormatError(f"{src}: holds no samples")
    return x, _binary_labels(src, y)


def _binary_labels(src: Path, y: np.ndarray) -> np.ndarray:
    values = np.unique(y)
    bad = values[~np.isin(values, (-1.0, 1.0))]
    if bad.size:
        raise DataFormatError(f"{src}: label {bad[0]:g} is not -1 or +1 (a binary LIBSVM set)")
    return (y > 0).astype(np.int64)


def _cached_dense(src: Path, n_features: int, cache_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{src.name}.{n_features}"
    x_path, y_path = cache_dir / f"{stem}.x.npy", cache_dir / f"{stem}.y.npy"
    info_path = cache_dir / f"{stem}.json"
    stat = src.stat()
    key = {"source": str(src.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    with FileLock(str(cache_dir / f".{stem}.lock")):
        if not (_read_json(info_path) == key and x_path.is_file() and y_path.is_file()):
            x, y = _parse(src, n_features)
            _save_atomic(x_path, x.toarray())
            _save_atomic(y_path, y)
            _write_atomic(info_path, json.dumps(key))
    # Copy-on-write mapping: pages are read on demand and shared with the other workers,
    # and the arrays are writable, which torch.from_numpy expects.
    x_arr = np.load(x_path, mmap_mode="c")
    y_arr = np.load(y_path, mmap_mode="c")
    if x_arr.shape[1:] != (n_features,) or y_arr.shape != (x_arr.shape[0],):
        raise DataFormatError(f"{x_path}: cached arrays do not match; delete {info_path}")
    return torch.from_numpy(x_arr), torch.from_numpy(y_arr)


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _save_atomic(path: Path, array: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
