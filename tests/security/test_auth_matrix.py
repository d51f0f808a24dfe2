"""Who may write what: every write route of the OpenAPI document, every kind of credential.

``EXPECTED`` is the reviewed table (also in docs/reliability.md). The test fails when the served
API has a write route the table lacks, or the table a route the API lacks, so a new route cannot
go out without someone deciding who may call it. Each cell sends a valid body, so the answer is
decided by the credentials alone, and a refused request must leave the run exactly as it was.
"""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from master import auth
from master.auth import hash_token
from tests.security.conftest import (
    ADMIN_TOKEN,
    API,
    MANIFEST,
    SecureMaster,
    bearer,
    secure_master,
)

WRITE_METHODS = {"post", "put", "patch", "delete"}
CREDENTIALS = ("none", "wrong", "other_worker", "own_worker", "admin")

# (method, path) -> expected status per credential; "own_worker" is the worker token of the
# run in the path (for POST /runs, of some existing run), "other_worker" that of another run.
EXPECTED: dict[tuple[str, str], dict[str, int]] = {
    ("POST", "/api/v1/runs"): dict(
        none=401, wrong=401, other_worker=403, own_worker=403, admin=201
    ),
    ("POST", "/api/v1/runs/{run_id}/stop"): dict(
        none=401, wrong=401, other_worker=403, own_worker=403, admin=202
    ),
    ("DELETE", "/api/v1/runs/{run_id}"): dict(
        none=401, wrong=401, other_worker=403, own_worker=403, admin=204
    ),
    ("POST", "/api/v1/runs/{run_id}/status"): dict(
        none=401, wrong=401, other_worker=403, own_worker=200, admin=200
    ),
    ("POST", "/api/v1/runs/{run_id}/metrics"): dict(
        none=401, wrong=401, other_worker=403, own_worker=200, admin=403
    ),
    ("PUT", "/api/v1/runs/{run_id}/result"): dict(
        none=401, wrong=401, other_worker=403, own_worker=200, admin=403
    ),
    ("PUT", "/api/v1/runs/{run_id}/manifest"): dict(
        none=401, wrong=401, other_worker=403, own_worker=200, admin=403
    ),
    ("POST", "/api/v1/runs/{run_id}/heartbeat"): dict(
        none=401, wrong=401, other_worker=403, own_worker=200, admin=403
    ),
}


def _body(method: str, path: str) -> Any:
    """A valid body for the route, new each time (unique run names and batch ids)."""
    bodies: dict[tuple[str, str], Callable[[], Any]] = {
        ("POST", "/api/v1/runs"): lambda: {
            "name": f"auth-{uuid.uuid4().hex[:10]}",
            "benchmark": "digits-mlp",
        },
        ("POST", "/api/v1/runs/{run_id}/status"): lambda: {"state": "running", "rank": 0},
        ("POST", "/api/v1/runs/{run_id}/metrics"): lambda: {
            "batch_id": uuid.uuid4().hex,
            "points": [{"name": "loss", "step": 1, "time": 1e9, "value": 0.5}],
        },
        ("PUT", "/api/v1/runs/{run_id}/result"): lambda: {"goal_reached": False, "steps": 3},
        ("PUT", "/api/v1/runs/{run_id}/manifest"): lambda: dict(MANIFEST),
        ("POST", "/api/v1/runs/{run_id}/heartbeat"): lambda: {"rank": 0, "step": 1, "idle_s": 0.5},
    }
    make = bodies.get((method, path))
    return None if make is None else make()


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureMaster]:
    with secure_master(tmp_path_factory.mktemp("auth"), metrics_grace_s=3600) as served:
        yield served


def _write_routes(master: SecureMaster) -> set[tuple[str, str]]:
    document = master.http.get("/openapi.json").json()
    return {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
        if method in WRITE_METHODS
    }


def test_every_write_route_is_in_the_reviewed_table(master: SecureMaster) -> None:
    """A write route missing from EXPECTED has had nobody decide who may call it."""
    served = _write_routes(master)
    assert served - EXPECTED.keys() == set(), "write routes without a row in EXPECTED"
    assert EXPECTED.keys() - served == set(), "rows in EXPECTED for routes the API lacks"


def _snapshot(master: SecureMaster, run_id: int) -> dict[str, Any]:
    """What a write could change about a run: row, transitions, points, result, manifest."""
    base = f"{API}/runs/{run_id}"
    run = master.http.get(base)
    if run.status_code == 404:
        return {"exists": False}
    assert run.status_code == 200, run.text
    return {
        "run": run.json(),
        "names": master.http.get(f"{base}/metrics/names").json(),
        "result": master.http.get(f"{base}/result").text,
        "manifest": master.http.get(f"{base}/manifest").text,
        "total": master.http.get(f"{API}/runs", params={"limit": 1}).json()["total"],
    }


