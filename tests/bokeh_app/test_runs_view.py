"""The Runs view's document against a real master: table data, filters, refresh, the new-run
form, stop and delete with confirmation, and the banner while the master is down."""

from __future__ import annotations

import time

import httpx
import pytest
from bokeh.document import Document
from bokeh.events import ButtonClick
from bokeh.models import Button
from bokeh.server.callbacks import NextTickCallback, PeriodicCallback

from bokeh_app.common.api import DashboardApi
from bokeh_app.views.runs import RunsView, build_runs
from tests.bokeh_app.conftest import DashMaster, tiny_run_spec


def click(button: Button) -> None:
    """What a browser click does: the server runs the button's Python callbacks."""
    button._trigger_event(ButtonClick(button))


def view_of(api: DashboardApi, **args: list[str]) -> RunsView:
    doc = Document()
    view = build_runs(doc, api, dict(args))
    doc.add_root(view.root)
    view.load()
    return view


def column(view: RunsView, name: str) -> list[object]:
    return list(view.source.data[name])


def select(view: RunsView, run_id: int) -> None:
    view.source.selected.indices = [column(view, "id").index(run_id)]


def test_table_lists_runs_with_progress_and_time_to_goal(
    dash_master: DashMaster, dash_api: DashboardApi
) -> None:
    queued = dash_master.create(name="plain", workers=3)["id"]
    training = dash_master.create(name="training", overrides={"epochs": 4})["id"]
    done = dash_master.create(name="finished", executor="local")["id"]
    capped = dash_master.create(name="capped", benchmark="allreduce")["id"]
    dash_master.status(training, "running")
    dash_master.metrics(training, [{"name": "train/loss", "step": 30, "epoch": 1.5, "value": 1}])
    dash_master.metrics(done, [{"name": "val/accuracy", "step": 90, "epoch": 3.0, "value": 0.97}])
    dash_master.result(done, time_to_goal_s=12.34, total_time_s=20, epochs=3)
    dash_master.status(done, "succeeded")
    dash_master.metrics(capped, [{"name": "bus/gbps", "step": 7, "value": 2.0}])

    view = view_of(dash_api)
    rows = {
        rid: {name: view.source.data[name][i] for name in view.source.data}
        for i, rid in enumerate(column(view, "id"))
    }
    assert column(view, "id") == [capped, done, training, queued]  # newest first
    assert rows[queued]["workers"] == 3 and rows[queued]["benchmark"] == "digits-mlp"
    assert rows[queued]["executor"] == "local"  # the master names the executor it used
    assert rows[queued]["progress"] == "" and rows[queued]["time_to_goal"] == ""
    assert rows[queued]["created"][:2] == "20" and "T" not in rows[queued]["created"]
    assert rows[training]["state"] == "running"
    assert rows[training]["progress"] == "epoch 1.50 / 4"  # the epochs override
    assert rows[done]["progress"] == "epoch 3.00 / 30"  # digits-mlp's default: 30 epochs
    assert rows[done]["time_to_goal"] == "12.3 s" and rows[done]["state"] == "succeeded"
    assert rows[capped]["progress"] == "step 7"  # allreduce plans no epochs
    # The name links to the Run view.
    name_column = next(c for c in view.table.columns if c.field == "name")
    assert 'href="/run?id=<%= id %>"' in name_column.formatter.template
    # The form offers the catalog, digits-mlp first choice, with its settings as help.
    assert "digits-mlp" in [value for value, _label in view.form.benchmark.options]
    assert view.form.benchmark.value == "digits-mlp"
    assert "epochs" in view.form.help.text and "aggregator" not in view.form.help.text
    view.form.benchmark.value = "allreduce"
    assert "min_elements" in view.form.help.text
    view.form.benchmark.value = "1a"  # the optimizer is the aggregator setting
    assert "<code>aggregator=powersgd</code>" in view.form.help.text


def test_filters_by_state_and_benchmark(dash_master: DashMaster, dash_api: DashboardApi) -> None:
    a = dash_master.create()["id"]
    b = dash_master.create(benchmark="allreduce")["id"]
    dash_master.status(a, "running")
    view = view_of(dash_api)
    assert set(view.benchmark_filter.options) >= {"all", "digits-mlp", "allreduce"}

    view.state_filter.value = "running"  # on_change refreshes at once (synchronous here)
    assert column(view, "id") == [a]
    view.state_filter.value = "all"
    view.benchmark_filter.value = "allreduce"
    assert column(view, "id") == [b]
    view.state_filter.value = "running"
    assert column(view, "id") == []
    # Filters can come from the URL: /runs?state=running
    assert column(view_of(dash_api, state=["running"]), "id") == [a]


