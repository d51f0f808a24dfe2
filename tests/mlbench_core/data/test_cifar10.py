"""CIFAR-10 python batches: loading, validation, and prepare() from a local HTTP mirror."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from mlbench_core.data.cifar10 import load_cifar10, prepare_cifar10
from mlbench_core.data.errors import DataFormatError, DatasetUnavailable
from mlbench_core.data.sources import Source
from tests.mlbench_core.data.http_server import FileServer
from tests.mlbench_core.data.make_files import (
    LABEL_NAMES,
    py2_pickle,
    tar_of_tree,
    write_cifar10,
    write_cifar_batch,
)


def test_loads_all_batches_as_uint8_images(tmp_path: Path) -> None:
    written = write_cifar10(tmp_path, rows=3)
    data = load_cifar10(tmp_path)
    assert data.train_x.shape == (15, 3, 32, 32) and data.train_x.dtype == torch.uint8
    assert data.train_y.shape == (15,) and data.train_y.dtype == torch.int64
    assert data.test_x.shape == (3, 3, 32, 32)
    assert data.label_names == LABEL_NAMES
    # Row layout: 1024 red, 1024 green, 1024 blue values, each 32 x 32 row-major.
    row = written["data_batch_2"][1]
    image = data.train_x[3 + 1]
    assert image[0, 0, 0] == row[0] and image[0, 0, 1] == row[1] and image[0, 1, 0] == row[32]
    assert image[1, 0, 0] == row[1024] and image[2, 31, 31] == row[3071]
    assert torch.equal(data.test_y, torch.from_numpy(written["test_batch.labels"]))
    assert torch.equal(
        data.train_x[12:], torch.from_numpy(written["data_batch_5"]).view(3, 3, 32, 32)
    )


@pytest.mark.parametrize(
    ("data", "labels", "needle"),
    [
        (np.zeros((3, 3071), np.uint8), [0, 1, 2], r"shape \(3, 3071\), expected \(3, 3072\)"),
        (np.zeros((2, 3072), np.uint8), [0, 1, 2], r"shape \(2, 3072\)"),
        (np.zeros((3, 3072), np.int16), [0, 1, 2], "int16, expected a uint8 array"),
        (np.zeros((3, 3072), np.uint8), [0, 10, 2], "label 10 outside 0-9"),
        (np.zeros((3, 3072), np.uint8), [0, -1, 2], "label -1 outside 0-9"),
        (np.zeros((3, 3072), np.uint8), [0, 1], "2 labels for 3 images"),
        (np.zeros((3, 3072), np.uint8), [0.0, 1.5, 2.0], "labels are float64, expected integers"),
    ],
)
def test_malformed_batch_is_one_clear_error(
    tmp_path: Path, data: np.ndarray, labels: list[int], needle: str
) -> None:
    write_cifar10(tmp_path, rows=3)
    write_cifar_batch(tmp_path / "data_batch_3", data, labels)
    with pytest.raises(DataFormatError, match=needle) as err:
        load_cifar10(tmp_path)
    assert "data_batch_3" in str(err.value) and "\n" not in str(err.value)


def test_missing_key_and_missing_file(tmp_path: Path) -> None:
    write_cifar10(tmp_path, rows=2)
    (tmp_path / "test_batch").write_bytes(py2_pickle({"data": np.zeros((2, 3072), np.uint8)}))
    with pytest.raises(DataFormatError, match="no 'labels' entry"):
        load_cifar10(tmp_path)
    (tmp_path / "data_batch_4").unlink()
    with pytest.raises(DatasetUnavailable, match="data_batch_4 is missing"):
        load_cifar10(tmp_path)


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pickle ran code",))


def test_pickles_cannot_run_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_cifar10(tmp_path, rows=2)
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({"data": _Boom()}, protocol=2))
    with pytest.raises(
        DataFormatError, match=r"global (__builtin__|builtins)\.print is not allowed"
    ):
        load_cifar10(tmp_path)
    assert "pickle ran code" not in capsys.readouterr().out


def test_prepare_downloads_and_extracts_once(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "src" / "cifar-10-batches-py", rows=2)
    archive = tar_of_tree(tmp_path / "src" / "cifar-10-batches-py", "cifar-10-batches-py")
    with FileServer({"/kriz/cifar-10-python.tar.gz": archive}) as server:
        source = Source(
            url=server.url("/kriz/cifar-10-python.tar.gz"),
            filename="cifar-10-python.tar.gz",
            sha256=hashlib.sha256(archive).hexdigest(),
            size=len(archive),
        )
        first = prepare_cifar10(tmp_path / "data", source=source)
        second = prepare_cifar10(tmp_path / "data", source=source)
        assert server.gets["/kriz/cifar-10-python.tar.gz"] == 1
    assert first == second and first.name == "cifar-10-batches-py"
    assert load_cifar10(first).train_x.shape == (10, 3, 32, 32)


def test_prepare_uses_a_hand_staged_tree(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "cifar10" / "cifar-10-batches-py", rows=2)
    unreachable = Source("http://127.0.0.1:9/x.tar.gz", "x.tar.gz", sha256="0" * 64)
    assert prepare_cifar10(tmp_path, source=unreachable).is_dir()


def test_dataset_moves_to_a_device(tmp_path: Path) -> None:
    write_cifar10(tmp_path, rows=2)
    moved = load_cifar10(tmp_path).to("cpu")
    assert moved.train_x.device.type == "cpu" and moved.label_names == LABEL_NAMES
