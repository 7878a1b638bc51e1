"""The periodic check for overdue tasks: each is escalated to its manager once, with its message in the outbox.

The candidates come from an indexed query on (status, escalated, due_at); the decision is the pure
:func:`escalate`; the write is conditional on the version read, so two workers, or a pass repeated after a
restart, escalate a task once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import DBAPIError

from schemas import RecoveryTask, RecoveryTaskUpdated
from services.common.broker import utc_now
from services.common.repositories import SqlAlchemyStore
from services.recovery.domain.escalation import escalate
from services.recovery.metrics import ESCALATION_PASSES, TASKS_UPDATED
from services.recovery.relay import wait_any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Escalator:
    store: SqlAlchemyStore
    managers: Mapping[str, str]
    tasks_topic: str
    page_size: int = 200

    def escalate_overdue(self, now: datetime) -> list[RecoveryTaskUpdated]:
        """One pass: every overdue task escalated, each in its own transaction."""
        events: list[RecoveryTaskUpdated] = []
        after: tuple[datetime, str] | None = None
        while True:
            page = self.store.overdue_tasks(now, self.page_size, after)
            for task in page:
                event = self.escalate_task(task, now)
                if event is not None:
                    events.append(event)
            if len(page) < self.page_size:
                return events
            after = (page[-1].due_at, page[-1].id)

    def escalate_task(self, task: RecoveryTask, now: datetime) -> RecoveryTaskUpdated | None:
        escalated = escalate(task, self.managers, now)
        if escalated is None:
            return None
        with self.store.transaction() as tx:
            if not tx.update_task(escalated, task.version):
                return None  # changed since it was read: another worker, or a person; next pass decides
            event = RecoveryTaskUpdated(change="escalated", task=escalated)
            tx.append_outbox(self.tasks_topic, escalated.deal_key, event.model_dump_json(), now)
        TASKS_UPDATED.labels(change="escalated").inc()
        return event


async def escalate_overdue_tasks(
    escalator: Escalator,
    wake: asyncio.Event,
    stop: asyncio.Event,
    interval: float,
    clock: Callable[[], datetime] = utc_now,
) -> None:
    """Every ``interval`` seconds until ``stop``; wakes the relay when something was escalated."""
    while not stop.is_set():
        try:
            if await asyncio.to_thread(escalator.escalate_overdue, clock()):
                wake.set()
        except DBAPIError as exc:
            log.warning("recovery: escalation check failed (%s); trying again later", type(exc).__name__)
        ESCALATION_PASSES.inc()
        await wait_any(stop, timeout=interval)
