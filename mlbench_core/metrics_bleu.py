"""Corpus BLEU as sacrebleu computes it, for one process or gathered over all ranks.

Scores are sacrebleu's ``corpus_bleu`` on *detokenised* text with its default settings
(13a tokenisation, exponential smoothing, mixed case): the numbers WMT and papers since 2018
report, comparable across tokenisers and BPE vocabularies. Hypotheses must therefore be plain
text (``mlbench_core.data.bpe.decode_ids`` turns ids back into it), never BPE pieces.
"""

from __future__ import annotations

from collections.abc import Sequence

import sacrebleu
import torch.distributed as dist

from mlbench_core import distributed as mdist


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """BLEU (0-100) of ``hypotheses`` against one reference each."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    if not hypotheses:
        raise ValueError("BLEU of an empty corpus is undefined")
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def distributed_corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU over the union of every rank's (hypothesis, reference) pairs.

    BLEU is not an average of per-part scores (n-gram counts and lengths are pooled first),
    so the pairs are gathered and every rank scores the whole corpus: same value everywhere.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    pairs = list(zip(hypotheses, references, strict=True))
    if mdist.is_initialized() and mdist.world_size() > 1:
        gathered: list[list[tuple[str, str]] | None] = [None] * mdist.world_size()
        dist.all_gather_object(gathered, pairs)
        pairs = [pair for part in gathered if part for pair in part]
    return corpus_bleu([h for h, _ in pairs], [r for _, r in pairs])
