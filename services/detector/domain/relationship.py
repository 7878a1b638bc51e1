"""Relationship strength as the CRM shows it (DOMAIN.md, seeds/003): the more strengths, the lower the risk."""

from __future__ import annotations

from schemas.interruptions import RelationshipProfile
from services.detector.domain.state import DealState

EXISTING_TIERS = frozenset({"key", "existing", "strategic", "enterprise", "customer"})
CONTRIBUTION_WINDOW = 30 * 86_400.0


def relationship_profile(state: DealState, at: float) -> RelationshipProfile:
    contacts = state.active_contacts()
    existing = (state.tier or "").lower() in EXISTING_TIERS
    decision_maker = any(c[1] for c in contacts)
    inbound = state.last_in is not None
    contribution = any(at - CONTRIBUTION_WINDOW <= t <= at for t in state.outs)
    strengths = sum((existing, len(contacts) > 1, decision_maker, inbound, contribution))
    risk = round(1.0 - strengths / 5.0, 2)
    if not contacts:
        risk = min(1.0, risk + 0.1)
    return RelationshipProfile(
        existing_customer=existing,
        contacts=len(contacts),
        decision_maker=decision_maker,
        inbound_activity=inbound,
        recent_contribution=contribution,
        risk=risk,
    )
