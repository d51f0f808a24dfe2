"""A small typed client for the master's REST API, used by the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

API = "/api/v1"


class ApiError(Exception):
    """The master answered with an error; ``str()`` is one readable line."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"master answered {status}: {detail}")
        self.status = status
        self.detail = detail


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(detail, list):  # FastAPI's 422 list: name the field and the problem
        parts = []
        for err in detail:
            loc = ".".join(str(p) for p in err.get("loc", []) if p != "body")
            parts.append(f"{loc}: {err.get('msg', '')}" if loc else str(err.get("msg", "")))
        return "; ".join(parts)
    return str(detail)


class Client:
    def __init__(self, base_url: str, token: str | None = None, timeout_s: float = 10.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, API + path, **kwargs)
        if response.status_code >= 400:
            raise ApiError(response.status_code, _detail(response))
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def healthy(self) -> bool:
        try:
            return self._http.get(API + "/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def benchmarks(self) -> list[dict[str, Any]]:
        return self._call("GET", "/benchmarks")

    def create_run(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/runs", json=spec)

    def runs(
        self, state: list[str] | None = None, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if state:
            params["state"] = state
        return self._call("GET", "/runs", params=params)

    def run(self, run_id: int) -> dict[str, Any]:
        return self._call("GET", f"/runs/{run_id}")

    def stop(self, run_id: int) -> dict[str, Any]:
        return self._call("POST", f"/runs/{run_id}/stop")

    def delete(self, run_id: int) -> None:
        self._call("DELETE", f"/runs/{run_id}")

    def group(self, group: str) -> dict[str, Any]:
        return self._call("GET", f"/groups/{group}")

    def nodes(self) -> list[dict[str, Any]]:
        return self._call("GET", "/nodes")

    def metrics(self, run_id: int, **params: Any) -> dict[str, Any]:
        return self._call("GET", f"/runs/{run_id}/metrics", params=params)

    def result(self, run_id: int) -> dict[str, Any] | None:
        try:
            return self._call("GET", f"/runs/{run_id}/result")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def metric_names(self, run_id: int) -> list[dict[str, Any]]:
        """``[{"name", "ranks", "count"}]`` of the run's stored metrics."""
        return self._call("GET", f"/runs/{run_id}/metrics/names")

    def series(self, run_id: int, **params: Any) -> dict[str, Any]:
        """One downsampled series for plots (``name``, ``rank``, ``x``, ``max_points``,
        ``x_min``, ``x_max``): ``{"x": [...], "y": [...], "total", "downsampled", "last_id"}``."""
        return self._call("GET", f"/runs/{run_id}/metrics/series", params=params)

    def manifest(self, run_id: int) -> dict[str, Any] | None:
        try:
            return self._call("GET", f"/runs/{run_id}/manifest")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def export(self, run_id: int, fmt: str) -> Iterator[bytes]:
        with self._http.stream(
            "GET", f"{API}/runs/{run_id}/metrics/export", params={"format": fmt}
        ) as r:
            if r.status_code >= 400:
                r.read()
                raise ApiError(r.status_code, _detail(r))
            yield from r.iter_bytes()
