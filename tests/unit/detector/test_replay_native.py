"""The replay's compiled engine (domain/_replay.pyx) makes exactly the report of the Python reference: the same
interruptions of the same causes, revisions, resumptions, duplicates and rejections, for generated histories in
any order, odd and bad lines, every share of an export, and other configurations."""

from __future__ import annotations

import io
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.settings import Settings
from services.detector import replay_parallel
from services.detector.domain import _replay  # the tests require the compiled engine
from services.detector.domain.calendar import WorkingCalendar
from services.detector.domain.config import DetectorConfig
from services.detector.domain.rules import Detector
from services.detector.replay import NATIVE, ReplayReport, Share, replay, replay_share
from services.detector.replay_parallel import ExportLines
from services.detector.wiring import build_detector

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
from detector_data import generic_lines

DETECTOR = build_detector(Settings())
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
UNTIL = (START + timedelta(days=400)).timestamp()

TEXTS = (
    "競合のA社に決まりそうです",
    "予算が凍結されたため来期に延期",
    "先方の担当者が退職しました",
    "弊社の担当が異動になりました",
    "They chose a competitor's product",
    "Budget was cut for this quarter",
    "no budget concerns at all",
    "Our account manager left the company",
    "新しい部長の方針で見直し",
    "Requirements changed after the merger",
    "お電話しましたが不在でした",
    "Left a voicemail",
    "  spaced \t text  ",
)
TITLES = (None, "部長", "CEO", "engineer", "Head of Sales", "")
STAGES = (
    "lead",
    "qualification",
    "discovery",
    "demo",
    "proposal",
    "negotiation",
    "contract",
    "7",
    "custom",
    "",
)


def iso(moment: datetime, form: int) -> Any:
    """An event time in one of the forms an export may hold, valid or not."""
    return [
        moment.isoformat(),  # +00:00
        moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        moment.astimezone(ZoneInfo("Asia/Tokyo")).isoformat(),
        moment.strftime("%Y-%m-%dT%H:%M:%S.123Z"),
        moment.strftime("%Y-%m-%dT%H:%M:%S.123456-05:30"),
        moment.strftime("%Y-%m-%d %H:%M:%S+09:00"),  # a space: the reference reads it
        moment.strftime("%Y-%m-%dT%H:%M:%S"),  # no zone: refused
        moment.strftime("%Y-%m-%d"),
        12345,
        moment.strftime("%Y-%m-%dT%H:%M:%S.5+01:00"),  # one digit of a second: the reference reads it
    ][form]


