"""Synthetic but realistic CRM histories for the detector benchmarks (``bench/run``).

Many deals, several events each, in time order across deals: a creation, then activities (calls, emails,
meetings, notes; Japanese and English text, some naming a cause such as a budget freeze or a competitor), owner
changes, close-date pushes, stage moves, amount cuts, contacts leaving, now and then a win or a loss, and about 1%
redeliveries of an event already sent (at-least-once delivery upstream). Deterministic for a given seed.

``change_events`` yields the contract's JSON (``schemas.DealChanged``) as the detector reads it from the topic;
``generic_lines`` yields the generic webhook event (version 1) as a history export holds it, for the replay.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

SOURCES = ("hubspot", "salesforce", "pipedrive", "generic")
STAGES = ("qualification", "discovery", "demo", "proposal", "negotiation", "contract")
TIERS = ("key", "standard", "standard", "small")
TITLES = ("部長", "課長", "担当", "Director", "Procurement Manager", "Engineer", "VP Sales", "CFO", "主任")

NOTES_JA = (
    "先方と日程調整中。来週水曜で仮押さえ。",
    "見積書を送付しました。ご確認をお願いしています。",
    "定例ミーティング実施。導入スケジュールについて前向きな反応。",
    "先方の予算が凍結され、今期の導入は難しいとのこと。",
    "競合他社の提案も比較検討中と聞いています。価格面で先方はかなり迷っている様子。",
    "担当の田中様が来月退職されるとの連絡あり。後任は未定。",
    "稟議が部長で止まっている。決裁者の承認待ち。",
    "デモの反応は良好。技術的な懸念はなし。",
    "先方の組織変更により、検討が一時中断となりました。",
    "価格が高いとの指摘。値引きの相談を社内で実施。",
    "電話したが不在。メールでフォローアップ予定。",
    "契約書ドラフトを法務に回付済み。",
    "先方から導入時期を来期に延期したいとの申し出。",
    "PoCの結果を共有。追加要件のヒアリングを行った。",
    "社内の担当変更に伴い、引き継ぎを実施しました。",
)
NOTES_EN = (
    "Call with the buyer: they liked the demo and asked for a revised quote.",
    "Sent the proposal and the security questionnaire answers.",
    "Their budget was frozen for the rest of the fiscal year; revisit in Q3.",
    "They are also evaluating a competitor and say our price is too high.",
    "Our champion is leaving the company at the end of the month.",
    "Legal review in progress, redlines expected next week.",
    "No reply to the last two emails, will try calling.",
    "Procurement asked to push the decision to next quarter.",
    "Kick-off meeting scheduled with the new stakeholders.",
    "Reorg on their side; the project is on hold until a new owner is named.",
    "Follow-up: shared the ROI model, positive feedback from finance.",
    "Went through pricing options; they need approval from the CFO.",
)


def _iso(t: float, tz_jst: bool) -> str:
    moment = datetime.fromtimestamp(t, UTC)
    if tz_jst:
        moment = moment.astimezone(JST)
    return moment.isoformat(timespec="seconds")


JST = timezone(timedelta(hours=9))


def _deal_history(rng: random.Random, index: int, now: float) -> tuple[str, str, list[dict[str, Any]]]:
    """One deal's events (without event ids and times as strings yet): source, deal id, events."""
    source = SOURCES[index % len(SOURCES)]
    deal_id = f"{index:07d}" if source != "salesforce" else f"006{index:012d}"
    owner = f"u-{rng.randrange(400)}"
    stage_i = rng.randrange(3)
    amount = float(rng.randrange(10, 500) * 10_000)
    close = date.fromtimestamp(now) + timedelta(days=rng.randrange(20, 120))
    t = now - rng.uniform(5, 150) * 86_400
    tier = rng.choice(TIERS)
    base = {
        "id": deal_id,
        "name": f"{rng.choice(('株式会社', 'Acme', 'Globex', '合同会社', 'Initech'))} {index} 導入案件",
        "stage": STAGES[stage_i],
        "status": "open",
        "amount": amount,
        "currency": "JPY",
        "close_date": close.isoformat(),
        "owner_id": owner,
        "account_id": f"acc-{index // 3}",
        "account_tier": tier,
    }
    events: list[dict[str, Any]] = [{"t": t, "type": "deal.created", "deal": dict(base)}]
    contacts = [f"c-{index}-{k}" for k in range(rng.randrange(1, 4))]
    for c in contacts:
        if rng.random() < 0.6:
            continue  # most contacts came with the deal; some are added as events
        t += rng.uniform(0.01, 0.5) * 86_400
        events.append(
            {
                "t": t,
                "type": "contact.changed",
                "deal": {"id": deal_id},
                "contact": {"id": c, "name": f"Contact {c}", "title": rng.choice(TITLES), "change": "added"},
            }
        )
    closed = False
    for _ in range(rng.randrange(2, 9)):
        t += rng.expovariate(1 / (4 * 86_400))
        if t > now - 600:
            break
        r = rng.random()
        if r < 0.58:
            kind = rng.choice(("call", "email", "email", "meeting", "note"))
            direction = "internal" if kind == "note" else rng.choice(("outbound", "outbound", "inbound"))
            act: dict[str, Any] = {"kind": kind, "direction": direction, "actor_id": owner}
            if kind != "call" or rng.random() < 0.5:
                act["text"] = rng.choice(NOTES_JA if rng.random() < 0.6 else NOTES_EN)
            if kind == "meeting" and rng.random() < 0.3:
                act["scheduled_at"] = t + rng.uniform(1, 10) * 86_400
                act["done"] = False
            events.append({"t": t, "type": "activity.logged", "deal": {"id": deal_id}, "activity": act})
        elif r < 0.66:
            new_owner = f"u-{rng.randrange(400)}"
            events.append(
                {
                    "t": t,
                    "type": "deal.updated",
                    "deal": {"id": deal_id, "owner_id": new_owner},
                    "previous": {"owner_id": owner},
                }
            )
            owner = new_owner
        elif r < 0.77:
            new_close = close + timedelta(days=rng.randrange(7, 45))
            events.append(
                {
                    "t": t,
                    "type": "deal.updated",
                    "deal": {"id": deal_id, "close_date": new_close.isoformat()},
                    "previous": {"close_date": close.isoformat()},
                }
            )
            close = new_close
        elif r < 0.87:
            old = STAGES[stage_i]
            stage_i = max(0, min(len(STAGES) - 1, stage_i + (1 if rng.random() < 0.8 else -1)))
            events.append(
                {
                    "t": t,
                    "type": "deal.updated",
                    "deal": {"id": deal_id, "stage": STAGES[stage_i]},
                    "previous": {"stage": old},
                }
            )
        elif r < 0.91:
            new_amount = round(amount * rng.choice((0.5, 0.8, 1.2)), -3)
            events.append(
                {
                    "t": t,
                    "type": "deal.updated",
                    "deal": {"id": deal_id, "amount": new_amount},
                    "previous": {"amount": amount},
                }
            )
            amount = new_amount
        elif r < 0.95:
            c = rng.choice(contacts)
            events.append(
                {
                    "t": t,
                    "type": "contact.changed",
                    "deal": {"id": deal_id},
                    "contact": {"id": c, "change": rng.choice(("left_company", "role_changed", "updated"))},
                }
            )
        elif not closed:
            closed = True
            lost = rng.random() < 0.6
            deal = {"id": deal_id, "status": "lost" if lost else "won"}
            if lost:
                deal["lost_reason"] = rng.choice(
                    ("他社製品に決定", "予算不足のため見送り", "Chose a competitor", "No decision / timing")
                )
            events.append({"t": t, "type": "deal.updated", "deal": deal, "previous": {"status": "open"}})
    return source, deal_id, events


