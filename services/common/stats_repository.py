"""Storage of the statistics: counters in ``stats``, per-interruption facts in ``stats_facts``, and the stats
consumer's offsets, all written in one transaction so that a restart neither loses nor double-counts. Also the
current task figures the dashboard shows (open, overdue), read from the recovery service's ``tasks`` table."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection, Engine

from services.common.db import ConsumedOffsetRow, StatRow, StatsFactRow, TaskRow
from services.common.repositories import (
    as_utc,
    ensure_schema,
    insert_for,
    load_offsets,
    prepared,
    save_offsets,
)

DIMENSIONS = ("kind", "cause", "side", "stage", "owner")
"""Dimensions a counter is kept by; ``period`` (the bucket) is the sixth one can group by."""
_SIZES = {"kind": 32, "cause": 32, "side": 16, "stage": 200, "owner": 200}


@dataclass(frozen=True)
class StatCell:
    """One counter: a metric in one period bucket for one combination of dimensions."""

    metric: str
    period: str
    bucket: str
    kind: str = ""
    cause: str = ""
    side: str = ""
    stage: str = ""
    owner: str = ""


@dataclass(frozen=True)
class StatCount:
    group: dict[str, str]
    metric: str
    count: int


def _upsert_fact(conn: Connection, table: Any) -> Any:
    stmt = insert_for(conn, table)
    return stmt.on_conflict_do_update(index_elements=["interruption_id"], set_={"body": stmt.excluded.body})


def _add_counts(conn: Connection, table: Any) -> Any:
    stmt = insert_for(conn, table)
    return stmt.on_conflict_do_update(
        index_elements=["metric", "period", "bucket", *DIMENSIONS],
        set_={"count": table.count + stmt.excluded.count},
    )


class StatsTransaction:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def load_facts(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        stmt = select(StatsFactRow).where(StatsFactRow.interruption_id.in_(wanted))
        if self.conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        return {r.interruption_id: dict(r.body) for r in self.conn.execute(stmt)}

    def save_facts(self, facts: Mapping[str, Mapping[str, Any]]) -> None:
        rows = [{"interruption_id": fact_id, "body": dict(body)} for fact_id, body in facts.items()]
        if rows:
            self.conn.execute(prepared(self.conn, "upsert-stats-fact", _upsert_fact, StatsFactRow), rows)

    def add_counts(self, counts: Mapping[StatCell, int]) -> None:
        """Add each (possibly negative) delta to its counter, creating the counter at zero."""
        rows = [
            {
                "metric": cell.metric,
                "period": cell.period,
                "bucket": cell.bucket,
                "value": 0.0,
                "count": delta,
                **{d: getattr(cell, d)[: _SIZES[d]] for d in DIMENSIONS},
            }
            for cell, delta in counts.items()
            if delta != 0
        ]
        if rows:  # one statement for the whole batch (executemany), compiled once
            self.conn.execute(prepared(self.conn, "add-stats-counts", _add_counts, StatRow), rows)

    def save_offsets(self, group_id: str, offsets: Mapping[tuple[str, int], int]) -> None:
        save_offsets(self.conn, group_id, offsets)

    def load_offsets(self, group_id: str, topics: Sequence[str]) -> dict[tuple[str, int], int]:
        return load_offsets(self.conn, group_id, topics)


@dataclass(frozen=True)
class OverdueTask:
    id: str
    deal_id: str
    title: str
    assignee: str | None
    kind: str
    cause: str
    due_at: datetime


@dataclass(frozen=True)
class TaskFigures:
    """Tasks by current status, and the unfinished ones past their due time (the most overdue first)."""

    by_status: dict[str, int]
    overdue: int
    oldest_overdue: list[OverdueTask]


UNFINISHED = ("open", "in_progress")


class SqlAlchemyStatsStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self) -> None:
        ensure_schema(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[StatsTransaction]:
        with self.engine.begin() as conn:
            yield StatsTransaction(conn)

    def load_offsets(self, group_id: str, topics: Sequence[str]) -> dict[tuple[str, int], int]:
        with self.engine.connect() as conn:
            return load_offsets(conn, group_id, topics)

    def reset(self, group_id: str) -> None:
        """Forget every counter, fact and the stats consumer's offsets: the worker rebuilds them from the
        topics (from offset 0), at its next start or as soon as it notices, whichever comes first."""
        with self.engine.begin() as conn:
            conn.execute(delete(StatRow))
            conn.execute(delete(StatsFactRow))
            conn.execute(delete(ConsumedOffsetRow).where(ConsumedOffsetRow.group_id == group_id))

    def counts(
        self,
        period: str,
        group_by: Sequence[str],
        owner: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> list[StatCount]:
        """Summed counters of one period granularity, grouped by dimensions and ``period`` (the bucket);
        ``since`` and ``until`` are buckets of that granularity (inclusive), which sort as text."""
        unknown = [g for g in group_by if g not in (*DIMENSIONS, "period")]
        if unknown:
            raise ValueError(f"cannot group by {', '.join(unknown)}")
        cols = [StatRow.bucket if g == "period" else getattr(StatRow, g) for g in group_by]
        stmt = select(*cols, StatRow.metric, func.sum(StatRow.count)).where(StatRow.period == period)
        if owner is not None:
            stmt = stmt.where(StatRow.owner == owner)
        if since is not None:
            stmt = stmt.where(StatRow.bucket >= since)
        if until is not None:
            stmt = stmt.where(StatRow.bucket <= until)
        stmt = stmt.group_by(*cols, StatRow.metric).order_by(*cols, StatRow.metric)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        n = len(group_by)
        return [
            StatCount(dict(zip(group_by, (str(v) for v in r[:n]), strict=True)), r[n], int(r[n + 1]))
            for r in rows
        ]

    def task_figures(self, now: datetime, assignee: str | None = None, limit: int = 10) -> TaskFigures:
        """Tasks by status now; unfinished tasks whose due time has passed are overdue."""
        mine = [TaskRow.assignee == assignee] if assignee is not None else []
        by_status = select(TaskRow.status, func.count()).where(*mine).group_by(TaskRow.status)
        late = [TaskRow.status.in_(UNFINISHED), TaskRow.due_at < as_utc(now), *mine]
        with self.engine.connect() as conn:
            statuses = {str(s): int(n) for s, n in conn.execute(by_status)}
            overdue = int(conn.execute(select(func.count()).select_from(TaskRow).where(*late)).scalar_one())
            rows = conn.execute(
                select(TaskRow).where(*late).order_by(TaskRow.due_at, TaskRow.id).limit(limit)
            ).all()
        oldest = [
            OverdueTask(
                r.id, r.deal_id, str(r.body.get("title", "")), r.assignee, r.kind, r.cause, as_utc(r.due_at)
            )
            for r in rows
        ]
        return TaskFigures(statuses, overdue, oldest)
