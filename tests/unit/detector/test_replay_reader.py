"""The compiled replay reads a line itself only when orjson and the reference's checks would read it alike: every
field it reads then equals, value and type, what the reference reads from orjson's dict; anything else it leaves to
them. Times and dates it reads equal the reference's, or are left to it."""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.detector.domain._lines import (
    day_of,
    event_time_of,
    fields_of,
    read_line,
    read_lines,
    time_of,
)
from services.detector.domain.event import BadEvent, check, parse_date, parse_time
from services.detector.replay import as_change

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
from detector_data import generic_lines

ODD = (None, True, False, 0, -7, 2**64, 1.5, -0.0, 1e300, "", "é", 'a"b', [], [1, "x"], {}, {"k": [None]})
WORDS = (
    "open",
    "lost",
    "won",
    "demo",
    "proposal",
    "u1",
    "call",
    "inbound",
    "outbound",
    "2026-02-01",
    "営業",
    "\u2028",
)


def scalar(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.5:
        return rng.choice(WORDS)
    if roll < 0.6:
        return rng.choice((1_000_000, 250_000.5, 0, 12.0, 5e-324, 123456789.125, 1e22))
    if roll < 0.7:
        # short, or long enough to be read sixteen and eight bytes at a time, with anything at any place
        size = rng.randrange(0, 8) if rng.random() < 0.5 else rng.randrange(8, 70)
        return "".join(
            rng.choice('ab"\\/\n\t\x01é営😀 ' if rng.random() < 0.3 else "abcxyz") for _ in range(size)
        )
    return rng.choice(ODD)


def part(rng: random.Random, keys: tuple[str, ...]) -> dict[str, Any]:
    out = {key: scalar(rng) for key in rng.sample(keys, rng.randrange(0, len(keys) + 1))}
    if rng.random() < 0.2:
        out[rng.choice(("x", "name", "émoji", "nested"))] = rng.choice(ODD)
    return out


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    """Change events, mostly ones the reference accepts, with values of every JSON type where it reads one."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    event: dict[str, Any] = {
        "event_id": f"e{rng.randrange(100)}",
        "type": rng.choice(("deal.updated", "deal.deleted", "activity.logged")),
        "occurred_at": rng.choice(("2026-01-05T10:00:00+09:00", "2026-01-05T01:00:00.250Z", "soon")),
        "deal": {"id": rng.choice(("d1", 7, 7.5, True, "営業1")), **part(rng, DEAL_KEYS)},
    }
    for name, keys in (("previous", PREVIOUS_KEYS), ("activity", ACTIVITY_KEYS), ("contact", CONTACT_KEYS)):
        if rng.random() < 0.5:
            event[name] = part(rng, keys) if rng.random() < 0.9 else rng.choice(ODD)
    if rng.random() < 0.3:
        event["source"] = rng.choice(("hubspot", "", None, 0, 3))
    if rng.random() < 0.2:
        event["deal_id"] = scalar(rng)
    if rng.random() < 0.1:
        event["deal"].pop("id", None)
    if rng.random() < 0.15:  # one field the reference refuses, or a value of another type
        event[rng.choice(("event_id", "type", "occurred_at", "deal"))] = rng.choice(ODD)
    return event


DEAL_KEYS = ("account_tier", "status", "owner_id", "stage", "lost_reason", "amount", "close_date", "name")
PREVIOUS_KEYS = ("owner_id", "stage", "amount", "close_date")
ACTIVITY_KEYS = ("kind", "direction", "text", "scheduled_at", "done")
CONTACT_KEYS = ("id", "change", "decision_maker", "title")
EVENTS = events()


def same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Equal values of equal types (1, 1.0 and True differ; so do 0.0 and -0.0)."""
    return len(a) == len(b) and all(
        type(x) is type(y) and repr(x) == repr(y) for x, y in zip(a, b, strict=True)
    )


def reference(line: bytes, source: str = "generic") -> tuple[Any, ...] | None:
    try:
        return fields_of(check(as_change(orjson.loads(line), source)))
    except (ValueError, BadEvent, RecursionError):
        return None


def encodings(event: dict[str, Any]) -> list[bytes]:
    plain = json.dumps(event, ensure_ascii=False).encode()
    return [
        plain,
        json.dumps(event).encode(),  # \\u escapes
        json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode(),
        b"  " + json.dumps(event, indent=1).encode() + b"\t",
        orjson.dumps(event) if _orjson_can(event) else plain,
    ]


def _orjson_can(event: dict[str, Any]) -> bool:
    try:
        orjson.dumps(event)
    except TypeError:
        return False
    return True


def check_line(line: bytes) -> bool:
    mine = read_line(line)
    if mine is None:
        return False
    theirs = reference(line)
    assert theirs is not None, f"read a line the reference refuses: {line!r}"
    assert same(mine, theirs), f"{line!r}\n{mine}\n{theirs}"
    return True


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EVENTS)
def test_a_line_read_here_holds_what_the_reference_reads(event):
    for line in encodings(event):
        check_line(line)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EVENTS, st.data())
