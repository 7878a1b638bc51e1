"""Storage of interruptions, recovery tasks, the outbox and consumed offsets over the tables of ``db.py``.

Writes go through :meth:`SqlAlchemyStore.transaction`: everything done on the yielded
:class:`StoreTransaction` commits together or not at all, so a task, its outbox message and the consumed
offsets that produced them are stored at once. Idempotency is by unique keys with the dialect's
``insert ... on conflict do nothing``, which holds under concurrent writers on SQLite and PostgreSQL alike.
Reads page by an opaque keyset cursor.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import ColumnElement, Select, and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from schemas import DealInterrupted, DealResumed, RecoveryTask
from services.common.db import (
    ConsumedOffsetRow,
    InterruptionRow,
    OutboxRow,
    TaskRow,
    WebhookDeliveryRow,
    create_schema,
)

T = TypeVar("T")
Recorded = Literal["created", "revised", "unchanged"]

MAX_CURSOR_CHARS = 512


class InvalidCursor(ValueError):
    """The cursor was not made by this store (or was altered)."""


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class InterruptionFilter:
    source: str | None = None
    deal_id: str | None = None
    kind: str | None = None
    cause: str | None = None
    status: str | None = None
    since: datetime | None = None
    owner: str | None = None


@dataclass(frozen=True)
class TaskFilter:
    source: str | None = None
    deal_id: str | None = None
    assignee: str | None = None
    status: str | None = None
    kind: str | None = None
    interruption_id: str | None = None


@dataclass(frozen=True)
class StoredInterruption:
    interruption: DealInterrupted
    status: str
    resumed_at: datetime | None
    resumed_reason: str | None


@dataclass(frozen=True)
class OutboxMessage:
    seq: int
    topic: str
    key: str
    value: str
    created_at: datetime


@dataclass(frozen=True)
class NewDelivery:
    """A message to deliver to one subscriber (by URL), under a stable message id."""

    subscriber: str
    message_id: str
    key: str
    body: str


@dataclass(frozen=True)
class PendingDelivery:
    id: int
    subscriber: str
    message_id: str
    key: str
    body: str
    attempts: int
    next_at: datetime


@dataclass(frozen=True)
class DeadDelivery:
    """A delivery given up on after its last attempt: the dead-letter record."""

    delivery: PendingDelivery
    last_error: str
    dead_at: datetime


def _delivery(row: Any) -> PendingDelivery:
    return PendingDelivery(
        row.id, row.subscriber, row.message_id, row.key, row.body, row.attempts, as_utc(row.next_at)
    )


OPEN_TASK_STATUSES = ("open", "in_progress", "snoozed")


def as_utc(value: datetime) -> datetime:
    """SQLite keeps no zone: every stored time is UTC, and a naive time read back is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def storable(*texts: str | None) -> bool:
    """Whether every text could be stored: PostgreSQL's text holds no NUL character (SQLite's does, but what the
    pipeline stores comes through PostgreSQL-safe paths either way), so a filter or an id with one matches
    nothing: the store's reads answer nothing for it instead of sending it to the database."""
    return not any(t is not None and "\x00" in t for t in texts)


