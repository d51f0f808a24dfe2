"""create_app: lifespan, default executors, generated admin token, OpenAPI."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from master.app import create_app
from master.settings import Settings
from tests.master.conftest import API, Master, bearer, spec


def test_default_app_builds_the_local_executor_and_a_token(tmp_path: Path) -> None:
    from master.executors.local import LocalExecutor

    settings = Settings(data_dir=tmp_path / "data", stop_grace_s=3)
    app = create_app(settings)
    with TestClient(app) as client:
        executor = app.state.mlbench.executors["local"]
        assert isinstance(executor, LocalExecutor)
        assert executor.runs_dir == tmp_path / "data" / "runs"
        token = (tmp_path / "data" / "admin-token").read_text().strip()
        # The generated token is the admin token; a bad spec is refused before any launch.
        response = client.post(f"{API}/runs", json=spec(workers=0), headers=bearer(token))
        assert response.status_code == 422
        assert client.post(f"{API}/runs", json=spec(), headers=bearer("x")).status_code == 401
        assert client.get(f"{API}/health").json()["database"] == "sqlite"
    assert (tmp_path / "data" / "mlbench.db").exists()


def test_lifespan_shuts_the_executors_down(master: Master) -> None:
    executor = master.executor
    assert not executor.shut_down
    master.client.__exit__(None, None, None)
    assert executor.shut_down


def test_openapi_documents_the_contract(master: Master) -> None:
    schema = master.client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in (
        "/health",
        "/benchmarks",
        "/benchmarks/{benchmark_id}",
        "/runs",
        "/runs/{run_id}",
        "/runs/{run_id}/stop",
        "/runs/{run_id}/status",
        "/runs/{run_id}/metrics",
        "/runs/{run_id}/metrics/names",
        "/runs/{run_id}/metrics/export",
        "/runs/{run_id}/result",
    ):
        assert API + path in paths, path
    components = schema["components"]["schemas"]
    assert components["RunSpec"]["examples"][0]["benchmark"] == "digits-mlp"
    assert "MetricBatch" in components and "StatusUpdate" in components
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert master.client.get("/docs").status_code == 200
