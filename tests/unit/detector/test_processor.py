"""The stream step with an in-memory table store and recording senders (no broker: the worker test has one)."""

from __future__ import annotations

import json
from datetime import timedelta

from schemas.commands import DealSnoozed
from services.common.settings import Settings
from services.detector.processor import DetectorProcessor, Incoming
from services.detector.wiring import build_detector
from tests.unit.detector.events import NOW, activity, created, days_ago

CHANGES, TICKS, COMMANDS = "changes", "ticks", "commands"


class Recorder:
    def __init__(self) -> None:
        self.interruptions: list[dict[str, object]] = []
        self.dead: list[tuple[bytes | None, dict[str, bytes]]] = []
        self.changelog: list[tuple[int, bytes]] = []

    async def send_interruption(self, key: bytes, value: bytes) -> None:
        self.interruptions.append(json.loads(value))

    async def send_dead_letter(
        self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        self.dead.append((key, dict(headers)))


def processor(rec: Recorder, now: list[float]) -> DetectorProcessor:
    return DetectorProcessor(
        detector=build_detector(Settings(quiet={"grace_seconds": 1})),
        store={},
        changelog=lambda p, k, v: rec.changelog.append((p, k)),
        send_interruption=rec.send_interruption,
        send_dead_letter=rec.send_dead_letter,
        ticks_topic=TICKS,
        commands_topic=COMMANDS,
        clock=lambda: now[0],
    )


def change(ev: dict[str, object]) -> Incoming:
    return Incoming(CHANGES, 1, b"generic:D-1", json.dumps(ev).encode())


def snooze(until: object, command_id: str = "c-1") -> Incoming:
    body = DealSnoozed(
        command_id=command_id,
        deal_key="generic:D-1",
        source="generic",
        deal_id="D-1",
        until=until,
        reason="customer on holiday",
        requested_at=NOW,
    )
    return Incoming(COMMANDS, 1, b"generic:D-1", body.model_dump_json().encode())


async def test_a_snooze_command_holds_back_the_quiet_verdict_until_it_ends():
    rec, now = Recorder(), [NOW.timestamp()]
    p = processor(rec, now)
    await p.process(
        [change(created(at=days_ago(90))), change(activity(at=days_ago(60))), snooze(NOW + timedelta(days=3))]
    )
    now[0] += 60
    await p.process([Incoming(TICKS, 1, None, b"{}")])
    assert rec.interruptions == []
    now[0] = (NOW + timedelta(days=3, seconds=1)).timestamp()
    await p.process([Incoming(TICKS, 1, None, b"{}")])
    assert [m["kind"] for m in rec.interruptions] == ["went_quiet"]


async def test_the_changelog_is_told_once_a_batch_when_its_states_are_all_written():
    rec, now = Recorder(), [NOW.timestamp()]
    p = processor(rec, now)
    done: list[list[tuple[int, bytes]]] = []

    async def changelog_done() -> None:
        done.append(list(rec.changelog))

    p.changelog_done = changelog_done
    two = Incoming(CHANGES, 2, b"generic:D-2", json.dumps(created("D-2", at=days_ago(5))).encode())
    await p.process([change(created(at=days_ago(9))), two, change(activity(at=days_ago(2)))])
    assert done == [[(1, b"generic:D-1"), (2, b"generic:D-2")]]
    await p.process([Incoming(TICKS, 1, None, b"{}")])  # nothing written: nothing to hand over
    assert len(done) == 1


async def test_state_is_written_once_per_deal_per_batch_on_its_partition():
    rec, now = Recorder(), [NOW.timestamp()]
    p = processor(rec, now)
    await p.process([change(created(at=days_ago(9))), change(activity(at=days_ago(2))), snooze(None)])
    assert rec.changelog == [(1, b"generic:D-1")]


async def test_malformed_events_and_commands_go_to_dead_letters_and_the_rest_goes_on():
    rec, now = Recorder(), [NOW.timestamp()]
    p = processor(rec, now)
    await p.process(
        [
            Incoming(CHANGES, 0, b"generic:X", b"{not json"),
            Incoming(CHANGES, 0, b"generic:X", json.dumps({"event_id": "e"}).encode()),
            Incoming(COMMANDS, 0, b"generic:X", b'{"event": "DealSnoozed"}'),
            change(created(at=days_ago(9))),
        ]
    )
    assert [h["dlq.stage"] for _, h in rec.dead] == [b"detector"] * 3
    assert b"generic:D-1" in p.store


async def test_an_event_with_a_lone_surrogate_is_dead_lettered_not_kept_where_it_could_not_be_written():
    rec, now = Recorder(), [NOW.timestamp()]
    p = processor(rec, now)
    event = activity(at=days_ago(1), text="予算 X 凍結")
    broken = (
        json.dumps(event, ensure_ascii=True).replace("X", "\\ud800").encode()
    )  # as a producer may write it
    await p.process([change(created(at=days_ago(9))), Incoming(CHANGES, 1, b"generic:D-1", broken)])
    assert [h["dlq.reason"] for _, h in rec.dead] == [
        b"invalid change event: a string holds a lone UTF-16 surrogate"
    ]
    assert rec.changelog == [(1, b"generic:D-1")]  # the deal's state, written as the good event left it


async def test_after_an_assignment_the_deadlines_come_back_from_the_table_in_slices_while_events_flow():
    rec, now = Recorder(), [NOW.timestamp()]
    first = processor(rec, now)
    deals = [f"D-{i}" for i in range(1500)]
    for start in range(0, len(deals), 500):
        await first.process(
            [
                Incoming(
                    CHANGES, i % 2, f"generic:{d}".encode(), json.dumps(created(d, at=days_ago(90))).encode()
                )
                for i, d in enumerate(deals[start : start + 500], start)
            ]
        )
    assert rec.interruptions == []  # no tick yet
    # a new worker for the same table (a restart): nothing on its heaps until it reads them back
    p = processor(rec, now)
    p.store.update(first.store)
    p.rebuild_slice = 0.0  # one slice of 512 states per call: the work is spread over several calls
    now[0] += 60
    calls = 0
    late = Incoming(CHANGES, 0, b"generic:LATE", json.dumps(created("LATE", at=days_ago(90))).encode())
    while True:
        await p.process([Incoming(TICKS, 0, None, b"{}"), *([late] if calls == 1 else [])])
        calls += 1
        if not p.rebuilding:
            break
        assert calls < 10, "the rebuild never ends"
    now[0] += 2  # past the late deal's settle grace
    await p.process([Incoming(TICKS, 0, None, b"{}")])  # what came due during the rebuild fires now
    assert calls >= 3
    fired = sorted(m["deal_id"] for m in rec.interruptions)
    assert fired == sorted(
        [d for i, d in enumerate(deals) if i % 2 == 0] + ["LATE"]
    )  # partition 0, once each
