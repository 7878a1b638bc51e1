"""Turn the rules' outcomes into the contract's messages."""

from __future__ import annotations

from datetime import UTC, date, datetime

from schemas.interruptions import Alternative, DealInterrupted, DealResumed, DealSnapshot, Evidence
from services.detector.domain.outcomes import Opened, Outcome
from services.detector.domain.relationship import relationship_profile
from services.detector.domain.state import DealState


def split_key(deal_key: str) -> tuple[str, str]:
    source, _, deal_id = deal_key.partition(":")
    return source, deal_id


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def snapshot(state: DealState) -> DealSnapshot:
    close = date.fromordinal(int(state.closes[-1][1])) if state.closes else None
    return DealSnapshot(
        name=state.name,
        stage=state.stage,
        status=state.status,
        amount=state.amount,
        currency=state.currency,
        close_date=close,
        owner_id=state.owner,
        previous_owner_id=state.prev_owner,
        account_id=state.account,
        account_tier=state.tier,
        lost_reason=state.lost_reason,
        last_activity_at=_ts(state.last_act) if state.last_act is not None else None,
        contacts=[str(c[0]) for c in state.active_contacts()],
    )


def to_message(
    outcome: Outcome, state: DealState, deal_key: str, now: float
) -> DealInterrupted | DealResumed:
    source, deal_id = split_key(deal_key)
    if isinstance(outcome, Opened):
        return DealInterrupted(
            id=outcome.id,
            deal_key=deal_key,
            source=source,
            deal_id=deal_id,
            kind=outcome.kind,  # type: ignore[arg-type]
            cause=outcome.cause,  # type: ignore[arg-type]
            side=outcome.side,  # type: ignore[arg-type]
            confidence=round(min(1.0, max(0.0, outcome.confidence)), 3),
            alternatives=[
                Alternative(cause=c, confidence=round(min(1.0, max(0.0, p)), 3))  # type: ignore[arg-type]
                for c, p in outcome.alternatives
            ],
            evidence=[Evidence(event_id=e, signal=s, excerpt=x) for e, s, x in outcome.evidence],
            occurred_at=_ts(outcome.at),
            detected_at=_ts(now),
            deal=snapshot(state),
            relationship=relationship_profile(state, outcome.at),
            batch_id=outcome.batch_id,
            flags=list(outcome.flags),
            revision=outcome.revision,
        )
    return DealResumed(
        interruption_id=outcome.id,
        deal_key=deal_key,
        source=source,
        deal_id=deal_id,
        kind=outcome.kind,  # type: ignore[arg-type]
        reason=outcome.reason,
        event_id=outcome.event_id,
        occurred_at=_ts(outcome.at),
        detected_at=_ts(now),
    )
