"""The ``/api`` routes: read interruptions and tasks, change a task, read the statistics.

No ``from __future__ import annotations`` here: FastAPI must resolve the annotations of the route functions,
and their dependencies are local to :func:`build_router`.
"""

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BeforeValidator

from schemas import RecoveryTask, RecoveryTaskUpdated, Topics
from schemas.interruptions import Cause, Kind
from schemas.tasks import TaskStatus
from services.api.auth import Principal, TokenBook, unauthorized
from services.api.deals import build_deals_router
from services.api.domain.stats import group_counts
from services.api.domain.tasks import IllegalMove, InvalidChange, TaskChange, Tick, apply_change
from services.api.metrics import MeasuredRoute
from services.api.models import (
    ErrorAnswer,
    InterruptionItem,
    InterruptionPage,
    InvalidRequestAnswer,
    LagItem,
    OperationsAnswer,
    OverdueTaskItem,
    StatsAnswer,
    StatsItem,
    TaskPage,
    TaskPatch,
    TopicItem,
)
from services.common.lag import LagMonitor
from services.common.repositories import (
    InterruptionFilter,
    InvalidCursor,
    SqlAlchemyStore,
    StoredInterruption,
    TaskFilter,
    as_utc,
)
from services.common.stats_repository import DIMENSIONS, SqlAlchemyStatsStore

MAX_ATTEMPTS = 3
STORAGE_FIELDS = {"status", "resumed_at", "resumed_reason"}
"""Fields of an interruption item that come from the stored row, not from the detector's message."""
GROUPS = (*DIMENSIONS, "period")
Source = Annotated[str | None, Query(max_length=32)]
DealId = Annotated[str | None, Query(max_length=200, description="The CRM's own id of the deal")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=512,
        pattern="^[A-Za-z0-9_-]*$",
        description="``next_cursor`` of the previous page (empty: the first page); another is refused with 400",
    ),
]
Limit = Annotated[int, Query(ge=1, le=500)]
ItemId = Annotated[str, Path(max_length=200)]
GROUP_BY_PATTERN = "^(?:{0}(?:,{0})*)?$".format("(?:" + "|".join(map(re.escape, GROUPS)) + ")")
"""``group_by``: names of ``GROUPS`` separated by commas (a name given twice counts once), or nothing."""
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such item (or not visible to this token)", "model": ErrorAnswer}
}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "A cursor this API did not give, a body that is not JSON (or not UTF-8), or a value the "
        "database refuses",
        "model": ErrorAnswer,
    },
    401: {"description": "Missing or invalid bearer token", "model": ErrorAnswer},
    403: {"description": "Token lacks the scope", "model": ErrorAnswer},
    422: {
        "description": "Invalid parameters or body: the fields that failed, or a sentence for a rule between "
        "fields or against the present",
        "model": InvalidRequestAnswer,
    },
    503: {
        "description": "The database is unavailable, or the service is starting; see Retry-After",
        "model": ErrorAnswer,
    },
}
"""What every ``/api`` operation may answer besides its success (FastAPI's own 422 says only the field list)."""
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ISO_MOMENT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?([Zz]|[+-][0-9]{2}:?[0-9]{2})?)?"
)


def _date_text(value: Any) -> Any:
    """A date given as the document says (``YYYY-MM-DD``); not epoch seconds, which pydantic would also read."""
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value):
        raise ValueError("a date as YYYY-MM-DD")
    return value


def _moment_text(value: Any) -> Any:
    """A date-time as RFC 3339 writes it (or a bare date, its midnight in UTC); not epoch seconds, which pydantic
    would also read."""
    if isinstance(value, str) and not _ISO_MOMENT.fullmatch(value):
        raise ValueError("a date-time as RFC 3339 (2026-11-02T09:15:00+09:00) or a date as YYYY-MM-DD")
    return value


def _single_values(request: Request) -> None:
    """Each query parameter at most once: given twice it is ambiguous (FastAPI would take the last silently)."""
    params = request.query_params
    if len(params.multi_items()) != len(params):  # ``len`` counts each name once
        twice = sorted({key for key in params if len(params.getlist(key)) > 1})
        raise HTTPException(422, f"query parameters given more than once: {', '.join(twice)}")


class ApiContext(Protocol):
    tokens: TokenBook
    topics: Topics
    lag: LagMonitor | None

    @property
    def store(self) -> SqlAlchemyStore: ...

    @property
    def stats(self) -> SqlAlchemyStatsStore: ...

    def now(self) -> datetime: ...


