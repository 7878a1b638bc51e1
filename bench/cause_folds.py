"""Offline folds for ``bench/cause_eval.py``: scenario steps in, the Facts and Signals a detector would hold out.

Generic bodies are used as they are; Pipedrive and HubSpot payloads are turned into generic-like events
crudely (enough to reach their note texts, lost reasons and field changes). The fold is a small stand-in for the
detector: it keeps ``rank_for_keeping`` signals per deal and finds when each interruption kind would trigger.
"""

from __future__ import annotations

import importlib.util
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from services.detector.domain.causes import Classification, Facts, Lexicon, Signal, classify, rank_for_keeping

DAY = 86_400.0
STAGE_ORDER = (
    "lead", "qualification", "qualifiedtobuy", "appointmentscheduled", "discovery", "demo",
    "presentationscheduled", "proposal", "decisionmakerboughtin", "negotiation", "contractsent", "contract",
)  # fmt: skip
QUIET_DAYS = 14.0
PUSHES, SLIP_DAYS, CUT_SHARE = 2, 45, 0.3
KEEP = 6
AFTER_DAYS = {"went_quiet": 365.0}
"""Signals up to this long after the interruption count: for a quiet deal, what was written during the silence."""
DEFAULT_AFTER_DAYS = 7.0
QUALIFYING = {"inbound", "outbound"}


@dataclass
class Event:
    event_id: str
    at: float
    type: str
    deal: dict[str, Any]
    previous: dict[str, Any] = field(default_factory=dict)
    activity: dict[str, Any] | None = None
    contact: dict[str, Any] | None = None


# ---------------------------------------------------------------------------------------------- placeholders


