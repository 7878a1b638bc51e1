"""Offline replay: run the detector's own rules over a history export (JSONL of generic events) and report what
would have fired, so that a team can tune thresholds before going live.

Two implementations make the same report: ``replay_share`` below, the reference, which also makes the messages
(``--out``), and the compiled engine in ``domain/_replay.pyx`` (the same rules over C fields, with its own reader of
the export's lines), which the report alone uses where it is built; the tests hold the two equal.

Time is simulated per deal: each event happens at its ``occurred_at``; a deal's quiet deadline that falls between
two of its events fires at that deadline, and deadlines still pending at the end fire up to ``until``. Exports are
usually grouped by deal, so no global order is needed: a deal's own lines in time order give exact results. No
broker, no database.
"""

from __future__ import annotations

import bisect
import gc
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from services.detector.domain.event import BadEvent, loads, parse_time
from services.detector.domain.messages import to_message
from services.detector.domain.outcomes import Opened, Outcome
from services.detector.domain.rules import Detector
from services.detector.domain.state import DealState

try:
    from services.detector.domain._replay import Engine

    NATIVE = True
    """Whether the replay's compiled engine is built; the tests require it."""
except ImportError:  # not built (no C compiler at install): the Python reference does the same, slower
    NATIVE = False


@dataclass
class ReplayReport:
    events: int = 0
    duplicates: int = 0
    deals: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    opened: Counter[tuple[str, str]] = field(default_factory=Counter)
    revised: int = 0
    resumed: int = 0
    first_rejections: list[str] = field(default_factory=list)
    first_rejected_lines: list[int] = field(default_factory=list)
    """The line number of each of ``first_rejections``."""
    fired: dict[str, Counter[str]] | None = None
    """With ``by_deal``: how many interruptions of each kind opened for each deal (revisions not counted)."""

    def summary(self) -> dict[str, Any]:
        kinds: Counter[str] = Counter()
        for (kind, _), n in self.opened.items():
            kinds[kind] += n
        return {
            "events": self.events,
            "duplicates": self.duplicates,
            "deals": self.deals,
            "interruptions": sum(kinds.values()),
            "by_kind": _most_first(kinds),
            "by_kind_and_cause": {f"{k}/{c}": n for (k, c), n in _most_first(self.opened).items()},
            "revised": self.revised,
            "resumed": self.resumed,
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": _most_first(self.rejected),
        }

    def add(self, other: ReplayReport) -> None:
        """Take in the report of another share of the same export (its deals are not in this one)."""
        self.events += other.events
        self.duplicates += other.duplicates
        self.deals += other.deals
        self.rejected.update(other.rejected)
        self.opened.update(other.opened)
        self.revised += other.revised
        self.resumed += other.resumed
        first = sorted(
            zip(
                [*self.first_rejected_lines, *other.first_rejected_lines],
                [*self.first_rejections, *other.first_rejections],
                strict=True,
            )
        )[:MAX_EXAMPLES]
        self.first_rejected_lines = [number for number, _ in first]
        self.first_rejections = [text for _, text in first]
        if other.fired is not None:
            self.fired = {**(self.fired or {}), **other.fired}


def differences(here: ReplayReport, there: ReplayReport, examples: int = 5) -> dict[str, Any]:
    """Which deals open more interruptions of a kind in one replay of an export than in another (both made with
    ``by_deal``): for each kind, how many deals and the first few of them by key."""
    if here.fired is None or there.fired is None:
        raise ValueError("both replays must keep what opened for each deal (by_deal)")
    more: dict[str, tuple[list[str], list[str]]] = {}
    differ = 0
    for key in sorted(here.fired.keys() | there.fired.keys()):
        a, b = here.fired.get(key, Counter()), there.fired.get(key, Counter())
        if a == b:
            continue
        differ += 1
        for kind in a.keys() | b.keys():
            if a[kind] != b[kind]:
                more.setdefault(kind, ([], []))[0 if a[kind] > b[kind] else 1].append(key)
    return {
        "deals": differ,
        "by_kind": {
            kind: {
                "more_here": len(mine),
                "more_compared": len(theirs),
                "examples_here": mine[:examples],
                "examples_compared": theirs[:examples],
            }
            for kind, (mine, theirs) in sorted(more.items())
        },
    }


