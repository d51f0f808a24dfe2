"""The steps' HTTP calls to the master, with bounded retries (httpx + tenacity).

Same rule as the workers' transport (mlbench_core/transport.py): connection errors, 5xx and
429 are retried with exponential backoff for at most ``retry_s``; any other 4xx is final (a
wrong token, an unknown run, a refused spec: repeating cannot help) and surfaces as
``MasterRejected`` with the master's one-line detail.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential

from workflows.steps import StepUsageError, one_line

_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# A POST that creates a run is only repeated when nothing can have been created: the
# connection never opened, or the master (or a proxy in front of it) said "unavailable".
_CREATE_RETRYABLE_STATUS = frozenset({503})
_CREATE_RETRYABLE_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout)


class MasterError(Exception):
    """A request to the master failed; the message is one readable line."""


class MasterUnreachable(MasterError):
    """No answer (or only 5xx/429) within the retry budget."""


class MasterRejected(MasterError):
    """The master answered a final 4xx."""

    def __init__(self, status: int, detail: str, what: str) -> None:
        super().__init__(f"master answered {status} to {what}: {detail}")
        self.status = status
        self.detail = detail


class _RetryableStatus(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}: {detail_of(response)}")


def detail_of(response: httpx.Response) -> str:
    """The master's ``detail`` as one line: a string, or the first item of FastAPI's 422 list."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return one_line(response.text or response.reason_phrase, 300)
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        more = f" (and {len(detail) - 1} more)" if len(detail) > 1 else ""
        return one_line(f"{where}: {message}{more}" if where else f"{message}{more}", 600)
    return one_line(detail if detail is not None else response.text, 600)


def api_url_from(value: str | None) -> str:
    """``--api-url`` or ``MLBENCH_API_URL``: an http(s) base URL without trailing slash."""
    url = (value or os.environ.get("MLBENCH_API_URL", "")).strip()
    if not url:
        raise StepUsageError("no master URL: pass --api-url or set MLBENCH_API_URL")
    if not url.startswith(("http://", "https://")):
        raise StepUsageError(f"--api-url {url!r} is not an http(s) URL")
    return url.rstrip("/")


def token_from(*names: str, required: bool) -> str | None:
    """The first non-empty environment variable of ``names`` (tokens never go on argv)."""
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    if required:
        raise StepUsageError(f"environment variable {' or '.join(names)} is not set")
    return None


class MasterAPI:
    """The few master routes the steps use."""

    def __init__(
        self,
        api_url: str,
        token: str | None,
        *,
        timeout_s: float = 10.0,
        retry_s: float = 30.0,
        backoff_s: float = 0.5,
        max_backoff_s: float = 5.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.api_url = api_url
        self.retry_s = retry_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._http = httpx.Client(base_url=api_url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MasterAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_run(self, run_id: int, retry_s: float | None = None) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/runs/{run_id}", None, f"GET run {run_id}", retry_s)

    def post_status(self, run_id: int, body: dict[str, Any]) -> dict[str, Any]:
        # Idempotent for the master: a second terminal report of an ended run changes nothing.
        return self._call("POST", f"/api/v1/runs/{run_id}/status", body, "the status report")

    def create_run(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._call(
            "POST",
            "/api/v1/runs",
            spec,
            "the new run",
            retry_statuses=_CREATE_RETRYABLE_STATUS,
            retry_errors=_CREATE_RETRYABLE_ERRORS,
        )

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        what: str,
        retry_s: float | None = None,
        *,
        retry_statuses: frozenset[int] = _RETRYABLE_STATUS,
        retry_errors: tuple[type[Exception], ...] = (httpx.TransportError,),
    ) -> dict[str, Any]:
        budget = self.retry_s if retry_s is None else retry_s

        def once() -> dict[str, Any]:
            response = self._http.request(method, path, json=body)
            if response.status_code in retry_statuses:
                raise _RetryableStatus(response)
            if response.status_code >= 400:
                raise MasterRejected(response.status_code, detail_of(response), what)
            try:
                data = response.json()
            except ValueError:
                raise MasterRejected(response.status_code, "answer is not JSON", what) from None
            if not isinstance(data, dict):
                raise MasterRejected(response.status_code, "answer is not an object", what)
            return data

        def stop(state: RetryCallState) -> bool:
            # Never sleep past the budget, but try twice: one dropped connection is no outage.
            ends_at = state.seconds_since_start + (state.upcoming_sleep or 0.0)
            return state.attempt_number >= 2 and ends_at >= budget

        retrying = Retrying(
            stop=stop,
            wait=wait_exponential(
                multiplier=self.backoff_s, min=self.backoff_s, max=self.max_backoff_s
            ),
            retry=retry_if_exception_type((*retry_errors, _RetryableStatus)),
            reraise=True,
        )
        try:
            return retrying(once)
        except (httpx.TransportError, _RetryableStatus) as exc:
            raise MasterUnreachable(
                f"master at {self.api_url} did not answer {what} within {budget:g} s: "
                f"{one_line(f'{type(exc).__name__}: {exc}', 300)}"
            ) from None
