"""The detector's stream step: decode, call the pure rules, keep state, send what they decide.

Works on a batch of events at a time; each deal's state is written once per batch (to the table's store and its
changelog, on the deal's own partition). Ticks (one per partition, from the timer) run the quiet check inside the
stream, so every state write happens in stream processing.

The table's store holds each deal as compact bytes (a few hundred per deal, for a million deals); the states of the
deals seen most recently are also kept decoded (``cache_size`` of them), so that a busy deal is not decoded again
for every batch. Both are written together, and the cache is dropped whenever partitions move (the store is then
refilled from the changelog, which the cache would not see).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from services.common.broker import dlq_headers
from services.detector import metrics
from services.detector.domain.deadlines import DeadlineHeap
from services.detector.domain.event import BadEvent, check, loads, parse_time
from services.detector.domain.messages import to_message
from services.detector.domain.outcomes import Opened, Outcome
from services.detector.domain.rules import Detector
from services.detector.domain.state import DealState

log = logging.getLogger(__name__)

Send = Callable[[bytes, bytes], Awaitable[Any]]
SendDead = Callable[[bytes | None, bytes, list[tuple[str, bytes]]], Awaitable[Any]]
Changelog = Callable[[int, bytes, bytes], Any]


@dataclass(frozen=True, slots=True)
class Incoming:
    """What the processor needs of a consumed record."""

    topic: str
    partition: int
    key: bytes | None
    value: bytes | None


@dataclass
class DetectorProcessor:
    detector: Detector
    store: MutableMapping[bytes, bytes]
    changelog: Changelog
    send_interruption: Send
    send_dead_letter: SendDead
    ticks_topic: str
    commands_topic: str = ""
    clock: Callable[[], float] = time.time
    cache_size: int = 20_000
    changelog_done: Callable[[], Awaitable[Any]] | None = None
    """Called once the batch's states are all written (``changelog``): hands what it holds to the producer."""
    rebuild_slice: float = 0.2
    """Seconds of heap rebuilding per call at most, so that a big table does not stall the stream."""
    heaps: dict[int, DeadlineHeap] = field(default_factory=dict)
    built: set[int] = field(default_factory=set)
    cache: dict[bytes, DealState] = field(default_factory=dict)
    scanning: set[int] = field(default_factory=set)
    waiting: set[int] = field(default_factory=set)
    _scan: Iterator[bytes] | None = None

    @property
    def rebuilding(self) -> set[int]:
        """Partitions whose deadlines are still being read back from the table."""
        return self.scanning | self.waiting

    async def process(self, batch: Iterable[Incoming]) -> None:
        now = self.clock()
        dirty: dict[bytes, DealState] = {}
        outgoing: list[tuple[bytes, Outcome, DealState]] = []
        records = batch if isinstance(batch, list) else list(batch)
        for rec in records:
            p = rec.partition
            if rec.topic == self.ticks_topic and p not in self.built and p not in self.scanning:
                self.waiting.add(p)  # its heap is read back from the table first
        if self.scanning or self.waiting:
            self._rebuild_some()
        changes = 0
        for rec in records:
            if rec.topic == self.ticks_topic:
                self._tick(rec.partition, now, dirty, outgoing)
            elif rec.topic == self.commands_topic:
                await self._command(rec, dirty)
            else:
                changes += 1
                await self._change(rec, now, dirty, outgoing)
        if changes:  # counted once a batch: each update of a counter takes its lock
            metrics.EVENTS.inc(changes)
        # What the batch decided is in the broker before the states that remember deciding it: killed in between,
        # the detector takes the batch's events again from the older states and says the same again (same ids).
        # The other order could lose it: the newer states, recovered, would take those events as redeliveries.
        acks = []
        for key, outcome, state in outgoing:
            message = to_message(outcome, state, key.decode(), now)
            sent = await self.send_interruption(key, message.model_dump_json().encode())
            if inspect.isawaitable(sent):
                acks.append(sent)
            metrics.OUTCOMES.labels(kind=outcome.kind, what=_what(outcome)).inc()
        if acks:
            await asyncio.gather(*acks)
        for key, state in dirty.items():
            raw = state.encode()
            self.store[key] = raw
            self._remember(key, state)
            written = self.changelog(state.partition, key, raw)
            if inspect.isawaitable(written):
                await written
        if dirty and self.changelog_done is not None:
            await self.changelog_done()
        metrics.PENDING.set(sum(len(h) for h in self.heaps.values()))

    async def _change(
        self,
        rec: Incoming,
        now: float,
        dirty: dict[bytes, DealState],
        outgoing: list[tuple[bytes, Outcome, DealState]],
    ) -> None:
        try:
            if not rec.value:
                raise BadEvent("empty message")
            event = loads(rec.value)
            if type(event) is not dict or type(event.get("source")) is not str:
                check(event)  # raises, saying what is wrong
            elif type(event.get("deal_id")) is not str:
                check(event)
        except (BadEvent, ValueError, RecursionError) as exc:
            await self._dead(rec, f"invalid change event: {str(exc)[:300]}")
            return
        deal_key = f"{event['source']}:{event['deal_id']}"
        key = deal_key.encode()
        try:
            state = dirty.get(key) or self._load(key)
            # apply() checks the rest of the event before it changes anything
            applied = self.detector.apply(state, event, deal_key=deal_key, partition=rec.partition, now=now)
        except BadEvent as exc:
            await self._dead(rec, f"invalid change event: {exc}")
            return
        except Exception as exc:
            log.exception("detector rules failed on event %s", event.get("event_id"))
            if key not in dirty:
                self.cache.pop(key, None)  # possibly half-changed; the store still has the last good state
            await self._dead(rec, f"detector error: {type(exc).__name__}: {str(exc)[:200]}")
            return
        if applied.duplicate:
            metrics.DUPLICATES.inc()
            return
        dirty[key] = applied.state
        outgoing.extend((key, o, applied.state) for o in applied.outcomes)
        due = self.detector.next_check(applied.state)
        if due is not None:
            self._heap(rec.partition).push(key, due)

    async def _command(self, rec: Incoming, dirty: dict[bytes, DealState]) -> None:
        try:
            command = loads(rec.value or b"")
            if not isinstance(command, dict) or command.get("event") != "DealSnoozed":
                raise BadEvent("not a DealSnoozed command")
            deal_key, command_id = command["deal_key"], command["command_id"]
            if not isinstance(deal_key, str) or not isinstance(command_id, str):
                raise BadEvent("deal_key and command_id must be strings")
            until = parse_time(command["until"]) if command.get("until") is not None else None
        except (BadEvent, KeyError, ValueError, RecursionError) as exc:
            await self._dead(rec, f"invalid command: {str(exc)[:300]}")
            return
        key = deal_key.encode()
        state = dirty.get(key) or self._load(key)
        applied = self.detector.snooze(state, command_id, until, partition=rec.partition)
        if applied.duplicate:
            return
        dirty[key] = applied.state
        due = self.detector.next_check(applied.state)
        if due is not None:
            self._heap(rec.partition).push(key, due)

    def _tick(
        self,
        partition: int,
        now: float,
        dirty: dict[bytes, DealState],
        outgoing: list[tuple[bytes, Outcome, DealState]],
    ) -> None:
        heap = self._heap(partition)
        started = time.perf_counter()
        for key in heap.pop_due(now):
            state = dirty.get(key) or self._load(key)
            if state is None or state.partition != partition:
                continue
            opened, again = self.detector.check_quiet(state, deal_key=key.decode(), now=now)
            if opened:
                dirty[key] = state
                outgoing.extend((key, o, state) for o in opened)
            if again is not None:
                heap.push(key, again)
        metrics.QUIET_CHECK_SECONDS.observe(time.perf_counter() - started)

    def _rebuild_some(self) -> None:
        """After an assignment: the deals of the partitions waiting for it back on their heaps, from the table.

        One pass over the table serves every partition that was waiting when it began (each state is decoded
        once, whatever its partition); it goes on where it stopped at the next call, so that the stream keeps
        flowing meanwhile (a deal that has an event in between is scheduled by that event as well; a deadline
        already past fires at the next tick). Partitions assigned during a pass wait for the next one.
        """
        if self._scan is None:
            if not self.waiting:
                return
            self.scanning, self.waiting = self.waiting, set()
            self._scan = iter(list(self.store.keys()))
        started = time.perf_counter()
        scanning, store, cache = self.scanning, self.store, self.cache
        for n, key in enumerate(self._scan, 1):
            state = cache.get(key)
            if state is None:
                raw = store.get(key)
                if raw is None:
                    continue
                try:
                    state = DealState.decode(raw)
                except ValueError:
                    continue
            if state.partition in scanning:
                due = self.detector.next_check(state)
                if due is not None:
                    self._heap(state.partition).push(key, due)
            if n % 512 == 0 and time.perf_counter() - started > self.rebuild_slice:
                return
        self.built |= scanning
        self.scanning = set()
        self._scan = None

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions moved: their heaps are rebuilt when they come back; decoded states are read afresh."""
        for p in partitions:
            self.heaps.pop(p, None)
            self.built.discard(p)
            self.scanning.discard(p)
            self.waiting.discard(p)
        if not self.scanning:
            self._scan = None
        self.cache.clear()

    def _heap(self, partition: int) -> DeadlineHeap:
        heap = self.heaps.get(partition)
        if heap is None:
            heap = self.heaps[partition] = DeadlineHeap()
        return heap

    def _load(self, key: bytes) -> DealState | None:
        state = self.cache.get(key)
        if state is not None:
            return state
        raw = self.store.get(key)
        if raw is None:
            return None
        try:
            state = DealState.decode(raw)
        except (ValueError, json.JSONDecodeError):
            log.error("unreadable state for %r; starting afresh", key)
            return None
        self._remember(key, state)
        return state

    def _remember(self, key: bytes, state: DealState) -> None:
        cache = self.cache
        if key not in cache and len(cache) >= self.cache_size:
            if self.cache_size <= 0:
                return
            del cache[next(iter(cache))]  # the oldest entry
        cache[key] = state

    async def _dead(self, rec: Incoming, reason: str) -> None:
        metrics.DEAD_LETTERS.labels(reason=reason.split(":", 1)[0]).inc()
        headers = dlq_headers(
            reason,
            source=_source_of(rec.key),
            stage="detector",
            extra={"dlq.topic": rec.topic, "dlq.partition": str(rec.partition)},
        )
        await self.send_dead_letter(rec.key, rec.value or b"", headers)


def _what(outcome: Outcome) -> str:
    if isinstance(outcome, Opened):
        return "revised" if outcome.revision else "opened"
    return "resumed"


def _source_of(key: bytes | None) -> str:
    if not key:
        return "unknown"
    return key.split(b":", 1)[0].decode("utf-8", "replace")[:32]
