"""Deal-level actions: snooze a deal's quiet detection. The command goes to the detector through the outbox.

No ``from __future__ import annotations``: FastAPI resolves the route annotations at runtime.
"""

import uuid
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas import deal_key
from schemas.commands import DealSnoozed
from schemas.deals import DealView
from services.api.auth import Principal
from services.common.repositories import InterruptionFilter, storable

DealPath = Annotated[str, Path(max_length=200, description="The CRM's own id of the deal")]
SourceQuery = Annotated[str, Query(max_length=32, pattern=r"^[a-z][a-z0-9_-]*$")]


class SnoozeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(default="generic", max_length=32, pattern=r"^[a-z][a-z0-9_-]*$")
    until: AwareDatetime
    """No quiet verdict on the deal before this moment."""
    reason: str = Field(min_length=1, max_length=1000)


class SnoozeAccepted(BaseModel):
    command_id: str
    source: str
    deal_id: str
    until: AwareDatetime | None


def build_deals_router(ctx: Any, read: Any, write: Any) -> APIRouter:
    router = APIRouter(prefix="/deals", tags=["deals"])

    def send(principal: Principal, source: str, deal_id: str, until: Any, reason: str) -> SnoozeAccepted:
        if not storable(source, deal_id):
            raise HTTPException(404, "no such deal")  # no deal's id holds a NUL character
        if principal.rep is not None:
            # A rep-scoped token acts only on deals it owns (as far as dealwatch has seen them).
            page = ctx.store.list_interruptions(
                InterruptionFilter(source=source, deal_id=deal_id, owner=principal.rep), None, 1
            )
            if not page.items:
                raise HTTPException(404, "no such deal")
        now = ctx.now()
        command = DealSnoozed(
            command_id=str(uuid.uuid4()),
            deal_key=deal_key(source, deal_id),
            source=source,
            deal_id=deal_id,
            until=until,
            reason=reason,
            requested_by=principal.name,
            requested_at=now,
        )
        with ctx.store.transaction() as tx:
            tx.append_outbox(ctx.topics.deal_commands, command.deal_key, command.model_dump_json(), now)
        return SnoozeAccepted(command_id=command.command_id, source=source, deal_id=deal_id, until=until)

    @router.get(
        "/{deal_id}",
        response_model=DealView,
        responses={
            404: {"description": "Not tracked (or not visible to this token)"},
            503: {"description": "The detector cannot be asked right now"},
        },
    )
    def get_deal(deal_id: DealPath, source: SourceQuery = "generic", principal: Principal = read) -> DealView:
        """The deal's tracked state: owner, stage, last activity, quiet deadline, contacts, open interruptions."""
        url = ctx.settings.detector_url
        if not url:
            raise HTTPException(
                503,
                "deal state is served by the detector: set DEALWATCH_DETECTOR_URL",
                headers={"Retry-After": "60"},
            )
        key = quote(deal_key(source, deal_id), safe="")
        try:
            answer = httpx.get(f"{url.rstrip('/')}/deals/{key}", timeout=3.0, follow_redirects=True)
        except httpx.HTTPError:
            raise HTTPException(503, "the detector did not answer", headers={"Retry-After": "5"}) from None
        if answer.status_code == 404:
            raise HTTPException(404, "no such deal")
        if answer.status_code != 200:
            raise HTTPException(503, "the detector could not answer", headers={"Retry-After": "5"})
        view = DealView.model_validate_json(answer.content)
        if principal.rep is not None and view.owner_id != principal.rep:
            raise HTTPException(404, "no such deal")
        return view

    @router.post("/{deal_id}/snooze", status_code=202, response_model=SnoozeAccepted)
    def snooze_deal(deal_id: DealPath, body: SnoozeRequest, principal: Principal = write) -> SnoozeAccepted:
        """Snooze the deal's quiet detection until a date, with a reason."""
        if body.until <= ctx.now():
            raise HTTPException(422, "until must lie in the future")
        return send(principal, body.source, deal_id, body.until, body.reason)

    @router.delete("/{deal_id}/snooze", status_code=202, response_model=SnoozeAccepted)
    def lift_snooze(
        deal_id: DealPath, source: SourceQuery = "generic", principal: Principal = write
    ) -> SnoozeAccepted:
        """Lift a snooze: quiet detection applies again."""
        return send(principal, source, deal_id, None, "snooze lifted")

    return router
