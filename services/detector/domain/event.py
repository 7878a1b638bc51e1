"""The change event as the detector reads it: the decoded JSON of ``schemas.DealChanged``.

The ingest service validated it against the contract before publishing; here it is read defensively and fast
(no model objects per event). Anything missing or of the wrong type raises ``BadEvent``.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import orjson

Event = dict[str, Any]
_dumps = json.JSONEncoder(ensure_ascii=False).encode


class BadEvent(ValueError):
    pass


def loads(raw: bytes | str) -> Any:
    """The decoded JSON of an event (or a command): orjson for the UTF-8 text every producer of events writes
    (a third of the cost of ``json.loads``), ``json.loads`` for whatever orjson refuses (UTF-16 or UTF-32, a byte
    order mark, NaN, or not JSON at all: raises as ``json.loads`` does).

    A string holding a lone UTF-16 surrogate (``"\\ud800"``) is refused: it could not be written back out as
    UTF-8, neither in a deal's state nor in an interruption.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    value = json.loads(raw)
    try:
        _dumps(value).encode()
    except UnicodeEncodeError:
        raise BadEvent("a string holds a lone UTF-16 surrogate") from None
    return value


def parse_time(value: Any) -> int:
    """Epoch seconds, whole (a deal's state keeps times to the second)."""
    if not isinstance(value, str):
        raise BadEvent("occurred_at must be an ISO-8601 string")
    return _epoch(value)


@lru_cache(maxsize=4096)
def _epoch(value: str) -> int:
    """Kept for the times seen last: the replay reads an event's time before the rules do, and a batch often
    holds several events stamped alike (a bulk change, one call logged with its note)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadEvent(f"occurred_at is not ISO-8601: {value[:40]!r}") from exc
    if moment.tzinfo is None:
        raise BadEvent("occurred_at needs a time zone")
    return int(moment.timestamp())


def parse_date(value: Any) -> int | None:
    """A date as a day ordinal, or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadEvent("a date must be a YYYY-MM-DD string")
    try:
        return date.fromisoformat(value[:10]).toordinal()
    except ValueError as exc:
        raise BadEvent(f"not a date: {value[:20]!r}") from exc


def check(ev: Any) -> Event:
    """The fields every change event must have, with the right types."""
    if not isinstance(ev, dict):
        raise BadEvent("a change event is a JSON object")
    for name in ("event_id", "source", "deal_id", "type", "occurred_at"):
        if not isinstance(ev.get(name), str) or not ev[name]:
            raise BadEvent(f"{name} is missing or not a string")
    if not isinstance(ev.get("deal"), dict):
        raise BadEvent("deal is missing")
    for part in ("previous", "activity", "contact"):
        if ev.get(part) is not None and not isinstance(ev[part], dict):
            raise BadEvent(f"{part} must be an object")
    act = ev.get("activity")
    if act:
        for name in ("kind", "direction"):
            if act.get(name) is not None and not isinstance(act[name], str):
                raise BadEvent(f"activity.{name} must be a string")
    return ev


def section(ev: Event, name: str) -> dict[str, Any]:
    value = ev.get(name)
    return value if isinstance(value, dict) else {}


def text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def number(value: Any) -> float | None:
    """A finite number, or None (a boolean, NaN or an infinity is no amount)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None