def encode_cursor(position: datetime, row_id: str) -> str:
    raw = json.dumps([as_utc(position).isoformat(), row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    if not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidCursor("bad cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position, row_id = json.loads(raw)
        if not isinstance(position, str) or not isinstance(row_id, str):
            raise InvalidCursor("bad cursor")
        return as_utc(datetime.fromisoformat(position)), row_id
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, OverflowError) as exc:
        raise InvalidCursor("bad cursor") from exc


def storage_problem(interruption: DealInterrupted) -> str | None:
    """Why this interruption cannot be stored (a value longer than its column), or None."""
    limits = {
        "id": (interruption.id, 64),
        "deal_key": (interruption.deal_key, 240),
        "source": (interruption.source, 32),
        "deal_id": (interruption.deal_id, 200),
    }
    for name, (value, size) in limits.items():
        if not value or len(value) > size:
            return f"{name} must have 1 to {size} characters"
    return None


def insert_for(conn: Connection, table: Any) -> Any:
    """The dialect's ``insert``, which has ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no insert-or-ignore for the {conn.dialect.name} dialect")


_PREPARED: dict[tuple[str, str], Any] = {}


def prepared(conn: Connection, name: str, build: Callable[[Connection, Any], Any], table: Any) -> Any:
    """A statement built once per dialect, its values given at execution: SQLAlchemy then compiles it once and
    reuses it, instead of building and compiling a statement with the row's values inlined for every row."""
    key = (conn.dialect.name, name)
    stmt = _PREPARED.get(key)
    if stmt is None:
        stmt = _PREPARED[key] = build(conn, table)
    return stmt


def _insert_or_ignore(conn: Connection, table: Any) -> Any:
    return insert_for(conn, table).on_conflict_do_nothing().returning(table.id)


def _upsert_offset(conn: Connection, table: Any) -> Any:
    stmt = insert_for(conn, table)
    return stmt.on_conflict_do_update(
        index_elements=["group_id", "topic", "partition"], set_={"next_offset": stmt.excluded.next_offset}
    )


def ensure_schema(engine: Engine, attempts: int = 6) -> None:
    """Create the missing tables. Services starting together may race to create the same table; the loser
    tries again after a short, growing, jittered pause, and then finds it there."""
    for attempt in range(attempts):
        try:
            create_schema(engine)
            return
        except DBAPIError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * 2**attempt * (1 + random.random()))


def _equal_to(matches: Iterable[tuple[Any, str | None]]) -> list[Any] | None:
    """The conditions ``column == value`` of the filters given (a value of None: no filter); None when a value
    cannot be stored (a NUL character), so that nothing can match it."""
    pairs = list(matches)
    if not storable(*(v for _, v in pairs)):
        return None
    return [c == v for c, v in pairs if v is not None]


def _keyset(position: Any, row_id: Any, cursor: str | None) -> list[ColumnElement[bool]]:
    if cursor is None:
        return []
    at, last_id = decode_cursor(cursor)
    return [or_(position > at, and_(position == at, row_id > last_id))]


def _page(rows: Sequence[Any], limit: int, make: Any, position: str) -> Page[Any]:
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(getattr(rows[-1], position), rows[-1].id) if more else None
    return Page([make(r) for r in rows], cursor)


def _interruption_values(i: DealInterrupted) -> dict[str, Any]:
    return {
        "deal_key": i.deal_key,
        "source": i.source,
        "deal_id": i.deal_id,
        "kind": i.kind,
        "cause": i.cause,
        "side": i.side,
        "confidence": i.confidence,
        "owner_id": i.deal.owner_id[:200] if i.deal.owner_id else None,
        "stage": i.deal.stage[:200] if i.deal.stage else None,
        "occurred_at": as_utc(i.occurred_at),
        "detected_at": as_utc(i.detected_at),
        "revision": i.revision,
        "body": i.model_dump(mode="json"),
    }


def _task_values(task: RecoveryTask) -> dict[str, Any]:
    return {
        "assignee": task.assignee[:200] if task.assignee else None,
        "status": task.status,
        "priority": task.priority,
        "due_at": as_utc(task.due_at),
        "escalated": task.escalated,
        "recovered": task.recovered,
        "version": task.version,
        "updated_at": as_utc(task.updated_at),
        "kind": task.kind,
        "cause": task.cause,
        "body": task.model_dump(mode="json"),
    }


def _stored(row: Any) -> StoredInterruption:
    return StoredInterruption(
        DealInterrupted.model_validate(row.body),
        row.status,
        as_utc(row.resumed_at) if row.resumed_at else None,
        row.resumed_reason,
    )


def _task(row: Any) -> RecoveryTask:
    return RecoveryTask.model_validate(row.body)


def _changed(conn: Connection, stmt: Any) -> bool:
    """Whether a write with ``RETURNING`` touched a row (the driver's rowcount is not reliable for this)."""
    return conn.execute(stmt).first() is not None


class StoreTransaction:
    """The writes of one transaction. Made by :meth:`SqlAlchemyStore.transaction`."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def record_interruption(self, interruption: DealInterrupted) -> Recorded:
        """Insert-or-ignore by id; a higher ``revision`` replaces the stored verdict (not its status)."""
        values = _interruption_values(interruption)
        stmt = prepared(self.conn, "insert-interruption", _insert_or_ignore, InterruptionRow)
        if self.conn.execute(stmt, {"id": interruption.id, "status": "open", **values}).first() is not None:
            return "created"
        revised = (
            update(InterruptionRow)
            .where(InterruptionRow.id == interruption.id, InterruptionRow.revision < interruption.revision)
            .values(**values)
        )
        return "revised" if _changed(self.conn, revised.returning(InterruptionRow.id)) else "unchanged"

    def mark_resumed(self, resumed: DealResumed) -> bool:
        """Close an open interruption's episode; False when it is unknown or already resumed."""
        stmt = (
            update(InterruptionRow)
            .where(InterruptionRow.id == resumed.interruption_id, InterruptionRow.status == "open")
            .values(
                status="resumed", resumed_at=as_utc(resumed.occurred_at), resumed_reason=resumed.reason[:64]
            )
        )
        return _changed(self.conn, stmt.returning(InterruptionRow.id))

    def create_task(self, task: RecoveryTask) -> bool:
        """Insert-or-ignore: one task per interruption. True when this call created it."""
        params = {
            "id": task.id,
            "interruption_id": task.interruption_id,
            "deal_key": task.deal_key,
            "source": task.source,
            "deal_id": task.deal_id,
            "created_at": as_utc(task.created_at),
            **_task_values(task),
        }
        stmt = prepared(self.conn, "insert-task", _insert_or_ignore, TaskRow)
        return self.conn.execute(stmt, params).first() is not None

    def get_task(self, task_id: str) -> RecoveryTask | None:
        row = self.conn.execute(select(TaskRow.body).where(TaskRow.id == task_id)).first()
        return _task(row) if row else None

    def task_for_interruption(self, interruption_id: str) -> RecoveryTask | None:
        row = self.conn.execute(
            select(TaskRow.body).where(TaskRow.interruption_id == interruption_id)
        ).first()
        return _task(row) if row else None

    def update_task(self, task: RecoveryTask, expected_version: int) -> bool:
        """Optimistic write: only if the stored version is still ``expected_version``."""
        stmt = (
            update(TaskRow)
            .where(TaskRow.id == task.id, TaskRow.version == expected_version)
            .values(**_task_values(task))
        )
        return _changed(self.conn, stmt.returning(TaskRow.id))

    def open_tasks_for_deals(self, deal_keys: Sequence[str]) -> list[RecoveryTask]:
        """The tasks not yet done or dismissed of these deals (one indexed lookup by deal key)."""
        if not deal_keys:
            return []
        stmt = select(TaskRow.body).where(
            TaskRow.deal_key.in_(list(deal_keys)), TaskRow.status.in_(OPEN_TASK_STATUSES)
        )
        return [_task(r) for r in self.conn.execute(stmt).all()]

    def append_outbox(self, topic: str, key: str, value: str, now: datetime) -> None:
        self.conn.execute(
            prepared(self.conn, "insert-outbox", insert_for, OutboxRow),
            {"topic": topic, "key": key, "value": value, "created_at": as_utc(now), "published_at": None},
        )

    def save_offsets(self, group_id: str, offsets: Mapping[tuple[str, int], int]) -> None:
        save_offsets(self.conn, group_id, offsets)


def save_offsets(conn: Connection, group_id: str, offsets: Mapping[tuple[str, int], int]) -> None:
    """The next offset to read per (topic, partition), stored in the transaction of the results."""
    rows = [
        {"group_id": group_id, "topic": topic, "partition": partition, "next_offset": next_offset}
        for (topic, partition), next_offset in offsets.items()
    ]
    if rows:
        conn.execute(prepared(conn, "upsert-offset", _upsert_offset, ConsumedOffsetRow), rows)


def load_offsets(conn: Connection, group_id: str, topics: Sequence[str]) -> dict[tuple[str, int], int]:
    rows = conn.execute(
        select(ConsumedOffsetRow).where(
            ConsumedOffsetRow.group_id == group_id, ConsumedOffsetRow.topic.in_(list(topics))
        )
    )
    return {(r.topic, r.partition): r.next_offset for r in rows}


class SqlAlchemyStore:
    """Interruptions, tasks, the outbox and consumed offsets in SQLite or PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self) -> None:
        ensure_schema(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[StoreTransaction]:
        with self.engine.begin() as conn:
            yield StoreTransaction(conn)

    def get_interruption(self, interruption_id: str, owner: str | None = None) -> StoredInterruption | None:
        if not storable(interruption_id):
            return None
        stmt = select(InterruptionRow).where(InterruptionRow.id == interruption_id)
        if owner is not None:
            stmt = stmt.where(InterruptionRow.owner_id == owner)
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return _stored(row) if row else None

    def list_interruptions(
        self, where: InterruptionFilter, cursor: str | None = None, limit: int = 100
    ) -> Page[StoredInterruption]:
        """Oldest detection first, by ``(detected_at, id)``; rows added later land on later pages."""
        t = InterruptionRow
        matches = (
            (t.source, where.source),
            (t.deal_id, where.deal_id),
            (t.kind, where.kind),
            (t.cause, where.cause),
            (t.status, where.status),
            (t.owner_id, where.owner),
        )
        conds = _equal_to(matches)
        if conds is None:
            return Page([], None)
        if where.since is not None:
            conds.append(t.detected_at >= as_utc(where.since))
        conds += _keyset(t.detected_at, t.id, cursor)
        stmt = select(t).where(*conds).order_by(t.detected_at, t.id).limit(limit + 1)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return _page(rows, limit, _stored, "detected_at")

    def get_task(self, task_id: str, assignee: str | None = None) -> RecoveryTask | None:
        if not storable(task_id):
            return None
        stmt = select(TaskRow.body).where(TaskRow.id == task_id)
        if assignee is not None:
            stmt = stmt.where(TaskRow.assignee == assignee)
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return _task(row) if row else None

    def list_tasks(
        self, where: TaskFilter, cursor: str | None = None, limit: int = 100
    ) -> Page[RecoveryTask]:
        """Oldest first, by ``(created_at, id)``."""
        t = TaskRow
        matches = (
            (t.source, where.source),
            (t.deal_id, where.deal_id),
            (t.assignee, where.assignee),
            (t.status, where.status),
            (t.kind, where.kind),
            (t.interruption_id, where.interruption_id),
        )
        conds = _equal_to(matches)
        if conds is None:
            return Page([], None)
        conds += _keyset(t.created_at, t.id, cursor)
        stmt: Select[Any] = (
            select(t.id, t.created_at, t.body).where(*conds).order_by(t.created_at, t.id).limit(limit + 1)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return _page(rows, limit, _task, "created_at")

    def load_offsets(self, group_id: str, topics: Sequence[str]) -> dict[tuple[str, int], int]:
        with self.engine.connect() as conn:
            return load_offsets(conn, group_id, topics)

    def pending_outbox(self, limit: int = 500) -> list[OutboxMessage]:
        stmt = select(OutboxRow).where(OutboxRow.published_at.is_(None)).order_by(OutboxRow.seq).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [OutboxMessage(r.seq, r.topic, r.key, r.value, as_utc(r.created_at)) for r in rows]

    def mark_published(
        self, seqs: Sequence[int], now: datetime, deliveries: Sequence[NewDelivery] = ()
    ) -> None:
        """Mark the messages published and, in the same transaction, queue their deliveries to subscribers
        (insert-or-ignore by message id and subscriber, so a message published twice is delivered once)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(OutboxRow).where(OutboxRow.seq.in_(list(seqs))).values(published_at=as_utc(now))
            )
            for d in deliveries:
                stmt = insert_for(conn, WebhookDeliveryRow).values(
                    subscriber=d.subscriber,
                    message_id=d.message_id,
                    key=d.key,
                    body=d.body,
                    attempts=0,
                    next_at=as_utc(now),
                    created_at=as_utc(now),
                )
                conn.execute(stmt.on_conflict_do_nothing())

    def overdue_tasks(
        self, now: datetime, limit: int = 200, after: tuple[datetime, str] | None = None
    ) -> list[RecoveryTask]:
        """Not escalated, not done or dismissed, due at or before ``now``; by ``(due_at, id)``, after
        ``after``. Uses the index on (status, escalated, due_at)."""
        t = TaskRow
        conds: list[Any] = [t.status.in_(OPEN_TASK_STATUSES), t.escalated.is_(False), t.due_at <= as_utc(now)]
        if after is not None:
            at, last_id = after
            conds.append(or_(t.due_at > as_utc(at), and_(t.due_at == as_utc(at), t.id > last_id)))
        stmt = select(t.body).where(*conds).order_by(t.due_at, t.id).limit(limit)
        with self.engine.connect() as conn:
            return [_task(r) for r in conn.execute(stmt).all()]

    def due_deliveries(self, now: datetime, limit: int = 100) -> list[PendingDelivery]:
        """Pending deliveries whose next try is due at ``now``, the longest waiting first."""
        d = WebhookDeliveryRow
        stmt = (
            select(d)
            .where(d.dead_at.is_(None), d.next_at <= as_utc(now))
            .order_by(d.next_at, d.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_delivery(r) for r in conn.execute(stmt).all()]

    def claim_delivery(self, delivery: PendingDelivery, now: datetime, until: datetime) -> bool:
        """Take a due delivery for one try: its next try moves to ``until``, so that another worker (or this
        one after a crash mid-try) takes it only once that has passed. False when someone else took it first,
        or it changed since it was read."""
        d = WebhookDeliveryRow
        stmt = (
            update(d)
            .where(
                d.id == delivery.id,
                d.attempts == delivery.attempts,
                d.dead_at.is_(None),
                d.next_at <= as_utc(now),
            )
            .values(next_at=as_utc(until))
        )
        with self.engine.begin() as conn:
            return _changed(conn, stmt.returning(d.id))

    def release_delivery(self, delivery: PendingDelivery, now: datetime) -> None:
        """Give back a claimed delivery whose try was cut short (the worker is stopping): due again at
        ``now``, its attempts unchanged, unless the try's result was recorded meanwhile."""
        d = WebhookDeliveryRow
        stmt = (
            update(d)
            .where(d.id == delivery.id, d.attempts == delivery.attempts, d.dead_at.is_(None))
            .values(next_at=as_utc(now))
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def next_delivery_at(self) -> datetime | None:
        """When the next pending delivery is due (None when none is pending)."""
        d = WebhookDeliveryRow
        with self.engine.connect() as conn:
            at = conn.execute(select(func.min(d.next_at)).where(d.dead_at.is_(None))).scalar()
        return as_utc(at) if at else None

    def bury_delivery(self, delivery_id: int, attempts: int, error: str, now: datetime) -> None:
        """The last attempt failed: keep the delivery as a dead-letter record, never tried again."""
        with self.engine.begin() as conn:
            conn.execute(
                update(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.id == delivery_id)
                .values(attempts=attempts, last_error=error[:500], dead_at=as_utc(now))
            )

    def dead_deliveries(self, limit: int = 100) -> list[DeadDelivery]:
        """The deliveries given up on, the latest first."""
        d = WebhookDeliveryRow
        stmt = select(d).where(d.dead_at.is_not(None)).order_by(d.dead_at.desc(), d.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [DeadDelivery(_delivery(r), r.last_error or "", as_utc(r.dead_at)) for r in rows]

    def finish_delivery(self, delivery_id: int) -> None:
        """Delivered (or meant for a subscriber no longer configured): forget it."""
        with self.engine.begin() as conn:
            conn.execute(delete(WebhookDeliveryRow).where(WebhookDeliveryRow.id == delivery_id))

    def retry_delivery(self, delivery_id: int, attempts: int, next_at: datetime, error: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.id == delivery_id)
                .values(attempts=attempts, next_at=as_utc(next_at), last_error=error[:500])
            )

    def outbox_backlog(self) -> tuple[int, datetime | None]:
        """How many messages wait to be published, and when the oldest of them was written."""
        stmt = select(func.count(), func.min(OutboxRow.created_at)).where(OutboxRow.published_at.is_(None))
        with self.engine.connect() as conn:
            count, oldest = conn.execute(stmt).one()
        return int(count), as_utc(oldest) if oldest else None

    def prune_outbox(self, published_before: datetime) -> int:
        stmt = delete(OutboxRow).where(OutboxRow.published_at < as_utc(published_before))
        with self.engine.begin() as conn:
            return len(conn.execute(stmt.returning(OutboxRow.seq)).all())
