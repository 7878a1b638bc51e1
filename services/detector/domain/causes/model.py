"""The values the cause classifier takes and gives: text signals, structural facts, a classification."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

CAUSES: tuple[str, ...] = (
    "competitor", "budget", "staff_change", "policy_change", "needs_change", "external",
    "internal_resources", "no_response", "follow_up_lapsed", "unknown",
)  # fmt: skip
"""The contract's causes (CONTRACT.md §1); ``unknown`` is never a signal, only a verdict."""

SIDES: tuple[str, ...] = ("ours", "customer")
DIRECTIONS: tuple[str, ...] = ("inbound", "outbound", "internal")
TEXT_KINDS: tuple[str, ...] = ("note", "call", "email", "meeting", "task", "lost_reason")
EXCERPT_LIMIT = 80


class Signal(NamedTuple):
    """Evidence for one cause from one event: the text hits of that cause in it, merged into one strength.

    A named tuple rather than a frozen dataclass: as immutable, and made several times for every event with text
    (read back from the deal's state for each ranking and classification) at a third of the cost."""

    cause: str
    """A contract cause other than ``unknown``."""
    weight: float
    """Strength, > 0; about 0.5 for a weak hint, 1 to 2 for a clear statement, up to 4 for a lost reason."""
    at: float
    """Event time of the event it came from, epoch seconds."""
    event_id: str
    excerpt: str
    """The matched words with a little context, at most 80 characters."""
    side: str | None = None
    """For ``staff_change``: ``ours`` or ``customer`` when the text tells."""
    signal: str = "text"
    """Evidence signal name: ``text:competitor``, ``field:lost_reason``."""


@dataclass(frozen=True, slots=True)
class Facts:
    """Structured signals the detector keeps per deal; all optional except the interruption itself."""

    kind: str
    """The interruption kind: went_quiet, reassigned, contact_left, stalled or closed_lost."""
    at: float
    """Event time of the interruption: the trigger event's time or the quiet deadline."""
    owner_changed_at: float | None = None
    contact_left_at: float | None = None
    contact_change: str | None = None
    """left_company, removed or role_changed."""
    amount_cut_share: float | None = None
    """0.4 means the amount was cut by 40 %."""
    close_date_pushes: int = 0
    close_date_slip_days: int = 0
    stage_moved_back: bool = False
    lost_reason: str | None = None
    outbound_since_inbound: int = 0
    """Our outbound attempts since the customer's last inbound reply."""
    last_outbound_at: float | None = None
    last_inbound_at: float | None = None
    last_activity_at: float | None = None
    activities: int = 0
    event_id: str | None = None
    """The event that triggered the interruption (None for a quiet deadline); named in the trigger evidence."""


@dataclass(frozen=True, slots=True)
class Classification:
    """Why a deal was interrupted: the primary cause, how sure, what else, and what shows it."""

    cause: str
    side: str | None
    confidence: float
    alternatives: tuple[tuple[str, float], ...]
    """Other causes with their confidence, best first; the primary is not among them."""
    evidence: tuple[tuple[str | None, str, str], ...]
    """(event id, signal, excerpt); never empty."""
