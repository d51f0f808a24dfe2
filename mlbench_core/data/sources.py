"""Where the reference data sets come from: canonical URLs, published digests and sizes.

Provenance of each digest (checked against public records, not against a download from this
machine, which is offline):

- CIFAR-10 (python): sha256 as pinned by Keras' ``keras/datasets/cifar10.py`` and several
  independent projects; md5 as published on the CIFAR page and used by torchvision; the size
  170,498,071 bytes as recorded alongside those digests.
- epsilon (LIBSVM): the LIBSVM page publishes no digest or size and none was found in public
  records, so ``sha256``/``md5``/``size`` are ``None``: :func:`fetch` accepts the file with a
  loud UNVERIFIED warning that prints its sha256 for pinning here.
- WikiText-2 (tokenized, v1): the original S3 bucket is gone; the files come from the author's
  mirror wikitext.smerity.com. sha256 and size are the ones Hugging Face ``datasets`` recorded
  for the original S3 archive (``datasets/wikitext/dataset_infos.json``); md5 is torchtext's.
  The mirror serves the same bytes: its WikiText-103 archive has the S3 archive's sha256.
- WMT17 en-de training corpora: sha256 and sizes from TensorFlow Datasets'
  ``url_checksums/wmt17_translate.txt`` (Rapid 2016 is the copy under wmt18/, whose digest is
  recorded; it is the same corpus WMT17 lists).
- WMT17 newstest2017 (validation): sacrebleu's ``wmt17`` test set - its URL, its md5 and its
  local file name ``wmt17.test.tgz``; no sha256 is published, so md5 is verified.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mlbench_core.data.download import fetch


@dataclass(frozen=True)
class Source:
    """One downloadable file and what its bytes must be."""

    url: str
    filename: str
    sha256: str | None
    md5: str | None = None
    size: int | None = None


def fetch_source(
    source: Source,
    dest_dir: str | os.PathLike[str],
    *,
    attempts: int = 4,
    backoff_s: float = 1.0,
    timeout_s: float = 60.0,
) -> Path:
    """:func:`fetch` with the source's URL, file name and digests."""
    return fetch(
        source.url,
        dest_dir,
        sha256=source.sha256,
        filename=source.filename,
        md5=source.md5,
        size=source.size,
        attempts=attempts,
        backoff_s=backoff_s,
        timeout_s=timeout_s,
    )


CIFAR10_PYTHON = Source(
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    filename="cifar-10-python.tar.gz",
    sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    md5="c58f30108f718f92721af3b95e74349a",
    size=170_498_071,
)

_LIBSVM_BINARY = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/binary"
EPSILON_TRAIN = Source(
    url=f"{_LIBSVM_BINARY}/epsilon_normalized.bz2",
    filename="epsilon_normalized.bz2",
    sha256=None,  # not published; see the module docstring
)
EPSILON_TEST = Source(
    url=f"{_LIBSVM_BINARY}/epsilon_normalized.t.bz2",
    filename="epsilon_normalized.t.bz2",
    sha256=None,  # not published; see the module docstring
)

WIKITEXT2 = Source(
    url="https://wikitext.smerity.com/wikitext-2-v1.zip",
    filename="wikitext-2-v1.zip",
    sha256="92675f1d63015c1c8b51f1656a52d5bdbc33aafa60cc47a218a66e7ee817488c",
    md5="542ccefacc6c27f945fb54453812b3cd",
    size=4_475_746,
)

WMT17_EUROPARL_V7 = Source(
    url="http://www.statmt.org/wmt13/training-parallel-europarl-v7.tgz",
    filename="training-parallel-europarl-v7.tgz",
    sha256="0224c7c710c8a063dfd893b0cc0830202d61f4c75c17eb8e31836103d27d96e7",
    size=657_632_379,
)
WMT17_COMMONCRAWL = Source(
    url="http://www.statmt.org/wmt13/training-parallel-commoncrawl.tgz",
    filename="training-parallel-commoncrawl.tgz",
    sha256="c7a74e2ea01ac6c920123108627e35278d4ccb5701e15428ffa34de86fa3a9e5",
    size=918_311_367,
)
WMT17_NEWS_COMMENTARY_V12 = Source(
    url="http://data.statmt.org/wmt17/translation-task/training-parallel-nc-v12.tgz",
    filename="training-parallel-nc-v12.tgz",
    sha256="2b45f30ef1d550d302fd17dd3a5cbe19134ccc4c2cf50c2dae534aee600101a2",
    size=168_591_139,
)
WMT17_RAPID_2016 = Source(
    url="http://data.statmt.org/wmt18/translation-task/rapid2016.tgz",
    filename="rapid2016.tgz",
    sha256="41557dd5d8f0ed3a6d98bce3b798b1a9d3b68361eb99d902329ddbb943a6b55a",
    size=161_050_516,
)
WMT17_TEST = Source(
    url="http://data.statmt.org/wmt17/translation-task/test.tgz",
    filename="wmt17.test.tgz",  # sacrebleu's local name for it
    sha256=None,  # not published; sacrebleu pins the md5
    md5="86a1724c276004aa25455ae2a04cef26",
)

# (archive, English side, German side) of the WMT17 en-de training corpora, paths inside each
# archive as the statmt.org tarballs lay them out.
WMT17_ENDE_TRAIN: tuple[tuple[Source, str, str], ...] = (
    (WMT17_EUROPARL_V7, "training/europarl-v7.de-en.en", "training/europarl-v7.de-en.de"),
    (WMT17_COMMONCRAWL, "commoncrawl.de-en.en", "commoncrawl.de-en.de"),
    (
        WMT17_NEWS_COMMENTARY_V12,
        "training/news-commentary-v12.de-en.en",
        "training/news-commentary-v12.de-en.de",
    ),
    (WMT17_RAPID_2016, "rapid2016.de-en.en", "rapid2016.de-en.de"),
)
# newstest2017 en->de inside WMT17_TEST, as sacrebleu's "wmt17" test set names them.
WMT17_ENDE_TEST = ("test/newstest2017-ende-src.en.sgm", "test/newstest2017-ende-ref.de.sgm")
