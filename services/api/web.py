"""``ApiService``: the read/act API's router and lifecycle (the web app adds health and metrics)."""

from __future__ import annotations

import asyncio
from datetime import datetime

from fastapi import HTTPException
from sqlalchemy.engine import Engine

from schemas import Topics
from services.api.auth import TokenBook
from services.api.routes import build_router
from services.common.broker import utc_now
from services.common.db import make_engine
from services.common.repositories import SqlAlchemyStore
from services.common.settings import Settings
from services.common.stats_repository import SqlAlchemyStatsStore


class ApiService:
    """``/api/interruptions``, ``/api/tasks``, ``/api/stats``. Connects nothing until :meth:`start`."""

    def __init__(self, settings: Settings, topics: Topics | None = None) -> None:
        self.settings = settings
        self.topics = topics or Topics(prefix=settings.topic_prefix)
        self.tokens = TokenBook(settings)
        self._engine: Engine | None = None
        self._store: SqlAlchemyStore | None = None
        self._stats: SqlAlchemyStatsStore | None = None
        self.router = build_router(self)

    async def start(self) -> None:
        engine = make_engine(self.settings.database_url)
        store = SqlAlchemyStore(engine)
        await asyncio.to_thread(store.create_schema)
        self._engine, self._store, self._stats = engine, store, SqlAlchemyStatsStore(engine)

    async def stop(self) -> None:
        engine, self._engine, self._store, self._stats = self._engine, None, None, None
        if engine is not None:
            engine.dispose()

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