@st.composite
def histories(draw: st.DrawFn) -> list[str]:
    """Lines of an export: a few deals, every kind of change, redelivered ids, odd values, any order."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    n = draw(st.integers(1, 120))
    deals: list[Any] = [f"d{i}" for i in range(draw(st.integers(1, 6)))]
    if rng.random() < 0.2:
        deals.append(7)  # a number: the deal "7"
    if rng.random() < 0.2:  # ids the engine keys as text: not ASCII, or long
        deals += ["営業1", "x" * 60, "x" * 59 + "y"]
    lines: list[str] = []
    for _k in range(n):
        deal_id = rng.choice(deals)
        moment = START + timedelta(hours=rng.randrange(0, 24 * 200), seconds=rng.choice((0, 0, 0, 17)))
        form = rng.choice((0, 0, 0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9))
        ev: dict[str, Any] = {
            "event_id": f"e{rng.randrange(0, max(2, n))}" if rng.random() < 0.9 else "",
            "occurred_at": iso(moment, form),
            "deal": {"id": deal_id},
        }
        if rng.random() < 0.2:
            ev["source"] = rng.choice(("hubspot", "salesforce", 5, "", None, False))
        roll = rng.random()
        if roll < 0.15:
            ev["type"] = "deal.created"
            ev["deal"].update(
                stage=rng.choice(STAGES),
                status="open",
                owner_id=f"u{rng.randrange(3)}",
                amount=rng.choice((1_000_000, 250_000.5, 0, -5, None, "x")),
                close_date=(moment + timedelta(days=rng.randrange(10, 90))).date().isoformat(),
                account_tier=rng.choice(("key", "standard", "small", None)),
            )
        elif roll < 0.45:
            ev["type"] = "deal.updated"
            prev: dict[str, Any] = {}
            for name in rng.sample(("stage", "owner_id", "status", "amount", "close_date", "lost_reason"), 2):
                if name == "stage":
                    ev["deal"]["stage"] = rng.choice(STAGES)
                    if rng.random() < 0.5:
                        prev["stage"] = rng.choice(STAGES)
                elif name == "owner_id":
                    ev["deal"]["owner_id"] = f"u{rng.randrange(3)}"
                    if rng.random() < 0.5:
                        prev["owner_id"] = f"u{rng.randrange(3)}"
                elif name == "status":
                    ev["deal"]["status"] = rng.choice(("open", "lost", "won", "lost"))
                elif name == "amount":
                    ev["deal"]["amount"] = rng.choice((1_000_000, 400_000, 900_000.0, float("1e300")))
                    if rng.random() < 0.5:
                        prev["amount"] = rng.choice((1_000_000, 2_000_000, None))
                elif name == "close_date":
                    ev["deal"]["close_date"] = rng.choice(
                        (
                            (moment + timedelta(days=rng.randrange(-20, 120))).date().isoformat(),
                            "2026-02-30",
                            "20260301",
                            "2026-03-01T00:00:00",
                            7,
                            None,
                        )
                    )
                    if rng.random() < 0.5:
                        prev["close_date"] = (
                            (moment + timedelta(days=rng.randrange(0, 60))).date().isoformat()
                        )
                else:
                    ev["deal"]["lost_reason"] = rng.choice(
                        ("他社製品に決定", "予算不足のため見送り", "  a\u3000b  ")
                    )
            if prev:
                ev["previous"] = prev
        elif roll < 0.5:
            ev["type"] = "deal.deleted"
        elif roll < 0.85:
            ev["type"] = "activity.logged"
            act: dict[str, Any] = {
                "kind": rng.choice(("call", "meeting", "email", "note", "task", None)),
                "direction": rng.choice(("inbound", "outbound", "internal", None)),
            }
            if rng.random() < 0.8:
                act["text"] = rng.choice(TEXTS)
            if rng.random() < 0.15:
                act["scheduled_at"] = rng.choice(
                    (iso(moment + timedelta(days=rng.randrange(-5, 40)), 0), "tomorrow", 5)
                )
                act["done"] = rng.random() < 0.3
            if rng.random() < 0.02:
                act["kind"] = ["call"]
            ev["activity"] = act
        else:
            ev["type"] = "contact.changed"
            ev["contact"] = {
                "id": rng.choice(("c1", "c2", "c3", 4)),
                "change": rng.choice(("left_company", "role_changed", "removed", "updated", None)),
                "decision_maker": rng.choice((True, False, None)),
                "title": rng.choice(TITLES),
            }
        if rng.random() < 0.02:
            ev["activity"] = "not an object"
        line = json.dumps(ev, ensure_ascii=False)
        if rng.random() < 0.1:  # the same values written with escapes
            line = line.replace('"hubspot"', '"hub\\u0073pot"').replace('"id": "d', '"id": "\\u0064')
        lines.append(line)
        if rng.random() < 0.03:
            lines.append(rng.choice(('{"broken', "[1, 2]", '{"deal": {"id": ""}}', "", "   ")))
    return lines


def reports(lines: list[str], detector: Detector, **kw: Any) -> tuple[ReplayReport, ReplayReport]:
    """The engine's report, after checking that it reads the lines alike as text (which it leaves to orjson),
    as bytes (which it reads itself, in the export's order) and as an export read in pieces (which it replays a
    deal at a time); and the reference's report."""
    native = replay_share(lines, detector, until=UNTIL, native=True, by_deal=True, **kw)
    raw = [line.encode() for line in lines]
    assert_same(replay_share(raw, detector, until=UNTIL, native=True, by_deal=True, **kw), native)
    ended = [line + b"\n" for line in raw]  # as a file's lines are read (orjson's reasons may differ)
    # an export read in pieces is replayed a deal at a time, a window of its lines at a time: in one window, in
    # small ones (a line longer than a window is replayed as it comes), with pieces whose lines run on into the next
    in_order = replay_share(ended, detector, until=UNTIL, native=True, by_deal=True, **kw)
    block, replay_parallel.BLOCK = replay_parallel.BLOCK, 97
    try:
        for window in (None, 300, 1):
            export = ExportLines(io.BytesIO(b"".join(ended)))
            assert_same(
                replay_share(export, detector, until=UNTIL, native=True, by_deal=True, window=window, **kw),
                in_order,
            )
    finally:
        replay_parallel.BLOCK = block
    reference = replay_share(lines, detector, until=UNTIL, native=False, by_deal=True, **kw)
    return native, reference


