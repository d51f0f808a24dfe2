"""WikiText-2 for word-level language modelling, laid out as in the AWD-LSTM reference.

The token files (``wiki.train.tokens``, ``wiki.valid.tokens``, ``wiki.test.tokens``) are
already tokenised: words separated by spaces, rare words replaced by ``<unk>``. Every line,
blank ones included, becomes its words followed by ``<eos>``. The vocabulary is built from the
training file in order of first occurrence; the validation and test files of WikiText-2 use no
word outside it (the set is closed under ``<unk>``), and any that a different file did use
would be read as ``<unk>``.

:func:`batchify` cuts the token stream into columns (each column a contiguous stretch of text)
and, for data-parallel training, gives every rank its own columns of the global layout, so all
ranks take the same number of BPTT steps. :func:`bptt_batches` walks down the rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import torch

from mlbench_core.data.archive import extract
from mlbench_core.data.errors import DataFormatError, DatasetUnavailable
from mlbench_core.data.sources import WIKITEXT2, Source, fetch_source

SPLITS = {"train": "wiki.train.tokens", "valid": "wiki.valid.tokens", "test": "wiki.test.tokens"}
EOS = "<eos>"
UNK = "<unk>"


def prepare_wikitext2(data_dir: str | os.PathLike[str], *, source: Source = WIKITEXT2) -> Path:
    """The directory holding the three token files, under ``data_dir/wikitext2``."""
    root = Path(data_dir) / "wikitext2"
    staged = root / "wikitext-2"  # the zip unpacked there by hand
    if _complete(staged):
        return staged
    archive = fetch_source(source, root)
    files = extract(archive, root / "wikitext-2-v1") / "wikitext-2"
    if not _complete(files):
        raise DatasetUnavailable(f"{archive} did not contain wikitext-2/ with the three files")
    return files


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in SPLITS.values())


def _lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    if not path.is_file():
        raise DatasetUnavailable(f"WikiText file {path.name} is missing from {path.parent}")
    # Bytes, decoded line by line: an encoding error then names its real line.
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataFormatError(f"{path}: line {lineno} is not UTF-8 ({exc})") from None
            yield lineno, [*line.split(), EOS]


class Vocabulary:
    """Word <-> index, in order of first occurrence in the training file."""

    def __init__(self, words: Sequence[str]) -> None:
        self.itos = list(words)
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("vocabulary words must be unique")

    @classmethod
    def build(cls, train_path: str | os.PathLike[str]) -> Vocabulary:
        path = Path(train_path)
        seen: dict[str, None] = {}
        for _, words in _lines(path):
            seen.update(dict.fromkeys(words))
        if len(seen) <= 1:
            raise DataFormatError(f"{path}: holds no words")
        return cls(list(seen))

    def __len__(self) -> int:
        return len(self.itos)

    def encode_file(self, path: str | os.PathLike[str]) -> torch.Tensor:
        """The file's tokens (with ``<eos>`` per line) as a 1-D LongTensor of indices."""
        src = Path(path)
        unk = self.stoi.get(UNK)
        ids: list[int] = []
        for lineno, words in _lines(src):
            for word in words:
                index = self.stoi.get(word, unk)
                if index is None:
                    raise DataFormatError(
                        f"{src}:{lineno}: word {word!r} is not in the training vocabulary, "
                        f"which has no {UNK} to stand for it"
                    )
                ids.append(index)
        if not ids:
            raise DataFormatError(f"{src}: holds no lines")
        return torch.tensor(ids, dtype=torch.long)

    def decode(self, ids: torch.Tensor | Sequence[int]) -> list[str]:
        return [self.itos[int(i)] for i in ids]


class WikiText(NamedTuple):
    vocab: Vocabulary
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor


def load_wikitext(folder: str | os.PathLike[str]) -> WikiText:
    """Vocabulary from the training file and the three splits as 1-D LongTensors."""
    root = Path(folder)
    vocab = Vocabulary.build(root / SPLITS["train"])
    return WikiText(vocab, *(vocab.encode_file(root / name) for name in SPLITS.values()))


def batchify(
    data: torch.Tensor, batch_size: int, rank: int = 0, world_size: int = 1
) -> torch.Tensor:
    """This rank's ``steps x batch_size`` columns of the stream cut into
    ``batch_size * world_size`` equal columns (the tail that does not fill a row is dropped)."""
    if data.dim() != 1:
        raise ValueError(f"expected a 1-D token stream, got shape {tuple(data.shape)}")
    if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"bad batch_size={batch_size}, rank={rank}, world_size={world_size}")
    columns = batch_size * world_size
    steps = data.numel() // columns
    if steps < 2:
        raise ValueError(
            f"{data.numel()} tokens are too few for {columns} columns of at least 2 tokens"
        )
    layout = data[: steps * columns].view(columns, steps).t()
    return layout[:, rank * batch_size : (rank + 1) * batch_size].contiguous()


class BpttBatch(NamedTuple):
    inputs: torch.Tensor
    """seq_len x batch_size token indices."""
    targets: torch.Tensor
    """The next token of each input, same shape."""
    seq_len: int


def bptt_batches(
    source: torch.Tensor,
    bptt: int,
    *,
    variable: bool = False,
    generator: torch.Generator | None = None,
    p_full: float = 0.95,
    std: float = 5.0,
    min_len: int = 5,
    max_len: int | None = None,
) -> Iterator[BpttBatch]:
    """Consecutive (inputs, targets) windows down the rows of a batchified stream.

    ``variable=True`` is AWD-LSTM's variable-length BPTT: each window's length is drawn as
    ``max(min_len, int(normal(bptt if u < p_full else bptt / 2, std)))`` (capped by
    ``max_len``), so that the cut points move between epochs. The draws come from
    ``generator``, which every rank must seed identically to keep the ranks in step; AWD-LSTM
    also scales the learning rate by ``seq_len / bptt`` for each window.
    """
    if source.dim() != 2:
        raise ValueError(f"expected a batchified steps x batch tensor, got {tuple(source.shape)}")
    if bptt < 1 or min_len < 1:
        raise ValueError(f"bptt and min_len must be positive, got {bptt} and {min_len}")
    if variable and generator is None:
        raise ValueError("variable-length BPTT needs a generator seeded alike on every rank")
    rows = source.shape[0]
    i = 0
    while i < rows - 1:
        seq_len = bptt
        if variable:
            assert generator is not None
            full = torch.rand((), generator=generator).item() < p_full
            mean = float(bptt if full else bptt / 2)
            drawn = torch.normal(mean, std, (1,), generator=generator).item()
            seq_len = max(min_len, int(drawn))
            if max_len is not None:
                seq_len = min(seq_len, max_len)
        seq_len = min(seq_len, rows - 1 - i)
        yield BpttBatch(source[i : i + seq_len], source[i + 1 : i + 1 + seq_len], seq_len)
        i += seq_len
