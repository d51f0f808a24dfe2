"""Property-based fuzzing of the whole REST API from its own OpenAPI document (schemathesis).

The master is served for real (uvicorn on a free port, lifespan run, SQLite) and every operation
its ``/openapi.json`` lists is fuzzed, so a route added later (e.g. heartbeats) is fuzzed without
touching this file. Each operation is fuzzed three times: with a valid worker token of a seeded
run, with no token, and with the admin token (valid data, then invalid data). Path ids are drawn
mostly from the seeded runs so the cases reach real rows, not only 404s.

Checks on every response: never a 5xx, the status code is documented for the operation, and the
body matches the documented schema and content type. Hypothesis is derandomized (same cases on
every run) with no example database, so CI is reproducible.

The bugs the fuzzing (and probing PostgreSQL with the same kinds of input) found have focused
regression tests at the end, run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.master.conftest import fresh_schema
from tests.security.conftest import ADMIN_TOKEN, API, MANIFEST, SecureMaster, secure_master

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
]
# Cases per operation and token mode; with ~21 operations (a few have fewer distinct inputs,
# e.g. GET /health has none) the three modes together send over 3,000 requests.
POSITIVE_EXAMPLES = 47
NEGATIVE_EXAMPLES = 15
MIN_CASES_PER_MODE = 900


@dataclass
class Seeded:
    """The served master and the runs made before fuzzing: ``own`` is the run whose worker
    token the worker mode sends, ``other`` a second run (its token is never sent)."""

    master: SecureMaster
    own: int
    other: int
    ids: list[int] = field(default_factory=list)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    with secure_master(data_dir, metrics_grace_s=3600) as master:
        own, other = master.create(group="fuzz"), master.create(group="fuzz")
        for run_id in (own, other):
            _seed_run(master, run_id)
        yield Seeded(master, own, other, ids=[own, other, master.create()])


def _seed_run(master: SecureMaster, run_id: int) -> None:
    """Give the run points, a result and a manifest, so reads go through their data paths."""
    headers = master.worker(run_id)
    points = [
        {
            "name": "loss",
            "rank": rank,
            "step": step,
            "epoch": step / 10,
            "time": 1e9 + step,
            "value": 1 / (step + 1),
        }
        for step in range(50)
        for rank in (0, 1)
    ]
    batch = {"batch_id": f"seed-{run_id:08d}", "points": points}
    url = f"{API}/runs/{run_id}"
    assert master.http.post(f"{url}/metrics", json=batch, headers=headers).status_code == 200
    result = {"goal_reached": True, "goal_metric": "loss", "time_to_goal_s": 3.0, "steps": 50}
    assert master.http.put(f"{url}/result", json=result, headers=headers).status_code == 200
    assert master.http.put(f"{url}/manifest", json=MANIFEST, headers=headers).status_code == 200


def _operations(master: SecureMaster) -> list[Any]:
    """Every operation of the served OpenAPI document (new routes included automatically)."""
    schema = schemathesis.openapi.from_url(f"{master.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 19, [op.label for op in operations]
    return operations


def _strategy(operation: Any, ids: list[int], mode: GenerationMode) -> st.SearchStrategy[Any]:
    """Cases of ``operation``; where its path has a run id, mostly one of the seeded runs."""
    generated = operation.as_strategy(generation_mode=mode)
    names = {parameter.name for parameter in operation.path_parameters}
    if "run_id" not in names or mode is GenerationMode.NEGATIVE:
        return generated
    # Built once per id (a flatmap would rebuild the strategy for every case); an id listed
    # twice is drawn twice as often.
    real = [
        operation.as_strategy(generation_mode=mode, path_parameters={"run_id": run_id})
        for run_id in ids
    ]
    return st.one_of(*real, *real, generated)


@dataclass
class Outcome:
    """What one token mode's fuzzing saw: cases sent, statuses per operation, failures."""

    sent: int = 0
    statuses: dict[str, set[int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def succeeded(self, label: str) -> bool:
        return any(200 <= code < 300 for code in self.statuses.get(label, ()))


def _fuzz(
    seeded: Seeded,
    headers: dict[str, str],
    ids: list[int],
    modes: list[tuple[GenerationMode, int]],
) -> Outcome:
    """Fuzz every operation of the document in each generation mode."""
    master = seeded.master
    outcome = Outcome()
    with requests.Session() as session:  # keep-alive: one connection, not one per case
        for operation in _operations(master):
            statuses = outcome.statuses.setdefault(operation.label, set())
            for mode, examples in modes:
                check = _checker(operation, ids, mode, examples, master.url, headers, session)
                try:
                    outcome.sent += check(statuses)
                except Unsatisfiable:
                    # Nothing to make invalid (e.g. GET /health has no parameters and no body).
                    assert mode is GenerationMode.NEGATIVE, operation.label
                except BaseException as exc:  # FailureGroup is a BaseExceptionGroup
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    outcome.failures.append(f"{operation.label} ({mode.value}):\n{exc}")
    return outcome


def _checker(
    operation: Any,
    ids: list[int],
    mode: GenerationMode,
    examples: int,
    base_url: str,
    headers: dict[str, str],
    session: requests.Session,
) -> Callable[[set[int]], int]:
    """Runs the operation's cases, adding each status to the given set; returns the count."""
    count = 0
    seen: set[int] = set()

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        report_multiple_bugs=False,
    )
    @given(case=_strategy(operation, ids, mode))
    def check(case: Any) -> None:
        nonlocal count
        count += 1
        if case.headers:  # only the mode's credentials, never a generated Authorization header
            case.headers = {
                key: value for key, value in case.headers.items() if key.lower() != "authorization"
            }
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
        seen.add(response.status_code)
        case.validate_response(response, checks=CHECKS, headers=headers)

    def run(statuses: set[int]) -> int:
        try:
            check()
        finally:
            statuses.update(seen)
        return count

    return run


def _assert_clean(label: str, outcome: Outcome, started: float) -> None:
    elapsed = time.monotonic() - started
    print(f"fuzz {label}: {outcome.sent} cases in {elapsed:.1f}s")
    failures = outcome.failures
    assert not failures, f"{len(failures)} operation(s) failed:\n\n" + "\n\n".join(failures)
    assert outcome.sent >= MIN_CASES_PER_MODE, f"only {outcome.sent} cases were sent"


@pytest.mark.slow
def test_fuzz_with_a_worker_token(seeded: Seeded) -> None:
    """A run's own worker: writes to its run succeed (points, result, manifest, status) and
    everything else is refused with a documented status; the other run's ids come up too."""
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {seeded.master.token(seeded.own)}"}
    ids = [seeded.own, seeded.own, seeded.other]
    outcome = _fuzz(seeded, headers, ids, [(GenerationMode.POSITIVE, POSITIVE_EXAMPLES)])
    _assert_clean("worker token", outcome, started)
    # The cases got past auth and validation into the services, not only 401/403/404/422.
    for suffix in ("status", "metrics", "result", "manifest"):
        method = "PUT" if suffix in ("result", "manifest") else "POST"
        label = f"{method} {API}/runs/{{run_id}}/{suffix}"
        assert outcome.succeeded(label), (label, outcome.statuses[label])
    assert outcome.statuses[f"POST {API}/runs"] == {403}


@pytest.mark.slow
def test_fuzz_without_a_token(seeded: Seeded) -> None:
    """No token: reads answer, every write is a documented 401 (or 422 for a bad path)."""
    started = time.monotonic()
    outcome = _fuzz(seeded, {}, seeded.ids, [(GenerationMode.POSITIVE, POSITIVE_EXAMPLES)])
    _assert_clean("no token", outcome, started)
    writes = [label for label in outcome.statuses if not label.startswith("GET ")]
    assert writes and all(not outcome.succeeded(label) for label in writes), outcome.statuses
    assert outcome.succeeded(f"GET {API}/runs/{{run_id}}/metrics/series")


@pytest.mark.slow
def test_fuzz_with_the_admin_token(seeded: Seeded) -> None:
    """The admin: runs are created, stopped and deleted among the reads; invalid data (negative
    mode) must get a documented 4xx, never a 5xx."""
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    modes = [
        (GenerationMode.POSITIVE, POSITIVE_EXAMPLES),
        (GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES),
    ]
    outcome = _fuzz(seeded, headers, seeded.ids, modes)
    _assert_clean("admin token", outcome, started)
    for label in (f"POST {API}/runs", f"POST {API}/runs/{{run_id}}/stop"):
        assert outcome.succeeded(label), (label, outcome.statuses[label])
    metrics = f"POST {API}/runs/{{run_id}}/metrics"
    assert 403 in outcome.statuses[metrics] and not outcome.succeeded(metrics)  # worker only


# -- regression tests of what the fuzzing found ---------------------------------------------------


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def both(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecureMaster]:
    """A master on SQLite, then on a fresh schema of the real PostgreSQL server."""
    data_dir = tmp_path_factory.mktemp(f"regress-{request.param}")
    if request.param == "sqlite":
        with secure_master(data_dir) as master:
            yield master
        return
    with fresh_schema() as url, secure_master(data_dir, database_url=url) as master:
        yield master


BIG = 2**70  # more than any integer column holds: the drivers overflowed (500)


@pytest.mark.parametrize(
    "path",
    [
        f"/runs/{BIG}",
        f"/runs/{2**31}",  # run ids are 32-bit on PostgreSQL
        "/runs/0",
        f"/runs/{BIG}/metrics",
        f"/runs/{BIG}/metrics/export",
        f"/runs/{BIG}/metrics/series?name=loss",
        "/runs?offset=" + str(2**63),
        "/runs?group=%00",  # PostgreSQL text cannot hold NUL
        "/runs?benchmark=a%00b",
        "/runs/1/metrics?cursor=" + str(2**63),
        "/runs/1/metrics?rank=" + str(BIG),
        "/runs/1/metrics?name=%00",
        "/runs/1/metrics/series?name=%00",
        "/runs/1/metrics/series?name=loss&until_id=" + str(2**63),
        "/runs/1/metrics/series?name=loss&rank=70000",
    ],
)
def test_out_of_range_reads_are_422_not_500(both: SecureMaster, path: str) -> None:
    if not both.executor.launches:
        both.create()
    response = both.http.get(API + path)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][0] in ("path", "query")


