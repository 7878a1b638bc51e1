"""Comparisons of what came out with what the oracle says, as lists of differences (empty when they agree)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from schemas.topics import Topics
from services.detector.domain.state import DealState, short_hash
from tests.conftest import eventually
from tests.helpers import read_topic
from tests.integration.faults.conftest import Stored, stored, topic_values
from tests.integration.faults.oracle import Verdicts, comparable, final_states, observed


def verdict_differences(expected: Verdicts, seen: Verdicts, limit: int = 10) -> list[str]:
    """Interruptions missing, extra or with another verdict on the topic; episodes resumed or not."""
    problems: list[str] = []
    missing = sorted(set(expected.opened) - set(seen.opened))
    extra = sorted(set(seen.opened) - set(expected.opened))
    if missing:
        problems.append(f"{len(missing)} interruptions lost: {[expected.opened[i] for i in missing[:limit]]}")
    if extra:
        problems.append(
            f"{len(extra)} interruptions not in the oracle: {[seen.opened[i] for i in extra[:limit]]}"
        )
    other = [
        (expected.opened[i], seen.opened[i])
        for i in expected.opened.keys() & seen.opened.keys()
        if expected.opened[i] != seen.opened[i]
    ]
    if other:
        problems.append(f"{len(other)} interruptions with another verdict (oracle, seen): {other[:limit]}")
    if expected.resumed != seen.resumed:
        problems.append(
            f"resumed episodes differ: {len(expected.resumed - seen.resumed)} missing, "
            f"{len(seen.resumed - expected.resumed)} extra"
        )
    return problems


def stored_differences(expected: Verdicts, db: Stored, limit: int = 10) -> list[str]:
    """The database against the oracle: every interruption once with its latest verdict, one task each."""
    problems: list[str] = []
    want = {
        i: (v.kind, v.cause, v.side, v.revision, "resumed" if i in expected.resumed else "open")
        for i, v in expected.opened.items()
    }
    missing = sorted(want.keys() - db.interruptions.keys())
    extra = sorted(db.interruptions.keys() - want.keys())
    if missing:
        problems.append(f"{len(missing)} interruptions not stored: {[want[i] for i in missing[:limit]]}")
    if extra:
        problems.append(f"{len(extra)} stored interruptions not in the oracle: {extra[:limit]}")
    other = [
        (want[i], db.interruptions[i])
        for i in want.keys() & db.interruptions.keys()
        if want[i] != db.interruptions[i]
    ]
    if other:
        problems.append(f"{len(other)} stored interruptions differ (oracle, stored): {other[:limit]}")
    if db.tasks != db.distinct_task_interruptions:
        problems.append(
            f"duplicate tasks: {db.tasks} tasks for {db.distinct_task_interruptions} interruptions"
        )
    if db.task_interruptions != set(want):
        problems.append(
            f"tasks: {len(set(want) - db.task_interruptions)} interruptions without a task, "
            f"{len(db.task_interruptions - set(want))} tasks for interruptions not in the oracle"
        )
    return problems


async def state_differences(
    bootstrap: str, topics: Topics, expected: Verdicts, limit: int = 5
) -> tuple[list[str], set[str]]:
    """Each deal's last state in the detector's changelog against the oracle's: a state forgotten across a
    restart shows here even when no verdict depends on it. The differences, and the deals that differ."""
    changelog = f"{topics.prefix}dealwatch-detector-deals-changelog"
    records = await read_topic(bootstrap, changelog, timeout=120)
    stored = final_states((r.key, r.value) for r in records if r.key is not None and r.value is not None)
    problems: list[str] = []
    missing = sorted(expected.states.keys() - stored.keys())
    if missing:
        problems.append(f"{len(missing)} deals without a stored state: {missing[:limit]}")
    differ: dict[str, str] = {}
    for key in sorted(expected.states.keys() & stored.keys()):
        want, got = comparable(expected.states[key]), comparable(stored[key])
        if want != got:
            fields = sorted(f for f in want if want[f] != got[f])
            differ[key] = f"{key}: {[(f, want[f], got[f]) for f in fields][:4]}"
    if differ:
        shown = list(differ.values())[:limit]
        problems.append(f"{len(differ)} deals whose stored state differs (field, oracle, stored): {shown}")
    return problems, set(missing) | set(differ)


async def trace_deals(bootstrap: str, topics: Topics, deal_keys: set[str], limit: int = 6) -> str:
    """For a failure message: where each deal's change events, table states (changelog) and interruption
    messages are on their topics, with the event ids each stored state had taken in."""
    keys = sorted(deal_keys)[:limit]
    wanted = {k.encode() for k in keys}
    changelog = f"{topics.prefix}dealwatch-detector-deals-changelog"
    lines: list[str] = []
    found: dict[str, list[str]] = {k: [] for k in keys}
    for topic in (topics.deal_changes, changelog, topics.interruptions):
        for r in await read_topic(bootstrap, topic, timeout=120):
            if r.key not in wanted or r.value is None:
                continue
            key = r.key.decode()
            where = f"{topic.removeprefix(topics.prefix)}[{r.partition}]@{r.offset}"
            if topic == topics.deal_changes:
                found[key].append(f"{where} event {json.loads(r.value)['event_id']}")
            elif topic == changelog:
                seen = DealState.decode(r.value).seen
                events = [e.split(" event ")[1] for e in found[key] if " event " in e]
                taken = [e for e in events if short_hash(e) in seen]
                found[key].append(f"{where} state having taken in {taken}")
            else:
                m = json.loads(r.value)
                ident = m.get("id") or m.get("interruption_id")
                found[key].append(f"{where} {m['event']} {m['kind']} {ident} rev {m.get('revision', '-')}")
    for key in keys:
        lines.append(key)
        lines.extend(f"    {entry}" for entry in found[key])
    return "\n".join(lines)


def deals_of(expected: Verdicts, seen: Verdicts) -> set[str]:
    """Deals whose interruptions differ between the oracle and what was seen."""
    deals = set()
    for ident in expected.opened.keys() | seen.opened.keys():
        if expected.opened.get(ident) != seen.opened.get(ident):
            deals.add((expected.opened.get(ident) or seen.opened[ident]).deal_key)
    return deals


async def assert_as_the_oracle(
    bootstrap: str,
    topics: Topics,
    expected: Verdicts,
    said: list[bytes],
    database_url: str,
    context: str = "",
) -> tuple[Verdicts, Stored]:
    """The interruptions ``said``, each deal's stored state (from the changelog) and the database all as the
    oracle's; on a difference, the trace of the deals concerned (and ``context``) in the failure."""
    seen = observed(said)
    problems = verdict_differences(expected, seen)
    if problems:
        trace = await trace_deals(bootstrap, topics, deals_of(expected, seen))
        raise AssertionError("\n".join([*problems, context, trace]))
    problems, deals = await state_differences(bootstrap, topics, expected)
    if problems:
        trace = await trace_deals(bootstrap, topics, deals)
        raise AssertionError("\n".join([*problems, context, trace]))
    db = await asyncio.to_thread(stored, database_url)
    problems = stored_differences(expected, db)
    assert not problems, "\n".join(problems)
    return seen, db


async def tasks_published(bootstrap: str, topics: Topics, expected: Verdicts) -> Counter[str]:
    """How often each interruption's task was published as created, once every expected one is (polled)."""

    async def every_task_published() -> Counter[str] | None:
        created = Counter(
            m["task"]["interruption_id"]
            for m in map(json.loads, await topic_values(bootstrap, topics.recovery_tasks))
            if m["event"] == "RecoveryTaskCreated"
        )
        return created if set(created) >= set(expected.opened) else None

    created: Counter[str] = await eventually(
        every_task_published, timeout=60, interval=0.5, what="every task published"
    )
    assert set(created) == set(expected.opened)
    return created
