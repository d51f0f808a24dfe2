"""Groups of repeated runs: their results side by side and the time-to-goal summary."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from master.api.deps import ReaderDep, SessionDep
from master.schemas import ErrorPublic, GroupSummaryPublic
from master.services.groups import group_summary
from mlbench_core.spec import NAME_PATTERN

router = APIRouter(prefix="/groups", tags=["runs"])


@router.get(
    "/{group}",
    responses={
        401: {"model": ErrorPublic},
        403: {"model": ErrorPublic},
        404: {"model": ErrorPublic},
    },
)
def get_group(
    group: Annotated[str, Path(pattern=NAME_PATTERN)], session: SessionDep, _reader: ReaderDep
) -> GroupSummaryPublic:
    """The group's runs and their time-to-goal: MLPerf-style olympic mean, mean ± std."""
    return group_summary(session, group)
