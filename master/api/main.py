"""All routes of API v1."""

from __future__ import annotations

from fastapi import APIRouter

from master.api.routes import (
    benchmarks,
    groups,
    health,
    heartbeats,
    manifests,
    metrics,
    nodes,
    results,
    runs,
)

API_PREFIX = "/api/v1"

api_router = APIRouter(prefix=API_PREFIX)
api_router.include_router(health.router)
api_router.include_router(benchmarks.router)
api_router.include_router(runs.router)
api_router.include_router(heartbeats.router)
api_router.include_router(metrics.router)
api_router.include_router(results.router)
api_router.include_router(manifests.router)
api_router.include_router(groups.router)
api_router.include_router(nodes.router)
