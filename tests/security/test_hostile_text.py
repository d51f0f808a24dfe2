"""Hostile text to a served master (real uvicorn, SQLite and PostgreSQL): unicode, path-like and
SQL-looking names, free text stored byte for byte, NUL bytes, huge integers and hostile query
strings. Afterwards the data stored before is intact and the master still answers."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import httpx

from tests.security.conftest import (
    API,
    FREE_TEXT,
    HOSTILE_NAMES,
    Seeded,
    check_cases,
    expect_422,
    fresh_run,
    messages,
    run_spec,
)

# ---------------------------------------------------------------- names


def test_hostile_run_and_group_names_are_422(seeded: Seeded) -> None:
    before, ids = seeded.snapshot(), seeded.run_ids()

    def check(case: tuple[str, str]) -> None:
        field, name = case
        response = seeded.master.http.post(
            f"{API}/runs", json=run_spec(**{field: name}), headers=seeded.master.admin
        )
        expect_422(response, ["body", field], "should match pattern")

    cases = [(f"{f}={n[:30]!r}", (f, n)) for f in ("name", "group") for n in HOSTILE_NAMES]
    check_cases(cases, check)
    assert seeded.run_ids() == ids
    seeded.assert_intact(before)


def test_hostile_metric_names_are_422_and_path_like_ones_stored_as_sent(seeded: Seeded) -> None:
    """Metric names follow ``METRIC_NAME_PATTERN``: ``a/b`` (like ``train/loss``) is a name and
    comes back as sent, everything else in the list is refused."""
    before = seeded.snapshot()
    run_id, headers = fresh_run(seeded)
    url = f"{API}/runs/{run_id}/metrics"

    def body(name: str) -> dict[str, Any]:
        point = {"name": name, "step": 0, "time": 1.0, "value": 1.0}
        return {"batch_id": uuid.uuid4().hex, "points": [point]}

    def check(name: str) -> None:
        response = seeded.master.http.post(url, json=body(name), headers=headers)
        expect_422(response, ["body", "points", 0, "name"], "should match pattern")

    refused = [name for name in HOSTILE_NAMES if name != "a/b"]
    check_cases([(repr(n[:30]), n) for n in refused], check)
    assert seeded.master.http.get(url).json()["points"] == []

    response = seeded.master.http.post(url, json=body("a/b"), headers=headers)
    assert response.status_code == 200, response.text
    assert [p["name"] for p in seeded.master.http.get(url).json()["points"]] == ["a/b"]
    seeded.assert_intact(before)


def test_concurrent_creations_of_one_name_give_one_run_and_409s(seeded: Seeded) -> None:
    """Eight admins race to create the same name: the partial unique index lets one win."""
    before, ids = seeded.snapshot(), seeded.run_ids()
    name = f"race-{uuid.uuid4().hex[:8]}"
    barrier = threading.Barrier(8)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def create() -> None:
        with httpx.Client(base_url=seeded.master.url, timeout=30) as http:
            barrier.wait()
            response = http.post(
                f"{API}/runs", json=run_spec(name=name), headers=seeded.master.admin
            )
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    codes = sorted(response.status_code for response in answers)
    assert codes == [201] + [409] * 7, [r.text for r in answers]
    for response in answers:
        if response.status_code == 409:
            assert name in response.json()["detail"]
    page = seeded.master.http.get(f"{API}/runs", params={"limit": 500}).json()
    assert [item["name"] for item in page["items"]].count(name) == 1
    assert len(seeded.run_ids()) == len(ids) + 1
    seeded.assert_intact(before)


# ---------------------------------------------------------------- free text: stored as sent


def test_free_text_is_stored_and_read_back_byte_identical(seeded: Seeded) -> None:
    """A failure reason and a result's extra figures take any text: what was sent comes back."""
    before = seeded.snapshot()
    http = seeded.master.http

    def check(text: str) -> None:
        run_id, headers = fresh_run(seeded)
        extra = {text: text, "sql": "'; DROP TABLE results; --"}
        result = {"goal_reached": False, "extra": extra}
        response = http.put(f"{API}/runs/{run_id}/result", json=result, headers=headers)
        assert response.status_code == 200, response.text
        assert http.get(f"{API}/runs/{run_id}/result").json()["extra"] == extra

        body = {"state": "failed", "rank": 1, "reason": text}
        response = http.post(f"{API}/runs/{run_id}/status", json=body, headers=headers)
        assert response.status_code == 200, response.text
        run = http.get(f"{API}/runs/{run_id}").json()
        assert (run["state"], run["reason"]) == ("failed", f"rank 1: {text}")

    check_cases([(repr(t[:30]), t) for t in FREE_TEXT], check)
    seeded.assert_intact(before)


