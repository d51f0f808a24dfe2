"""bokeh_app.common and the view helpers, against a real master where the master matters."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from bokeh.document import Document
from bokeh.models import Div
from bokeh.server.callbacks import NextTickCallback

from bokeh_app.common.api import ApiError, DashboardApi, MasterUnreachable
from bokeh_app.common.background import Background
from bokeh_app.common.layout import Banner, page
from bokeh_app.common.settings import DashboardSettings
from bokeh_app.views import ApiConfig, api_config, arg_int, arg_ints
from tests.bokeh_app.conftest import DashMaster
from tests.conftest import free_port


def _pending(doc: Document) -> bool:
    return any(isinstance(c, NextTickCallback) for c in doc.session_callbacks)


def _run_next_ticks(doc: Document) -> int:
    """What the server's loop would do with the callbacks added from worker threads."""
    ran = 0
    for callback in list(doc.session_callbacks):
        if not isinstance(callback, NextTickCallback):
            continue
        doc.remove_next_tick_callback(callback)
        callback.callback()
        ran += 1
    return ran


def test_api_tells_refusals_from_absence(dash_master: DashMaster, dash_api: DashboardApi) -> None:
    assert dash_api.health()["status"] == "ok"
    run = dash_master.create()
    assert dash_api.runs_page()["items"][0]["id"] == run["id"]
    assert dash_api.metric_names(run["id"]) == []
    assert dash_api.manifest(run["id"]) is None
    with pytest.raises(ApiError) as refused:
        dash_api.run(999)
    assert refused.value.status == 404 and refused.value.detail == "run 999 does not exist"
    assert dash_api.export_url(run["id"], "csv").endswith(
        f"/api/v1/runs/{run['id']}/metrics/export?format=csv"
    )

    down = DashboardApi(f"http://127.0.0.1:{free_port()}", None, timeout_s=1)
    with pytest.raises(MasterUnreachable, match="is unreachable"):
        down.benchmarks()
    down.close()


def test_run_now_drives_the_banner() -> None:
    doc, banner = Document(), Banner("http://127.0.0.1:9")
    bg = Background(doc, banner)
    got: list[object] = []
    errors: list[Exception] = []

    def unreachable() -> None:
        raise MasterUnreachable("http://127.0.0.1:9", "connection refused")

    bg.run_now(unreachable, got.append, errors.append)
    assert banner.shown and not got and isinstance(errors[0], MasterUnreachable)

    def refused() -> None:
        raise ApiError(409, "busy")

    bg.run_now(refused, got.append, errors.append)
    assert not banner.shown, "an answer, even a refusal, means the master is back"
    assert isinstance(errors[-1], ApiError)

    bg.run_now(lambda: 7, got.append)
    assert got == [7] and not banner.shown


def test_submit_runs_off_thread_and_applies_on_the_next_tick() -> None:
    doc, banner = Document(), Banner("http://x")
    bg = Background(doc, banner)
    threads: list[str] = []
    got: list[int] = []

    def call() -> int:
        threads.append(threading.current_thread().name)
        return 42

    bg.submit(call, got.append).result(timeout=5)
    end = time.monotonic() + 5
    while not _pending(doc) and time.monotonic() < end:
        time.sleep(0.01)
    assert got == [], "nothing is applied outside the document's own tick"
    assert _run_next_ticks(doc) == 1
    assert got == [42] and threads[0].startswith("mlb-dashboard-api")

    bg.close()  # a closed session drops results still in flight
    bg.submit(call, got.append).result(timeout=5)
    time.sleep(0.05)
    _run_next_ticks(doc)
    assert got == [42]


def test_every_skips_ticks_while_a_call_is_in_flight() -> None:
    doc = Document()
    bg = Background(doc)
    release = threading.Event()
    calls: list[int] = []

    def slow() -> int:
        calls.append(1)
        release.wait(5)
        return len(calls)

    periodic = bg.every(100, slow)
    tick = periodic.callback
    tick()
    tick()  # the first call still runs: skipped
    time.sleep(0.1)
    assert len(calls) == 1
    release.set()
    end = time.monotonic() + 5
    while not _run_next_ticks(doc) and time.monotonic() < end:
        time.sleep(0.01)
    tick()
    time.sleep(0.1)
    assert len(calls) == 2
    bg.close()
    assert periodic not in doc.session_callbacks


def test_page_has_nav_banner_and_body() -> None:
    banner = Banner("http://127.0.0.1:8000")
    root = page("Runs", Div(text="body"), banner, run_id=3, compare_ids=[1, 2])
    doc = Document()
    doc.add_root(root)
    nav = doc.select_one({"css_classes": ["mlb-nav"]})
    assert nav is not None
    for href in ("/runs", "/run?id=3", "/compare?ids=1,2", "/nodes"):
        assert f'href="{href}"' in nav.text
    assert banner.model in doc.select({"css_classes": ["mlb-banner"]})
    assert not banner.model.visible
    assert "Master at http://127.0.0.1:8000 is unreachable" in banner.model.text


def test_settings_find_master_and_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLBENCH_DATA_DIR", str(tmp_path))
    settings = DashboardSettings()
    assert settings.resolved_api_url == "http://127.0.0.1:8000"
    assert settings.token() is None
    (tmp_path / "admin-token").write_text("from-file\n")
    assert DashboardSettings().token() == "from-file"
    monkeypatch.setenv("MLBENCH_ADMIN_TOKEN", "from-env")
    monkeypatch.setenv("MLBENCH_API_URL", "http://master:9000/")
    settings = DashboardSettings()
    assert settings.token() == "from-env"
    assert settings.resolved_api_url == "http://master:9000"
    # Without a server session the views fall back to these settings.
    assert api_config(Document()) == ApiConfig("http://master:9000", "from-env", 5.0)


def test_token_file_is_read_per_session(tmp_path: Path) -> None:
    """``mlbench serve`` configures the dashboard before a first start writes the token."""
    config = ApiConfig("http://127.0.0.1:8000", None, token_file=tmp_path / "admin-token")
    assert config.resolved_token() is None
    (tmp_path / "admin-token").write_text("written-later\n")
    api = config.api()
    assert api.token == "written-later"
    api.close()
    assert ApiConfig("http://x", "given", token_file=tmp_path / "nope").resolved_token() == "given"


def test_query_args() -> None:
    args = {"id": ["7"], "ids": ["1,2", "x", "5,2"], "bad": ["y"]}
    assert arg_int(args, "id") == 7
    assert arg_int(args, "bad") is None and arg_int(args, "none") is None
    assert arg_ints(args, "ids") == [1, 2, 5]
