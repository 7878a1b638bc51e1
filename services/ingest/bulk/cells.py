"""Cells of a CRM's CSV export read as values: dates and times, amounts, flags and ids. Pure.

Exports write values for people, not machines: times without a zone (the exporting user's), dates as
``2026/11/02`` or ``11/2/2026``, amounts with thousands separators and currency signs. Each reader returns the
value, ``None`` for an empty cell, or raises ``BadCell`` saying what it could not read.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

MAX_SHOWN = 40


class BadCell(ValueError):
    """A cell that cannot be read as what its column holds (the row is refused with ``reason``)."""

    def __init__(self, reason: str, column: str, value: str, expected: str) -> None:
        shown = value if len(value) <= MAX_SHOWN else value[:MAX_SHOWN] + "…"
        super().__init__(f"{column}: {shown!r} is not {expected}")
        self.reason = reason


_ISO = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE,
)
_YMD_SLASH = re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
_XY_SLASH = re.compile(
    r"^(\d{1,2})[/.](\d{1,2})[/.](\d{4})(?:,?\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?)?$"
)
_EPOCH_MS = re.compile(r"^\d{12,13}$")


def read_instant(value: str, column: str, zone: tzinfo, *, day_first: bool = False) -> datetime | None:
    """A point in time; a cell without a zone is in ``zone``, a date alone is its midnight there.

    Accepted: ISO 8601 (``T`` or a space, optional seconds, fraction and zone), ``YYYY/MM/DD [HH:MM[:SS]]``,
    ``M/D/YYYY [h:mm[:ss] [AM|PM]]`` (``D/M/YYYY`` with ``day_first``; ``.`` also separates), and epoch
    milliseconds (HubSpot's internal values)."""
    text = value.strip()
    if not text:
        return None
    try:
        parsed = _parse_instant(text, zone, day_first)
    except (ValueError, OverflowError):
        parsed = None
    if parsed is None:
        raise BadCell("bad_date", column, text, "a date or time")
    return parsed


def _parse_instant(text: str, zone: tzinfo, day_first: bool) -> datetime | None:
    if _EPOCH_MS.match(text):
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    if m := _ISO.match(text):
        year, month, day, hour, minute, second, fraction, offset = m.groups()
        micro = int((fraction or "0")[:6].ljust(6, "0"))
        when = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro
        )
        return when.replace(tzinfo=zone if offset is None else _offset(offset))
    if m := _YMD_SLASH.match(text):
        year, month, day, hour, minute, second = m.groups()
        return datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), tzinfo=zone
        )
    if m := _XY_SLASH.match(text):
        first, second_part, year, hour, minute, second, meridiem = m.groups()
        month, day = (second_part, first) if day_first else (first, second_part)
        hours = int(hour or 0)
        if meridiem is not None:
            if not 1 <= hours <= 12:
                return None
            hours = hours % 12 + (12 if meridiem.lower() == "pm" else 0)
        return datetime(
            int(year), int(month), int(day), hours, int(minute or 0), int(second or 0), tzinfo=zone
        )
    return None


def _offset(text: str) -> tzinfo:
    if text.upper() == "Z":
        return UTC
    digits = text[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + int(digits[2:])
    return timezone(timedelta(minutes=-minutes if text[0] == "-" else minutes))


def read_date(value: str, column: str, zone: tzinfo, *, day_first: bool = False) -> date | None:
    """A calendar date (a close date); a cell with a time gives the date of that time in ``zone``."""
    when = read_instant(value, column, zone, day_first=day_first)
    if when is None:
        return None
    return when.astimezone(zone).date()


_CURRENCY_CODE = re.compile(r"^([A-Z]{3})\s*(?=[-+(\d.,])|(?<=[\d.,)])\s*([A-Z]{3})$")
_SIGNS = str.maketrans("", "", "$€£¥￥₩₹ \u00a0\u202f'")


def read_amount(value: str, column: str) -> tuple[float | None, str | None]:
    """An amount and the currency code written beside it (``USD 1,200.50``, ``¥1,200,000``, ``1.200,50 EUR``).

    Separators: with both ``,`` and ``.`` the last one is the decimal point; with only commas they group
    thousands (``1,200,000``) unless a single comma is followed by one or two digits (``12,5``)."""
    text = value.strip()
    if not text:
        return None, None
    code = None
    if m := _CURRENCY_CODE.search(text):
        code = m.group(1) or m.group(2)
        text = _CURRENCY_CODE.sub("", text)
    negative = text.startswith("(") and text.endswith(")")
    text = text.strip("()").translate(_SIGNS)
    if "," in text and "." in text:
        thousands = "," if text.rindex(",") < text.rindex(".") else "."
        text = text.replace(thousands, "").replace(",", ".")
    elif text.count(",") == 1 and re.search(r",\d{1,2}$", text):
        text = text.replace(",", ".")
    else:
        text = text.replace(",", "")
    if not re.fullmatch(r"[-+]?\d+(\.\d+)?", text) or len(text) > 30:
        raise BadCell("bad_amount", column, value.strip(), "an amount")
    amount = float(text)
    return (-amount if negative else amount), code


_TRUE = {"true", "yes", "1", "y", "t", "x", "はい"}
_FALSE = {"false", "no", "0", "n", "f", "いいえ"}


def read_flag(value: str, column: str) -> bool | None:
    text = value.strip().lower()
    if not text:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BadCell("bad_value", column, value.strip(), "true or false")


def read_text(value: str) -> str | None:
    text = value.strip()
    return text or None


def read_id(value: str) -> str | None:
    """An id as the CRM writes it; a spreadsheet's ``1234.0`` is ``1234``."""
    text = value.strip()
    if text.endswith(".0") and text[:-2].isdigit():
        text = text[:-2]
    return text or None


def first_id(value: str) -> str | None:
    """The first of several ids in one cell (HubSpot separates associated ids with ``;``)."""
    return read_id(re.split(r"[;,]", value, maxsplit=1)[0])


_SF_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def salesforce_id18(value: str | None) -> str | None:
    """A Salesforce record id in its 18-character, case-insensitive form (reports export 15 characters, Change
    Data Capture and the API use 18): each 5-character chunk adds a letter whose bits mark its capitals."""
    if value is None or len(value) != 15 or not value.isalnum() or not value.isascii():
        return value
    suffix = ""
    for start in (0, 5, 10):
        bits = sum(1 << i for i, ch in enumerate(value[start : start + 5]) if "A" <= ch <= "Z")
        suffix += _SF_SUFFIX[bits]
    return value + suffix
