"""Routes /benchmarks: the catalog."""

from __future__ import annotations

from mlbench_core.tasks import get_task
from tests.master.conftest import API, Master


def test_list_and_get(master: Master) -> None:
    catalog = master.client.get(f"{API}/benchmarks").json()
    ids = [entry["id"] for entry in catalog]
    assert "digits-mlp" in ids and "allreduce" in ids
    one = master.client.get(f"{API}/benchmarks/digits-mlp").json()
    assert one == get_task("digits-mlp").describe()
    assert one["goal"]["metric"] == "val/accuracy"
    assert "lr" in one["settings"]["properties"]


def test_unknown_benchmark_is_404_naming_the_known_ones(master: Master) -> None:
    response = master.client.get(f"{API}/benchmarks/nope")
    assert response.status_code == 404
    assert response.json()["detail"].startswith("unknown benchmark 'nope' (known: ")
    assert "digits-mlp" in response.json()["detail"]
