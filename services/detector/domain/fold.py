"""Folding one change event into a deal's state. Every field is last-writer-wins by event time, and the
lists are kept sorted by event time, so the order in which events arrive does not change the result."""

from __future__ import annotations

import bisect
from typing import Any

from services.detector.domain.config import DetectorConfig
from services.detector.domain.event import Event, number, parse_date, parse_time, section, text
from services.detector.domain.outcomes import Trigger, batch_id
from services.detector.domain.state import (
    MAX_CLOSES,
    MAX_CONTACTS,
    MAX_OUTBOUND,
    TEXT_LIMIT,
    DealState,
)

LEFT_CHANGES = frozenset({"left_company", "removed", "role_changed"})
_DEAL_FIELDS = (
    "name", "account_tier", "account_id", "currency", "status", "owner_id", "stage", "lost_reason", "amount",
    "close_date",
)  # fmt: skip
"""The fields of the event's ``deal`` that the fold reads."""
_NOTHING = (None,) * len(_DEAL_FIELDS)


def fold_deal_fields(state: DealState, ev: Event, t: float, cfg: DetectorConfig) -> list[Trigger]:
    """Apply the deal's fields; return what they trigger (owner change, stall, loss, progress)."""
    deal = section(ev, "deal")
    prev = section(ev, "previous")
    if (
        tuple(map(deal.get, _DEAL_FIELDS)) == _NOTHING
        and prev.get("close_date") is None
        and ev.get("type") != "deal.deleted"
    ):
        # most events (activities, contacts) name the deal and none of its fields: only the time of the news
        # moves (what the steps below would do with every field absent, without their cost)
        if t >= state.info_at:
            state.info_at = t
        return []
    eid: str = ev["event_id"]
    if t >= state.info_at:
        state.info_at = t
        state.name = _clip(text(deal.get("name"))) or state.name
        state.tier = text(deal.get("account_tier")) or state.tier
        state.account = text(deal.get("account_id")) or state.account
        state.currency = text(deal.get("currency")) or state.currency
    status = text(deal.get("status"))
    if ev.get("type") == "deal.deleted":
        status = "deleted"
    triggers = _fold_owner(state, text(deal.get("owner_id")), text(prev.get("owner_id")), t, eid)
    triggers += _fold_stage(state, text(deal.get("stage")), text(prev.get("stage")), t, eid, cfg)
    triggers += _fold_status(state, status, text(deal.get("lost_reason")), t, eid)
    triggers += _fold_amount(state, number(deal.get("amount")), number(prev.get("amount")), t, eid, cfg)
    triggers += _fold_close_date(
        state, parse_date(deal.get("close_date")), parse_date(prev.get("close_date")), t, eid, cfg
    )
    reason = text(deal.get("lost_reason"))
    if reason:
        state.lost_reason = _clip(reason)
    return triggers


def _fold_owner(state: DealState, new: str | None, before: str | None, t: float, eid: str) -> list[Trigger]:
    if new is None:
        return []
    change: tuple[str, str, float] | None
    if before and before != new:
        change = (before, new, t)  # the sender says what changed
    elif state.owner is None or new == state.owner:
        change = None
    elif t >= state.owner_at:
        change = (state.owner, new, t)
    else:
        change = (new, state.owner, state.owner_at)  # an older event: the change came after it
    if state.owner is None or t >= state.owner_at:
        state.owner, state.owner_at = new, t
    if change is None:
        return []
    frm, to, at = change
    if to == state.owner:
        state.prev_owner = frm
        state.owner_changed_at = at
    return [
        Trigger(
            "reassigned",
            f"reassigned|{frm}|{to}",
            at,
            eid,
            "field:owner_id",
            f"{frm} → {to}",
            batch_id=batch_id(frm, to, at),
        )
    ]


def _fold_stage(
    state: DealState, new: str | None, old: str | None, t: float, eid: str, cfg: DetectorConfig
) -> list[Trigger]:
    if new is None:
        return []
    if t < state.stage_at:
        old, new, t = new, state.stage, state.stage_at  # an older observation: compare with what came after
    else:
        old = old or state.stage
        state.stage, state.stage_at = new, t
    old_rank, new_rank = cfg.stage_rank(old), cfg.stage_rank(new)
    if old_rank is None or new_rank is None or old_rank == new_rank:
        return []
    if new_rank < old_rank:
        state.stage_back_at = max(state.stage_back_at or 0.0, t)
        return [Trigger("stalled", f"stalled|{state.stalls}", t, eid, "field:stage", f"{old} → {new}")]
    if cfg.stage_progress_counts_as_activity:
        state.last_act = max(state.last_act or t, t)
    return [Trigger("progress", "progress", t, eid, "field:stage", f"{old} → {new}")]


