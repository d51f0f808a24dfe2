"""Encoder-decoder Transformer for translation (Vaswani et al., 2017) from torch's layers.

* one embedding matrix for source, target and output projection (a joint BPE vocabulary, as in
  the paper's English-German setup), scaled by sqrt(d_model);
* fixed sinusoidal position encodings;
* post-norm layers (the paper's; ``norm_first=True`` gives pre-norm);
* greedy decoding (the loop that computes BLEU); the paper used beam search of 4, which scores
  typically 0.5-1 BLEU higher, so greedy is the conservative choice for a goal check.

Tensors are batch-first: tokens (batch, length), padded with ``pad_id``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """(length, dim) table: sin on even, cos on odd channels, wavelengths 2pi..10000*2pi."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    rate = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10_000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate[: dim // 2])
    return table


class TranslationTransformer(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        pad_id: int,
        bos_id: int,
        eos_id: int,
        d_model: int = 512,
        heads: int = 8,
        encoder_layers: int = 6,
        decoder_layers: int = 6,
        ffn_dim: int = 2048,
        dropout: float = 0.1,
        max_positions: int = 1024,
        norm_first: bool = False,
    ) -> None:
        super().__init__()
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.d_model = d_model
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        nn.init.normal_(self.embedding.weight, 0.0, d_model**-0.5)
        with torch.no_grad():
            self.embedding.weight[pad_id].zero_()
        # A buffer, not a parameter: fixed, but moves with .to(device) and is not communicated.
        self.register_buffer(
            "positions", sinusoidal_positions(max_positions, d_model), persistent=False
        )
        self.dropout = nn.Dropout(dropout)
        # Built from torch's layers rather than nn.Transformer so the encoder can be told not
        # to convert padded batches to (prototype) nested tensors.
        common = {
            "d_model": d_model,
            "nhead": heads,
            "dim_feedforward": ffn_dim,
            "dropout": dropout,
            "batch_first": True,
            "norm_first": norm_first,
        }
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(**common),
            encoder_layers,
            norm=nn.LayerNorm(d_model),
            enable_nested_tensor=False,
        )
        self.decoder = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(**common), decoder_layers, norm=nn.LayerNorm(d_model)
        )

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.size(1)
        if length > self.positions.size(0):
            raise ValueError(f"sequence of {length} tokens exceeds max_positions")
        x = self.embedding(tokens) * math.sqrt(self.d_model) + self.positions[:length]
        return self.dropout(x)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        src_pad = src.eq(self.pad_id)
        memory = self.encoder(self.embed(src), src_key_padding_mask=src_pad)
        return memory, src_pad

    def decode(
        self, tgt_in: torch.Tensor, memory: torch.Tensor, src_pad: torch.Tensor
    ) -> torch.Tensor:
        length = tgt_in.size(1)
        # Boolean like the padding masks (True = may not attend): mixing float and bool masks
        # is deprecated in torch.
        causal = torch.ones(length, length, dtype=torch.bool, device=tgt_in.device).triu(1)
        out = self.decoder(
            self.embed(tgt_in),
            memory,
            tgt_mask=causal,
            tgt_is_causal=True,
            tgt_key_padding_mask=tgt_in.eq(self.pad_id),
            memory_key_padding_mask=src_pad,
        )
        # Output projection tied to the shared embedding matrix.
        return F.linear(out, self.embedding.weight)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Logits (batch, target length, vocab) for teacher forcing."""
        memory, src_pad = self.encode(src)
        return self.decode(tgt_in, memory, src_pad)

    @torch.no_grad()
    def greedy_decode(self, src: torch.Tensor, max_extra: int = 50) -> torch.Tensor:
        """Token ids (batch, <= src length + max_extra), starting after BOS, padded after EOS.

        Recomputes the decoder over the prefix at every step (torch's decoder layers have no
        key/value cache): quadratic in the output length, fine for validation-sized batches.
        """
        memory, src_pad = self.encode(src)
        batch = src.size(0)
        limit = min(src.size(1) + max_extra, self.positions.size(0) - 1)
        out = torch.full((batch, 1), self.bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(batch, dtype=torch.bool, device=src.device)
        for _ in range(limit):
            logits = self.decode(out, memory, src_pad)[:, -1]
            token = logits.argmax(dim=-1)
            token = token.masked_fill(done, self.pad_id)
            out = torch.cat([out, token.unsqueeze(1)], dim=1)
            done |= token.eq(self.eos_id)
            if bool(done.all()):
                break
        return out[:, 1:]


def label_smoothed_loss(
    logits: torch.Tensor, target: torch.Tensor, pad_id: int, smoothing: float = 0.1
) -> tuple[torch.Tensor, int]:
    """(sum of label-smoothed cross entropy over non-pad tokens, number of such tokens)."""
    loss = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        target.reshape(-1),
        ignore_index=pad_id,
        label_smoothing=smoothing,
        reduction="sum",
    )
    return loss, int(target.ne(pad_id).sum())