def _most_first(counts: Counter[Any]) -> dict[Any, int]:
    """Most frequent first, ties by name: the same order however the counts were gathered."""
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


MAX_EXAMPLES = 10
"""Rejected lines quoted in a report."""


@dataclass(frozen=True)
class Share:
    """One of ``count`` disjoint parts of an export's deals, chosen by a hash of the deal key that every process
    computes alike: a replay of each share, merged, is the replay of the whole."""

    index: int
    count: int

    def owns(self, key: str) -> bool:
        return self.count == 1 or zlib.crc32(key.encode()) % self.count == self.index

    @property
    def first(self) -> bool:
        """The share that counts what belongs to no deal (lines that are not events with a deal id)."""
        return self.index == 0


WHOLE = Share(0, 1)
"""Every deal: the replay in one process."""


Emit = Callable[[dict[str, Any]], None]
EmitInOrder = Callable[[int, int, dict[str, Any]], None]
"""Takes each message with where it falls in a whole replay's output: the line whose event caused it, or, for
deadlines fired at the end, ``END`` and the line that made the deal's deadline pending (one process fires them in
that order)."""
END = 1 << 62


def as_change(raw: Any, source: str) -> dict[str, Any]:
    """A generic event (one line of the export) as the change event the detector reads."""
    if not isinstance(raw, dict):
        raise BadEvent("a line must hold one JSON object")
    deal = raw.get("deal")
    if not isinstance(deal, dict) or deal.get("id") in (None, ""):
        raise BadEvent("deal.id is missing")
    deal_id = str(deal["id"])
    raw["source"] = raw.get("source") or source
    raw["deal_id"] = deal_id
    return raw


def replay(
    lines: Iterable[bytes | str],
    detector: Detector,
    *,
    until: float | None = None,
    source: str = "generic",
    emit: Emit | None = None,
    progress: Callable[[int], None] | None = None,
    native: bool | None = None,
) -> ReplayReport:
    """Replay ``lines`` in this process; ``emit`` takes every message in the order the replay made them
    (``native``: see ``replay_share``)."""
    return replay_share(
        lines,
        detector,
        native=native,
        until=until,
        source=source,
        emit=None if emit is None else (lambda _line, _then, message: emit(message)),
        progress=progress,
    )


_LEFT_FOR_EXIT: list[Any] = []
"""The engines of replays whose process is about to end (``replay_share(exiting=True)``)."""