def test_refresh_replaces_changed_rows_and_keeps_the_selection(
    dash_master: DashMaster, dash_api: DashboardApi
) -> None:
    first = dash_master.create()["id"]
    second = dash_master.create()["id"]
    view = view_of(dash_api)
    select(view, first)
    assert view.selected_id == first and not view.stop_button.disabled
    data_before = view.source.data
    view.refresh()
    assert view.source.data is data_before, "nothing changed: nothing sent"

    dash_master.status(first, "running")
    filter_before = view.table.view.filter
    view.refresh()
    assert view.source.data["state"][column(view, "id").index(first)] == "running"
    assert view.table.view.filter is not filter_before, "the browser is told to redraw"
    assert view.selected_id == first and view.source.selected.indices == [1]

    third = dash_master.create()["id"]  # a new run on top shifts every row
    view.refresh()
    assert column(view, "id") == [third, second, first]
    assert view.source.selected.indices == [2] and view.selected_id == first

    dash_master.http.post(f"/api/v1/runs/{first}/stop")
    dash_master.wait(first, {"stopped"})
    dash_master.http.delete(f"/api/v1/runs/{first}")
    view.refresh()
    assert view.source.selected.indices == [] and view.selected_id is None
    assert view.stop_button.disabled and view.delete_button.disabled


def test_form_validates_before_sending(dash_master: DashMaster, dash_api: DashboardApi) -> None:
    view = view_of(dash_api)
    form = view.form
    cases = [
        ({"overrides": "nosuchsetting=1"}, "nosuchsetting"),
        ({"overrides": "lr=0.1, justakey"}, "overrides: override 'justakey' is not of the form"),
        ({"workers": 0}, "workers: Input should be greater than or equal to 1"),
        ({"workers": None}, "workers: a number is required"),
        ({"name": "Not A DNS Label"}, "name: String should match pattern"),
        ({"memory": "lots"}, "memory 'lots' is not a quantity"),
        ({"backend": "nccl"}, "backend 'nccl' needs resources.gpu >= 1"),
    ]
    for changes, message in cases:
        for attr, value in changes.items():
            getattr(form, attr).value = value
        click(form.submit_button)
        assert message in form.error.text, (changes, form.error.text)
        form.overrides.value, form.workers.value, form.name.value = "", 2, ""
        form.memory.value, form.backend.value = "2Gi", "gloo"
    assert dash_api.runs_page()["total"] == 0, "nothing invalid reached the master"


def test_form_submits_and_shows_the_masters_refusal(
    dash_master: DashMaster, dash_api: DashboardApi
) -> None:
    view = view_of(dash_api)
    form = view.form
    form.name.value = "from-the-form"
    form.workers.value = 3
    form.overrides.value = "lr=0.2, momentum=0.5"
    form.goal.value = "light"
    form.seed.value = 7
    click(form.submit_button)
    assert form.error.text == ""
    run = dash_api.runs_page()["items"][0]
    assert run["name"] == "from-the-form" and run["spec"]["workers"] == 3
    assert run["spec"]["overrides"] == {"lr": 0.2, "momentum": 0.5}
    assert run["spec"]["goal"]["kind"] == "light" and run["spec"]["seed"] == 7
    assert f"run {run['id']} 'from-the-form' submitted" in form.status.text
    assert column(view, "id") == [run["id"]] and view.selected_id == run["id"]
    assert form.name.value == "" and not form.submit_button.disabled

    form.name.value = "from-the-form"  # still live: the master says 409
    click(form.submit_button)
    assert "the master refused the run (409)" in form.error.text
    assert "from-the-form" in form.error.text
    assert dash_api.runs_page()["total"] == 1

    form.name.value = ""
    click(form.submit_button)  # an empty name gets a generated default
    newest = dash_api.runs_page()["items"][0]
    assert newest["name"].startswith("digits-mlp-") and form.error.text == ""


