"""Task 4b: Transformer (base) on WMT17 English-German, Adam, BLEU goal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from pydantic import BaseModel, Field, model_validator
from torch import nn

from mlbench_core import distributed as mdist
from mlbench_core.data.batching import Ragged, token_batches
from mlbench_core.data.bpe import BOS_ID, EOS_ID, PAD_ID, decode_ids, encode_lines, train_bpe
from mlbench_core.data.partition import validation_slice
from mlbench_core.data.wmt import prepare_wmt17_ende, read_parallel
from mlbench_core.metrics_bleu import distributed_corpus_bleu
from mlbench_core.models.transformer import TranslationTransformer, label_smoothed_loss
from mlbench_core.optim import make_scheduler
from mlbench_core.tasks import register
from mlbench_core.tasks.base import GoalSpec, Task, TaskContext
from mlbench_core.train import (
    PrecisionMixin,
    StepLoss,
    Trainable,
    TrainConfig,
    data_root,
    make_communication,
    run_training,
)
from mlbench_core.train.config import Precision, epochs_field, eval_every_field
from mlbench_core.wire import RunResult

Pair = tuple[torch.Tensor, torch.Tensor]


class WmtTransformerConfig(PrecisionMixin, TrainConfig):
    """Settings of task 4b."""

    epochs: int = epochs_field(10)
    eval_every_epochs: float = eval_every_field(0.5)
    precision: Precision = Field(
        "fp16",
        description=(
            "Autocast dtype on GPUs: fp16 (dynamic loss scaling, as the reference), bf16 or "
            "fp32. Ignored on CPUs, where training is always float32."
        ),
    )
    max_tokens: int = Field(
        8192, ge=16, le=10_000_000, description="Tokens per batch and side on each worker."
    )
    max_length: int = Field(
        80,
        ge=4,
        le=1000,
        description="Training pairs with a longer side (in BPE tokens) are left out.",
    )
    bpe_vocab_size: int = Field(
        32_000, ge=260, le=1_000_000, description="Joint English-German byte-level BPE vocabulary."
    )
    lr: float = Field(1.976e-3, gt=0, le=1, description="Peak Adam lr, reached after warmup.")
    warmup_steps: int = Field(
        1000, ge=1, le=10_000_000, description="Linear warm-up steps; then lr ~ 1/sqrt(step)."
    )
    label_smoothing: float = Field(0.1, ge=0, lt=1, description="Label smoothing of the loss.")
    d_model: int = Field(512, ge=2, le=16_384, description="Model width (embeddings, attention).")
    heads: int = Field(8, ge=1, le=256, description="Attention heads (must divide d_model).")
    encoder_layers: int = Field(6, ge=1, le=64, description="Encoder layers.")
    decoder_layers: int = Field(6, ge=1, le=64, description="Decoder layers.")
    ffn_dim: int = Field(2048, ge=1, le=65_536, description="Feed-forward inner width.")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout in every sublayer.")
    eval_batch_size: int = Field(
        128, ge=1, le=100_000, description="Sentences per batch when translating for BLEU."
    )
    decode_extra: int = Field(
        50,
        ge=1,
        le=1000,
        description="A translation may be this many tokens longer than its source.",
    )

    @model_validator(mode="after")
    def _heads_divide_width(self) -> WmtTransformerConfig:
        if self.d_model % self.heads:
            raise ValueError(f"heads={self.heads} does not divide d_model={self.d_model}")
        return self


class Corpus:
    """BPE ids of the training pairs (filtered by length) and the raw validation text."""

    def __init__(self, root: Path, config: WmtTransformerConfig) -> None:
        folder = root / "wmt17"
        staged = [folder / name for name in ("train.en", "train.de")]
        valid = (folder / "newstest2017.en", folder / "newstest2017.de")
        if all(p.is_file() for p in (*staged, *valid)):
            train_pairs = [(staged[0], staged[1])]  # pre-staged, already concatenated
        else:
            files = prepare_wmt17_ende(root)
            train_pairs, valid = files.train, files.valid
        self.tokenizer = train_bpe(
            [p for pair in train_pairs for p in pair], config.bpe_vocab_size, folder / "bpe"
        )
        src_lines: list[str] = []
        tgt_lines: list[str] = []
        for en, de in train_pairs:
            src, tgt = read_parallel(en, de, drop_empty=True)
            src_lines += src
            tgt_lines += tgt
        src_ids = encode_lines(self.tokenizer, src_lines, bos=False)
        tgt_ids = encode_lines(self.tokenizer, tgt_lines)
        keep = (src_ids.lengths <= config.max_length) & (tgt_ids.lengths <= config.max_length)
        chosen = keep.nonzero().squeeze(1)
        self.train_src: Ragged = src_ids.select(chosen)
        self.train_tgt: Ragged = tgt_ids.select(chosen)
        self.valid_src_text, self.valid_ref_text = read_parallel(*valid)
        self.valid_src = encode_lines(self.tokenizer, self.valid_src_text, bos=False)
        self.valid_tgt = encode_lines(self.tokenizer, self.valid_ref_text)


class TranslationTrainable(Trainable):
    def __init__(
        self,
        model: TranslationTransformer,
        optimizer: torch.optim.Optimizer,
        corpus: Corpus,
        config: WmtTransformerConfig,
        ctx: TaskContext,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.corpus = corpus
        self.config = config
        self.ctx = ctx
        # The batch count depends on the lengths only, not on the shuffle: fixed per epoch.
        self.steps_per_epoch = len(self._batches(0))
        if self.steps_per_epoch == 0:
            raise ValueError("the training corpus gives no batch for every worker")

    def _batches(self, epoch: int) -> list[torch.Tensor]:
        ctx = self.ctx
        return token_batches(
            self.corpus.train_src.lengths,
            self.corpus.train_tgt.lengths,
            self.config.max_tokens,
            seed=ctx.seed,
            epoch=epoch,
            rank=ctx.rank,
            world_size=ctx.world_size,
        )

    def batches(self, epoch: int) -> Iterator[Pair]:
        for chosen in self._batches(epoch):
            yield (
                self.corpus.train_src.pad(chosen, PAD_ID),
                self.corpus.train_tgt.pad(chosen, PAD_ID),
            )

    def loss(self, model: nn.Module, batch: Pair) -> StepLoss:
        src, tgt = batch
        logits = model(src, tgt[:, :-1])
        total, tokens = label_smoothed_loss(logits, tgt[:, 1:], PAD_ID, self.config.label_smoothing)
        return StepLoss(total / max(tokens, 1), samples=len(src), tokens=tokens)

    def evaluate(self) -> dict[str, float]:
        corpus, device = self.corpus, self.ctx.device
        part = validation_slice(len(corpus.valid_src), self.ctx.rank, self.ctx.world_size)
        indices = torch.arange(part.start, part.stop)
        # Similar lengths together: less padding, and decoding stops sooner.
        indices = indices[torch.argsort(corpus.valid_src.lengths[indices], stable=True)]
        hypotheses: list[str] = []
        references: list[str] = []
        nll_sum = 0.0
        tokens = 0
        for chunk in indices.split(self.config.eval_batch_size):
            src = corpus.valid_src.pad(chunk, PAD_ID).to(device)
            tgt = corpus.valid_tgt.pad(chunk, PAD_ID).to(device)
            logits = self.model(src, tgt[:, :-1])
            nll, count = label_smoothed_loss(logits, tgt[:, 1:], PAD_ID, smoothing=0.0)
            nll_sum += float(nll)
            tokens += count
            out = self.model.greedy_decode(src, max_extra=self.config.decode_extra)
            hypotheses += [decode_ids(corpus.tokenizer, row) for row in _until_eos(out)]
            references += [corpus.valid_ref_text[int(i)] for i in chunk]
        totals = mdist.global_sum(torch.tensor([nll_sum, tokens], dtype=torch.float64))
        bleu = distributed_corpus_bleu(hypotheses, references)
        return {"val/bleu": bleu, "val/nll": float(totals[0] / max(float(totals[1]), 1.0))}


def _until_eos(out: torch.Tensor) -> list[list[int]]:
    rows = []
    for row in out.tolist():
        rows.append(row[: row.index(EOS_ID)] if EOS_ID in row else row)
    return rows


@register
class WmtTransformerTask(Task):
    id = "4b"
    title = "Task 4b: Transformer, WMT17 en-de"
    description = (
        "Transformer base (Vaswani et al. 2017: 6+6 layers, width 512, 8 heads, feed-forward "
        "2048, post-norm, sinusoidal positions, one embedding matrix shared by source, target "
        "and output over a joint 32k byte-level BPE vocabulary) translating English to German, "
        "trained on the WMT17 news-task corpora (Europarl v7, Common Crawl, News Commentary "
        "v12, Rapid 2016; pairs up to 80 tokens) and validated on newstest2017. Optimizer: "
        "Adam (0.9, 0.98, eps 1e-9), gradients all-reduced by default, 8192 tokens per worker "
        "and step, lr rising linearly to 1.976e-3 over 1000 steps, then ~1/sqrt(step); label "
        "smoothing 0.1; fp16 autocast with loss scaling on GPUs. Goal: BLEU 25 (light: 20), "
        "sacrebleu corpus BLEU on detokenised greedy translations. The mlbench reference "
        "reached a global 2**17 tokens per step by accumulating gradients and used beam search; "
        "here a step is one batch per worker and decoding is greedy."
    )
    Config = WmtTransformerConfig
    goal: GoalSpec | None = GoalSpec(
        metric="val/bleu", higher_is_better=True, full=25.0, light=20.0
    )

    def run(self, ctx: TaskContext, config: BaseModel) -> RunResult:
        assert isinstance(config, WmtTransformerConfig)
        corpus = Corpus(Path(data_root(ctx, config)), config)
        longest = int(max(corpus.valid_src.lengths.max(), corpus.train_tgt.lengths.max()))
        torch.manual_seed(ctx.seed)
        model = TranslationTransformer(
            corpus.tokenizer.get_vocab_size(),
            pad_id=PAD_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            d_model=config.d_model,
            heads=config.heads,
            encoder_layers=config.encoder_layers,
            decoder_layers=config.decoder_layers,
            ffn_dim=config.ffn_dim,
            dropout=config.dropout,
            max_positions=max(1024, longest + config.decode_extra + 2),
        ).to(ctx.device)
        aggregator, train_model = make_communication(ctx, config, model)
        optimizer = torch.optim.Adam(
            train_model.parameters(), lr=config.lr, betas=(0.9, 0.98), eps=1e-9
        )
        scheduler = make_scheduler("inverse-sqrt", optimizer, {"warmup_steps": config.warmup_steps})
        trainable = TranslationTrainable(model, optimizer, corpus, config, ctx)
        return run_training(
            ctx, config, trainable, train_model, aggregator, scheduler, goal=self.goal
        )
