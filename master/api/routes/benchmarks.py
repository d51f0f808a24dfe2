"""The benchmark catalog (``mlbench_core.tasks``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, status

from master.api.deps import require_reader
from master.schemas import BenchmarkPublic, ErrorPublic
from mlbench_core.tasks import all_tasks, get_task

# 401 when MLBENCH_AUTH_READS is set and the token is missing or wrong: documented like every
# other read route, so clients generated from the OpenAPI document expect it.
router = APIRouter(
    prefix="/benchmarks",
    tags=["benchmarks"],
    dependencies=[Depends(require_reader)],
    responses={401: {"model": ErrorPublic}, 403: {"model": ErrorPublic}},
)


@router.get("")
def list_benchmarks() -> list[BenchmarkPublic]:
    """Every benchmark a run can use, with its goal and the JSON schema of its settings."""
    return [BenchmarkPublic.model_validate(task.describe()) for task in all_tasks()]


@router.get("/{benchmark_id}", responses={404: {"model": ErrorPublic}})
def get_benchmark(benchmark_id: str) -> BenchmarkPublic:
    try:
        task = get_task(benchmark_id)
    except ValueError as exc:  # the message lists the known ids
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    return BenchmarkPublic.model_validate(task.describe())
