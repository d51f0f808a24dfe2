"""Nodes view: the machines runs can use (GET /nodes) and what runs on them.

Where a run runs, as far as the REST API tells:

- **This host** (``source: local``, a master without a cluster): every live run of the local
  executor runs here, so all of them are listed on it.
- **Cluster nodes** (``source: kubernetes``): the API does not report pod placement (the
  master never asks Kubernetes where a workflow's pods went). A live run is put on a node
  only when its manifest's host name (rank 0's ``socket.gethostname()``) is that node's name,
  which holds for pods with ``hostNetwork``; the other live runs are listed under the table
  as "placement not reported", with what they requested (workers times per-worker resources), so
  the load on the cluster can still be judged against the nodes' allocatable total.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bokeh.document import Document
from bokeh.layouts import column
from bokeh.models import (
    ColumnDataSource,
    DataTable,
    Div,
    NumberFormatter,
    StringFormatter,
    TableColumn,
)

from bokeh_app.common.api import DashboardApi
from bokeh_app.common.background import Background
from bokeh_app.common.layout import Banner, page
from bokeh_app.views import Args
from bokeh_app.views.compare_data import run_label

LIVE_STATES = ("starting", "running", "stopping")
REFRESH_MS = 5000
GIB = 1024**3
_MEMORY_UNITS = {"Ki": 1024, "Mi": 1024**2, "Gi": GIB, "Ti": 1024**4}
_MEMORY_UNITS.update({"K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4})

COLUMNS = (
    "name", "source", "ready", "arch", "os", "instance_type",
    "cpu_capacity", "cpu_allocatable", "memory_capacity_gib", "memory_allocatable_gib",
    "gpu_capacity", "gpu_allocatable", "runs", "run_ids", "workers", "requested_cpu",
    "requested_memory_gib", "requested_gpu",
)  # fmt: skip


def memory_bytes(quantity: str | int | float | None) -> float:
    """A RunSpec memory quantity (``512Mi``, ``4Gi``, ``2G``, ``1000``) in bytes."""
    if quantity is None or quantity == "":
        return 0.0
    text = str(quantity).strip()
    for suffix in sorted(_MEMORY_UNITS, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * _MEMORY_UNITS[suffix]
    return float(text)


@dataclass
class Requested:
    """Resources the live runs asked for: workers times per-worker resources of their specs."""

    workers: int = 0
    cpu: float = 0.0
    memory: float = 0.0
    gpu: int = 0

    def add(self, run: Mapping[str, Any]) -> None:
        spec = run.get("spec") or {}
        n = int(spec.get("workers") or 1)
        res = spec.get("resources") or {}
        self.workers += n
        self.cpu += n * float(res.get("cpu", 1.0))
        self.memory += n * memory_bytes(res.get("memory", "2Gi"))
        self.gpu += n * int(res.get("gpu", 0))


def executor_of(run: Mapping[str, Any]) -> str:
    return str((run.get("spec") or {}).get("executor") or "local")


@dataclass
class Placement:
    """Live runs per node name, and the live runs the API cannot place."""

    on_node: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    unplaced: list[dict[str, Any]] = field(default_factory=list)


def place_runs(
    nodes: Sequence[Mapping[str, Any]],
    live_runs: Iterable[Mapping[str, Any]],
    hostnames: Mapping[int, str | None],
) -> Placement:
    """Which node each live run is on, as far as the API tells (see the module doc).

    ``hostnames`` maps a run id to rank 0's host name from its manifest (None/absent when the
    run has no manifest yet).
    """
    placement = Placement(on_node={str(n["name"]): [] for n in nodes})
    local_hosts = [str(n["name"]) for n in nodes if n.get("source") == "local"]
    for run in live_runs:
        host = hostnames.get(int(run["id"]))
        if local_hosts and executor_of(run) == "local":
            # Without a cluster the only node is this host, and local runs run on it.
            placement.on_node[local_hosts[0]].append(dict(run))
        elif host is not None and host in placement.on_node:
            placement.on_node[host].append(dict(run))
        else:
            placement.unplaced.append(dict(run))
    return placement


def node_columns(nodes: Sequence[Mapping[str, Any]], placement: Placement) -> dict[str, list]:
    """The table's columns, one row per node, in the API's order."""
    cols: dict[str, list[Any]] = {k: [] for k in COLUMNS}
    for node in nodes:
        name = str(node["name"])
        cap = node.get("capacity") or {}
        alloc = node.get("allocatable") or {}
        runs = placement.on_node.get(name, [])
        requested = Requested()
        for run in runs:
            requested.add(run)
        cols["name"].append(name)
        cols["source"].append(str(node.get("source", "")))
        cols["ready"].append(bool(node.get("ready")))
        cols["arch"].append(node.get("arch") or "")
        cols["os"].append(node.get("os") or "")
        cols["instance_type"].append(node.get("instance_type") or "")
        cols["cpu_capacity"].append(float(cap.get("cpu", 0.0)))
        cols["cpu_allocatable"].append(float(alloc.get("cpu", 0.0)))
        cols["memory_capacity_gib"].append(int(cap.get("memory", 0)) / GIB)
        cols["memory_allocatable_gib"].append(int(alloc.get("memory", 0)) / GIB)
        cols["gpu_capacity"].append(int(cap.get("gpu", 0)))
        cols["gpu_allocatable"].append(int(alloc.get("gpu", 0)))
        cols["runs"].append(", ".join(run_label(r) + f" [{r['state']}]" for r in runs) or "—")
        cols["run_ids"].append(",".join(str(r["id"]) for r in runs))
        cols["workers"].append(requested.workers)
        cols["requested_cpu"].append(requested.cpu)
        cols["requested_memory_gib"].append(requested.memory / GIB)
        cols["requested_gpu"].append(requested.gpu)
    return cols


def unplaced_html(nodes: Sequence[Mapping[str, Any]], placement: Placement) -> str:
    """The note under the table: live runs whose node the API does not report."""
    if not placement.unplaced:
        if any(n.get("source") == "kubernetes" for n in nodes):
            return (
                "<i>No live run without a known node. The API reports no pod placement; "
                "a run is shown on a node only when its manifest's host name is the node's "
                "name.</i>"
            )
        return ""
    requested = Requested()
    for run in placement.unplaced:
        requested.add(run)
    ready = [n for n in nodes if n.get("ready")]
    total_cpu = sum(float((n.get("allocatable") or {}).get("cpu", 0.0)) for n in ready)
    total_mem = sum(int((n.get("allocatable") or {}).get("memory", 0)) for n in ready)
    total_gpu = sum(int((n.get("allocatable") or {}).get("gpu", 0)) for n in ready)
    items = "".join(
        f"<li>{html.escape(run_label(r))} [{html.escape(str(r['state']))}, "
        f"{html.escape(executor_of(r))}]</li>"
        for r in placement.unplaced
    )
    return (
        "<b>Live runs, placement not reported</b> (the master's API does not say on which "
        "node Kubernetes scheduled a run's pods):"
        f"<ul style='margin:4px 0'>{items}</ul>"
        f"Requested together: {requested.workers} workers, {requested.cpu:g} CPU, "
        f"{requested.memory / GIB:.1f} GiB memory, {requested.gpu} GPU — of "
        f"{total_cpu:g} CPU, {total_mem / GIB:.1f} GiB, {total_gpu} GPU allocatable on "
        f"{len(ready)} ready node(s)."
    )


# --------------------------------------------------------------------------------------------
# Reading (worker threads)


@dataclass
class NodesSnapshot:
    nodes: list[dict[str, Any]]
    live_runs: list[dict[str, Any]]
    hostnames: dict[int, str | None]


class NodesReader:
    def __init__(self, api: DashboardApi) -> None:
        self.api = api
        self._hostnames: dict[int, str] = {}
        self._lock = threading.Lock()

    def read(self) -> NodesSnapshot:
        nodes = self.api.nodes()
        live = self.api.runs_page(state=list(LIVE_STATES), limit=500)["items"]
        hostnames: dict[int, str | None] = {}
        if any(n.get("source") == "kubernetes" for n in nodes):
            # Only a cluster needs manifests (on this host every local run is here anyway);
            # a manifest is written once, so a found host name is kept.
            for run in live:
                run_id = int(run["id"])
                with self._lock:
                    known = self._hostnames.get(run_id)
                if known is None:
                    manifest = self.api.manifest(run_id)
                    host = ((manifest or {}).get("host") or {}).get("hostname")
                    if host:
                        known = str(host)
                        with self._lock:
                            self._hostnames[run_id] = known
                hostnames[run_id] = known
        return NodesSnapshot(nodes=nodes, live_runs=live, hostnames=hostnames)


# --------------------------------------------------------------------------------------------
# The view


class NodesView:
    def __init__(
        self, doc: Document, api: DashboardApi, args: Args, *, refresh_ms: int = REFRESH_MS
    ) -> None:
        self.doc = doc
        self.api = api
        self.refresh_ms = refresh_ms
        self.reader = NodesReader(api)
        self.banner = Banner(api.base_url)
        self.background = Background(doc, self.banner)
        self.snapshot: NodesSnapshot | None = None

        self.source = ColumnDataSource({k: [] for k in COLUMNS})
        num = NumberFormatter(format="0.[0]")
        gib = NumberFormatter(format="0.0")
        self.table = DataTable(
            source=self.source,
            columns=[
                TableColumn(field="name", title="node", width=180),
                TableColumn(field="source", title="source", width=90),
                TableColumn(field="ready", title="ready", width=50),
                TableColumn(field="cpu_capacity", title="CPU", formatter=num, width=60),
                TableColumn(field="cpu_allocatable", title="CPU alloc.", formatter=num, width=70),
                TableColumn(field="memory_capacity_gib", title="mem GiB", formatter=gib, width=70),
                TableColumn(
                    field="memory_allocatable_gib", title="mem alloc.", formatter=gib, width=70
                ),
                TableColumn(field="gpu_capacity", title="GPU", width=45),
                TableColumn(field="gpu_allocatable", title="GPU alloc.", width=65),
                TableColumn(field="arch", title="arch", width=60),
                TableColumn(field="instance_type", title="instance type", width=100),
                TableColumn(field="workers", title="workers", width=60),
                TableColumn(field="requested_cpu", title="CPU req.", formatter=num, width=65),
                TableColumn(field="runs", title="live runs", formatter=StringFormatter()),
            ],
            index_position=None,
            reorderable=False,
            sizing_mode="stretch_width",
            height=240,
            css_classes=["mlb-nodes-table"],
        )
        self.note = Div(text="", css_classes=["mlb-nodes-unplaced"], sizing_mode="stretch_width")
        self.error = Div(text="", css_classes=["mlb-nodes-error"], sizing_mode="stretch_width")
        explain = Div(
            text="CPU in cores, memory in GiB. Allocatable: what pods may request (Kubernetes);"
            " for this host, its CPUs and the memory available now. Workers and CPU req.:"
            " what the live runs on the node asked for (workers times per-worker resources).",
            styles={"color": "#555", "font-size": "90%"},
            sizing_mode="stretch_width",
        )
        body = column(self.error, self.table, explain, self.note, sizing_mode="stretch_width")
        self.root = page("Nodes", body, self.banner)

    def load(self) -> None:
        """Read and apply now, on this thread (tests, first render)."""
        self.background.run_now(self.reader.read, self._apply, self._failed)

    def refresh(self) -> None:
        self.background.submit(self.reader.read, self._apply, self._failed)

    def start(self) -> None:
        self.refresh()
        self.background.every(self.refresh_ms, self.reader.read, self._apply, self._failed)

    def close(self) -> None:
        self.background.close()

    def _failed(self, exc: Exception) -> None:
        from bokeh_app.common.api import ApiError

        if isinstance(exc, ApiError):  # e.g. the cluster refused: the master's one line
            self.error.text = f"<span style='color:#b71c1c'>{html.escape(str(exc))}</span>"

    def _apply(self, snap: NodesSnapshot) -> None:
        self.snapshot = snap
        if self.error.text:
            self.error.text = ""
        placement = place_runs(snap.nodes, snap.live_runs, snap.hostnames)
        cols = node_columns(snap.nodes, placement)
        if dict(self.source.data) != cols:
            self.source.data = cols
        note = unplaced_html(snap.nodes, placement)
        if self.note.text != note:
            self.note.text = note


def build_nodes(doc: Document, api: DashboardApi, args: Args) -> NodesView:
    """The Nodes page; call ``.load()`` or ``.start()``."""
    from bokeh_app.common.settings import DashboardSettings

    try:
        refresh_ms = DashboardSettings().nodes_refresh_ms
    except Exception:  # unreadable settings must not cost the page: use the default period
        refresh_ms = REFRESH_MS
    return NodesView(doc, api, args, refresh_ms=refresh_ms)
