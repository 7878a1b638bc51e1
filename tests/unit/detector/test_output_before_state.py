"""A batch's interruptions are acknowledged before the states that remember them reach the changelog.

Killed between the two, the detector takes the batch's events again from the older states and repeats what it
said (same ids); in the other order the recovered newer states would take those events as redeliveries and
what was not yet said would be lost (found by tests/integration/faults/test_crashes.py).
"""

from __future__ import annotations

import asyncio
import json

from services.common.settings import Settings
from services.detector.processor import DetectorProcessor, Incoming
from services.detector.wiring import build_detector
from tests.unit.detector.events import change, created, days_ago


async def test_the_changelog_is_written_only_once_the_interruptions_are_acknowledged() -> None:
    acks: list[asyncio.Future[None]] = []
    said: list[str] = []
    written: list[tuple[bytes, int]] = []

    async def send_interruption(key: bytes, value: bytes) -> asyncio.Future[None]:
        said.append(json.loads(value)["kind"])
        acks.append(asyncio.get_running_loop().create_future())
        return acks[-1]

    async def send_dead_letter(key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        raise AssertionError("nothing here is dead")

    processor = DetectorProcessor(
        detector=build_detector(Settings()),
        store={},
        changelog=lambda p, k, v: written.append((k, len(acks))),
        send_interruption=send_interruption,
        send_dead_letter=send_dead_letter,
        ticks_topic="ticks",
    )
    events = [
        created("D-1", at=days_ago(2), owner="u-1"),
        change("D-1", at=days_ago(1), deal={"owner_id": "u-2"}, previous={"owner_id": "u-1"}),
    ]
    batch = [Incoming("changes", 0, b"generic:D-1", json.dumps(e).encode()) for e in events]
    step = asyncio.create_task(processor.process(batch))
    for _ in range(50):  # the step runs until it waits for the acknowledgement
        await asyncio.sleep(0)
    assert said == ["reassigned"]
    assert written == [], "a state reached the changelog before its interruption was acknowledged"
    acks[0].set_result(None)
    await asyncio.wait_for(step, timeout=5)
    assert written == [(b"generic:D-1", 1)]