def replay_share(
    lines: Iterable[bytes | str],
    detector: Detector,
    *,
    until: float | None = None,
    source: str = "generic",
    emit: EmitInOrder | None = None,
    progress: Callable[[int], None] | None = None,
    share: Share = WHOLE,
    by_deal: bool = False,
    native: bool | None = None,
    exiting: bool = False,
    window: int | None = None,
) -> ReplayReport:
    """Replay the deals of ``share`` found in ``lines``; ``by_deal`` keeps what opened for each deal in the
    report (``fired``). ``exiting``: this process ends once the report is sent (a forked share's worker), so
    the compiled engine's state is left for the exit to free, not freed a deal at a time (a twentieth of a
    share's time).

    Without ``emit``, the compiled engine (``domain/_replay.pyx``) makes the same report where it is built, about
    ten times faster, for a ``Detector`` (not a subclass or a stand-in, whose rules may differ); ``native`` False
    asks for the Python reference, True requires the engine. Messages are made by the reference. Lines given in
    pieces (``ExportLines``) are replayed a deal at a time, ``window`` bytes of the share's lines at a time
    (``_replay.WINDOW`` unless given; the same report).
    """
    report = ReplayReport(fired={} if by_deal else None)
    if native is None:  # the engine is the rules of ``Detector`` itself: not of a subclass, nor a stand-in
        native = NATIVE and emit is None and type(detector) is Detector
    if native:
        if emit is not None:
            raise ValueError("the compiled replay makes no messages")
        engine = Engine(detector)
        engine.replay(
            lines,
            report,
            until=until,
            source=source,
            progress=progress,
            share_index=share.index,
            share_count=share.count,
            reject=_reject,
            keep=exiting,
            window=window,
        )
        if exiting:
            _LEFT_FOR_EXIT.append(engine)
            # and out of the cycle collector's sight: a full collection would walk every deal's state again
            gc.freeze()
        return report
    fired = report.fired
    states: dict[str, DealState] = {}
    due: dict[str, float] = {}
    # the line that put each deal in ``due``: the order of the deadlines fired at the end
    since: dict[str, int] = {}

    def record(key: str, state: DealState, outcomes: list[Outcome], now: float, at: tuple[int, int]) -> None:
        for o in outcomes:
            if isinstance(o, Opened):
                if o.revision:
                    report.revised += 1
                else:
                    report.opened[(o.kind, o.cause)] += 1
                    if fired is not None:
                        fired.setdefault(key, Counter())[o.kind] += 1
            else:
                report.resumed += 1
            if emit is not None:
                emit(*at, to_message(o, state, key, now).model_dump(mode="json"))

    def expire(key: str, upto: float, at: tuple[int, int]) -> None:
        when = due.get(key)
        while when is not None and when <= upto:
            state = states[key]
            opened, again = detector.check_quiet(state, deal_key=key, now=when)
            record(key, state, opened, when, at)
            when = again if again is not None and again > when else None
        if when is None:
            due.pop(key, None)
        else:
            due[key] = when

    for number, line in enumerate(lines, 1):
        if progress is not None and number % 10_000 == 0:
            progress(number)
        if not line or (isinstance(line, bytes | str) and not line.strip()):
            continue
        try:
            event = as_change(loads(line), source)
        except (BadEvent, ValueError, RecursionError) as exc:
            if share.first:
                _reject(report, number, exc)
            continue
        key = f"{event['source']}:{event['deal_id']}"
        if not share.owns(key):
            continue
        try:
            t = float(parse_time(event.get("occurred_at")))
        except (BadEvent, ValueError) as exc:
            _reject(report, number, exc)
            continue
        if key in due:
            expire(key, t, (number, 0))
        state = states.get(key)
        try:
            applied = detector.apply(state, event, deal_key=key, partition=0, now=t)
        except BadEvent as exc:
            _reject(report, number, exc)
            continue
        report.events += 1
        if applied.duplicate:
            report.duplicates += 1
            continue
        states[key] = applied.state
        record(key, applied.state, applied.outcomes, t, (number, 0))
        check = detector.next_check(applied.state)
        if check is None:
            due.pop(key, None)
        else:
            if key not in due:
                since[key] = number
            due[key] = check
    if until is not None:
        for key in list(due):
            expire(key, until, (END, since[key]))
    report.deals = len(states)
    return report


def _reject(report: ReplayReport, number: int, exc: Exception) -> None:
    reason = str(exc).split(":")[0][:80] or type(exc).__name__
    report.rejected[reason] += 1
    # the first lines refused, by number, in whatever order they are refused (the compiled engine refuses lines a
    # deal at a time)
    lines = report.first_rejected_lines
    if len(lines) < MAX_EXAMPLES or number < lines[-1]:
        at = bisect.bisect(lines, number)
        lines.insert(at, number)
        report.first_rejections.insert(at, f"line {number}: {str(exc)[:160]}")
        del lines[MAX_EXAMPLES:], report.first_rejections[MAX_EXAMPLES:]