def authorizer(tokens: TokenBook, scope: str) -> Callable[..., Principal]:
    bearer = HTTPBearer(auto_error=False, scheme_name="bearer")

    def authorize(credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> Principal:
        if credentials is None:
            raise unauthorized()
        principal = tokens.find(credentials.credentials)
        if principal is None:
            raise unauthorized("invalid_token")
        if scope not in principal.scopes:
            raise HTTPException(403, f"this token lacks the '{scope}' scope")
        return principal

    return authorize


def _item(stored: StoredInterruption) -> InterruptionItem:
    fields = stored.interruption.model_dump(include=set(InterruptionItem.model_fields) - STORAGE_FIELDS)
    return InterruptionItem(
        **fields,
        status="resumed" if stored.status == "resumed" else "open",
        resumed_at=stored.resumed_at,
        resumed_reason=stored.resumed_reason,
    )


def _utc(at: datetime) -> datetime:
    """``at`` in UTC; a time within a day of the calendar's ends, whose UTC lies beyond it, as that end."""
    try:
        return as_utc(at)
    except OverflowError:
        return (
            datetime.min.replace(tzinfo=UTC)
            if at.year == datetime.min.year
            else datetime.max.replace(tzinfo=UTC)
        )


def _since(value: datetime | date) -> datetime:
    """A ``since`` in UTC: a bare date is its midnight in UTC."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    return _utc(value)


def _bad_cursor() -> HTTPException:
    return HTTPException(400, "invalid cursor")


def build_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(
        prefix="/api", route_class=MeasuredRoute, responses=ERRORS, dependencies=[Depends(_single_values)]
    )
    read = Depends(authorizer(ctx.tokens, "read"))
    write = Depends(authorizer(ctx.tokens, "write"))

    router.include_router(build_deals_router(ctx, read, write))

    @router.get("/interruptions", response_model=InterruptionPage, tags=["interruptions"])
    def list_interruptions(
        principal: Principal = read,
        source: Source = None,
        deal_id: DealId = None,
        kind: Kind | None = None,
        cause: Cause | None = None,
        since: Annotated[
            datetime | date | None,
            Query(description="Only interruptions detected at or after this time (RFC 3339, or a date: UTC)"),
            BeforeValidator(_moment_text),
        ] = None,
        status: Literal["open", "resumed"] | None = None,
        cursor: Cursor = None,
        limit: Limit = 100,
    ) -> InterruptionPage:
        where = InterruptionFilter(
            since=_since(since) if since else None,
            source=source,
            deal_id=deal_id,
            kind=kind,
            cause=cause,
            status=status,
            owner=principal.rep,
        )
        try:
            page = ctx.store.list_interruptions(where, cursor or None, limit)
        except InvalidCursor:
            raise _bad_cursor() from None
        return InterruptionPage(items=[_item(s) for s in page.items], next_cursor=page.next_cursor)

    @router.get(
        "/interruptions/{interruption_id}",
        response_model=InterruptionItem,
        tags=["interruptions"],
        responses=NOT_FOUND,
    )
    def get_interruption(interruption_id: ItemId, principal: Principal = read) -> InterruptionItem:
        stored = ctx.store.get_interruption(interruption_id, owner=principal.rep)
        if stored is None:
            raise HTTPException(404, "no such interruption")
        return _item(stored)

    @router.get("/tasks", response_model=TaskPage, tags=["tasks"])
    def list_tasks(
        principal: Principal = read,
        source: Source = None,
        deal_id: DealId = None,
        assignee: Annotated[str | None, Query(max_length=200)] = None,
        status: TaskStatus | None = None,
        kind: Kind | None = None,
        interruption_id: Annotated[str | None, Query(max_length=200)] = None,
        cursor: Cursor = None,
        limit: Limit = 100,
    ) -> TaskPage:
        if principal.rep is not None and assignee not in (None, principal.rep):
            return TaskPage(items=[], next_cursor=None)
        where = TaskFilter(
            source=source,
            deal_id=deal_id,
            assignee=principal.rep or assignee,
            status=status,
            kind=kind,
            interruption_id=interruption_id,
        )
        try:
            page = ctx.store.list_tasks(where, cursor or None, limit)
        except InvalidCursor:
            raise _bad_cursor() from None
        return TaskPage(items=page.items, next_cursor=page.next_cursor)

    @router.get("/tasks/{task_id}", response_model=RecoveryTask, tags=["tasks"], responses=NOT_FOUND)
    def get_task(task_id: ItemId, principal: Principal = read) -> RecoveryTask:
        task = ctx.store.get_task(task_id, assignee=principal.rep)
        if task is None:
            raise HTTPException(404, "no such task")
        return task

    @router.patch(
        "/tasks/{task_id}",
        response_model=RecoveryTask,
        tags=["tasks"],
        responses={
            **NOT_FOUND,
            409: {"description": "Illegal status move, or the task changed meanwhile", "model": ErrorAnswer},
        },
    )
    def patch_task(task_id: ItemId, patch: TaskPatch, principal: Principal = write) -> RecoveryTask:
        return change_task(ctx, task_id, patch, principal)

    @router.get("/stats", response_model=StatsAnswer, tags=["stats"])
    def get_stats(
        principal: Principal = read,
        group_by: Annotated[
            str,
            Query(
                max_length=200,
                pattern=GROUP_BY_PATTERN,
                description=f"Comma-separated, without spaces: {', '.join(GROUPS)}",
            ),
        ] = "",
        period: Literal["day", "week", "month"] = "month",
        since: Annotated[
            date | None,
            Query(description="Only periods from the one holding this date (YYYY-MM-DD)"),
            BeforeValidator(_date_text),
        ] = None,
        until: Annotated[
            date | None,
            Query(description="Only periods up to the one holding this date (YYYY-MM-DD)"),
            BeforeValidator(_date_text),
        ] = None,
    ) -> StatsAnswer:
        groups = list(dict.fromkeys(group_by.split(","))) if group_by else []
        first = bucket_of(since, period) if since else None
        last = bucket_of(until, period) if until else None
        rows = ctx.stats.counts(period, groups, owner=principal.rep, since=first, until=last)
        items, totals = group_counts((r.group, r.metric, r.count) for r in rows)
        return StatsAnswer(
            period=period,
            group_by=groups,
            since=first,
            until=last,
            totals=_stats_item(totals),
            items=[_stats_item(i) for i in items],
        )

    @router.get("/operations", response_model=OperationsAnswer, tags=["stats"])
    def get_operations(principal: Principal = read) -> OperationsAnswer:
        """Tasks by status now, the overdue ones, and the broker's topics and consumer lag (the dashboard)."""
        now = ctx.now()
        figures = ctx.stats.task_figures(now, assignee=principal.rep)
        view = ctx.lag.view if ctx.lag is not None else None
        broker: Literal["ok", "unavailable", "not_configured"] = "not_configured"
        if ctx.lag is not None:
            broker = "ok" if ctx.lag.healthy else "unavailable"
        return OperationsAnswer(
            now=now,
            tasks_by_status=figures.by_status,
            overdue_tasks=figures.overdue,
            oldest_overdue=[OverdueTaskItem(**vars(t)) for t in figures.oldest_overdue],
            broker=broker,
            broker_checked_at=ctx.lag.checked_at if ctx.lag is not None else None,
            topics=[TopicItem(**vars(t)) for t in view.topics()] if view else [],
            lag=[
                LagItem(
                    group=p.group,
                    topic=p.topic,
                    partition=p.partition,
                    committed=p.committed,
                    end=p.end,
                    lag=p.lag,
                )
                for p in (view.lags if view else [])
            ],
        )

    return router


def bucket_of(day: date, period: str) -> str:
    """The bucket (as the stats worker names them) of the period that holds ``day``."""
    if period == "day":
        return day.isoformat()
    if period == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02}"
    return f"{day.year}-{day.month:02}"


