"""Hostile bodies to a served master (real uvicorn, SQLite and PostgreSQL): oversized bodies,
out-of-range and non-finite numbers, hostile run specs. Every bad request gets a 4xx with a
readable message, and afterwards the data stored before is intact and the master still answers
(DESIGN.md: Quality bar).

Cases already covered elsewhere are not repeated here: a NaN value, an empty batch, a bad metric
name, broken JSON, unknown keys and a negative step (tests/master/api/routes/test_metrics.py);
an unknown benchmark, a bad name, workers=0 and a duplicate live name, one request after the
other (tests/master/api/routes/test_runs.py).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.security.conftest import (
    API,
    LIMIT,
    Seeded,
    batch_bytes,
    check_cases,
    chunks,
    expect_422,
    fresh_run,
    run_spec,
)

# ---------------------------------------------------------------- oversized bodies


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_bodies_over_the_limit_are_refused_413_and_at_the_limit_accepted(
    seeded: Seeded, chunked: bool
) -> None:
    before = seeded.snapshot()
    run_id, headers = fresh_run(seeded)
    url = f"{API}/runs/{run_id}/metrics"

    def send(body: bytes) -> httpx.Response:
        content = chunks(body) if chunked else body
        return seeded.master.http.post(url, content=content, headers=headers)

    over = send(batch_bytes(LIMIT + 1))
    assert over.status_code == 413, over.text
    assert f"the limit is {LIMIT} bytes" in over.json()["detail"]
    assert "MLBENCH_MAX_BODY_BYTES" in over.json()["detail"]
    assert seeded.master.http.get(url).json()["points"] == []  # nothing of it stored

    at_limit = send(batch_bytes(LIMIT))
    assert at_limit.status_code == 200, at_limit.text
    assert at_limit.json() == {"stored": 1, "duplicate": False}

    # Far over the limit (16x): refused the same way, the master keeps answering.
    assert send(batch_bytes(16 * LIMIT)).status_code == 413
    seeded.assert_intact(before)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_oversized_run_spec_is_refused_413(seeded: Seeded, chunked: bool) -> None:
    """POST /runs is parsed by FastAPI, not by ``json_body``: the limit holds there too."""
    before, ids = seeded.snapshot(), seeded.run_ids()
    spec = {"name": "too-big", "benchmark": "digits-mlp", "image": "x" * (LIMIT + 10)}
    body = json.dumps(spec).encode()
    response = seeded.master.http.post(
        f"{API}/runs",
        content=chunks(body) if chunked else body,
        headers={**seeded.master.admin, "Content-Type": "application/json"},
    )
    assert response.status_code == 413, response.text
    assert "request body too large" in response.json()["detail"]
    assert seeded.run_ids() == ids
    seeded.assert_intact(before)


# ---------------------------------------------------------------- numbers in metrics


def _point_json(**raw: str) -> str:
    """One batch as JSON text; ``raw`` values are put in verbatim (``NaN``, ``1e309``, ...)."""
    fields = {"name": '"loss"', "step": "1", "time": "1.0", "value": "1.0", **raw}
    inner = ", ".join(f'"{key}": {value}' for key, value in fields.items())
    return f'{{"batch_id": "{uuid.uuid4().hex}", "points": [{{{inner}}}]}}'


BAD_NUMBERS = [
    ({"value": "NaN"}, "value", "finite number"),
    ({"value": "Infinity"}, "value", "finite number"),
    ({"value": "-Infinity"}, "value", "finite number"),
    ({"value": "1e309"}, "value", "finite number"),  # overflows to inf when parsed
    ({"time": "NaN"}, "time", "finite number"),
    ({"time": "-1e309"}, "time", "finite number"),
    ({"epoch": "Infinity"}, "epoch", "finite number"),
    ({"step": str(2**70)}, "step", "less than or equal to"),
    ({"step": str(2**62 + 1)}, "step", "less than or equal to"),
    ({"step": str(-(2**70))}, "step", "greater than or equal to 0"),
    ({"step": "1.5"}, "step", "fractional part"),
    ({"step": "1e400"}, "step", "finite number"),
    ({"rank": str(2**70)}, "rank", "less than or equal to 65535"),
    ({"rank": "65536"}, "rank", "less than or equal to 65535"),
    ({"rank": "-1"}, "rank", "greater than or equal to 0"),
    ({"epoch": "-0.5"}, "epoch", "greater than or equal to 0"),
]


def test_non_finite_and_out_of_range_numbers_in_a_batch_are_422(seeded: Seeded) -> None:
    before = seeded.snapshot()
    run_id, headers = fresh_run(seeded)
    path = f"/runs/{run_id}/metrics"

    def check(case: tuple[dict[str, str], str, str]) -> None:
        raw, field, needle = case
        response = seeded.post_raw(path, _point_json(**raw), headers)
        expect_422(response, ["body", "points", 0, field], needle)

    check_cases([(json.dumps(case[0]), case) for case in BAD_NUMBERS], check)
    assert seeded.master.http.get(f"{API}{path}").json()["points"] == []
    seeded.assert_intact(before)


def test_extreme_finite_numbers_are_stored_exactly(seeded: Seeded) -> None:
    """The largest and smallest doubles, the largest step and rank round-trip unchanged."""
    before = seeded.snapshot()
    run_id, headers = fresh_run(seeded)
    big = 1.7976931348623157e308
    points = [
        {"name": "x", "rank": 0, "step": 0, "epoch": 0.0, "time": 1.0, "value": big},
        {"name": "x", "rank": 0, "step": 1, "epoch": 0.0, "time": 2.0, "value": -big},
        {"name": "x", "rank": 0, "step": 2, "epoch": 0.0, "time": 3.0, "value": 5e-324},
        {"name": "x", "rank": 65_535, "step": 2**62, "epoch": 1e300, "time": 4.0, "value": 0.1},
    ]
    body = json.dumps({"batch_id": uuid.uuid4().hex, "points": points})
    response = seeded.post_raw(f"/runs/{run_id}/metrics", body, headers)
    assert response.status_code == 200, response.text
    assert seeded.master.http.get(f"{API}/runs/{run_id}/metrics").json()["points"] == points
    seeded.assert_intact(before)


# ---------------------------------------------------------------- run specs


BAD_SPECS: list[tuple[dict[str, Any], list[Any], str]] = [
    ({"workers": -1}, ["body", "workers"], "greater than or equal to 1"),
    ({"workers": 0}, ["body", "workers"], "greater than or equal to 1"),
    ({"workers": 257}, ["body", "workers"], "less than or equal to 256"),
    ({"workers": 10**9}, ["body", "workers"], "less than or equal to 256"),
    ({"workers": 2**63}, ["body", "workers"], "less than or equal to 256"),
    ({"workers": 2**70}, ["body", "workers"], "less than or equal to 256"),
    ({"workers": 2.5}, ["body", "workers"], "fractional part"),
    ({"workers": "many"}, ["body", "workers"], "valid integer"),
    ({"seed": 2**70}, ["body", "seed"], "less than or equal to"),
    ({"max_duration_s": 2**70}, ["body", "max_duration_s"], "less than or equal to"),
    ({"resources": {"cpu": 1e300}}, ["body", "resources", "cpu"], "less than or equal"),
    ({"resources": {"gpu": 2**70}}, ["body", "resources", "gpu"], "less than or equal"),
    ({"resources": {"memory": "../x"}}, ["body", "resources", "memory"], "not a quantity"),
    ({"image": "a\x00b"}, ["body", "image"], "control character"),
    ({"image": "evil\u202egpj.exe"}, ["body", "image"], "control character"),
    ({"image": "img\n--privileged"}, ["body", "image"], "whitespace"),
    ({"benchmark": "'; DROP TABLE runs; --"}, ["body"], "unknown benchmark"),
    ({"benchmark": "../../etc/passwd"}, ["body"], "unknown benchmark"),
    ({"benchmark": "🐍"}, ["body"], "unknown benchmark"),
    ({"benchmark": ""}, ["body"], "unknown benchmark"),
    ({"overrides": {"'; DROP TABLE runs; --": 1}}, ["body"], "not a setting"),
    ({"overrides": {"lr": "'; DROP TABLE runs; --"}}, ["body"], "setting 'lr'"),
    ({"spec_version": 2}, ["body", "spec_version"], "Extra inputs are not permitted"),
]


def test_hostile_run_specs_are_422_and_store_nothing(seeded: Seeded) -> None:
    before, ids = seeded.snapshot(), seeded.run_ids()

    def check(case: tuple[dict[str, Any], list[Any], str]) -> None:
        fields, loc, needle = case
        response = seeded.master.http.post(
            f"{API}/runs", json=run_spec(**fields), headers=seeded.master.admin
        )
        expect_422(response, loc, needle)

    check_cases([(repr(case[0])[:80], case) for case in BAD_SPECS], check)
    assert seeded.run_ids() == ids
    seeded.assert_intact(before)


NON_FINITE_SPECS = [
    ('"goal": {"kind": "custom", "value": NaN}', ["body", "goal", "value"]),
    ('"goal": {"kind": "custom", "value": Infinity}', ["body", "goal", "value"]),
    ('"goal": {"kind": "custom", "value": 1e309}', ["body", "goal", "value"]),
    ('"overrides": {"momentum": NaN}', ["body", "overrides"]),
    ('"overrides": {"lr": -Infinity}', ["body", "overrides"]),
]


def test_non_finite_numbers_in_a_run_spec_are_422(seeded: Seeded) -> None:
    """JSON has no NaN: a spec holding one was once stored with the goal silently turned into
    null (SQLite) or failed with a 500 (PostgreSQL refuses the token in a JSON column)."""
    before, ids = seeded.snapshot(), seeded.run_ids()

    def check(case: tuple[str, list[Any]]) -> None:
        raw, loc = case
        body = f'{{"name": "nan-goal", "benchmark": "digits-mlp", {raw}}}'
        expect_422(seeded.post_raw("/runs", body, seeded.master.admin), loc, "finite number")

    check_cases([(case[0], case) for case in NON_FINITE_SPECS], check)
    assert seeded.run_ids() == ids
    seeded.assert_intact(before)


def test_worker_count_bounds_are_accepted(seeded: Seeded) -> None:
    for workers in (1, 256):
        run_id = seeded.master.create(workers=workers)
        assert seeded.master.executor.launches[run_id].spec.workers == workers
