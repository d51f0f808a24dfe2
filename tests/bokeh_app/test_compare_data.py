"""The Compare view's data shaping: time to goal, repeats, speedup, efficiency, phases."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bokeh_app.views import compare_data as cd
from mlbench_core.wire import PHASES


def run(
    run_id: int,
    workers: int,
    *,
    state: str = "succeeded",
    benchmark: str = "digits-mlp",
    seed: int = 0,
    **spec: Any,
) -> dict[str, Any]:
    return {
        "id": run_id,
        "name": f"r{run_id}",
        "benchmark": benchmark,
        "state": state,
        "group": spec.pop("group", None),
        "started_at": "2026-01-01T12:00:00+00:00",
        "spec": {
            "name": f"r{run_id}",
            "benchmark": benchmark,
            "workers": workers,
            "seed": seed,
            "backend": "gloo",
            "goal": {"kind": "full", "value": None},
            "resources": {"cpu": 1.0, "memory": "2Gi", "gpu": 0},
            "overrides": {},
            "executor": "local",
            **spec,
        },
    }


def result(ttg: float | None, total: float = 100.0, sps: float = 50.0, **phases: float):
    return {
        "goal_reached": ttg is not None,
        "time_to_goal_s": ttg,
        "total_time_s": total,
        "samples_per_s": sps,
        "phases": {p: phases.get(p, 0.0) for p in PHASES},
    }


def test_run_label_names_id_benchmark_and_workers() -> None:
    assert cd.run_label(run(3, 2)) == "#3 r3 (digits-mlp, 2 workers)"
    assert cd.run_label(run(4, 1)) == "#4 r4 (digits-mlp, 1 worker)"


def test_config_ignores_name_seed_group_and_workers_but_not_overrides() -> None:
    a = run(1, 1, seed=1)["spec"]
    b = run(2, 4, seed=7, group="g", image="other:1")["spec"]
    c = run(3, 1, overrides={"lr": 0.2})["spec"]
    assert cd.config_key(a) == cd.config_key(b)
    assert cd.config_key(a) != cd.config_key(c)
    assert cd.config_label(c) == "digits-mlp lr=0.2"
    assert cd.config_label(run(4, 1, backend="nccl", resources={"gpu": 1})["spec"]) == (
        "digits-mlp nccl gpu=1"
    )


def test_time_to_goal_bars_show_reached_missed_and_running_runs_apart() -> None:
    runs = [run(1, 1), run(2, 2), run(3, 2, state="running")]
    infos = cd.run_infos(runs, {1: result(40.0), 2: result(None, total=90.0)})
    cols = cd.time_to_goal_columns(infos)
    assert cols["id"] == [1, 2, 3]
    assert cols["status"] == [cd.REACHED, cd.MISSED, cd.NO_RESULT]
    assert cols["height"] == [40.0, 90.0, 0.0]
    assert cols["time_to_goal_s"][0] == 40.0 and math.isnan(cols["time_to_goal_s"][1])
    assert cols["text"][1:] == ["missed", "running"]
    assert len(set(cols["color"])) == 3
    assert cols["x"][0] == "#1 r1 (digits-mlp, 1 worker)"


def test_speedup_is_relative_to_one_worker_and_efficiency_to_ideal() -> None:
    runs = [run(1, 1), run(2, 2), run(3, 4)]
    results = {1: result(100.0), 2: result(60.0), 3: result(40.0)}
    points = cd.scaling(cd.cells(cd.run_infos(runs, results)))
    by_n = {p.workers: p for p in points}
    assert by_n[1].speedup == 1.0 and by_n[1].efficiency == 1.0
    assert by_n[2].speedup == pytest.approx(100 / 60)
    assert by_n[2].efficiency == pytest.approx(100 / 60 / 2)
    assert by_n[4].speedup == pytest.approx(2.5)
    assert by_n[4].efficiency == pytest.approx(2.5 / 4)
    assert {p.basis for p in points} == {"time to goal"}
    assert {p.base_workers for p in points} == {1}


def test_base_is_the_smallest_worker_count_with_a_time() -> None:
    runs = [run(1, 1), run(2, 2), run(3, 4), run(4, 8)]
    # 1 worker missed the goal: the base becomes 2 workers.
    results = {1: result(None), 2: result(80.0), 3: result(50.0), 4: result(25.0)}
    points = cd.scaling(cd.cells(cd.run_infos(runs, results)))
    by_n = {p.workers: p for p in points}
    assert 1 not in by_n
    assert by_n[2].base_workers == 2 and by_n[2].speedup == 1.0
    assert by_n[4].ideal_speedup == 2.0 and by_n[4].speedup == pytest.approx(1.6)
    assert by_n[8].efficiency == pytest.approx((80 / 25) / 4)
    cols = cd.scaling_columns(points, points[0].config)
    assert cols["workers"] == [2, 4, 8]
    ideal = cd.ideal_columns(points)
    assert ideal["workers"] == [2.0, 8.0] and ideal["speedup"] == [1.0, 4.0]


def test_repeats_use_the_olympic_mean_with_three_times_else_the_mean() -> None:
    runs = [run(1, 1), *(run(10 + s, 2, seed=s, group="two") for s in range(4))]
    results = {1: result(100.0), 10: result(40.0), 11: result(50.0), 12: result(60.0)}
    results[13] = result(1000.0)  # slowest: dropped by the olympic mean
    cells = cd.cells(cd.run_infos(runs, results))
    two = next(c for c in cells if c.workers == 2)
    assert two.run_ids == (10, 11, 12, 13)
    assert two.time_stat == "olympic mean"
    assert two.time_s == pytest.approx(55.0)  # mean of 50 and 60
    one = next(c for c in cells if c.workers == 1)
    assert one.time_stat == "single" and one.time_s == 100.0
    points = {p.workers: p for p in cd.scaling(cells)}
    assert points[2].speedup == pytest.approx(100 / 55)

    # Two reached, one missed: the mean of the two.
    results[12] = result(None)
    del results[13]
    runs = runs[:4]
    two = next(c for c in cd.cells(cd.run_infos(runs, results)) if c.workers == 2)
    assert (two.time_stat, two.reached, two.ended) == ("mean", 2, 3)
    assert two.time_s == pytest.approx(45.0)


def test_live_runs_do_not_count_as_repeats() -> None:
    runs = [run(1, 2), run(2, 2, state="running")]
    cell = cd.cells(cd.run_infos(runs, {1: result(30.0)}))[0]
    assert (cell.ended, cell.reached, cell.time_s) == (1, 1, 30.0)


def test_configurations_get_their_own_speedup_lines() -> None:
    runs = [
        run(1, 1),
        run(2, 2),
        run(3, 1, overrides={"lr": 0.5}),
        run(4, 4, overrides={"lr": 0.5}),
    ]
    results = {1: result(100.0), 2: result(50.0), 3: result(90.0), 4: result(45.0)}
    points = cd.scaling(cd.cells(cd.run_infos(runs, results)))
    assert len({p.config for p in points}) == 2
    lr = [p for p in points if "lr=0.5" in p.config_label]
    assert [(p.workers, p.speedup) for p in sorted(lr, key=lambda p: p.workers)] == [
        (1, 1.0),
        (4, 2.0),
    ]


def test_without_any_time_to_goal_speedup_falls_back_to_throughput() -> None:
    runs = [run(1, 1), run(2, 4)]
    results = {1: result(None, sps=100.0), 2: result(None, sps=300.0)}
    points = {p.workers: p for p in cd.scaling(cd.cells(cd.run_infos(runs, results)))}
    assert points[4].basis == "throughput"
    assert points[4].speedup == pytest.approx(3.0)
    assert points[4].efficiency == pytest.approx(0.75)
    # No time and no throughput (e.g. nothing ended yet): no points at all.
    assert cd.scaling(cd.cells(cd.run_infos([run(3, 2, state="running")], {}))) == []


def test_phase_breakdown_is_the_mean_per_worker_count() -> None:
    runs = [run(1, 1), run(2, 2, seed=1), run(3, 2, seed=2), run(4, 4, state="running")]
    results = {
        1: result(10.0, forward=4.0, backward=6.0),
        2: result(8.0, forward=2.0, communication=1.0),
        3: result(9.0, forward=4.0, communication=3.0),
    }
    cols = cd.phase_columns(cd.cells(cd.run_infos(runs, results)))
    assert cols["x"] == ["1w", "2w"]
    assert cols["forward"] == [4.0, 3.0]
    assert cols["communication"] == [0.0, 2.0]
    assert cols["backward"] == [6.0, 0.0]
    assert set(PHASES) <= set(cols)

    runs.append(run(5, 2, overrides={"lr": 0.1}))
    results[5] = result(5.0, data=1.0)
    cols = cd.phase_columns(cd.cells(cd.run_infos(runs, results)))
    assert cols["x"] == ["digits-mlp · 1w", "digits-mlp · 2w", "digits-mlp lr=0.1 · 2w"]


def test_curves_share_an_x_axis() -> None:
    t0 = cd.parse_time("2026-01-01T12:00:00+00:00")
    assert t0 is not None
    cols = cd.curve_columns([t0 + 1, t0 + 3], [0.5, 0.7], "time", t0)
    assert cols == {"x": [1.0, 3.0], "y": [0.5, 0.7]}
    assert cd.curve_columns([5, 9], [1, 2], "time")["x"] == [0.0, 4.0]
    assert cd.curve_columns([5, 9], [1, 2], "step")["x"] == [5.0, 9.0]
    points = [
        {"name": "val/accuracy", "rank": 0, "step": 2, "epoch": 1.0, "time": 2.0, "value": 0.2},
        {"name": "val/accuracy", "rank": 0, "step": 1, "epoch": 0.5, "time": 1.0, "value": 0.1},
        {"name": "val/accuracy", "rank": 1, "step": 1, "epoch": 0.5, "time": 1.0, "value": 9.0},
        {"name": "train/loss", "rank": 0, "step": 1, "epoch": 0.5, "time": 1.0, "value": 9.0},
    ]
    assert cd.points_to_series(points, "val/accuracy", 0, "epoch") == ([0.5, 1.0], [0.1, 0.2])


def test_thin_keeps_extremes_and_ends() -> None:
    xs = list(range(10_000))
    ys = [math.sin(x / 50) for x in xs]
    ys[5_000] = 10.0
    tx, ty = cd.thin(xs, ys, 1000)
    assert len(tx) <= 1000
    assert tx[0] == 0 and tx[-1] == 9_999
    assert max(ty) == 10.0
    assert cd.thin([1, 2], [3, 4], 1000) == ([1, 2], [3, 4])