def _fold_status(state: DealState, new: str | None, reason: str | None, t: float, eid: str) -> list[Trigger]:
    if new is None or t < state.status_at:
        return []
    old = state.status
    state.status, state.status_at = new, t
    if new == old:
        return []
    if new == "lost":
        excerpt = _clip(reason) or "status → lost"
        return [Trigger("closed_lost", f"closed_lost|{state.reopens}", t, eid, "field:status", excerpt)]
    if new == "won":
        return [Trigger("won", "won", t, eid, "field:status", "status → won")]
    if new == "open" and old == "lost":
        state.reopens += 1
        return [Trigger("reopened", "reopened", t, eid, "field:status", "lost → open")]
    return []


def _fold_amount(
    state: DealState, new: float | None, old: float | None, t: float, eid: str, cfg: DetectorConfig
) -> list[Trigger]:
    if new is None:
        return []
    if old is None and t >= state.amount_at:
        old = state.amount
    if t >= state.amount_at:
        state.amount, state.amount_at = new, t
    if old is None or old <= 0 or new >= old:
        return []
    share = (old - new) / old
    if share <= cfg.amount_cut_share:
        return []
    state.amount_cut = round(share, 3)
    return [
        Trigger(
            "stalled",
            f"stalled|{state.stalls}",
            t,
            eid,
            "field:amount",
            f"{_num(old)} → {_num(new)} (-{share:.0%})",
        )
    ]


def _fold_close_date(
    state: DealState, new: int | None, before: int | None, t: float, eid: str, cfg: DetectorConfig
) -> list[Trigger]:
    if new is None:
        return []
    pushes_before, _ = state.close_pushes()
    if before is not None:
        _insert_close(state, t - 1, before)
    _insert_close(state, t, new)
    pushes, slip = state.close_pushes()
    if pushes <= pushes_before or state.status not in (None, "open"):
        return []
    if pushes >= cfg.close_date_pushes or slip >= cfg.close_date_slip_days:
        return [
            Trigger(
                "stalled",
                f"stalled|{state.stalls}",
                t,
                eid,
                "field:close_date",
                f"close date pushed {pushes}x, +{slip} days",
            )
        ]
    return []


def _insert_close(state: DealState, t: float, ordinal: int) -> None:
    t = int(t)
    for existing in state.closes:
        if existing[0] == t:
            existing[1] = ordinal
            return
    entry: list[float] = [t, ordinal]
    bisect.insort(state.closes, entry)
    if len(state.closes) > MAX_CLOSES:
        del state.closes[0]


def fold_activity(state: DealState, ev: Event, t: float, cfg: DetectorConfig) -> list[Trigger]:
    act = ev.get("activity")
    if not isinstance(act, dict):
        return []
    state.acts += 1
    kind, direction = act.get("kind"), act.get("direction") or "internal"
    scheduled = act.get("scheduled_at")
    if scheduled and not act.get("done"):
        when = parse_time(scheduled)
        if when > t:
            state.sched = max(state.sched or 0.0, when)
    if kind in cfg.qualifying_kinds and direction in cfg.qualifying_directions:
        state.last_act = max(state.last_act or t, t)
    if direction == "outbound":
        bisect.insort(state.outs, int(t))
        if len(state.outs) > MAX_OUTBOUND:
            del state.outs[0]
    elif direction == "inbound":
        state.last_in = max(state.last_in or t, t)
        return [
            Trigger(
                "customer_activity",
                "customer_activity",
                t,
                ev["event_id"],
                "activity:inbound",
                _clip(text(act.get("text")), 60) or str(kind),
            )
        ]
    return []


def fold_contact(state: DealState, ev: Event, t: float, cfg: DetectorConfig) -> list[Trigger]:
    c = ev.get("contact")
    if not isinstance(c, dict) or not c.get("id"):
        return []
    cid, change = str(c["id"]), str(c.get("change") or "updated")
    active = 0 if change in LEFT_CHANGES else 1
    dm = 1 if (c.get("decision_maker") or cfg.is_decision_maker(text(c.get("title")))) else 0
    for entry in state.contacts:
        if entry[0] == cid:
            if t < entry[2]:
                return []  # a newer change of this contact is already known
            entry[1] = dm if active else entry[1]
            entry[2], entry[3] = int(t), active
            break
    else:
        state.contacts.append([cid, dm, int(t), active])
        if len(state.contacts) > MAX_CONTACTS:
            state.contacts.sort(key=lambda e: (e[3], e[2]))
            del state.contacts[0]
    if active:
        return []
    state.left = [cid, change, int(t)]
    remaining = state.active_contacts()
    flags: list[str] = []
    if not remaining:
        flags.append("no_contact_left")
    elif not any(e[1] for e in remaining):
        flags.append("no_decision_maker")
    who = " ".join(x for x in (text(c.get("name")), text(c.get("title"))) if x) or cid
    return [
        Trigger(
            "contact_left",
            f"contact_left|{cid}",
            t,
            ev["event_id"],
            f"contact:{change}",
            _clip(f"{who}: {change}", 80) or change,
            flags=tuple(flags),
        )
    ]


def _clip(value: str | None, limit: int = TEXT_LIMIT) -> str | None:
    if value is None:
        return None
    value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _num(value: Any) -> str:
    return f"{value:,.0f}" if isinstance(value, int | float) else str(value)