def test_damaged_lines_are_read_alike_or_left_to_the_reference(event, data):
    line = bytearray(json.dumps(event, ensure_ascii=False).encode())
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.integers(0, len(line)))
        action = data.draw(st.sampled_from(("insert", "delete", "duplicate")))
        if action == "insert":
            line[where:where] = data.draw(
                st.sampled_from([b"\\", b'"', b",", b"}", b"\x00", b"\xff", b"\xed\xa0\x80"])
            )
        elif action == "delete" and line:
            del line[min(where, len(line) - 1)]
        else:
            line[where:where] = line[: data.draw(st.integers(0, 20))]
    check_line(bytes(line))


def test_a_key_given_twice_or_escaped_is_left_to_the_reference():
    base = b'"event_id":"e1","occurred_at":"2026-01-05T10:00:00Z","type":"deal.updated"'
    twice = b"{" + base + b',"deal":{"id":"1","stage":"demo","stage":"lost"}}'
    escaped = b"{" + base + b',"deal":{"id":"1","st\\u0061ge":"demo"}}'
    assert read_line(twice) is None and reference(twice) is not None
    assert read_line(escaped) is None and reference(escaped) is not None
    plain = b"{" + base + b',"deal":{"id":"1","stage":"demo"}}'
    assert check_line(plain)


def test_every_line_of_a_generated_crm_history_is_read_here():
    lines = [line.encode() for line in generic_lines(3_000, now=time.time())]
    assert all(check_line(line) for line in lines)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EVENTS, min_size=2, max_size=8), st.data())
def test_one_reader_reads_each_line_of_a_sequence_as_a_fresh_one_does(events, data):
    """The engine reads every line with one reader, which clears only what the line before it set: nothing of
    one line may be left in the next (lines read, lines left to the reference, the other shares' lines)."""
    lines = []
    for event in events:
        line = data.draw(st.sampled_from(encodings(event)))
        if data.draw(st.booleans()):
            lines.append(line[: data.draw(st.integers(0, len(line)))])  # cut short: left to the reference
        lines.append(line)
    history = [line.encode() for line in generic_lines(300, now=1_795_000_000.0)]
    lines += data.draw(st.permutations(history))[:40]
    fresh = [read_line(line) for line in lines]
    for line, mine, theirs in zip(lines, read_lines(lines), fresh, strict=True):
        assert (mine is None) == (theirs is None), line
        assert mine is None or same(mine, theirs), f"{line!r}\n{mine}\n{theirs}"


MOMENTS = st.datetimes(
    min_value=datetime(1901, 1, 1), max_value=datetime(2199, 12, 30), timezones=st.just(UTC)
) | st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1))
OFFSETS = st.sampled_from([UTC, timezone(timedelta(hours=9)), timezone(timedelta(hours=-5, minutes=-30))])


def outcome(read, value):
    try:
        return ("value", type(read(value)), read(value))
    except (BadEvent, ValueError) as exc:
        return ("error", type(exc), str(exc))


@settings(max_examples=1_000, deadline=None)
@given(MOMENTS, OFFSETS, st.sampled_from(["seconds", "milliseconds", "microseconds", "auto"]), st.data())
def test_times_are_read_as_the_reference_reads_them(moment, offset, spec, data):
    moment = moment.replace(tzinfo=offset) if moment.tzinfo is None else moment.astimezone(offset)
    text = moment.isoformat(timespec=spec)
    if data.draw(st.booleans()):
        text = text.replace("+00:00", "Z")
    if data.draw(st.integers(0, 5)) == 0:  # damaged
        where = data.draw(st.integers(0, len(text) - 1))
        text = (
            text[:where]
            + data.draw(st.sampled_from(["", "9", "T", " ", ":", "+", "z", "٣"]))
            + text[where + 1 :]
        )
    assert outcome(time_of, text) == outcome(parse_time, text)
    assert outcome(event_time_of, text) == outcome(lambda value: float(parse_time(value)), text)


@given(st.dates(), st.sampled_from(["", "T00:00:00", "x"]), st.data())
def test_dates_are_read_as_the_reference_reads_them(day, tail, data):
    text = day.isoformat() + tail
    if data.draw(st.booleans()):
        where = data.draw(st.integers(0, len(text) - 1))
        text = text[:where] + data.draw(st.sampled_from(["", "0", "3", "-", "/"])) + text[where + 1 :]
    assert outcome(day_of, text) == outcome(parse_date, text)


@pytest.mark.parametrize(
    "value", [None, 5, "", "2026-02-29", "2024-02-29", "0000-01-01", "9999-12-31", "2026-1-01"]
)
def test_odd_dates_are_read_as_the_reference_reads_them(value):
    assert outcome(day_of, value) == outcome(parse_date, value)
