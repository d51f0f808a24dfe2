"""AWD-LSTM language model (Merity, Keskar and Socher, 2018: "Regularizing and Optimizing LSTM
Language Models").

A stack of LSTMs (default 3 layers: 400 -> 1150 -> 1150 -> 400) with the paper's
regularisation:

* **weight drop** (DropConnect) on every hidden-to-hidden matrix, one mask per forward pass;
* **embedding dropout**: whole words are dropped from the embedding matrix;
* **locked (variational) dropout**: one mask per sequence, shared by all time steps, on the
  embeddings (``dropout_input``), between layers (``dropout_hidden``) and on the output;
* **tied weights**: the decoder reuses the embedding matrix, so the last layer's width equals
  the embedding size.

The weight-dropped matrix is passed to ``nn.LSTM`` through ``torch.func.functional_call``
instead of the original code's trick of deleting and re-adding the parameter, which breaks on
current PyTorch; the fused LSTM kernel is still used and the gradient reaches the raw weight.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

Hidden = list[tuple[torch.Tensor, torch.Tensor]]


class LockedDropout(nn.Module):
    """Dropout with one mask per sequence, broadcast over time (input shape: time, batch, dim)."""

    def forward(self, x: torch.Tensor, p: float) -> torch.Tensor:
        if not self.training or p == 0:
            return x
        mask = x.new_empty(1, x.size(1), x.size(2)).bernoulli_(1 - p) / (1 - p)
        return x * mask


def embedding_dropout(embed: nn.Embedding, words: torch.Tensor, p: float) -> torch.Tensor:
    """Look up ``words`` with whole rows of the embedding matrix dropped (and the rest scaled)."""
    weight = embed.weight
    if p > 0:
        mask = weight.new_empty(weight.size(0), 1).bernoulli_(1 - p) / (1 - p)
        weight = weight * mask
    return F.embedding(words, weight)


class WeightDropLSTM(nn.Module):
    """A one-layer ``nn.LSTM`` whose hidden-to-hidden weights get DropConnect while training."""

    def __init__(self, input_size: int, hidden_size: int, weight_drop: float) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size)
        self.weight_drop = weight_drop

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        if not self.training or self.weight_drop == 0:
            return self.lstm(x, state)
        dropped = F.dropout(self.lstm.weight_hh_l0, self.weight_drop, training=True)
        return functional_call(self.lstm, {"weight_hh_l0": dropped}, (x, state), strict=False)


class AWDLSTM(nn.Module):
    """Word-level language model; input and output are (time, batch)."""

    def __init__(
        self,
        vocab_size: int,
        embedding_size: int = 400,
        hidden_size: int = 1150,
        layers: int = 3,
        dropout: float = 0.4,
        dropout_hidden: float = 0.2,
        dropout_input: float = 0.65,
        dropout_embedding: float = 0.1,
        weight_drop: float = 0.5,
        tie_weights: bool = True,
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError("an AWD-LSTM needs at least one layer")
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        sizes = [embedding_size] + [hidden_size] * (layers - 1)
        # With tied weights the last layer must produce embedding-sized vectors for the decoder.
        last = embedding_size if tie_weights else hidden_size
        outs = [*sizes[1:], last]
        self.rnns = nn.ModuleList(
            WeightDropLSTM(i, o, weight_drop) for i, o in zip(sizes, outs, strict=True)
        )
        self.decoder = nn.Linear(last, vocab_size)
        if tie_weights:
            self.decoder.weight = self.embedding.weight
        self.lock = LockedDropout()
        self.dropout = dropout
        self.dropout_hidden = dropout_hidden
        self.dropout_input = dropout_input
        self.dropout_embedding = dropout_embedding
        self.hidden_sizes = outs
        self._init_weights()

    def _init_weights(self) -> None:
        # As the reference implementation: small uniform embeddings, zero decoder bias.
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def init_hidden(self, batch_size: int, device: torch.device | None = None) -> Hidden:
        device = device or self.embedding.weight.device
        return [
            (
                torch.zeros(1, batch_size, h, device=device),
                torch.zeros(1, batch_size, h, device=device),
            )
            for h in self.hidden_sizes
        ]

    def forward(
        self, words: torch.Tensor, hidden: Hidden
    ) -> tuple[torch.Tensor, Hidden, list[torch.Tensor], list[torch.Tensor]]:
        """(logits (time, batch, vocab), new hidden, raw outputs, dropped outputs).

        The raw and dropped outputs of the last layer feed the activation regularisers (AR/TAR).
        """
        p_embed = self.dropout_embedding if self.training else 0.0
        out = self.lock(embedding_dropout(self.embedding, words, p_embed), self.dropout_input)
        new_hidden: Hidden = []
        raw_outputs: list[torch.Tensor] = []
        dropped_outputs: list[torch.Tensor] = []
        last = len(self.rnns) - 1
        for index, (rnn, state) in enumerate(zip(self.rnns, hidden, strict=True)):
            out, new_state = rnn(out, state)
            new_hidden.append(new_state)
            raw_outputs.append(out)
            out = self.lock(out, self.dropout if index == last else self.dropout_hidden)
            dropped_outputs.append(out)
        return self.decoder(out), new_hidden, raw_outputs, dropped_outputs


def detach_hidden(hidden: Hidden) -> Hidden:
    """Cut the graph between BPTT windows while keeping the state (truncated BPTT)."""
    return [(h.detach(), c.detach()) for h, c in hidden]