def _headers(credential: str, master: SecureMaster, own: int, other: int) -> dict[str, str]:
    if credential == "none":
        return {}
    if credential == "wrong":
        return bearer("not-a-token-" + uuid.uuid4().hex)
    if credential == "admin":
        return bearer(ADMIN_TOKEN)
    return master.worker(own if credential == "own_worker" else other)


@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize("route", sorted(EXPECTED), ids=lambda route: " ".join(route))
def test_write_route_answers_as_the_table_says(
    master: SecureMaster, route: tuple[str, str], credential: str
) -> None:
    method, path = route
    own, other = master.create(), master.create()
    if method == "DELETE":  # only an ended run may be deleted: end it first
        ended = master.http.post(
            f"{API}/runs/{own}/status",
            json={"state": "failed", "rank": 0, "reason": "ended for the test"},
            headers=master.worker(own),
        )
        assert ended.status_code == 200 and ended.json()["state"] == "failed", ended.text
    before = _snapshot(master, own)
    response = master.http.request(
        method,
        path.format(run_id=own),
        headers=_headers(credential, master, own, other),
        json=_body(method, path),
    )
    expected = EXPECTED[route][credential]
    assert response.status_code == expected, (route, credential, response.text)
    if expected == 401:
        assert response.headers.get("www-authenticate") == "Bearer"
    if expected >= 400:
        assert set(response.json()) == {"detail"}
        assert _snapshot(master, own) == before, "a refused write changed the run"
    elif path.endswith("/heartbeat"):  # kept in memory, not stored: the answer is the state
        assert response.json() == {"state": "starting"}
    else:
        assert _snapshot(master, own) != before, "an accepted write changed nothing"


def test_a_worker_token_cannot_stop_or_delete_another_run(master: SecureMaster) -> None:
    """Neither another run's worker token nor the run's own may stop or delete it (ended or
    not), a refused request leaves it as it was, the admin can, and a deleted run's token
    authenticates nothing any more."""
    mine, victim = master.create(), master.create()
    worker = master.worker(mine)
    assert master.http.post(f"{API}/runs/{victim}/stop", headers=worker).status_code == 403
    assert master.http.get(f"{API}/runs/{victim}").json()["state"] == "starting"
    failed = {"state": "failed", "rank": 0, "reason": "x"}
    victim_worker = master.worker(victim)
    assert master.http.post(
        f"{API}/runs/{victim}/status", json=failed, headers=victim_worker
    ).is_success
    assert master.http.delete(f"{API}/runs/{victim}", headers=worker).status_code == 403
    assert master.http.delete(f"{API}/runs/{victim}", headers=victim_worker).status_code == 403
    assert master.http.get(f"{API}/runs/{victim}").status_code == 200
    assert master.http.delete(f"{API}/runs/{victim}", headers=master.admin).status_code == 204
    after = master.http.post(f"{API}/runs/{victim}/status", json=failed, headers=victim_worker)
    assert after.status_code == 401


def _all_read_bodies(master: SecureMaster, run_ids: list[int], headers: dict[str, str]) -> str:
    """Every read that shows runs, as one text: list, each run, its manifest and export."""
    get = master.http.get
    texts = [get(f"{API}/runs", params={"limit": 500}, headers=headers).text]
    for run_id in run_ids:
        base = f"{API}/runs/{run_id}"
        for suffix in ("", "/manifest", "/result", "/metrics", "/metrics/export"):
            texts.append(get(base + suffix, headers=headers).text)
    texts.append(get(f"{API}/groups/secrets", headers=headers).text)
    return "\n".join(texts)


def test_no_read_shows_a_token_or_its_hash(master: SecureMaster) -> None:
    """Worker tokens are handed to the executor only; the API never shows one, nor the hash
    it stores (a hash would let anyone verify guesses offline), nor the admin token."""
    ids = [master.create(group="secrets") for _ in range(3)]
    created = master.http.post(
        f"{API}/runs",
        json={"name": f"sec-{uuid.uuid4().hex[:8]}", "benchmark": "digits-mlp"},
        headers=master.admin,
    )
    assert created.status_code == 201
    ids.append(created.json()["id"])
    for run_id in ids:
        worker = master.worker(run_id)
        assert master.http.put(
            f"{API}/runs/{run_id}/manifest", json=MANIFEST, headers=worker
        ).is_success
    secrets = [ADMIN_TOKEN, hash_token(ADMIN_TOKEN)]
    for run_id in ids:
        secrets += [master.token(run_id), hash_token(master.token(run_id))]
    # Read as nobody, as one run's worker (the others' secrets) and as the admin.
    shown = created.text + "\n".join(
        _all_read_bodies(master, ids, headers)
        for headers in ({}, master.worker(ids[0]), master.admin)
    )
    assert "token" not in json.dumps(created.json()).lower()
    leaked = [secret[:8] + "..." for secret in secrets if secret in shown]
    assert leaked == [], f"secrets in API answers: {leaked}"


