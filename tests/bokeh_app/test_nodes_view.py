"""The Nodes view: this host from a real master, and run placement on cluster nodes."""

from __future__ import annotations

import socket
from typing import Any

import psutil
import pytest
from bokeh.document import Document
from bokeh.models import DataTable

from bokeh_app.common.api import DashboardApi
from bokeh_app.views import nodes as nv
from tests.bokeh_app.conftest import DashMaster

GIB = 1024**3


def by_css(root: Any, css: str) -> Any:
    found = [m for m in root.references() if css in getattr(m, "css_classes", [])]
    assert len(found) == 1, (css, found)
    return found[0]


def test_this_host_with_its_cpus_and_the_live_local_runs(
    dash_master: DashMaster, dash_api: DashboardApi
) -> None:
    live = dash_master.create(workers=2, resources={"cpu": 1.5, "memory": "1Gi"})
    dash_master.status(live["id"], "running")
    ended = dash_master.create(workers=1)
    dash_master.status(ended["id"], "running")
    dash_master.status(ended["id"], "failed", reason="boom")

    view = nv.build_nodes(Document(), dash_api, {})
    view.load()
    table = by_css(view.root, "mlb-nodes-table")
    assert isinstance(table, DataTable)
    data = table.source.data
    assert data["name"] == [socket.gethostname()]
    assert data["source"] == ["local"]
    assert data["ready"] == [True]
    assert data["cpu_capacity"] == [float(psutil.cpu_count(logical=True))]
    assert data["cpu_allocatable"] == data["cpu_capacity"]
    total_gib = psutil.virtual_memory().total / GIB
    assert data["memory_capacity_gib"][0] == pytest.approx(total_gib, rel=1e-6)
    assert 0 < data["memory_allocatable_gib"][0] <= data["memory_capacity_gib"][0]
    assert data["run_ids"] == [str(live["id"])]
    assert f"#{live['id']} {live['name']}" in data["runs"][0]
    assert data["workers"] == [2] and data["requested_cpu"] == [3.0]
    assert data["requested_memory_gib"] == [2.0]
    assert by_css(view.root, "mlb-nodes-unplaced").text == ""
    assert view.refresh_ms > 0

    # The run ends: the next refresh no longer lists it.
    dash_master.status(live["id"], "failed", reason="done")
    view.load()
    assert table.source.data["run_ids"] == [""]
    assert table.source.data["runs"] == ["—"]


def test_master_down_shows_the_banner_and_recovers(dash_master: DashMaster) -> None:
    api = dash_master.api(timeout_s=1.0)
    view = nv.build_nodes(Document(), api, {})
    view.load()
    banner = by_css(view.root, "mlb-banner")
    assert not banner.visible
    dash_master.stop()
    view.load()
    assert banner.visible
    assert view.source.data["name"] == [socket.gethostname()]  # last data stays
    dash_master.start()
    view.load()
    assert not banner.visible
    api.close()


def kube_node(name: str, cpu: float, gpu: int = 0, ready: bool = True) -> dict[str, Any]:
    res = {"cpu": cpu, "memory": 16 * GIB, "gpu": gpu}
    return {
        "name": name,
        "ready": ready,
        "capacity": res,
        "allocatable": {**res, "cpu": cpu - 0.5},
        "arch": "amd64",
        "os": "linux",
        "instance_type": "m5.xlarge",
        "labels": {},
        "source": "kubernetes",
    }


def live_run(run_id: int, workers: int, executor: str = "argo", **res: Any) -> dict[str, Any]:
    return {
        "id": run_id,
        "name": f"r{run_id}",
        "benchmark": "digits-mlp",
        "state": "running",
        "spec": {"workers": workers, "executor": executor, "resources": res},
    }


def test_cluster_nodes_place_runs_only_where_the_manifest_says() -> None:
    nodes = [
        kube_node("node-a", 4),
        kube_node("node-b", 8, gpu=1),
        kube_node("down", 2, ready=False),
    ]
    runs = [
        live_run(1, 2, cpu=1, memory="2Gi"),
        live_run(2, 4, cpu=0.5, memory="512Mi", gpu=0),
        live_run(3, 1, executor="local"),
    ]
    # Run 1's rank 0 reported host node-b (hostNetwork pod); run 2's pod name is no node.
    placement = nv.place_runs(nodes, runs, {1: "node-b", 2: "r2-worker-0-abc"})
    assert [r["id"] for r in placement.on_node["node-b"]] == [1]
    assert placement.on_node["node-a"] == []
    assert [r["id"] for r in placement.unplaced] == [2, 3]

    cols = nv.node_columns(nodes, placement)
    assert cols["name"] == ["node-a", "node-b", "down"]
    assert cols["cpu_allocatable"] == [3.5, 7.5, 1.5]
    assert cols["gpu_capacity"] == [0, 1, 0]
    assert cols["workers"] == [0, 2, 0]
    assert cols["memory_capacity_gib"] == [16.0, 16.0, 16.0]

    note = nv.unplaced_html(nodes, placement)
    assert "placement not reported" in note
    assert "#2 r2" in note and "#3 r3" in note
    # 4 x 0.5 + 1 x 1 CPU, 4 x 512Mi + 1 x 2Gi, of the two ready nodes' allocatable.
    assert "5 workers, 3 CPU, 4.0 GiB memory, 0 GPU" in note
    assert "11 CPU, 32.0 GiB, 1 GPU allocatable on 2 ready node(s)" in note


def test_memory_quantities() -> None:
    assert nv.memory_bytes("2Gi") == 2 * GIB
    assert nv.memory_bytes("512Mi") == 512 * 1024**2
    assert nv.memory_bytes("1.5G") == 1.5e9
    assert nv.memory_bytes("1000") == 1000.0
    assert nv.memory_bytes(None) == 0.0
