"""The detector's rules as plain values, built by the worker from settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.detector.domain.calendar import WorkingCalendar

DEFAULT_STAGE_ORDER = (
    "lead",
    "qualification",
    "qualifiedtobuy",
    "appointmentscheduled",
    "discovery",
    "demo",
    "presentationscheduled",
    "proposal",
    "decisionmakerboughtin",
    "negotiation",
    "contractsent",
    "contract",
)

DECISION_TITLES = (
    "社長",
    "取締役",
    "役員",
    "部長",
    "本部長",
    "事業部長",
    "執行役",
    "代表",
    "cxo",
    "ceo",
    "cfo",
    "cio",
    "cto",
    "coo",
    "cco",
    "president",
    "vp",
    "vice president",
    "director",
    "head of",
    "owner",
    "founder",
    "partner",
    "general manager",
    "gm",
)


@dataclass(frozen=True)
class DetectorConfig:
    calendar: WorkingCalendar = field(default_factory=WorkingCalendar)
    quiet_default_days: float = 10.0
    quiet_by_stage: Mapping[str, float] = field(default_factory=dict)
    quiet_tier_factor: Mapping[str, float] = field(default_factory=dict)
    quiet_by_stage_tier: Mapping[str, float] = field(default_factory=dict)
    qualifying_kinds: frozenset[str] = frozenset({"call", "meeting", "email", "note"})
    qualifying_directions: frozenset[str] = frozenset({"inbound", "outbound"})
    stage_progress_counts_as_activity: bool = True
    grace_seconds: float = 10.0
    stage_order: tuple[str, ...] = DEFAULT_STAGE_ORDER
    close_date_pushes: int = 2
    close_date_slip_days: int = 45
    amount_cut_share: float = 0.3
    revise_window_seconds: float = 3 * 86_400.0
    """New evidence within this event time after an interruption may revise its cause."""
    signal_window_seconds: float = 120 * 86_400.0
    """Text older than this before an interruption is not used as its evidence."""
    signals_kept: int = 6
    decision_titles: tuple[str, ...] = DECISION_TITLES

    def quiet_threshold_days(self, stage: str | None, tier: str | None) -> float:
        stage_key = (stage or "").lower()
        tier_key = (tier or "").lower()
        exact = self.quiet_by_stage_tier.get(f"{stage_key}/{tier_key}")
        if exact is not None:
            return exact
        base = self.quiet_by_stage.get(stage_key, self.quiet_default_days)
        return base * self.quiet_tier_factor.get(tier_key, 1.0)

    def stage_rank(self, stage: str | None) -> int | None:
        """Position of a stage in the pipeline. Numeric stage ids (Pipedrive) rank by their number, after every
        named stage; unknown names have no rank, so no 'backwards' can be concluded from them."""
        if not stage:
            return None
        folded = stage.lower()
        if folded in self.stage_order:
            return self.stage_order.index(folded)
        if folded.isdigit():
            return len(self.stage_order) + int(folded)
        return None

    def is_decision_maker(self, title: str | None) -> bool:
        if not title:
            return False
        folded = title.casefold()
        return any(t in folded for t in self.decision_titles)
