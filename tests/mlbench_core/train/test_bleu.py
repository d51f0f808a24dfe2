"""BLEU as sacrebleu computes it, on one process and gathered over gloo ranks; BPE round trip."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sacrebleu

from mlbench_core import distributed as mdist
from mlbench_core.data.bpe import decode_ids, encode_lines, train_bpe
from mlbench_core.metrics_bleu import corpus_bleu, distributed_corpus_bleu
from tests.mlbench_core.train.ranks import run_in_ranks

HYPOTHESES = [
    "Das Haus ist klein.",
    "Der Hund läuft schnell über die Straße.",
    "Wir mögen grüne Äpfel, aber keine roten.",
    "Es regnet heute den ganzen Tag.",
    "Die Katze schläft auf dem Sofa.",
    "Ich habe das Buch gestern gelesen!",
]
REFERENCES = [
    "Das Haus ist sehr klein.",
    "Der Hund rennt schnell über die Straße.",
    "Wir mögen grüne Äpfel, aber nicht die roten.",
    "Heute regnet es den ganzen Tag.",
    "Die Katze schläft auf dem Sofa.",
    "Gestern habe ich das Buch gelesen.",
]


def hand_bleu(hyps: list[str], refs: list[str]) -> float:
    """Papineni et al.'s corpus BLEU for whitespace-tokenised text (no smoothing needed when
    every n-gram order has a match)."""
    matches = [0] * 4
    totals = [0] * 4
    hyp_len = ref_len = 0
    for hyp, ref in zip(hyps, refs, strict=True):
        h, r = hyp.split(), ref.split()
        hyp_len += len(h)
        ref_len += len(r)
        for n in range(1, 5):
            h_grams = Counter(tuple(h[i : i + n]) for i in range(len(h) - n + 1))
            r_grams = Counter(tuple(r[i : i + n]) for i in range(len(r) - n + 1))
            matches[n - 1] += sum(min(c, r_grams[g]) for g, c in h_grams.items())
            totals[n - 1] += max(len(h) - n + 1, 0)
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / 4
    brevity = min(0.0, 1 - ref_len / hyp_len)
    return 100 * math.exp(log_precision + brevity)


def test_corpus_bleu_is_sacrebleus() -> None:
    expected = sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES]).score
    assert corpus_bleu(HYPOTHESES, REFERENCES) == expected
    assert 30 < expected < 70  # neither trivial nor perfect
    assert corpus_bleu(REFERENCES, REFERENCES) == pytest.approx(100.0)


def test_corpus_bleu_matches_the_definition() -> None:
    # Lower case without punctuation: 13a tokenisation is a whitespace split here.
    hyps = ["the cat sat on the mat", "a quick brown fox jumps over the dog today"]
    refs = ["the cat sat on a mat", "the quick brown fox jumps over the lazy dog"]
    assert corpus_bleu(hyps, refs) == pytest.approx(hand_bleu(hyps, refs), abs=1e-9)
    assert corpus_bleu(hyps[:1], refs[:1]) == pytest.approx(53.7284965911771, abs=1e-9)


def test_corpus_bleu_rejects_mismatched_or_empty_input() -> None:
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        corpus_bleu(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="empty corpus"):
        corpus_bleu([], [])


def bleu_in_ranks(params: dict[str, Any]) -> dict[str, float]:
    rank, world = mdist.rank(), mdist.world_size()
    hyps, refs = HYPOTHESES[rank::world], REFERENCES[rank::world]
    return {"gathered": distributed_corpus_bleu(hyps, refs), "own": corpus_bleu(hyps, refs)}


def test_distributed_bleu_pools_the_whole_corpus(tmp_path: Path) -> None:
    outcomes = run_in_ranks(f"{__name__}:bleu_in_ranks", 2, tmp_path)
    for outcome in outcomes:
        assert outcome.returncode == 0, outcome.stderr
    whole = corpus_bleu(HYPOTHESES, REFERENCES)
    assert [o.value["gathered"] for o in outcomes] == [whole, whole]
    # BLEU is not an average of the parts' scores: pooling the counts matters.
    mean_of_parts = sum(o.value["own"] for o in outcomes) / 2
    assert abs(mean_of_parts - whole) > 0.5


def test_bpe_output_detokenises_to_the_exact_text(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(HYPOTHESES + REFERENCES) * 3 + "\n", encoding="utf-8")
    tokenizer = train_bpe([corpus], vocab_size=300, cache_dir=tmp_path / "bpe")
    ids = encode_lines(tokenizer, REFERENCES)
    pieces = [ids.values[ids.offsets[i] : ids.offsets[i + 1]] for i in range(len(REFERENCES))]
    assert all(len(p) > 2 for p in pieces)  # <s> ... </s> around several subwords
    decoded = [decode_ids(tokenizer, p) for p in pieces]
    assert decoded == REFERENCES
    assert corpus_bleu(decoded, REFERENCES) == pytest.approx(100.0)
    # Scoring subword pieces instead of text would give a different number.
    as_pieces = [" ".join(tokenizer.id_to_token(int(t)) for t in p[1:-1]) for p in pieces]
    assert corpus_bleu(as_pieces, REFERENCES) < 100.0
