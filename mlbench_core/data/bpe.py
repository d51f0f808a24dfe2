"""A shared English-German BPE vocabulary (Hugging Face ``tokenizers``) and id encoding.

Byte-level BPE: text is first mapped to bytes, so every input encodes without ``<unk>`` and
decoding gives back exactly the input text (BLEU is computed on detokenised text, so the round
trip must be lossless). One vocabulary is trained on both languages, which lets a Transformer
share (tie) its source and target embeddings.

Training takes minutes on the full corpus and must give every rank the same ids, so the
result is cached as ``bpe-<size>-<fingerprint>.json`` in the cache directory: one process
trains under a file lock, the others wait and load it. The fingerprint covers the training
files (path, size, mtime) and settings, so a changed corpus never reuses a stale vocabulary.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from mlbench_core.data.batching import Ragged
from mlbench_core.data.errors import DataFormatError, DatasetUnavailable

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIALS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)
_MIN_VOCAB = 256 + len(SPECIALS)  # every byte symbol plus the special tokens
_FORMAT = "mlbench-bpe-1"  # bump when the tokenizer recipe below changes
log = logging.getLogger(__name__)


def train_bpe(
    files: Sequence[str | os.PathLike[str]],
    vocab_size: int,
    cache_dir: str | os.PathLike[str],
    *,
    min_frequency: int = 2,
) -> Tokenizer:
    """The BPE tokenizer for ``files`` (trained here, or loaded from the cache)."""
    if vocab_size < _MIN_VOCAB:
        raise ValueError(f"vocab_size must be at least {_MIN_VOCAB}, got {vocab_size}")
    if not files:
        raise ValueError("train_bpe needs at least one training file")
    paths = [Path(f) for f in files]
    for path in paths:
        if not path.is_file():
            raise DatasetUnavailable(f"BPE training file {path.name} is missing from {path.parent}")
    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    key = _fingerprint(paths, vocab_size, min_frequency)
    target = folder / f"bpe-{vocab_size}-{key[:16]}.json"
    with FileLock(str(folder / f".{target.name}.lock")):
        if not target.is_file():
            log.info("training a %d-token BPE on %d files into %s", vocab_size, len(paths), target)
            tokenizer = _new_tokenizer()
            trainer = trainers.BpeTrainer(
                vocab_size=vocab_size,
                min_frequency=min_frequency,
                special_tokens=list(SPECIALS),
                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                show_progress=False,
            )
            tokenizer.train([str(p) for p in paths], trainer)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".part")
            os.close(fd)
            try:
                tokenizer.save(tmp)
                os.replace(tmp, target)
            finally:
                Path(tmp).unlink(missing_ok=True)
    return load_bpe(target)


def load_bpe(path: str | os.PathLike[str]) -> Tokenizer:
    """A saved tokenizer, checked to have the special tokens at the fixed ids."""
    src = Path(path)
    try:
        tokenizer = Tokenizer.from_file(str(src))
    except Exception as exc:  # tokenizers raises a bare Exception for bad JSON
        raise DataFormatError(f"{src}: not a tokenizers JSON file ({exc})") from None
    for index, token in enumerate(SPECIALS):
        if tokenizer.token_to_id(token) != index:
            raise DataFormatError(f"{src}: special token {token} is not id {index}")
    return tokenizer


def _new_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    # No normaliser: any rewrite of the text would break the exact round trip.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def _fingerprint(paths: list[Path], vocab_size: int, min_frequency: int) -> str:
    record = [_FORMAT, vocab_size, min_frequency]
    for path in paths:
        stat = path.stat()
        record.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    return hashlib.sha256(json.dumps(record).encode()).hexdigest()


def encode_lines(
    tokenizer: Tokenizer,
    lines: Sequence[str],
    *,
    bos: bool = True,
    eos: bool = True,
    chunk: int = 50_000,
) -> Ragged:
    """Token ids of every line (``<s>`` first and ``</s>`` last when asked) as one flat int32
    tensor with offsets: millions of sentences stay a few arrays, not millions of tensors."""
    extra = int(bos) + int(eos)
    values: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    for start in range(0, len(lines), chunk):
        encodings = tokenizer.encode_batch(
            list(lines[start : start + chunk]), add_special_tokens=False
        )
        ids = [e.ids for e in encodings]
        lens = np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(ids))
        body = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int32, count=lens.sum())
        out = np.empty(int(lens.sum()) + extra * len(ids), dtype=np.int32)
        # Token j of line i moves right by the specials of the lines before it (and its own <s>).
        line_of = np.repeat(np.arange(len(ids)), lens)
        out[np.arange(body.size) + line_of * extra + int(bos)] = body
        ends = np.cumsum(lens + extra)
        if bos:
            out[ends - lens - extra] = BOS_ID
        if eos:
            out[ends - 1] = EOS_ID
        values.append(out)
        lengths.append(lens + extra)
    all_lengths = torch.from_numpy(np.concatenate(lengths)) if lengths else torch.zeros(0)
    offsets = torch.zeros(len(lines) + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(all_lengths.to(torch.int64), 0)
    flat = np.concatenate(values) if values else np.zeros(0, dtype=np.int32)
    return Ragged(torch.from_numpy(flat), offsets)


def decode_ids(tokenizer: Tokenizer, ids: Sequence[int] | torch.Tensor) -> str:
    """Text of one id sequence; ``<pad>``, ``<s>`` and ``</s>`` are left out."""
    values = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
    return tokenizer.decode([int(i) for i in values], skip_special_tokens=True)
