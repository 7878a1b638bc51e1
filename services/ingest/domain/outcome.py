"""What a normalizer returns, and why it refuses a body. Plain values: the web layer maps them to answers."""

from __future__ import annotations

from dataclasses import dataclass

from schemas import DealChanged


@dataclass(frozen=True)
class Batch:
    """The normalized events of one request, in the order the sender gave them."""

    events: tuple[DealChanged, ...]
    ignored: int = 0
    """Items that are authentic and well-formed but not about a deal (a contact-only HubSpot subscription, a
    Pipedrive note without a deal): acknowledged, not published."""


class MalformedBody(ValueError):
    """The body is not acceptable JSON (400): not UTF-8, not JSON, duplicate keys, NaN, too deep, ..."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class InvalidEvent(ValueError):
    """Valid JSON that is not a valid event of the source (422). ``deal_key`` when one could be read."""

    def __init__(
        self, reason: str, detail: str, *, index: int | None = None, deal_key: str | None = None
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.index = index
        self.deal_key = deal_key


class TooManyEvents(ValueError):
    """A batch longer than the configured bound (413)."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"{count} events in one request; at most {limit}")
        self.count = count
        self.limit = limit
