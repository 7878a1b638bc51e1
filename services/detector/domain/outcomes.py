"""What the rules decide: an interruption opened or revised, or an episode resumed. Plain values."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field

NAMESPACE = uuid.UUID("5b0f3c1e-7d2a-4c55-9a7e-2f1d8e6b4a90")
_NAMESPACE_BYTES = NAMESPACE.bytes


def interruption_id(deal_key: str, identity: str) -> str:
    """Deterministic: the same deal, kind and episode always give the same id (a re-detection is a duplicate)."""
    return _uuid5(f"{deal_key}|{identity}")


def batch_id(from_owner: str, to_owner: str, at: float) -> str:
    """Reassignments from one rep to another within the same hour form one batch (a book moved at once)."""
    return _uuid5(f"bulk|{from_owner}|{to_owner}|{int(at // 3600)}")


def _uuid5(name: str) -> str:
    """``str(uuid.uuid5(NAMESPACE, name))``, the same text at a third of the cost (no ``UUID`` object between
    the digest and the text: the replay names every interruption of a whole history)."""
    h = hashlib.sha1(_NAMESPACE_BYTES + name.encode(), usedforsecurity=False).hexdigest()
    variant = int(h[16:18], 16) & 0x3F | 0x80
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{variant:02x}{h[18:20]}-{h[20:32]}"


@dataclass(frozen=True, slots=True)
class Trigger:
    kind: str
    identity: str
    at: float
    event_id: str | None
    signal: str
    excerpt: str
    batch_id: str | None = None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Opened:
    """A new interruption, or a revision of an open one (``revision`` > 0, same id)."""

    id: str
    kind: str
    at: float
    cause: str
    side: str | None
    confidence: float
    alternatives: tuple[tuple[str, float], ...]
    evidence: tuple[tuple[str | None, str, str], ...]
    revision: int = 0
    batch_id: str | None = None
    flags: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Resumed:
    id: str
    kind: str
    at: float
    reason: str
    event_id: str | None


Outcome = Opened | Resumed
