"""Turn a batch of interruption messages into stored rows: interruptions, tasks and outbox messages, together
with the consumed offsets, in one transaction. Runs in a worker thread (SQLAlchemy is synchronous here)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from schemas import (
    DealChanged,
    DealInterrupted,
    DealResumed,
    InterruptionMessage,
    RecoveryTask,
    RecoveryTaskCreated,
    RecoveryTaskUpdated,
)
from services.common.repositories import SqlAlchemyStore, StoreTransaction, storage_problem
from services.recovery.domain.lifecycle import mark_recovered, record_first_response, revise_task
from services.recovery.domain.playbooks import TaskPolicy, build_task
from services.recovery.metrics import TASKS_CREATED, TASKS_UPDATED

log = logging.getLogger(__name__)
_MESSAGE: TypeAdapter[DealInterrupted | DealResumed] = TypeAdapter(InterruptionMessage)
Message = DealInterrupted | DealResumed


TaskEvent = RecoveryTaskCreated | RecoveryTaskUpdated
CONFLICT_TRIES = 5
"""How often a task change is recomputed when another writer (the escalation check, a person through the API)
changed the task between our read and our write."""


class WriteConflict(Exception):
    """The task kept changing under us; the batch is tried again (like a busy database)."""


@dataclass
class Outcome:
    events: list[TaskEvent] = field(default_factory=list)
    """The task messages written to the outbox."""
    rejected: list[tuple[int, str]] = field(default_factory=list)
    """(position in the batch, reason) of messages the database refused."""


def decode(value: bytes | None) -> Message | str:
    """The message, or why it is not one (the reason names fields, never their values)."""
    if not value:
        return "empty message"
    try:
        message = _MESSAGE.validate_json(value)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)[:3]
        return "invalid: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
    if isinstance(message, DealInterrupted):
        problem = storage_problem(message)
        if problem:
            return f"invalid: {problem}"
    return message


def decode_response(value: bytes | None) -> DealChanged | None:
    """The change event when it is an outbound activity (a response to the customer), else None. Cheap for
    the many events that are not: a byte check before any parsing. Undecodable ones are the detector's to
    dead-letter; here they are skipped."""
    if not value or b"outbound" not in value or b"activity.logged" not in value:
        return None
    try:
        change = DealChanged.model_validate_json(value)
    except ValidationError:
        return None
    if change.type != "activity.logged" or change.activity is None or change.activity.direction != "outbound":
        return None
    return change


def is_transient(exc: BaseException) -> bool:
    """A database that is down or busy, as opposed to one that refuses this data."""
    return isinstance(exc, OperationalError | InterfaceError | WriteConflict) or bool(
        getattr(exc, "connection_invalidated", False)
    )


@dataclass(frozen=True)
class Recorder:
    store: SqlAlchemyStore
    policy: TaskPolicy
    tasks_topic: str
    group_id: str

    def store_batch(
        self,
        messages: Sequence[Message],
        offsets: Mapping[tuple[str, int], int],
        now: datetime,
        responses: Sequence[DealChanged] = (),
    ) -> Outcome:
        """All in one transaction; if the database refuses a message, each alone, and report the refused.
        ``responses`` (outbound activities) are applied after the messages, with the offsets."""
        outcome = Outcome()
        try:
            with self.store.transaction() as tx:
                for message in messages:
                    outcome.events += self._apply(tx, message, now)
                outcome.events += self._responded(tx, responses, now)
                tx.save_offsets(self.group_id, offsets)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.warning("recovery: batch refused (%s); storing its messages one by one", type(exc).__name__)
            outcome = self._store_one_by_one(messages, offsets, now, responses)
        _count(outcome)
        return outcome

    def _responded(
        self, tx: StoreTransaction, responses: Sequence[DealChanged], now: datetime
    ) -> list[TaskEvent]:
        """First responses: one lookup for the batch's deals; most find no open task."""
        if not responses:
            return []
        tasks = {t.id: t for t in tx.open_tasks_for_deals(sorted({r.key for r in responses}))}
        events: list[TaskEvent] = []
        for response in sorted(responses, key=lambda r: r.occurred_at):
            for task_id, task in tasks.items():
                if task.deal_key != response.key:
                    continue
                answer = partial(record_first_response, at=response.occurred_at, now=now)
                answered = change_task(tx, task, answer)
                if answered:
                    tasks[task_id] = answered
                    events.append(
                        self._publish(tx, RecoveryTaskUpdated(change="first_response", task=answered), now)
                    )
        return events

    def _store_one_by_one(
        self,
        messages: Sequence[Message],
        offsets: Mapping[tuple[str, int], int],
        now: datetime,
        responses: Sequence[DealChanged] = (),
    ) -> Outcome:
        outcome = Outcome()
        for position, message in enumerate(messages):
            try:
                with self.store.transaction() as tx:
                    events = self._apply(tx, message, now)
                outcome.events += events
            except Exception as exc:
                if is_transient(exc):
                    raise
                cause = exc.orig if isinstance(exc, DBAPIError) else exc
                reason = f"not stored: {type(cause).__name__}"
                log.warning("the database refused a message at batch position %d: %s", position, reason)
                outcome.rejected.append((position, reason))
        with self.store.transaction() as tx:
            outcome.events += self._responded(tx, responses, now)
            tx.save_offsets(self.group_id, offsets)
        return outcome

    def _apply(self, tx: StoreTransaction, message: Message, now: datetime) -> list[TaskEvent]:
        if isinstance(message, DealResumed):
            return self._resume(tx, message, now)
        recorded = tx.record_interruption(message)
        task = build_task(message, now, self.policy)
        if tx.create_task(task):
            return [self._publish(tx, RecoveryTaskCreated(task=task), now)]
        if recorded != "revised":
            return []
        stored = tx.task_for_interruption(message.id)
        revised = change_task(tx, stored, lambda t: revise_task(t, task, now)) if stored else None
        if revised:
            return [self._publish(tx, RecoveryTaskUpdated(change="cause", task=revised), now)]
        return []

    def _resume(self, tx: StoreTransaction, message: DealResumed, now: datetime) -> list[TaskEvent]:
        tx.mark_resumed(message)
        stored = tx.task_for_interruption(message.interruption_id)
        at = message.occurred_at
        recovered = change_task(tx, stored, lambda t: mark_recovered(t, now, at=at)) if stored else None
        if recovered:
            return [self._publish(tx, RecoveryTaskUpdated(change="recovered", task=recovered), now)]
        return []

    def _publish(self, tx: StoreTransaction, event: TaskEvent, now: datetime) -> TaskEvent:
        tx.append_outbox(self.tasks_topic, event.task.deal_key, event.model_dump_json(), now)
        return event


def change_task(
    tx: StoreTransaction, task: RecoveryTask, change: Callable[[RecoveryTask], RecoveryTask | None]
) -> RecoveryTask | None:
    """``change`` applied to the stored task and written over the version it was computed from; None when it
    changes nothing. The write is conditional, so when another writer got there between our read and our
    write (the escalation check runs beside the consumer; people edit tasks), the task is read again and the
    change recomputed: dropping it would lose a first response or a recovery."""
    for _ in range(CONFLICT_TRIES):
        changed = change(task)
        if changed is None:
            return None
        if tx.update_task(changed, task.version):
            return changed
        fresh = tx.get_task(task.id)
        if fresh is None:
            return None
        task = fresh
    raise WriteConflict(f"task {task.id} changed {CONFLICT_TRIES} times while being updated")


def _count(outcome: Outcome) -> None:
    for event in outcome.events:
        if isinstance(event, RecoveryTaskCreated):
            TASKS_CREATED.labels(kind=event.task.kind).inc()
        else:
            TASKS_UPDATED.labels(change=event.change).inc()
