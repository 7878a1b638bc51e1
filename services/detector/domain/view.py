"""A deal's tracked state as the contract's ``DealView``."""

from __future__ import annotations

from datetime import UTC, date, datetime

from schemas.deals import DealView, OpenInterruption, TrackedContact
from services.detector.domain.messages import split_key
from services.detector.domain.relationship import relationship_profile
from services.detector.domain.rules import Detector
from services.detector.domain.state import DealState


def _ts(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def deal_view(state: DealState, detector: Detector, deal_key: str, now: float) -> DealView:
    source, deal_id = split_key(deal_key)
    deadline = detector.quiet_deadline(state)
    return DealView(
        source=source,
        deal_id=deal_id,
        name=state.name,
        owner_id=state.owner,
        previous_owner_id=state.prev_owner,
        stage=state.stage,
        status=state.status,
        amount=state.amount,
        currency=state.currency,
        close_date=date.fromordinal(int(state.closes[-1][1])) if state.closes else None,
        account_tier=state.tier,
        created_at=_ts(state.created),
        last_activity_at=_ts(state.last_act),
        last_inbound_at=_ts(state.last_in),
        last_outbound_at=_ts(state.outs[-1] if state.outs else None),
        quiet_deadline=_ts(deadline),
        snoozed_until=_ts(state.snooze) if state.snooze is not None and state.snooze > now else None,
        contacts=[
            TrackedContact(
                id=str(c[0]),
                decision_maker=bool(c[1]),
                active=bool(c[3]),
                changed_at=datetime.fromtimestamp(c[2], UTC),
            )
            for c in state.contacts
        ],
        open_interruptions=[
            OpenInterruption(
                id=e.id,
                kind=e.kind,
                cause=e.cause,
                side=e.side,
                occurred_at=datetime.fromtimestamp(e.at, UTC),
                revision=e.revision,
            )
            for e in state.episodes
        ],
        relationship=relationship_profile(state, now),
    )