def _histories(n_events: int, seed: int, now: float) -> list[tuple[float, int, str, str, dict[str, Any]]]:
    rng = random.Random(seed)
    out: list[tuple[float, int, str, str, dict[str, Any]]] = []
    index = 0
    while len(out) < n_events:
        source, deal_id, events = _deal_history(rng, index, now)
        for k, ev in enumerate(events):
            out.append((ev["t"], len(out), source, deal_id, {**ev, "event_id": f"{source}-{index}-{k}"}))
        index += 1
    del out[n_events:]
    out.sort(key=lambda r: (r[0], r[1]))
    # at-least-once upstream: about 1% of the events arrive a second time a little later
    dupes = rng.sample(range(len(out)), k=len(out) // 100)
    for i in sorted(dupes, reverse=True):
        j = min(len(out), i + rng.randrange(1, 200))
        out.insert(j, out[i])
    del out[n_events:]
    return out


def _body(ev: dict[str, Any], tz_jst: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": ev["event_id"],
        "occurred_at": _iso(ev["t"], tz_jst),
        "type": ev["type"],
    }
    body["deal"] = ev["deal"]
    for part in ("previous", "activity", "contact"):
        if part in ev:
            value = ev[part]
            if part == "activity" and "scheduled_at" in value:
                value = {**value, "scheduled_at": _iso(value["scheduled_at"], tz_jst)}
            body[part] = value
    return body


def change_events(n_events: int, *, seed: int = 7, now: float) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of ``n_events`` change events as the ingest publishes them: DealChanged JSON."""
    from schemas.events import DealChanged

    received = _iso(now, False)
    for _, _, source, deal_id, ev in _histories(n_events, seed, now):
        body = _body(ev, tz_jst=source != "salesforce")
        body.update(schema_version=1, source=source, deal_id=deal_id, received_at=received)
        model = DealChanged.model_validate(body)
        yield model.key.encode(), model.model_dump_json(exclude_none=True).encode()


def generic_lines(n_events: int, *, seed: int = 11, now: float) -> Iterator[str]:
    """``n_events`` lines of a generic-event (v1) history export, in time order."""
    for _, _, _, _, ev in _histories(n_events, seed, now):
        yield json.dumps(_body(ev, tz_jst=True), ensure_ascii=False, separators=(",", ":"))


def creation_event(
    index: int, *, at: float, stage: str = "proposal", tier: str = "standard", source: str = "hubspot"
) -> dict[str, Any]:
    """One decoded creation event (the detector's input dict), for building many plain states fast."""
    deal_id = f"{index:08d}"
    return {
        "schema_version": 1,
        "event_id": f"{source}-c-{index}",
        "source": source,
        "deal_id": deal_id,
        "occurred_at": _iso(at, True),
        "received_at": _iso(at, False),
        "type": "deal.created",
        "deal": {
            "id": deal_id,
            "name": f"株式会社サンプル{index} 導入案件",
            "stage": stage,
            "status": "open",
            "amount": 1_200_000.0,
            "currency": "JPY",
            "close_date": date.fromtimestamp(at + 60 * 86_400).isoformat(),
            "owner_id": f"u-{index % 400}",
            "account_id": f"acc-{index // 3}",
            "account_tier": tier,
        },
    }


def histories_by_deal(
    n_deals: int, *, seed: int = 5, now: float
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Per deal: its key and its decoded change events in time order (for building realistic states)."""
    rng = random.Random(seed)
    received = _iso(now, False)
    for index in range(n_deals):
        source, deal_id, events = _deal_history(rng, index, now)
        out = []
        for k, ev in enumerate(events):
            body = _body({**ev, "event_id": f"{source}-{index}-{k}"}, tz_jst=True)
            body.update(schema_version=1, source=source, deal_id=deal_id, received_at=received)
            out.append(body)
        yield f"{source}:{deal_id}", out
