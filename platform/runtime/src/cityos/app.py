"""The HTTP application of a cityos process: platform routes plus every layer's routers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

import cityos
from cityos.bootstrap import Platform
from cityos.readiness import run_checks
from cityos.route_index import index_routes
from cityos_support.monitoring.http import HttpMetricsMiddleware
from cityos_support.security.dependencies import public
from cityos_support.security.write_audit import WriteAudit


def platform_router(platform: Platform) -> APIRouter:
    router = APIRouter(tags=["platform"], dependencies=[Depends(public())])

    @router.get("/health", operation_id="health")
    async def health() -> dict[str, Any]:
        """Liveness: the process is up and serving."""
        return {"status": "ok", "version": cityos.__version__}

    @router.get("/ready", operation_id="ready", response_class=JSONResponse)
    async def ready() -> JSONResponse:
        """Readiness: every dependency (database, bus, MQTT broker, layers') answers."""
        results = await asyncio.to_thread(run_checks, platform.readiness_checks)
        ok = all(result.ok for result in results)
        body = {
            "status": "ready" if ok else "not ready",
            "checks": {
                result.name: {"status": "up" if result.ok else "down", "detail": result.detail}
                for result in results
            },
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get("/metrics", operation_id="metrics", response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics of this process."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def create_app(platform: Platform, *, manage_lifecycle: bool = True) -> FastAPI:
    """The FastAPI app; with ``manage_lifecycle`` it starts and stops the platform."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            await asyncio.to_thread(platform.start)
        try:
            yield
        finally:
            if manage_lifecycle:
                await asyncio.to_thread(platform.stop)

    app = FastAPI(
        title="cityos",
        version=cityos.__version__,
        summary="City data platform: NGSI-LD context, history and open data",
        lifespan=lifespan,
    )
    app.state.authorizer = platform.authorizer
    app.state.platform = platform
    # One middleware learns each response's status for the metrics and the write audit.
    app.add_middleware(HttpMetricsMiddleware, observers=(WriteAudit(),))
    app.include_router(platform_router(platform))
    for parts in platform.parts.values():
        for router in parts.routers:
            app.include_router(router)
    index_routes(app)
    return app