def _stats_item(group: Any) -> StatsItem:
    return StatsItem(group=group.group, counts=group.counts, rates=group.rates, averages=group.averages)


def change_task(ctx: ApiContext, task_id: str, patch: TaskPatch, principal: Principal) -> RecoveryTask:
    """Apply the patch and write the task with its outbox message in one transaction; on a concurrent change
    (the version moved) read again and re-apply, unless the client named the version it saw."""
    change = TaskChange(
        status=patch.status,
        reason=patch.reason,
        until=patch.until,
        ticks=tuple(Tick(t.done, t.index, t.item) for t in patch.checklist),
    )
    for _ in range(MAX_ATTEMPTS):
        current = ctx.store.get_task(task_id, assignee=principal.rep)
        if current is None:
            raise HTTPException(404, "no such task")
        if patch.version is not None and patch.version != current.version:
            raise HTTPException(409, f"the task is at version {current.version}")
        now = ctx.now()
        try:
            changed = apply_change(current, change, now)
        except IllegalMove as exc:
            raise HTTPException(409, str(exc)) from None
        except InvalidChange as exc:
            raise HTTPException(422, str(exc)) from None
        if changed is None:
            return current
        message = RecoveryTaskUpdated(change=changed.change, task=changed.task).model_dump_json()
        with ctx.store.transaction() as tx:
            if tx.update_task(changed.task, current.version):
                tx.append_outbox(ctx.topics.recovery_tasks, changed.task.deal_key, message, now)
                return changed.task
    raise HTTPException(409, "the task keeps changing; try again")
