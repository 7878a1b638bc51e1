"""A small app with only the API, for tests and for running the API alone (the CLI composes the full one)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from schemas import Topics
from services.api.web import ApiService
from services.common.settings import Settings


def create_app(settings: Settings, topics: Topics | None = None) -> FastAPI:
    service = ApiService(settings, topics)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(title="dealwatch API", version="1", lifespan=lifespan)
    app.include_router(service.router)
    app.state.api = service
    return app
