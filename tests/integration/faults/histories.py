"""Deal histories for the fault tests, in the generic webhook's format (version 1), deterministic per seed.

Every deal has a handful of events (never more than the detector remembers for dropping redeliveries), all in
the last two hours, so no deal goes quiet while a test runs: what comes out depends on the events alone, and the
pure detector over the same events is the oracle. The histories reach every event-driven kind: owner changes
(reassigned), contacts leaving (contact_left), amount cuts, stage moves backwards and close dates pushed
(stalled), losses (closed_lost), with notes naming causes in Japanese and English, and inbound activities and
wins that resume episodes.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from schemas import DealChanged

STAGES = ("qualification", "discovery", "proposal", "negotiation", "contract")
TIERS = ("key", "standard", "small")
NOTES = (
    "先方の予算が凍結され、今期の導入は難しいとのこと。",
    "競合他社の提案も比較検討中と聞いています。",
    "担当の田中様が来月退職されるとの連絡あり。",
    "先方の組織変更により、検討が一時中断となりました。",
    "Their budget was frozen for the rest of the fiscal year.",
    "They are also evaluating a competitor and say our price is too high.",
    "Procurement asked to push the decision to next quarter.",
    "見積書を送付しました。ご確認をお願いしています。",
)
LOST_REASONS = ("他社製品に決定", "予算不足のため見送り", "Chose a competitor", "No decision / timing")
MOVES = ("note", "outbound", "inbound", "owner", "contact", "cut", "push", "back", "close")
MOVE_WEIGHTS = (4, 2, 1, 3, 2, 1, 2, 1, 1)
MAX_EVENTS_PER_DEAL = 8


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds")


def deal_history(rng: random.Random, index: int, start: datetime) -> list[dict[str, Any]]:
    """One deal's events, oldest first: a creation, then up to seven changes a minute or so apart."""
    deal_id = f"F-{index:06d}"
    owner = f"u-{rng.randrange(40)}"
    stage = rng.randrange(1, len(STAGES) - 1)
    amount = rng.randrange(10, 500) * 10_000
    close = date(2027, 3, 31) - timedelta(days=rng.randrange(120))
    contacts = [f"C-{index}-{k}" for k in range(rng.randrange(1, 4))]
    t = start
    base = {"id": deal_id}
    events: list[dict[str, Any]] = [
        {
            "type": "deal.created",
            "deal": {
                **base,
                "name": f"Fault {index} rollout",
                "stage": STAGES[stage],
                "status": "open",
                "amount": amount,
                "currency": "JPY",
                "close_date": close.isoformat(),
                "owner_id": owner,
                "account_id": f"A-{index // 4}",
                "account_tier": rng.choice(TIERS),
            },
        }
    ]
    for c in contacts:
        events.append(
            {
                "type": "contact.changed",
                "deal": dict(base),
                "contact": {
                    "id": c,
                    "name": f"Contact {c}",
                    "title": rng.choice(("部長", "担当", "CFO")),
                    "change": "added",
                },
            }
        )
    closed = False
    target = min(MAX_EVENTS_PER_DEAL, len(events) + rng.randrange(2, 6))
    while len(events) < target:
        move = rng.choices(MOVES, MOVE_WEIGHTS)[0]
        if move == "note":
            events.append(_activity(base, "note", "internal", rng.choice(NOTES), owner))
        elif move == "outbound":
            events.append(_activity(base, "email", "outbound", "Sent the revised quote.", owner))
        elif move == "inbound":
            events.append(_activity(base, "email", "inbound", "Thanks, we will review it next week.", owner))
        elif move == "owner":
            new = f"u-{rng.randrange(40)}"
            if new != owner:
                events.append(
                    {
                        "type": "deal.updated",
                        "deal": {**base, "owner_id": new},
                        "previous": {"owner_id": owner},
                    }
                )
                owner = new
        elif move == "contact" and contacts:
            gone = contacts.pop(rng.randrange(len(contacts)))
            events.append(
                {
                    "type": "contact.changed",
                    "deal": dict(base),
                    "contact": {"id": gone, "change": rng.choice(("left_company", "removed"))},
                }
            )
        elif move == "cut":
            new_amount = amount // 2
            events.append(
                {
                    "type": "deal.updated",
                    "deal": {**base, "amount": new_amount},
                    "previous": {"amount": amount},
                }
            )
            amount = new_amount
        elif move == "push":
            new_close = close + timedelta(days=rng.randrange(20, 60))
            events.append(
                {
                    "type": "deal.updated",
                    "deal": {**base, "close_date": new_close.isoformat()},
                    "previous": {"close_date": close.isoformat()},
                }
            )
            close = new_close
        elif move == "back" and stage > 0:
            events.append(
                {
                    "type": "deal.updated",
                    "deal": {**base, "stage": STAGES[stage - 1]},
                    "previous": {"stage": STAGES[stage]},
                }
            )
            stage -= 1
        elif move == "close" and not closed:
            closed = True
            if rng.random() < 0.7:
                deal = {**base, "status": "lost", "lost_reason": rng.choice(LOST_REASONS)}
            else:
                deal = {**base, "status": "won"}
            events.append({"type": "deal.updated", "deal": deal, "previous": {"status": "open"}})
    for k, event in enumerate(events):
        t += timedelta(seconds=rng.randrange(30, 90))
        event["event_id"] = f"{deal_id}-{k}"
        event["occurred_at"] = _iso(t)
    return events


def _activity(base: dict[str, Any], kind: str, direction: str, note: str, actor: str) -> dict[str, Any]:
    return {
        "type": "activity.logged",
        "deal": dict(base),
        "activity": {"kind": kind, "direction": direction, "text": note, "actor_id": actor},
    }


def generic_events(count: int, seed: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """``count`` generic webhook events, deal after deal (each deal's events oldest first)."""
    rng = random.Random(seed)
    start = (now or datetime.now(UTC)) - timedelta(hours=2)
    events: list[dict[str, Any]] = []
    index = 0
    while len(events) < count:
        events.extend(deal_history(rng, index, start))
        index += 1
    return events[:count]


def as_change_event(event: dict[str, Any], received_at: datetime) -> DealChanged:
    """What the ingest service publishes for the generic webhook event ``event``."""
    return DealChanged.model_validate(
        {**event, "source": "generic", "deal_id": event["deal"]["id"], "received_at": received_at}
    )
