"""``ApiService``: the read/act API's router, the dashboard and their lifecycle (the web app adds health and
metrics). With a broker configured it also watches topic end offsets and consumer lag (:class:`LagMonitor`),
for ``/metrics`` and the dashboard."""

from __future__ import annotations

import asyncio
from datetime import datetime

from fastapi import APIRouter, HTTPException
from sqlalchemy.engine import Engine

from schemas import Topics
from services.api.auth import TokenBook
from services.api.dashboard import build_dashboard_router
from services.api.routes import build_router
from services.common.broker import utc_now
from services.common.db import make_engine
from services.common.lag import LagCollector, LagMonitor, prefixed
from services.common.repositories import SqlAlchemyStore
from services.common.settings import Settings
from services.common.stats_repository import SqlAlchemyStatsStore


class ApiService:
    """``/api/interruptions``, ``/api/tasks``, ``/api/stats``, ``/api/operations``, ``/dashboard``. Connects
    nothing until :meth:`start`."""

    def __init__(self, settings: Settings, topics: Topics | None = None) -> None:
        self.settings = settings
        self.topics = topics or Topics(prefix=settings.topic_prefix)
        self.tokens = TokenBook(settings)
        self._engine: Engine | None = None
        self._store: SqlAlchemyStore | None = None
        self._stats: SqlAlchemyStatsStore | None = None
        self.lag: LagMonitor | None = None
        if settings.kafka_bootstrap:
            self.lag = LagMonitor(
                settings.kafka_bootstrap, settings.lag_check_interval, prefixed(settings.topic_prefix)
            )
        self.router = APIRouter()
        self.router.include_router(build_router(self))
        self.router.include_router(build_dashboard_router())

    async def start(self) -> None:
        engine = make_engine(self.settings.database_url)
        store = SqlAlchemyStore(engine)
        await asyncio.to_thread(store.create_schema)
        self._engine, self._store, self._stats = engine, store, SqlAlchemyStatsStore(engine)
        if self.lag is not None:
            await self.lag.start()

    async def stop(self) -> None:
        if self.lag is not None:
            await self.lag.stop()
        engine, self._engine, self._store, self._stats = self._engine, None, None, None
        if engine is not None:
            engine.dispose()

    def collectors(self) -> list[LagCollector]:
        """Extra Prometheus collectors for the ``/metrics`` of the process that serves this service."""
        return [LagCollector(self.lag)] if self.lag is not None else []

    def ready(self) -> bool:
        return self._store is not None

    @property
    def store(self) -> SqlAlchemyStore:
        if self._store is None:
            raise HTTPException(503, "starting", headers={"Retry-After": "1"})
        return self._store

    @property
    def stats(self) -> SqlAlchemyStatsStore:
        if self._stats is None:
            raise HTTPException(503, "starting", headers={"Retry-After": "1"})
        return self._stats

    def now(self) -> datetime:
        return utc_now()
