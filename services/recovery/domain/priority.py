"""How urgent a recovery task is: from the kind, the amount at stake, the stage and the relationship risk."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas import DealInterrupted

PRIORITIES = ("low", "normal", "high", "urgent")


@dataclass(frozen=True)
class PriorityRules:
    kind_base: Mapping[str, int] = field(
        default_factory=lambda: {
            "went_quiet": 1,
            "reassigned": 1,
            "contact_left": 1,
            "stalled": 1,
            "closed_lost": 0,
        }
    )
    large_amount: Mapping[str, float] = field(
        default_factory=lambda: {
            "JPY": 10_000_000,
            "USD": 100_000,
            "EUR": 100_000,
            "GBP": 80_000,
            "CNY": 700_000,
            "KRW": 100_000_000,
        }
    )
    """Amounts from which a deal counts as large, per currency; an unknown currency never does."""
    late_stage_words: tuple[str, ...] = (
        "negotiat",
        "contract",
        "closing",
        "commit",
        "decision",
        "交渉",
        "契約",
        "クロージング",
        "決裁",
        "稟議",
    )
    high_risk: float = 0.7
    key_tiers: tuple[str, ...] = ("key", "strategic", "enterprise", "重要")


def priority_score(interruption: DealInterrupted, rules: PriorityRules) -> int:
    deal = interruption.deal
    score = rules.kind_base.get(interruption.kind, 1)
    threshold = rules.large_amount.get((deal.currency or "").upper())
    if threshold is not None and deal.amount is not None and deal.amount >= threshold:
        score += 1
    stage = (deal.stage or "").lower()
    if stage and any(word in stage for word in rules.late_stage_words):
        score += 1
    if interruption.relationship.risk >= rules.high_risk or "no_contact_left" in interruption.flags:
        score += 1
    if (deal.account_tier or "").lower() in rules.key_tiers:
        score += 1
    return score


def priority_of(interruption: DealInterrupted, rules: PriorityRules | None = None) -> str:
    """``low``, ``normal``, ``high`` or ``urgent``."""
    score = priority_score(interruption, rules or PriorityRules())
    return PRIORITIES[max(0, min(score, len(PRIORITIES) - 1))]
