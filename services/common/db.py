"""Database plumbing: engine creation for SQLite (default) and PostgreSQL, and the shared tables.

The tables are the services' storage; domain rules about them live in the services. Idempotency is by unique
keys: one row per interruption id, one task per interruption, one processed offset per consumer partition.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class InterruptionRow(Base):
    __tablename__ = "interruptions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    deal_key: Mapped[str] = mapped_column(String(240), index=True)
    source: Mapped[str] = mapped_column(String(32))
    deal_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32), index=True)
    cause: Mapped[str] = mapped_column(String(32), index=True)
    side: Mapped[str | None] = mapped_column(String(16))
    confidence: Mapped[float] = mapped_column(Float)
    owner_id: Mapped[str | None] = mapped_column(String(200))
    stage: Mapped[str | None] = mapped_column(String(200))
    occurred_at: Mapped[datetime]
    detected_at: Mapped[datetime] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    resumed_at: Mapped[datetime | None]
    resumed_reason: Mapped[str | None] = mapped_column(String(64))
    revision: Mapped[int] = mapped_column(Integer, default=0)
    """The detector's revision of this interruption (a later cause verdict, same id); the highest wins."""
    body: Mapped[dict[str, Any]]

    __table_args__ = (Index("ix_interruptions_deal", "source", "deal_id"),)


class TaskRow(Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    interruption_id: Mapped[str] = mapped_column(String(64), unique=True)
    deal_key: Mapped[str] = mapped_column(String(240), index=True)
    source: Mapped[str] = mapped_column(String(32))
    deal_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    cause: Mapped[str] = mapped_column(String(32))
    assignee: Mapped[str | None] = mapped_column(String(200), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    priority: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime] = mapped_column(index=True)
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    recovered: Mapped[bool | None] = mapped_column(Boolean)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    body: Mapped[dict[str, Any]]

    __table_args__ = (
        Index("ix_tasks_deal", "source", "deal_id"),
        Index("ix_tasks_created", "created_at", "id"),
        Index("ix_tasks_escalation", "status", "escalated", "due_at"),
    )


class OutboxRow(Base):
    """Messages written in the same transaction as the rows they describe; a relay publishes them."""

    __tablename__ = "outbox"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    topic: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(240))
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    published_at: Mapped[datetime | None] = mapped_column(index=True)


class WebhookDeliveryRow(Base):
    """A task message to deliver to one subscriber: attempts so far and when to try next. Delivered ones are
    deleted; one given up on stays, with ``dead_at`` set, as its dead-letter record."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    subscriber: Mapped[str] = mapped_column(String(2000))
    """The subscriber's URL (its secret stays in the configuration)."""
    message_id: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(240))
    body: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime] = mapped_column(index=True)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
    dead_at: Mapped[datetime | None]
    """When the last attempt failed and the delivery was given up on (None while it is pending)."""

    __table_args__ = (UniqueConstraint("message_id", "subscriber", name="uq_webhook_delivery"),)


class ConsumedOffsetRow(Base):
    """The next offset to read, per consumer group and partition, stored with the results it produced."""

    __tablename__ = "consumed_offsets"

    group_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    topic: Mapped[str] = mapped_column(String(200), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)


class StatRow(Base):
    """An aggregate counter: a metric for one combination of dimensions in one period."""

    __tablename__ = "stats"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    metric: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(8))
    bucket: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32), default="")
    cause: Mapped[str] = mapped_column(String(32), default="")
    side: Mapped[str] = mapped_column(String(16), default="")
    stage: Mapped[str] = mapped_column(String(200), default="")
    owner: Mapped[str] = mapped_column(String(200), default="")
    value: Mapped[float] = mapped_column(Float, default=0.0)
    count: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (
        UniqueConstraint(
            "metric", "period", "bucket", "kind", "cause", "side", "stage", "owner", name="uq_stats_cell"
        ),
    )


class StatsFactRow(Base):
    """What the stats worker knows of one interruption (its dimensions, resumed, task status), so that a
    redelivered or revised message changes the counters by its difference only."""

    __tablename__ = "stats_facts"

    interruption_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    body: Mapped[dict[str, Any]]


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use the psycopg 3 driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cur = dbapi_connection.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def create_schema(engine: Engine) -> None:
    Base.metadata.create_all(engine)


def make_sessionmaker(engine: Engine) -> sessionmaker[Any]:
    return sessionmaker(engine, expire_on_commit=False)
