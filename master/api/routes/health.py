"""Liveness: the service answers and its database does too."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from master import __version__
from master.api.deps import SessionDep
from master.db import dialect_name
from master.schemas import ErrorPublic, HealthPublic

router = APIRouter(tags=["health"])


@router.get("/health", responses={503: {"model": ErrorPublic}})
def health(session: SessionDep) -> HealthPublic:
    """``{"status": "ok", "database": "sqlite"|"postgresql", "version": ...}``."""
    try:
        session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"database unreachable: {type(exc).__name__}",
        ) from exc
    return HealthPublic(database=dialect_name(session), version=__version__)
