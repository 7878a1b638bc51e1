"""The combined HTTP app: the services' routers and lifecycle, health, readiness and metrics."""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from dealwatch.limits import BodyLimitMiddleware
from services.common.settings import Settings

log = logging.getLogger(__name__)


class WebPart(Protocol):
    """What a service brings to the web app (``IngestService``, ``ApiService``)."""

    @property
    def router(self) -> APIRouter: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def ready(self) -> Any: ...


def part_name(part: object) -> str:
    return type(part).__name__


def part_collectors(parts: Sequence[WebPart]) -> CollectorRegistry | None:
    """Collectors that parts compute at scrape time in this process (consumer lag, from the API service),
    in a registry of their own: under ``PROMETHEUS_MULTIPROC_DIR`` the served registry holds only what the
    processes wrote to their files."""
    collectors = [c for part in parts for c in getattr(part, "collectors", list)()]
    if not collectors:
        return None
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    return registry


def metrics_registry() -> CollectorRegistry:
    """This process's registry, or, under ``PROMETHEUS_MULTIPROC_DIR``, one that aggregates every process."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return REGISTRY
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


async def is_ready(part: WebPart) -> bool:
    """A part's readiness; one that raises while answering is not ready."""
    try:
        answer = part.ready()
        if inspect.isawaitable(answer):
            answer = await answer
        return bool(answer)
    except Exception:
        log.warning("readiness check of %s failed", part_name(part), exc_info=True)
        return False


def create_web_app(settings: Settings, parts: Sequence[WebPart]) -> FastAPI:
    """A FastAPI app with the parts' routers, started and stopped with the app."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        started: list[WebPart] = []
        try:
            for part in parts:
                await part.start()
                started.append(part)
            yield
        finally:
            for part in reversed(started):
                try:
                    await part.stop()
                except Exception:
                    log.exception("stopping %s failed", part_name(part))

    app = FastAPI(title="dealwatch", lifespan=lifespan)
    for part in parts:
        app.include_router(part.router)
    extra = part_collectors(parts)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        """Every part is ready (503 otherwise)."""
        states = {part_name(part): await is_ready(part) for part in parts}
        ok = all(states.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "parts": states}, status_code=200 if ok else 503
        )

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    def metrics() -> Response:
        """Prometheus metrics of this process, or of every process of ``dealwatch up``."""
        body = generate_latest(metrics_registry())
        if extra is not None:
            body += generate_latest(extra)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    return app