def test_stop_and_delete_ask_first(dash_master: DashMaster, dash_api: DashboardApi) -> None:
    run_id = dash_master.create(name="to-stop")["id"]
    dash_master.status(run_id, "running")
    view = view_of(dash_api)
    click(view.stop_button)
    assert "select a run first" in view.message.text

    select(view, run_id)
    assert not view.stop_button.disabled and view.delete_button.disabled
    click(view.stop_button)
    assert view.confirm_button.visible and view.cancel_button.visible
    assert "Stop run" in view.confirm_text.text and "to-stop" in view.confirm_text.text
    click(view.cancel_button)
    assert not view.confirm_button.visible
    assert dash_master.get(run_id)["state"] == "running"

    click(view.stop_button)
    click(view.confirm_button)
    assert f"run {run_id} stopping" in view.message.text
    assert dash_master.wait(run_id, {"stopped"})["state"] == "stopped"
    view.refresh()
    assert view.stop_button.disabled and not view.delete_button.disabled

    click(view.delete_button)
    assert "Delete run" in view.confirm_text.text
    click(view.confirm_button)
    assert f"run {run_id} deleted" in view.message.text
    assert dash_master.http.get(f"/api/v1/runs/{run_id}").status_code == 404
    assert column(view, "id") == []


def test_refusal_of_a_stop_is_shown(dash_master: DashMaster, dash_api: DashboardApi) -> None:
    run_id = dash_master.create()["id"]
    view = view_of(dash_api)
    select(view, run_id)
    click(view.stop_button)
    dash_master.http.post(f"/api/v1/runs/{run_id}/stop")  # someone else was faster
    dash_master.wait(run_id, {"stopped"})
    click(view.confirm_button)
    assert f"could not stop run {run_id}" in view.message.text and "409" not in view.message.text


def test_banner_while_the_master_is_down(dash_master: DashMaster) -> None:
    api = dash_master.api(timeout_s=2)
    dash_master.create(name="survivor")
    view = view_of(api)
    assert not view.banner.shown and column(view, "name") == ["survivor"]

    dash_master.stop()
    view.refresh()
    assert view.banner.shown and "is unreachable" in view.banner.model.text
    assert column(view, "name") == ["survivor"], "the last data stays on screen"
    view.form.name.value = "while-down"
    click(view.form.submit_button)
    assert "not submitted: master at" in view.form.error.text
    assert not view.form.submit_button.disabled

    dash_master.start()  # same port, same data
    view.refresh()
    assert not view.banner.shown
    api.close()


def test_without_a_token_the_masters_401_is_shown(dash_master: DashMaster) -> None:
    api = DashboardApi(dash_master.url, None)
    view = view_of(api)
    view.form.name.value = "no-token"
    click(view.form.submit_button)
    assert "(401)" in view.form.error.text
    api.close()


@pytest.mark.slow
def test_a_real_run_shows_its_progress_and_time_to_goal(real_master: DashMaster) -> None:
    created = real_master.http.post("/api/v1/runs", json=tiny_run_spec("tiny-real"))
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    assert real_master.wait(run_id, {"succeeded", "failed"}, 180)["state"] == "succeeded"
    api = real_master.api()
    view = view_of(api)
    i = column(view, "id").index(run_id)
    assert view.source.data["progress"][i].startswith("epoch ")
    assert view.source.data["progress"][i].endswith(" / 2")
    assert view.source.data["time_to_goal"][i].endswith(" s")
    api.close()
    assert isinstance(httpx.get(real_master.url + "/api/v1/health").json(), dict)


def test_served_path_fetches_off_the_loop(dash_master: DashMaster, dash_api: DashboardApi) -> None:
    """After start(), calls go through the pool and come back as next-tick callbacks."""
    run_id = dash_master.create()["id"]
    doc = Document()
    view = build_runs(doc, dash_api, {})
    doc.add_root(view.root)
    view.start()
    assert column(view, "id") == [], "nothing fetched on the caller's thread"
    assert any(isinstance(c, PeriodicCallback) for c in doc.session_callbacks)
    end = time.monotonic() + 10
    while not column(view, "id") and time.monotonic() < end:
        for callback in list(doc.session_callbacks):
            if isinstance(callback, NextTickCallback):
                doc.remove_next_tick_callback(callback)
                callback.callback()
        time.sleep(0.02)
    assert column(view, "id") == [run_id]
    view.close()
    assert not any(isinstance(c, PeriodicCallback) for c in doc.session_callbacks)
