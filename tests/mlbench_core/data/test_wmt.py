"""WMT17 en-de files: line-aligned pairs, newstest SGML, prepare() from a local mirror."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mlbench_core.data.errors import DataFormatError, DatasetUnavailable
from mlbench_core.data.sources import WMT17_ENDE_TEST, Source
from mlbench_core.data.wmt import prepare_wmt17_ende, read_parallel, read_sgm
from tests.mlbench_core.data.http_server import FileServer
from tests.mlbench_core.data.make_files import DE, EN, sgm_text, tar_bytes, write_lines


def test_read_parallel(tmp_path: Path) -> None:
    en = write_lines(tmp_path / "c.en", [*EN, "", "  spaced  "])
    de = write_lines(tmp_path / "c.de", [*DE, "leer", "x"])
    src, tgt = read_parallel(en, de)
    assert src[:4] == EN and tgt[:4] == DE and src[5] == "spaced" and len(src) == 6
    src, tgt = read_parallel(en, de, drop_empty=True)
    assert len(src) == len(tgt) == 5 and "leer" not in tgt


def test_carriage_return_inside_a_line_does_not_split_it(tmp_path: Path) -> None:
    en = tmp_path / "c.en"
    en.write_bytes(b"one\rstill one\ntwo\n")
    de = write_lines(tmp_path / "c.de", ["eins", "zwei"])
    src, tgt = read_parallel(en, de)
    assert len(src) == 2 and tgt == ["eins", "zwei"]


def test_mismatched_line_counts(tmp_path: Path) -> None:
    en = write_lines(tmp_path / "c.en", EN)
    de = write_lines(tmp_path / "c.de", DE[:-1])
    with pytest.raises(DataFormatError, match=r"has 4 lines but .*c.de has 3.*line-aligned") as err:
        read_parallel(en, de)
    assert "\n" not in str(err.value)


def test_missing_and_non_utf8(tmp_path: Path) -> None:
    en = write_lines(tmp_path / "c.en", EN)
    with pytest.raises(DatasetUnavailable, match=r"c\.de is missing"):
        read_parallel(en, tmp_path / "c.de")
    (tmp_path / "c.de").write_bytes(b"\xff\xfe\n")
    with pytest.raises(DataFormatError, match="not UTF-8"):
        read_parallel(en, tmp_path / "c.de")


def test_read_sgm_collapses_whitespace_like_sacrebleu(tmp_path: Path) -> None:
    path = tmp_path / "newstest2017-ende-ref.de.sgm"
    path.write_text(sgm_text(["  Ein   Satz. ", "Zweiter\tSatz"], ref=True, lang="de"))
    assert read_sgm(path) == ["Ein Satz.", "Zweiter Satz"]
    path.write_text("<srcset>\n</srcset>\n")
    with pytest.raises(DataFormatError, match="no <seg> elements"):
        read_sgm(path)
    path.write_text('<srcset>\n<seg id="1">open\n</srcset>\n')
    with pytest.raises(DataFormatError, match="unterminated <seg>"):
        read_sgm(path)


def _source(server: FileServer, path: str, body: bytes) -> Source:
    return Source(server.url(path), path.rsplit("/", 1)[1], hashlib.sha256(body).hexdigest())


def test_prepare_from_mirror(tmp_path: Path) -> None:
    test_tgz = tar_bytes(
        {
            WMT17_ENDE_TEST[0]: sgm_text(EN, ref=False, lang="en").encode(),
            WMT17_ENDE_TEST[1]: sgm_text(DE, ref=True, lang="de").encode(),
        }
    )
    train_tgz = tar_bytes(
        {
            "training/news-commentary-v12.de-en.en": "\n".join(EN).encode() + b"\n",
            "training/news-commentary-v12.de-en.de": "\n".join(DE).encode() + b"\n",
        }
    )
    files = {"/wmt17/test.tgz": test_tgz, "/wmt17/training-parallel-nc-v12.tgz": train_tgz}
    with FileServer(files) as server:
        test_source = _source(server, "/wmt17/test.tgz", test_tgz)
        train_source = _source(server, "/wmt17/training-parallel-nc-v12.tgz", train_tgz)
        train_sources = [
            (
                train_source,
                "training/news-commentary-v12.de-en.en",
                "training/news-commentary-v12.de-en.de",
            )
        ]
        got = prepare_wmt17_ende(tmp_path, train_sources=train_sources, test_source=test_source)
        again = prepare_wmt17_ende(tmp_path, train_sources=train_sources, test_source=test_source)
        assert server.gets["/wmt17/test.tgz"] == 1
    assert got == again
    assert [p.name for p in got.valid] == ["newstest2017.en", "newstest2017.de"]
    assert read_parallel(*got.valid) == (EN, DE)
    assert read_parallel(*got.train[0]) == (EN, DE)


def test_prepare_reports_a_missing_corpus_file(tmp_path: Path) -> None:
    test_tgz = tar_bytes(
        {
            WMT17_ENDE_TEST[0]: sgm_text(EN, ref=False, lang="en").encode(),
            WMT17_ENDE_TEST[1]: sgm_text(DE, ref=True, lang="de").encode(),
        }
    )
    with FileServer({"/test.tgz": test_tgz}) as server:
        source = _source(server, "/test.tgz", test_tgz)
        with pytest.raises(DatasetUnavailable, match=r"europarl-v7\.de-en\.en is missing"):
            prepare_wmt17_ende(
                tmp_path,
                train_sources=[(source, "europarl-v7.de-en.en", "x.de")],
                test_source=source,
            )
