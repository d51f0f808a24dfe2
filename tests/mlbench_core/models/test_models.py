"""Shapes, parameter counts and the defining properties of the reference models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mlbench_core.models import AWDLSTM, LogisticRegression, TranslationTransformer, resnet20
from mlbench_core.models.awd_lstm import LockedDropout, detach_hidden
from mlbench_core.models.transformer import label_smoothed_loss, sinusoidal_positions


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- ResNet-20


def test_resnet20_has_the_papers_size_and_shapes() -> None:
    model = resnet20()
    assert count(model) == 269_722  # He et al. report 0.27M for ResNet-20 (option A)
    # Option B adds two 1x1 projections with their batch norms (16->32 and 32->64).
    assert count(resnet20(shortcut="B")) == 269_722 + (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 19  # 1 + 3 stages x 3 blocks x 2, plus the classifier: 20 layers
    assert [c.out_channels for c in convs[1::6]] == [16, 32, 64]
    out = model(torch.randn(4, 3, 32, 32))
    assert out.shape == (4, 10)


def test_option_a_shortcut_pads_channels_with_zeros() -> None:
    block = resnet20().blocks[3]  # first block of stage 2: 16 -> 32 channels, stride 2
    x = torch.randn(2, 16, 8, 8)
    short = block.shortcut(x)
    assert short.shape == (2, 32, 4, 4)
    assert torch.equal(short[:, 8:24], x[:, :, ::2, ::2])
    assert short[:, :8].abs().sum() == 0 and short[:, 24:].abs().sum() == 0


# ---------------------------------------------------------------- logistic regression


def test_logreg_loss_is_mean_bce_plus_half_l2_norm() -> None:
    model = LogisticRegression(3, l2=0.5)
    with torch.no_grad():
        model.linear.weight.copy_(torch.tensor([[1.0, -2.0, 0.5]]))
        model.linear.bias.fill_(3.0)  # not penalised
    x = torch.randn(5, 3)
    y = torch.tensor([0, 1, 1, 0, 1])
    logits = model(x)
    expected = F.binary_cross_entropy_with_logits(logits, y.float()) + 0.25 * (1 + 4 + 0.25)
    assert model.loss(logits, y).item() == pytest.approx(expected.item())
    assert torch.equal(model.predict(logits), (logits > 0).long())


# ---------------------------------------------------------------- AWD-LSTM


def small_lstm(**kwargs: float) -> AWDLSTM:
    torch.manual_seed(0)
    return AWDLSTM(50, embedding_size=8, hidden_size=12, layers=3, **kwargs)


def test_awd_lstm_weights_are_tied_and_really_shared() -> None:
    model = small_lstm()
    assert model.decoder.weight is model.embedding.weight
    ids = {id(p) for p in model.parameters()}
    assert len(ids) == len(list(model.parameters()))  # the shared matrix is listed once
    assert [r.lstm.hidden_size for r in model.rnns] == [12, 12, 8]  # last layer = embedding
    hidden = model.init_hidden(2)
    logits, _, _, _ = model(torch.randint(0, 50, (5, 2)), hidden)
    logits.sum().backward()
    # One gradient from both uses; an optimizer step moves the decoder with the embedding.
    before = model.decoder.weight.detach().clone()
    torch.optim.SGD(model.parameters(), lr=1.0).step()
    assert not torch.equal(model.decoder.weight, before)
    assert model.decoder.weight.data_ptr() == model.embedding.weight.data_ptr()


def test_awd_lstm_shapes_and_state() -> None:
    model = small_lstm()
    hidden = model.init_hidden(3)
    logits, new_hidden, raw, dropped = model(torch.randint(0, 50, (7, 3)), hidden)
    assert logits.shape == (7, 3, 50)
    assert [h.shape for h, _ in new_hidden] == [(1, 3, 12), (1, 3, 12), (1, 3, 8)]
    assert raw[-1].shape == dropped[-1].shape == (7, 3, 8)
    assert all(not h.requires_grad for h, _ in detach_hidden(new_hidden))


def test_weight_drop_changes_training_outputs_only() -> None:
    model = small_lstm(dropout=0, dropout_hidden=0, dropout_input=0, dropout_embedding=0)
    words = torch.randint(0, 50, (6, 2))
    model.eval()
    first = model(words, model.init_hidden(2))[0]
    assert torch.equal(first, model(words, model.init_hidden(2))[0])
    model.train()  # only weight drop is left as a source of randomness
    a = model(words, model.init_hidden(2))[0]
    b = model(words, model.init_hidden(2))[0]
    assert not torch.allclose(a, b)
    a.sum().backward()
    raw = model.rnns[1].lstm.weight_hh_l0
    assert raw.grad is not None and 0 < (raw.grad == 0).float().mean() < 1  # masked entries


def test_locked_dropout_uses_one_mask_for_all_time_steps() -> None:
    drop = LockedDropout().train()
    out = drop(torch.ones(10, 4, 6), 0.5)
    assert torch.equal(out[0].expand_as(out), out)
    assert set(out.unique().tolist()) <= {0.0, 2.0}


# ---------------------------------------------------------------- Transformer


def small_transformer() -> TranslationTransformer:
    torch.manual_seed(0)
    return TranslationTransformer(
        40, pad_id=0, bos_id=2, eos_id=3, d_model=16, heads=2,
        encoder_layers=1, decoder_layers=1, ffn_dim=32, dropout=0.0,
    )  # fmt: skip


def test_transformer_forward_and_greedy_decode_shapes() -> None:
    model = small_transformer().eval()
    src = torch.randint(4, 40, (3, 6))
    src[0, 4:] = 0  # padding
    tgt_in = torch.randint(4, 40, (3, 5))
    assert model(src, tgt_in).shape == (3, 5, 40)
    out = model.greedy_decode(src, max_extra=4)
    assert out.shape[0] == 3 and 1 <= out.shape[1] <= 6 + 4
    for row in out.tolist():  # after the first EOS there is only padding
        if 3 in row:
            assert set(row[row.index(3) + 1 :]) <= {0}


def test_greedy_decoding_follows_the_models_own_argmax() -> None:
    model = small_transformer().eval()
    src = torch.randint(4, 40, (2, 5))
    out = model.greedy_decode(src, max_extra=3)
    prefix = torch.full((2, 1), 2)
    for step in range(out.shape[1]):
        expected = model(src, prefix)[:, -1].argmax(-1)
        live = ~(prefix[:, 1:] == 3).any(dim=1) if step else torch.ones(2, dtype=torch.bool)
        assert torch.equal(out[live, step], expected[live])
        prefix = torch.cat([prefix, out[:, step : step + 1]], dim=1)


def test_embeddings_are_shared_with_the_output_projection() -> None:
    model = small_transformer()
    assert sum(p is model.embedding.weight for p in model.parameters()) == 1
    table = sinusoidal_positions(4, 6)
    assert torch.allclose(table[0], torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0]))


def test_label_smoothed_loss_ignores_padding() -> None:
    logits = torch.randn(2, 3, 5)
    target = torch.tensor([[1, 2, 0], [4, 0, 0]])
    total, tokens = label_smoothed_loss(logits, target, pad_id=0, smoothing=0.1)
    assert tokens == 3
    keep = target.ne(0)
    logp = logits[keep].log_softmax(-1)
    gold = target[keep]
    expected = -(0.9 * logp.gather(1, gold[:, None]).squeeze(1) + 0.1 * logp.mean(-1)).sum()
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)
