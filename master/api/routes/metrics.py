"""Metric points of a run: batched writes from workers, cursor reads, names, export."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from master.api.deps import (
    MAX_SQL_INT,
    ReaderDep,
    RunIdPath,
    SessionDep,
    SettingsDep,
    StateDep,
    WorkerDep,
)
from master.api.json_body import documented_body, json_body
from master.errors import Unprocessable
from master.schemas import (
    ErrorPublic,
    IngestResult,
    MetricName,
    MetricsPage,
    SeriesAxis,
    SeriesPublic,
)
from master.services import export, metrics, runs, series
from mlbench_core import wire

router = APIRouter(prefix="/runs/{run_id}/metrics", tags=["metrics"])

_AUTH = {401: {"model": ErrorPublic}, 403: {"model": ErrorPublic}}
_NOT_FOUND = {404: {"model": ErrorPublic}}


class ExportFormat(StrEnum):
    csv = "csv"
    json = "json"


BatchBody = Annotated[wire.MetricBatchDict, Depends(json_body(wire.METRIC_BATCH))]


@router.post(
    "",
    responses={**_AUTH, **_NOT_FOUND, 409: {"model": ErrorPublic}},
    openapi_extra=documented_body(wire.MetricBatch),
)
def post_metrics(
    run_id: RunIdPath,
    _worker: WorkerDep,  # before the body: a stranger's batch is not even parsed
    batch: BatchBody,
    session: SessionDep,
    settings: SettingsDep,
) -> IngestResult:
    """Store a batch once: a repeated ``batch_id`` stores nothing and says ``duplicate``."""
    return metrics.ingest(session, run_id, batch, settings.metrics_grace_s)


@router.get("", responses={**_AUTH, **_NOT_FOUND})
def get_metrics(
    run_id: RunIdPath,
    session: SessionDep,
    settings: SettingsDep,
    _reader: ReaderDep,
    name: Annotated[
        list[wire.MetricNameField] | None, Query(description="Only these names (repeatable).")
    ] = None,
    rank: Annotated[
        list[wire.RankField] | None, Query(description="Only these ranks (repeatable).")
    ] = None,
    cursor: Annotated[
        int, Query(ge=0, le=MAX_SQL_INT, description="next_cursor of the last read; 0 = start.")
    ] = 0,
    limit: Annotated[
        int | None, Query(ge=1, description="Points to read (capped by max_points_per_read).")
    ] = None,
    max_points: Annotated[
        int | None, Query(ge=4, description="Downsample each (name, rank) series to this many.")
    ] = None,
) -> MetricsPage:
    """Points stored after ``cursor`` in id order; reading on with ``next_cursor`` returns
    every point exactly once."""
    cap = settings.max_points_per_read
    return metrics.read_points(
        session,
        run_id,
        names=name or [],
        ranks=rank or [],
        cursor=cursor,
        limit=min(limit or cap, cap),
        max_points=max_points,
    )


@router.get("/names", responses={**_AUTH, **_NOT_FOUND})
def get_metric_names(
    run_id: RunIdPath, session: SessionDep, _reader: ReaderDep
) -> list[MetricName]:
    """The metric names of a run with their ranks and point counts."""
    return metrics.metric_names(session, run_id)


@router.get("/series", responses={**_AUTH, **_NOT_FOUND})
def get_series(
    run_id: RunIdPath,
    session: SessionDep,
    _reader: ReaderDep,
    name: Annotated[str, Query(pattern=wire.METRIC_NAME_PATTERN, description="Metric name.")],
    rank: Annotated[
        wire.RankField | None,
        Query(description="One rank; omitted: the mean over the ranks per step."),
    ] = None,
    x: Annotated[SeriesAxis, Query(description="What the x values are.")] = SeriesAxis.step,
    max_points: Annotated[
        int, Query(ge=4, le=series.MAX_POINTS, description="At most this many points.")
    ] = 2000,
    x_min: Annotated[
        float | None, Query(allow_inf_nan=False, description="Only points with x >= x_min.")
    ] = None,
    x_max: Annotated[
        float | None, Query(allow_inf_nan=False, description="Only points with x <= x_max.")
    ] = None,
    until_id: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_SQL_INT,
            description="Read as of this point id (a last_id or next_cursor).",
        ),
    ] = None,
) -> SeriesPublic:
    """One whole series for a plot, downsampled (M4) over its full or zoomed range; a range
    holding at most ``max_points`` points comes at full resolution. Continue with cursor reads
    from ``last_id`` to get only the points stored since."""
    if x_min is not None and x_max is not None and x_min > x_max:
        raise Unprocessable(
            f"x_min ({x_min:g}) is greater than x_max ({x_max:g})", loc=("query", "x_min")
        )
    return series.read_series(
        session,
        run_id,
        name,
        rank=rank,
        axis=x,
        max_points=max_points,
        x_min=x_min,
        x_max=x_max,
        until_id=until_id,
    )


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        **_AUTH,
        **_NOT_FOUND,
        200: {"content": {"text/csv": {}, "application/json": {}}, "description": "All points."},
    },
)
def export_metrics(
    run_id: RunIdPath,
    session: SessionDep,
    state: StateDep,
    _reader: ReaderDep,
    format: ExportFormat = ExportFormat.csv,
) -> StreamingResponse:
    """All points of the run, streamed. CSV header: ``name,rank,step,epoch,time,value``."""
    runs.ensure_run(session, run_id)
    session.close()  # the stream reads with its own short sessions
    if format is ExportFormat.csv:
        body, media = export.csv_stream(state.sessionmaker, run_id), "text/csv; charset=utf-8"
    else:
        body, media = export.json_stream(state.sessionmaker, run_id), "application/json"
    filename = f"run-{run_id}-metrics.{format.value}"
    return StreamingResponse(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
