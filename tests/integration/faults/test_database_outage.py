"""T12: the database goes down in the middle of the stream and comes back.

A PostgreSQL server of the test's own (``initdb`` into a temporary directory, on a free port, so that the shared
server of the other tests stays up) holds the recovery and statistics workers' tables. Once the recovery worker
has stored part of the interruptions, the server is stopped the hard way (``pg_ctl stop -m immediate``: no
checkpoint, as in a crash or a lost host) while the detector goes on producing; after ``db_outage_seconds`` it is
started again (it recovers from its write-ahead log). No worker may exit meanwhile, and once all drained the
interruptions and tasks must be exactly the pure detector's over the same events: a batch the database did not
take must not have been committed to the broker (it would be lost), and a batch taken just before the crash and
taken again after it must not be stored twice; and the statistics must count every interruption, task and
resumption once.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from schemas.topics import Topics
from services.common.db import TaskRow, make_engine
from services.common.stats_repository import SqlAlchemyStatsStore
from tests.conftest import eventually
from tests.integration.faults.checks import assert_as_the_oracle, tasks_published
from tests.integration.faults.conftest import Child, Sizes, drain, produce, topic_values, worker_env
from tests.integration.faults.histories import as_change_event, generic_events
from tests.integration.faults.oracle import expected

pytestmark = pytest.mark.integration

SEED = 12


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        pytest.fail(f"PostgreSQL's {name} is not installed (Debian: postgresql); the outage test needs it")
    return found[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnPostgres:
    """A PostgreSQL server in a temporary directory, run as ``postgres`` when the tests run as root (the server
    refuses to run as root)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="dealwatch-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run(_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        done = subprocess.run([*self.as_user, *argv], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"), "-o", options, "-w",
                  "start")  # fmt: skip

    def stop_hard(self) -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        subprocess.run(
            [*self.as_user, _bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    server = OwnPostgres()
    try:
        server.start()
        yield server
    finally:
        server.remove()


def stats_by_kind(url: str) -> dict[str, Counter[str]]:
    """The statistics worker's counters by kind (day buckets summed): metric -> kind -> count."""
    engine = make_engine(url)
    try:
        out: dict[str, Counter[str]] = {}
        for row in SqlAlchemyStatsStore(engine).counts("day", ["kind"]):
            out.setdefault(row.metric, Counter())[row.group["kind"]] += row.count
        return out
    except Exception:
        return {}
    finally:
        engine.dispose()


def tasks_stored(url: str) -> int | None:
    """Tasks in the database, or None while it cannot be read (down, or no schema yet)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(TaskRow)).scalar_one())
    except Exception:
        return None
    finally:
        engine.dispose()


async def test_a_database_down_mid_stream_loses_nothing_and_doubles_nothing(
    broker_bootstrap: str,
    created_topics: Topics,
    sizes: Sizes,
    own_postgres: OwnPostgres,
    pipeline_factory: Any,
    tmp_path: Path,
) -> None:
    topics = created_topics
    url = own_postgres.url
    now = datetime.now(UTC)
    events = [as_change_event(e, now) for e in generic_events(sizes.db_events, seed=SEED, now=now)]
    oracle = expected((0, e.model_dump_json().encode()) for e in events)
    await produce(
        broker_bootstrap,
        topics.deal_changes,
        [(e.key.encode(), e.model_dump_json().encode()) for e in events],
    )

    pipeline = pipeline_factory(broker_bootstrap, topics, url)
    env = worker_env(broker_bootstrap, topics, url)
    stats = Child("stats", ["-m", "dealwatch", "worker", "stats"], env, tmp_path)
    started = time.monotonic()
    pipeline.start()
    stats.start()
    try:
        await outage_and_back(
            broker_bootstrap, topics, sizes, own_postgres, pipeline, stats, oracle, events, started
        )
    finally:
        stats.stop()


async def outage_and_back(
    broker_bootstrap: str,
    topics: Topics,
    sizes: Sizes,
    own_postgres: OwnPostgres,
    pipeline: Any,
    stats: Child,
    oracle: Any,
    events: list[Any],
    started: float,
) -> None:
    url = own_postgres.url
    messages = sum(oracle.messages.values())

    async def part_stored() -> bool:
        pipeline.assert_alive()
        stats.assert_alive()
        stored = await asyncio.to_thread(tasks_stored, url)
        return stored is not None and stored >= len(oracle.opened) // 4

    await eventually(part_stored, timeout=300, interval=0.1, what="a quarter of the tasks stored")
    before = await asyncio.to_thread(tasks_stored, url)
    await asyncio.to_thread(own_postgres.stop_hard)
    down_at = time.monotonic()

    async def outage_over() -> bool:
        pipeline.assert_alive()
        stats.assert_alive()  # no worker gives up while the database is away
        return time.monotonic() - down_at >= sizes.db_outage_seconds

    await eventually(outage_over, timeout=sizes.db_outage_seconds + 60, interval=0.2, what="the outage")
    await asyncio.to_thread(own_postgres.start)
    up_at = time.monotonic()

    async def storing_again() -> bool:
        pipeline.assert_alive()
        stats.assert_alive()
        stored = await asyncio.to_thread(tasks_stored, url)
        return stored is not None and (stored > (before or 0) or stored == len(oracle.opened))

    await eventually(
        storing_again, timeout=120, interval=0.1, what="tasks stored after the database returned"
    )
    back_s = time.monotonic() - up_at
    drained_s = await drain(pipeline, broker_bootstrap, topics, timeout=300)
    total_s = time.monotonic() - started

    said = await topic_values(broker_bootstrap, topics.interruptions)
    _, db = await assert_as_the_oracle(broker_bootstrap, topics, oracle, said, url, "database outage")
    created = await tasks_published(broker_bootstrap, topics, oracle)
    kinds = Counter(v.kind for v in oracle.opened.values())
    want = {
        "interruptions": kinds,
        "tasks": kinds,
        "resumed": Counter(oracle.opened[i].kind for i in oracle.resumed),
    }
    counted: dict[str, Counter[str]] = {}

    async def counted_as_the_oracle() -> bool:
        stats.assert_alive()
        counted.clear()
        counted.update(await asyncio.to_thread(stats_by_kind, url))
        return all(counted.get(metric, Counter()) == +per_kind for metric, per_kind in want.items())

    try:
        await eventually(
            counted_as_the_oracle, timeout=120, interval=0.5, what="the statistics to count it all"
        )
    except AssertionError:
        raise AssertionError(f"statistics by kind {counted} against the oracle's {want}") from None
    print(
        f"\ndatabase outage: {len(events)} events, {len(oracle.opened)} interruptions ({messages} messages); "
        f"PostgreSQL stopped (immediate) with {before} of {db.tasks} tasks stored, "
        f"down {sizes.db_outage_seconds:.0f}s; "
        f"storing again {back_s:.1f}s after its restart; all done in {total_s:.1f}s (drain {drained_s:.1f}s); "
        f"{db.tasks} tasks, {sum(created.values()) - len(created)} task messages sent again; "
        "0 lost, 0 duplicate rows or tasks; the statistics count each interruption, task and resumption "
        f"({sum(want['resumed'].values())}) once"
    )
