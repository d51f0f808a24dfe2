"""LIBSVM files (epsilon's format) read from .bz2: dense and CSR, cache, validation."""

from __future__ import annotations

import bz2
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from mlbench_core.data.errors import DataFormatError, DatasetUnavailable
from mlbench_core.data.libsvm import load_libsvm, prepare_epsilon
from mlbench_core.data.sources import Source
from tests.mlbench_core.data.http_server import FileServer
from tests.mlbench_core.data.make_files import libsvm_text, write_libsvm_bz2

N_FEATURES = 20


def sample(rows: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, N_FEATURES)).astype(np.float32)
    x[:, 3] = 0.0  # a feature that is absent from every line
    y = np.where(rng.random(rows) < 0.5, -1, 1)
    y[:2] = (-1, 1)
    return x, y


def test_dense_from_bz2(tmp_path: Path) -> None:
    x, y = sample()
    write_libsvm_bz2(tmp_path / "eps.bz2", x, y)
    features, labels = load_libsvm(tmp_path / "eps.bz2", N_FEATURES)
    assert features.dtype == torch.float32 and features.shape == (8, N_FEATURES)
    assert labels.dtype == torch.int64 and labels.tolist() == [int(v > 0) for v in y]
    assert torch.allclose(features, torch.from_numpy(x), rtol=1e-5, atol=1e-6)


def test_csr(tmp_path: Path) -> None:
    x, y = sample()
    write_libsvm_bz2(tmp_path / "eps.bz2", x, y)
    features, _ = load_libsvm(tmp_path / "eps.bz2", N_FEATURES, dense=False)
    assert features.layout == torch.sparse_csr
    assert torch.allclose(features.to_dense(), torch.from_numpy(x), rtol=1e-5, atol=1e-6)


def test_cache_is_written_once_and_reused(tmp_path: Path) -> None:
    x, y = sample()
    source = tmp_path / "eps.bz2"
    write_libsvm_bz2(source, x, y)
    first = load_libsvm(source, N_FEATURES, cache_dir=tmp_path / "cache")
    cached = sorted(p.name for p in (tmp_path / "cache").glob("*.npy"))
    assert cached == [f"eps.bz2.{N_FEATURES}.x.npy", f"eps.bz2.{N_FEATURES}.y.npy"]
    stamp = (tmp_path / "cache" / cached[0]).stat().st_mtime_ns
    second = load_libsvm(source, N_FEATURES, cache_dir=tmp_path / "cache")
    assert (tmp_path / "cache" / cached[0]).stat().st_mtime_ns == stamp  # not rewritten
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    # A changed source file invalidates the cache.
    x2, y2 = sample(seed=1)
    write_libsvm_bz2(source, x2, y2)
    third = load_libsvm(source, N_FEATURES, cache_dir=tmp_path / "cache")
    assert torch.allclose(third[0], torch.from_numpy(x2), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (f"1 1:0.5 {N_FEATURES + 1}:0.1\n", f"not a LIBSVM file with {N_FEATURES} features"),
        ("1 0:0.5\n", "not a LIBSVM file"),  # LIBSVM indices start at 1
        ("2 1:0.5\n-1 2:0.1\n", "label 2 is not -1 or \\+1"),
        ("0 1:0.5\n1 2:0.1\n", "label 0 is not -1 or \\+1"),
        ("1 1:abc\n", "not a LIBSVM file"),
        ("", "holds no samples"),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "bad.bz2").write_bytes(bz2.compress(text.encode()))
    with pytest.raises(DataFormatError, match=needle) as err:
        load_libsvm(tmp_path / "bad.bz2", N_FEATURES)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable, match=r"epsilon_normalized\.bz2 is missing"):
        load_libsvm(tmp_path / "epsilon_normalized.bz2")


def test_prepare_fetches_both_files(tmp_path: Path) -> None:
    x, y = sample()
    train = bz2.compress(libsvm_text(x, y).encode())
    test = bz2.compress(libsvm_text(x[:3], y[:3]).encode())
    files = {"/binary/epsilon_normalized.bz2": train, "/binary/epsilon_normalized.t.bz2": test}
    with FileServer(files) as server:
        sources = [
            Source(server.url(path), path.rsplit("/", 1)[1], hashlib.sha256(body).hexdigest())
            for path, body in files.items()
        ]
        got = prepare_epsilon(tmp_path, train_source=sources[0], test_source=sources[1])
    assert [p.name for p in got] == ["epsilon_normalized.bz2", "epsilon_normalized.t.bz2"]
    assert load_libsvm(got[1], N_FEATURES)[0].shape == (3, N_FEATURES)