def assert_same(native: ReplayReport, reference: ReplayReport) -> None:
    assert native.summary() == reference.summary()
    assert native.first_rejections == reference.first_rejections
    assert native.first_rejected_lines == reference.first_rejected_lines
    assert native.fired == reference.fired


def test_the_engine_is_built_and_used_by_default():
    assert NATIVE
    assert _replay.Engine is not None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_the_compiled_replay_reports_what_the_reference_reports(lines):
    assert_same(*reports(lines, DETECTOR))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.randoms(use_true_random=False))
def test_shuffled_histories_give_the_same_report_with_either(lines, rng):
    rng.shuffle(lines)
    assert_same(*reports(lines, DETECTOR))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.integers(2, 4))
def test_each_share_of_an_export_is_replayed_alike(lines, count):
    for index in range(count):
        assert_same(*reports(lines, DETECTOR, share=Share(index, count)))


CONFIGS = [
    DetectorConfig(
        calendar=WorkingCalendar(weekend=()),
        quiet_default_days=3.5,
        quiet_by_stage={"proposal": 2.0, "negotiation": 0.0},
        quiet_tier_factor={"key": 0.5},
        quiet_by_stage_tier={"demo/small": 1.25},
        stage_progress_counts_as_activity=False,
        close_date_pushes=1,
        close_date_slip_days=5,
        amount_cut_share=0.1,
        revise_window_seconds=30 * 86_400.0,
        signal_window_seconds=10 * 86_400.0,
        signals_kept=2,
        grace_seconds=0.0,
        qualifying_kinds=frozenset({"meeting"}),
        qualifying_directions=frozenset({"inbound", "outbound", "internal"}),
    ),
    DetectorConfig(quiet_default_days=30.0, signals_kept=12, grace_seconds=86_400.0 * 3),
]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.sampled_from(range(len(CONFIGS))))
def test_other_configurations_give_the_same_report_with_either(lines, which):
    detector = Detector(CONFIGS[which], DETECTOR.lexicon)
    assert_same(*reports(lines, detector))


def test_a_generated_crm_history_gives_the_same_report_with_either():
    lines = list(generic_lines(20_000, now=time.time()))
    native, reference = reports(lines, DETECTOR)
    assert sum(native.opened.values()) > 1_000  # the history interrupts deals of every kind
    assert {kind for kind, _ in native.opened} == {
        "went_quiet",
        "reassigned",
        "contact_left",
        "stalled",
        "closed_lost",
    }
    assert_same(native, reference)


def test_the_engine_refuses_to_make_messages():
    try:
        replay_share([], DETECTOR, emit=lambda *_: None, native=True)
    except ValueError as exc:
        assert "no messages" in str(exc)
    else:
        raise AssertionError("the compiled replay accepted an emit")


def test_replay_with_messages_runs_the_reference_and_agrees():
    lines = list(generic_lines(2_000, now=time.time()))
    messages: list[dict[str, Any]] = []
    with_messages = replay(lines, DETECTOR, until=UNTIL, emit=messages.append)
    assert_same_summary = replay(lines, DETECTOR, until=UNTIL)
    assert with_messages.summary() == assert_same_summary.summary()
    opened = [m for m in messages if m.get("revision") == 0]
    assert len(opened) == sum(with_messages.opened.values())


# deal ids whose keys (generic:<id>) share a CRC-32, the hash the engine finds a deal by: short ones, compared as
# bytes, and long ones, compared as text (found by a birthday search)
SAME_HASH = (
    ("dff81d0f447", "d69d19deb1c"),
    ("long-deal-id-" + "x" * 40 + "29685295", "long-deal-id-" + "x" * 40 + "32060020"),
)


def test_deals_whose_keys_share_a_hash_are_told_apart():
    import zlib

    lines = []
    for pair in SAME_HASH:
        assert len({zlib.crc32(f"generic:{deal}".encode()) for deal in pair}) == 1
        for n, deal in enumerate(pair):
            for day in range(3):
                event = {
                    "event_id": f"{deal}-{day}",
                    "type": "deal.updated",
                    "occurred_at": (START + timedelta(days=day)).isoformat(),
                    "deal": {"id": deal, "stage": "demo", "status": "open", "owner_id": f"u{n}-{day}"},
                }
                lines.append(json.dumps(event).encode())
    native, reference = reports([line.decode() for line in lines], DETECTOR)
    assert native.deals == 4
    assert sum(n for (kind, _), n in native.opened.items() if kind == "reassigned") == 8  # two on each deal
    assert_same(native, reference)