def test_out_of_range_writes_are_422_not_500(both: SecureMaster) -> None:
    run_id = both.create()
    worker = both.worker(run_id)
    for method, path in (("POST", f"/runs/{BIG}/stop"), ("DELETE", f"/runs/{BIG}")):
        assert both.http.request(method, API + path, headers=both.admin).status_code == 422
    status = both.http.post(f"{API}/runs/{BIG}/status", json={"state": "running"}, headers=worker)
    assert status.status_code == 422, status.text
    for name in ("steps", "bytes_communicated"):
        body = {"goal_reached": True, name: 2**64}
        response = both.http.put(f"{API}/runs/{run_id}/result", json=body, headers=worker)
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["body", name]
    assert both.http.get(f"{API}/runs/{run_id}/result").status_code == 404  # nothing stored
    largest = {"goal_reached": True, "steps": 2**62, "bytes_communicated": 2**63 - 1}
    stored = both.http.put(f"{API}/runs/{run_id}/result", json=largest, headers=worker)
    assert stored.status_code == 200, stored.text
    assert {key: stored.json()[key] for key in largest} == largest


def test_a_failure_reason_with_nul_is_stored(both: SecureMaster) -> None:
    """A worker's failure report must end the run even when its reason holds a NUL (an
    exception message with binary data); PostgreSQL text cannot store NUL, so it is replaced."""
    run_id = both.create()
    report = {"state": "failed", "rank": 1, "reason": "bad byte \x00 here"}
    response = both.http.post(
        f"{API}/runs/{run_id}/status", json=report, headers=both.worker(run_id)
    )
    assert response.status_code == 200, response.text
    run = both.http.get(f"{API}/runs/{run_id}").json()
    assert run["state"] == "failed"
    assert run["reason"] == "rank 1: bad byte \ufffd here"


@pytest.mark.parametrize("body", [b"\xff\xfe{}", b"\x11\xe9hu", b"{not json"])
def test_a_body_that_is_not_utf8_json_is_a_documented_422(both: SecureMaster, body: bytes) -> None:
    """Every body route answers a body that is not UTF-8 JSON with the 422 it documents (the
    metrics route always did; the others answered an undocumented 400)."""
    run_id = both.create()
    headers = {"Content-Type": "application/json"}
    routes = [("POST", "/runs", both.admin)] + [
        (method, f"/runs/{run_id}{suffix}", both.worker(run_id))
        for method, suffix in (
            ("POST", "/status"),
            ("POST", "/metrics"),
            ("PUT", "/result"),
            ("PUT", "/manifest"),
            ("POST", "/heartbeat"),
        )
    ]
    for method, path, auth in routes:
        response = both.http.request(method, API + path, content=body, headers={**headers, **auth})
        assert response.status_code == 422, (method, path, response.text)
        assert response.json()["detail"][0]["type"] == "json_invalid"
