"""Tiny data sets written in the published on-disk formats, for end-to-end task runs.

Each writer lays its files out exactly where the task's loader looks for a pre-staged copy
under a data root, so the real loaders (unpickling, LIBSVM parsing, tokenising, BPE training)
run on them; only the size differs. The contents carry a learnable signal, so a few steps of
training visibly lower the loss.
"""

from __future__ import annotations

import bz2
from pathlib import Path

import numpy as np

from tests.mlbench_core.data.make_files import py2_pickle


def write_cifar10(root: Path, per_batch: int = 32, seed: int = 0) -> Path:
    """``root/cifar10/cifar-10-batches-py`` with 5 training batches and a test batch.

    Python pickles of dicts with byte-string keys, like the originals (written by Python 2);
    the class of an image decides its mean brightness per channel.
    """
    rng = np.random.default_rng(seed)
    folder = root / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def batch(name: str) -> None:
        labels = rng.integers(0, 10, per_batch)
        base = (labels[:, None] * 25).astype(np.int64)
        pixels = np.clip(base + rng.integers(-20, 20, (per_batch, 3072)), 0, 255)
        record = {b"data": pixels.astype(np.uint8), b"labels": labels.tolist()}
        (folder / name).write_bytes(py2_pickle(record))

    for i in range(1, 6):
        batch(f"data_batch_{i}")
    batch("test_batch")
    meta = {
        b"num_cases_per_batch": per_batch,
        b"label_names": [n.encode() for n in "abcdefghij"],
        b"num_vis": 3072,
    }
    (folder / "batches.meta").write_bytes(py2_pickle(meta))
    return folder


def write_epsilon(root: Path, n_train: int = 400, n_test: int = 100, seed: int = 0) -> Path:
    """``root/epsilon/epsilon_normalized{,.t}.bz2``: LIBSVM text, labels -1/+1, 2000 features.

    Only the first 20 features are non-zero (LIBSVM lines list non-zero entries only), and
    the label is the sign of a fixed linear function of them.
    """
    rng = np.random.default_rng(seed)
    folder = root / "epsilon"
    folder.mkdir(parents=True, exist_ok=True)
    w = rng.normal(size=20)

    def write(name: str, n: int) -> None:
        x = rng.normal(size=(n, 20)) / np.sqrt(20)
        y = np.where(x @ w > 0, 1, -1)
        lines = []
        for label, row in zip(y, x, strict=True):
            entries = " ".join(f"{j + 1}:{v:.6f}" for j, v in enumerate(row))
            lines.append(f"{label:+d} {entries}\n")
        (folder / name).write_bytes(bz2.compress("".join(lines).encode()))

    write("epsilon_normalized.bz2", n_train)
    write("epsilon_normalized.t.bz2", n_test)
    return folder


_WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "was",
    "for",
    "on",
    "as",
    "with",
    "by",
    "he",
    "at",
    "from",
    "his",
    "an",
    "were",
    "are",
]


def write_wikitext2(root: Path, lines: int = 120, seed: int = 0) -> Path:
    """``root/wikitext2/wikitext-2/wiki.{train,valid,test}.tokens`` in WikiText's layout:
    `` = Heading = `` lines, blank lines and space-separated tokens with ``<unk>``."""
    rng = np.random.default_rng(seed)
    folder = root / "wikitext2" / "wikitext-2"
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", lines), ("valid", lines // 3), ("test", lines // 3)):
        out = [" \n", " = Heading = \n", " \n"]
        for _ in range(count):
            # A repeating word order with some noise: next-word prediction can be learned.
            start = int(rng.integers(0, len(_WORDS)))
            words = [_WORDS[(start + k) % len(_WORDS)] for k in range(int(rng.integers(5, 15)))]
            if rng.random() < 0.2:
                words[int(rng.integers(0, len(words)))] = "<unk>"
            out.append(" " + " ".join(words) + " \n")
        (folder / f"wiki.{split}.tokens").write_text("".join(out), encoding="utf-8")
    return folder


_EN = ["the house is small", "the cat sleeps", "a dog runs fast", "we like green apples ."]
_DE = [
    "das Haus ist klein",
    "die Katze schläft",
    "ein Hund läuft schnell",
    "wir mögen grüne Äpfel .",
]


def write_wmt17(root: Path, pairs: int = 200, valid: int = 12, seed: int = 0) -> Path:
    """``root/wmt17/{train,newstest2017}.{en,de}``: line-aligned plain text, the layout of the
    pre-staged corpus (the four training corpora concatenated, newstest2017 as unpacked from
    sacrebleu's SGML)."""
    rng = np.random.default_rng(seed)
    folder = root / "wmt17"
    folder.mkdir(parents=True, exist_ok=True)

    def sentences(n: int) -> tuple[list[str], list[str]]:
        en, de = [], []
        for _ in range(n):
            picks = rng.integers(0, len(_EN), int(rng.integers(1, 3)))
            en.append(" ".join(_EN[i].strip().capitalize() + "." for i in picks))
            de.append(" ".join(_DE[i].strip().capitalize() + "." for i in picks))
        return en, de

    for stem, n in (("train", pairs), ("newstest2017", valid)):
        en, de = sentences(n)
        (folder / f"{stem}.en").write_text("".join(f"{s}\n" for s in en), encoding="utf-8")
        (folder / f"{stem}.de").write_text("".join(f"{s}\n" for s in de), encoding="utf-8")
    return folder
