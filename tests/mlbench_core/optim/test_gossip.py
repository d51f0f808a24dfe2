"""Gossip SGD: topology properties (pure) and consensus / participation in real gloo ranks."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from mlbench_core.optim import make_aggregator
from mlbench_core.optim.topology import make_topology, torus_shape
from tests.mlbench_core.optim.common import flat_params, gather_flat, tiny_mlp, world
from tests.mlbench_core.optim.procs import run_ok

HERE = "tests.mlbench_core.optim.test_gossip"
TOPOLOGIES = ("ring", "torus", "exponential")
MIX_STEPS = 8


@pytest.mark.parametrize("name", TOPOLOGIES)
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 8, 9, 12, 16])
def test_mixing_matrix_is_doubly_stochastic_and_connected(name: str, n: int) -> None:
    topology = make_topology(name, n)
    w = topology.matrix()
    assert torch.allclose(w.sum(dim=0), torch.ones(n, dtype=torch.float64))
    assert torch.allclose(w.sum(dim=1), torch.ones(n, dtype=torch.float64))
    assert (w >= 0).all()
    for rank in range(n):
        assert rank not in topology.out_peers(rank)
        # Every message sent is received: j sends to i exactly when i weights j.
        for peer in topology.out_peers(rank):
            assert rank in topology.in_peers(peer)
        assert set(topology.in_peers(rank)) == {j for j in range(n) if j != rank and w[rank, j] > 0}
    if n > 1:
        assert topology.contraction() < 1 - 1e-9  # connected: mixing reaches consensus


def test_topology_shapes() -> None:
    assert make_topology("ring", 6).out_peers(0) == (1, 5)
    assert make_topology("ring", 2).out_peers(1) == (0,)  # i-1 == i+1: one peer, mixed once
    assert torus_shape(12) == (3, 4) and torus_shape(7) == (1, 7) and torus_shape(16) == (4, 4)
    assert make_topology("torus", 16).out_peers(5) == (1, 4, 6, 9)
    assert make_topology("torus", 12, torus_rows=2).out_peers(0) == (1, 5, 6)
    assert make_topology("exponential", 8).out_peers(3) == (4, 5, 7)
    assert make_topology("exponential", 8).in_peers(3) == (1, 2, 7)
    assert make_topology("ring", 4).weights(0) == pytest.approx({0: 1 / 3, 1: 1 / 3, 3: 1 / 3})
    with pytest.raises(ValueError, match="torus_rows=5 does not divide the world size 12"):
        make_topology("torus", 12, torus_rows=5)
    with pytest.raises(ValueError, match="unknown topology 'star'"):
        make_topology("star", 4)


def _consensus(params: dict[str, Any]) -> dict[str, Any]:
    rank, size = world()
    out: dict[str, Any] = {}
    for name in TOPOLOGIES:
        aggregator = make_aggregator(
            "gossip", {"topology": name, "broadcast_initial": False}, rank=rank, world_size=size
        )
        model = aggregator.wrap(tiny_mlp(seed=rank))  # every rank its own model
        start = flat_params(model)
        rows = gather_flat(model)
        mean0 = rows.mean(dim=0)
        disagreement = [float((rows - mean0).norm())]
        mean_drift = []
        step_bytes = []
        for _ in range(MIX_STEPS):  # mixing only: no gradient steps
            aggregator.begin_step()
            aggregator.after_step(model)
            step_bytes.append(aggregator.last_step_bytes)
            rows = gather_flat(model)
            mean = rows.mean(dim=0)
            disagreement.append(float((rows - mean).norm()))
            mean_drift.append(float((mean - mean0).abs().max()))
        out[name] = {
            "disagreement": disagreement,
            "contraction": aggregator.topology.contraction(),
            "mean_drift": max(mean_drift),
            "own_change": float((flat_params(model) - start).abs().max()),
            "step_bytes": step_bytes,
            "model_bytes": 4 * start.numel(),
            "out_degree": len(aggregator.topology.out_peers(rank)),
        }
    return out


def test_gossip_drives_four_ranks_to_consensus(tmp_path: Path) -> None:
    results = run_ok(f"{HERE}:_consensus", 4, tmp_path)
    for rank, result in enumerate(results):
        for name in TOPOLOGIES:
            got = result[name]
            d = got["disagreement"]
            rate = got["contraction"]
            assert rate < 0.5, name  # 4 ranks: 1/3 for all three graphs
            assert d[0] > 1.0, name  # really different starts
            for t in range(1, len(d)):
                # Geometric: each mixing step shrinks the spread by at least the contraction.
                assert d[t] <= rate * d[t - 1] * (1 + 1e-4) + 1e-5, (name, t, d)
            assert d[-1] < 1e-3 * d[0], name
            assert got["mean_drift"] < 1e-5, name  # doubly stochastic: the average is kept
            # Every rank, rank 0 included, moved its own model towards the others'.
            assert got["own_change"] > 0.01, (name, rank)
            assert got["step_bytes"] == [got["model_bytes"] * got["out_degree"]] * MIX_STEPS


def _gossip_training(params: dict[str, Any]) -> dict[str, Any]:
    from tests.mlbench_core.optim.common import train_digits

    seen: list[float] = []
    steps = [0]

    def spread(aggregator: Any, model: torch.nn.Module) -> None:
        steps[0] += 1
        if steps[0] % 8 == 0:  # sampled: with 4 ranks on few cores every collective costs
            rows = gather_flat(model)
            seen.append(float((rows - rows.mean(dim=0)).norm()))

    result = train_digits(
        "gossip",
        {"topology": params["topology"]},
        model_fn=tiny_mlp,
        make_optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9),
        epochs=params["epochs"],
        data=params["digits"],
        on_step=spread,
    )
    return {**result, "spread": seen}


@pytest.mark.parametrize(("topology", "world_size"), [("exponential", 4)])
def test_gossip_sgd_trains_digits(
    tmp_path: Path, digits_file: str, topology: str, world_size: int
) -> None:
    params = {"topology": topology, "epochs": 6, "digits": digits_file}
    results = run_ok(f"{HERE}:_gossip_training", world_size, tmp_path, params)
    for result in results:
        assert result["accuracy"] >= 0.9, result["accuracy"]
        # The ranks see different data yet stay close: mixing keeps pulling them together.
        assert max(result["spread"]) < 0.5, max(result["spread"])
        assert not math.isnan(result["spread"][-1])