def test_tokens_that_differ_in_one_character_are_refused(master: SecureMaster) -> None:
    """The first and the last character both count (no prefix or suffix match), for the admin
    token and for worker tokens; other schemes and empty tokens are no tokens."""
    run_id = master.create()
    token = master.token(run_id)
    near_misses: list[str] = []
    for real in (ADMIN_TOKEN, token):
        first = ("A" if real[0] != "A" else "B") + real[1:]
        last = real[:-1] + ("A" if real[-1] != "A" else "B")
        near_misses += [first, last, real[:-1], real + "A", real.upper(), " " + real + "x"]
    body = {"state": "running", "rank": 0}
    url = f"{API}/runs/{run_id}/status"
    for candidate in near_misses:
        response = master.http.post(url, json=body, headers=bearer(candidate))
        assert response.status_code == 401, (candidate[:6], response.text)
    for header in (f"Basic {ADMIN_TOKEN}", f"Token {ADMIN_TOKEN}", "Bearer", ADMIN_TOKEN):
        response = master.http.post(url, json=body, headers={"Authorization": header})
        assert response.status_code == 401, header
    # A token in the query string is not a credential.
    response = master.http.post(url, json=body, params={"token": ADMIN_TOKEN})
    assert response.status_code == 401
    assert master.http.post(url, json=body, headers=bearer(token)).status_code == 200


def test_authenticate_compares_the_admin_token_in_constant_time() -> None:
    """The admin token is compared with hmac.compare_digest (no early exit on the first
    differing byte); worker tokens are looked up by their SHA-256, so the lookup's timing
    depends on the hash, not on how much of the token a guess got right."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(auth.authenticate)))
    calls = {ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    assert "hmac.compare_digest" in calls, calls
    assert "hash_token" in calls, calls
    # The only == allowed is the SQL lookup ``Run.token_hash == hash_token(token)``: no plain
    # token (admin's or worker's) is ever an operand of a Python comparison.
    plain = [
        ast.unparse(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare)
        for operand in (node.left, *node.comparators)
        if isinstance(operand, ast.Name) and "token" in operand.id
    ]
    assert plain == [], plain


@pytest.fixture(scope="module")
def reads_master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureMaster]:
    with secure_master(tmp_path_factory.mktemp("reads"), auth_reads=True) as served:
        yield served


def _read_urls(master: SecureMaster, run_id: int) -> list[str]:
    """Every GET route of the OpenAPI document, with the path filled in for ``run_id``."""
    document = master.http.get("/openapi.json").json()
    values = {"run_id": str(run_id), "benchmark_id": "digits-mlp", "group": "reads"}
    urls = []
    for path, operations in document["paths"].items():
        if "get" in operations and path != f"{API}/health":
            urls.append(path.format(**values))
    assert len(urls) >= 12, urls
    return urls


def test_with_auth_reads_every_read_needs_a_valid_token(reads_master: SecureMaster) -> None:
    """MLBENCH_AUTH_READS: no token or a wrong one is a documented 401 on every read route;
    any valid token (a worker's, the admin's) reads; /health stays open for probes."""
    master = reads_master
    run_id = master.create(group="reads")
    worker = master.worker(run_id)
    batch = {
        "batch_id": "reads-0001",
        "points": [{"name": "loss", "step": 1, "time": 1e9, "value": 1.0}],
    }
    assert master.http.post(f"{API}/runs/{run_id}/metrics", json=batch, headers=worker).is_success
    assert master.http.put(
        f"{API}/runs/{run_id}/result", json={"goal_reached": True}, headers=worker
    ).is_success
    assert master.http.put(
        f"{API}/runs/{run_id}/manifest", json=MANIFEST, headers=worker
    ).is_success
    document = master.http.get("/openapi.json").json()
    for url in _read_urls(master, run_id):
        params = {"name": "loss"} if url.endswith("/series") else None
        template = next(
            path
            for path in document["paths"]
            if path.format(run_id=run_id, benchmark_id="digits-mlp", group="reads") == url
        )
        documented = document["paths"][template]["get"]["responses"]
        for headers in ({}, bearer("wrong-" + ADMIN_TOKEN)):
            response = master.http.get(url, params=params, headers=headers)
            assert response.status_code == 401, (url, response.text)
            assert response.headers.get("www-authenticate") == "Bearer"
            assert "401" in documented, f"GET {template} does not document its 401"
        for headers in (worker, master.admin, master.worker(master.create())):
            response = master.http.get(url, params=params, headers=headers)
            assert response.status_code == 200, (url, response.text)
    assert master.http.get(f"{API}/health").status_code == 200


def test_reads_are_open_by_default(master: SecureMaster) -> None:
    run_id = master.create()
    for path in ("/runs", f"/runs/{run_id}", "/benchmarks", "/nodes"):
        assert master.http.get(API + path).status_code == 200, path