def load_harness(path: Path) -> ModuleType | None:
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("run_eval", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_CRUDE = re.compile(
    r"\{\{(ts_jst|ts_ms|ts|date_ms|date|event_id|event_num)([+-]\d+(?:\.\d+)?d)?(#\d+)?(:str)?\}\}"
)


def _crude_fill(obj: Any, when: datetime, rng: random.Random) -> Any:
    """A stand-in for run_eval.fill when the harness is not beside the repository."""
    if isinstance(obj, list):
        return [_crude_fill(x, when, rng) for x in obj]
    if isinstance(obj, dict):
        return {k: _crude_fill(v, when, rng) for k, v in obj.items()}
    if not isinstance(obj, str) or "{{" not in obj:
        return obj

    def value(m: re.Match[str]) -> str:
        name, off = m.group(1), m.group(2)
        t = when + timedelta(days=float(off[:-1])) if off else when
        if name in ("ts", "ts_jst"):
            return t.isoformat()
        if name == "ts_ms":
            return str(int(t.timestamp() * 1000))
        if name == "date":
            return t.date().isoformat()
        if name == "date_ms":
            return str(int(datetime(t.year, t.month, t.day, tzinfo=UTC).timestamp() * 1000))
        return str(rng.getrandbits(40))

    whole = _CRUDE.fullmatch(obj)
    if whole and whole.group(1) in ("ts_ms", "event_num") and not whole.group(4):
        return int(value(whole))
    return _CRUDE.sub(value, obj)


def filled_steps(
    scenario: dict[str, Any], now: datetime, harness: ModuleType | None
) -> list[tuple[float, Any]]:
    """Each step's moment (epoch seconds) and its body with placeholders filled."""
    rng = random.Random(scenario["id"])
    out = []
    for step in scenario["steps"]:
        when = now - timedelta(days=float(step["days_ago"]))
        if harness is not None:
            body = harness.fill(step["body"], when, harness.StepIds(harness.IdMaker(rng)))
        else:
            body = _crude_fill(step["body"], when, rng)
        out.append((when.timestamp(), body))
    return out


# ---------------------------------------------------------------------------------------------- CRM payloads


def generic_events(body: Any, at: float) -> list[Event]:
    items = body if isinstance(body, list) else [body]
    return [
        Event(
            str(b["event_id"]),
            at,
            b["type"],
            b.get("deal") or {},
            b.get("previous") or {},
            b.get("activity"),
            b.get("contact"),
        )
        for b in items
    ]


def pipedrive_events(body: dict[str, Any], at: float) -> list[Event]:
    meta, data, prev = body["meta"], body.get("data") or {}, body.get("previous") or {}
    eid, entity = str(meta["id"]), meta["entity"]
    if entity == "deal":
        deal = {
            "owner_id": data.get("owner_id"), "stage": str(data.get("stage_id")), "amount": data.get("value"),
            "close_date": data.get("expected_close_date"), "status": data.get("status"),
            "lost_reason": data.get("lost_reason"),
        }  # fmt: skip
        names = {
            "owner_id": "owner_id",
            "expected_close_date": "close_date",
            "value": "amount",
            "status": "status",
        }
        previous = {names[k]: v for k, v in prev.items() if k in names}
        contact = {"id": str(prev["person_id"]), "change": "removed"} if "person_id" in prev else None
        return [Event(eid, at, "deal.updated", deal, previous, None, contact)]
    if entity == "note":
        return [
            Event(
                eid,
                at,
                "activity.logged",
                {},
                {},
                {"kind": "note", "direction": "internal", "text": data.get("content")},
            )
        ]
    if entity == "activity":
        kind = data.get("type") if data.get("type") in ("call", "meeting", "email") else "task"
        done = bool(data.get("done"))
        direction = "outbound" if done and kind != "task" else "internal"
        text = " ".join(str(x) for x in (data.get("subject"), data.get("note")) if x)
        return [
            Event(
                eid,
                at,
                "activity.logged",
                {},
                {},
                {"kind": kind if done else "task", "direction": direction, "text": text},
            )
        ]
    return []


_HUBSPOT_FIELDS = {
    "hubspot_owner_id": "owner_id",
    "amount": "amount",
    "closedate": "close_date",
    "dealstage": "stage",
}


def hubspot_events(body: list[dict[str, Any]], at: float) -> list[Event]:
    out = []
    for e in body:
        eid, kind = str(e.get("eventId")), e.get("subscriptionType")
        name, value = e.get("propertyName"), e.get("propertyValue")
        if kind == "deal.creation":
            out.append(Event(eid, at, "deal.created", {}))
        elif kind == "deal.propertyChange" and name in _HUBSPOT_FIELDS:
            if name == "closedate" and value:
                value = datetime.fromtimestamp(int(value) / 1000, UTC).date().isoformat()
            deal = {_HUBSPOT_FIELDS[name]: value}
            if name == "dealstage" and value == "closedlost":
                deal["status"] = "lost"
            out.append(Event(eid, at, "deal.updated", deal))
        elif kind == "deal.propertyChange" and name == "closed_lost_reason":
            out.append(Event(eid, at, "deal.updated", {"lost_reason": value}))
        elif kind == "deal.propertyChange" and name in ("description", "hs_next_step") and value:
            out.append(
                Event(
                    eid,
                    at,
                    "activity.logged",
                    {},
                    {},
                    {"kind": "note", "direction": "internal", "text": value},
                )
            )
        elif kind == "deal.associationChange" and e.get("associationRemoved"):
            out.append(
                Event(
                    eid,
                    at,
                    "contact.changed",
                    {},
                    {},
                    None,
                    {"id": str(e.get("toObjectId")), "change": "removed"},
                )
            )
    return out


def events_of(source: str, body: Any, at: float) -> list[Event]:
    if source == "pipedrive":
        return pipedrive_events(body, at)
    if source == "hubspot":
        return hubspot_events(body, at)
    return generic_events(body, at)


# ---------------------------------------------------------------------------------------------- the fold


def _ordinal(value: Any) -> int | None:
    try:
        return date.fromisoformat(str(value)[:10]).toordinal() if value else None
    except ValueError:
        return None


def _rank(stage: Any) -> int | None:
    s = str(stage).lower() if stage is not None else ""
    if s in STAGE_ORDER:
        return STAGE_ORDER.index(s)
    return int(s) if s.isdigit() else None


@dataclass
class Fold:
    """A deal's history as a detector would keep it, and when each interruption kind would fire."""

    lexicon: Lexicon
    deal: dict[str, Any] = field(default_factory=dict)
    signals: list[tuple[float, list[Signal]]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=lambda: {"outbound_since_inbound": 0, "activities": 0})
    triggers: dict[str, tuple[float, str | None]] = field(default_factory=dict)

    def apply_step(self, events: list[Event], at: float) -> None:
        last_id: str | None = None
        for ev in events:
            self._apply(ev)
            last_id = ev.event_id
        self._check_triggers(at, last_id)

    def _apply(self, ev: Event) -> None:
        f, new, prev = self.facts, ev.deal, ev.previous
        old = {
            k: prev.get(k, self.deal.get(k)) for k in ("owner_id", "amount", "close_date", "stage", "status")
        }
        if new.get("owner_id") and old["owner_id"] and str(new["owner_id"]) != str(old["owner_id"]):
            f["owner_changed_at"] = ev.at
        if new.get("amount") is not None and old["amount"] and float(new["amount"]) < float(old["amount"]):
            f["amount_cut_share"] = max(
                f.get("amount_cut_share") or 0.0, 1 - float(new["amount"]) / float(old["amount"])
            )
        before, after = _ordinal(old["close_date"]), _ordinal(new.get("close_date"))
        if before and after and after > before:
            f["close_date_pushes"] = f.get("close_date_pushes", 0) + 1
            f["close_date_slip_days"] = f.get("close_date_slip_days", 0) + after - before
        r_old, r_new = _rank(old["stage"]), _rank(new.get("stage"))
        if r_old is not None and r_new is not None and r_new < r_old:
            f["stage_moved_back"] = True
        if new.get("lost_reason"):
            f["lost_reason"] = new["lost_reason"]
            self._extract(new["lost_reason"], ev, "internal", "lost_reason")
        self.deal.update({k: v for k, v in new.items() if v is not None})
        if ev.contact and ev.contact.get("change") in ("left_company", "removed", "role_changed"):
            f["contact_left_at"], f["contact_change"] = ev.at, ev.contact["change"]
        if ev.activity:
            self._activity(ev)

    def _activity(self, ev: Event) -> None:
        f, act = self.facts, ev.activity or {}
        direction = act.get("direction", "internal")
        f["activities"] += 1
        if direction == "outbound":
            f["outbound_since_inbound"] += 1
            f["last_outbound_at"] = ev.at
        elif direction == "inbound":
            f["outbound_since_inbound"] = 0
            f["last_inbound_at"] = ev.at
        if direction in QUALIFYING:
            f["last_activity_at"] = ev.at
        if act.get("text"):
            self._extract(act["text"], ev, direction, act.get("kind", "note"))

    def _extract(self, text: str, ev: Event, direction: str, kind: str) -> None:
        found = self.lexicon.extract(text, event_id=ev.event_id, at=ev.at, direction=direction, kind=kind)
        if found:
            self.signals.append((ev.at, found))

    def _check_triggers(self, at: float, event_id: str | None) -> None:
        f, t = self.facts, self.triggers
        if f.get("owner_changed_at") == at and "reassigned" not in t:
            t["reassigned"] = (at, event_id)
        if f.get("contact_left_at") == at and "contact_left" not in t:
            t["contact_left"] = (at, event_id)
        if self.deal.get("status") == "lost" and "closed_lost" not in t:
            t["closed_lost"] = (at, event_id)
        stalled = (
            f.get("close_date_pushes", 0) >= PUSHES
            or f.get("close_date_slip_days", 0) >= SLIP_DAYS
            or (f.get("amount_cut_share") or 0.0) >= CUT_SHARE
            or f.get("stage_moved_back", False)
        )
        if stalled and "stalled" not in t:
            t["stalled"] = (at, event_id)

    def quiet_deadline(self, created_at: float) -> float:
        return (self.facts.get("last_activity_at") or created_at) + QUIET_DAYS * DAY

    def classification(self, kind: str, created_at: float) -> Classification:
        at, event_id = self.triggers.get(kind, (self.quiet_deadline(created_at), None))
        cutoff = at + AFTER_DAYS.get(kind, DEFAULT_AFTER_DAYS) * DAY
        kept: list[Signal] = []
        for when, found in self.signals:
            if when <= cutoff:
                kept = rank_for_keeping([*kept, *found], KEEP)
        fields = {k: v for k, v in self.facts.items() if k in Facts.__dataclass_fields__}
        return classify(Facts(kind=kind, at=at, event_id=event_id, **fields), kept)


def fold_scenario(
    scenario: dict[str, Any], lexicon: Lexicon, now: datetime, harness: ModuleType | None
) -> Fold:
    fold = Fold(lexicon)
    for at, body in filled_steps(scenario, now, harness):
        fold.apply_step(events_of(scenario["source"], body, at), at)
    return fold
