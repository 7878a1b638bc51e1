"""Fixtures of the recovery worker's integration tests: a store, a producer, and the worker itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from schemas import Topics
from services.common.db import make_engine
from services.common.repositories import SqlAlchemyStore
from services.common.settings import Settings
from services.recovery.worker import run


@pytest.fixture
def store(db_url: str) -> Iterator[SqlAlchemyStore]:
    s = SqlAlchemyStore(make_engine(db_url))
    s.create_schema()
    yield s
    s.engine.dispose()


@pytest.fixture
async def producer(broker_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=broker_bootstrap, acks="all")
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def worker(settings: Settings, created_topics: Topics) -> AsyncIterator[Callable[[], Any]]:
    """Starts the worker (with the module's ``settings``); every started one must stop cleanly at the end."""
    running: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start() -> tuple[asyncio.Event, asyncio.Task[None]]:
        stop = asyncio.Event()
        task = asyncio.create_task(run(settings, created_topics, stop))
        running.append((stop, task))
        return stop, task

    yield start
    for stop, task in running:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