def test_a_nul_byte_in_a_failure_reason_is_no_server_error(seeded: Seeded) -> None:
    """PostgreSQL text cannot hold NUL; a worker's exception message may. The report must not
    be a 500 (the run would stay live with its failure lost)."""
    before = seeded.snapshot()
    run_id, headers = fresh_run(seeded)
    http = seeded.master.http
    body = {"state": "failed", "rank": 0, "reason": "bad\x00byte"}
    response = http.post(f"{API}/runs/{run_id}/status", json=body, headers=headers)
    assert response.status_code in (200, 422), response.text
    run = http.get(f"{API}/runs/{run_id}").json()
    if response.status_code == 200:
        assert run["state"] == "failed"
        assert run["reason"].startswith("rank 0: bad") and run["reason"].endswith("byte")
    else:
        assert "reason" in messages(response)
    seeded.assert_intact(before)


def test_huge_integers_in_a_result_are_422(seeded: Seeded) -> None:
    """Integer columns hold 64 bits; a larger value must be refused, not crash the insert."""
    before = seeded.snapshot()
    run_id, headers = fresh_run(seeded)
    http = seeded.master.http

    def check(case: tuple[str, int]) -> None:
        field, value = case
        result = {"goal_reached": False, field: value}
        response = http.put(f"{API}/runs/{run_id}/result", json=result, headers=headers)
        expect_422(response, ["body", field], "less than or equal to")

    check_cases([("steps", ("steps", 2**70)), ("bytes", ("bytes_communicated", 2**64))], check)
    assert http.get(f"{API}/runs/{run_id}/result").status_code == 404
    seeded.assert_intact(before)


# ---------------------------------------------------------------- query strings


QUERIES = [
    ("runs", {"group": "'; DROP TABLE runs; --"}),
    ("runs", {"benchmark": "../../etc/passwd"}),
    ("metrics", {"name": "' OR 1=1 --"}),
    ("metrics", {"name": "a\x00b"}),
    ("metrics", {"cursor": str(10**20)}),
    ("metrics", {"rank": str(10**20)}),
    ("series", {"name": "train/loss", "x_min": "1e309"}),
    ("series", {"name": "train/loss", "x_min": "nan"}),
    ("series", {"name": "train/loss", "until_id": str(10**20)}),
    ("series", {"name": "'; DROP TABLE metric_points; --"}),
    ("run", {}),
]


def test_hostile_query_strings_are_answered_without_a_server_error(seeded: Seeded) -> None:
    """SQL-looking, NUL-holding and out-of-range query values: an empty answer or a 422."""
    before = seeded.snapshot()
    paths = {
        "runs": f"{API}/runs",
        "metrics": f"{API}/runs/{seeded.run_id}/metrics",
        "series": f"{API}/runs/{seeded.run_id}/metrics/series",
        "run": f"{API}/runs/{10**20}",
    }

    def check(case: tuple[str, dict[str, str]]) -> None:
        where, params = case
        try:
            response = seeded.master.http.get(paths[where], params=params)
        except httpx.HTTPError as exc:  # the server dropped the connection: it crashed
            raise AssertionError(f"no answer: {exc!r}") from None
        assert response.status_code in (200, 422), f"{response.status_code}: {response.text}"
        if response.status_code == 200 and where != "run":
            body = response.json()
            assert body.get("points", body.get("items", body.get("x"))) == []
        if response.status_code == 422:
            assert response.json()["detail"][0]["msg"]

    check_cases([(f"{w} {p!r}", (w, p)) for w, p in QUERIES], check)
    seeded.assert_intact(before)
