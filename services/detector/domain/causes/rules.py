"""Structural evidence and weighing rules from ``data/causes_rules.toml``: the priors kept in data, not code."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from services.detector.domain.causes.model import CAUSES, EXCERPT_LIMIT, SIDES, Facts

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
RULES_FILE = "causes_rules.toml"
DAY = 86_400.0
Value = float | str | None


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@lru_cache(maxsize=4096)
def _date_of_day(day: int) -> str:
    return date.fromordinal(_EPOCH_ORDINAL + day).isoformat()


def _day(at: float | None) -> str | None:
    """The UTC date of a moment (epoch seconds) as YYYY-MM-DD: by its day number for a whole second (the times a
    deal's state keeps), as ``datetime`` rounds it otherwise."""
    if at is None:
        return None
    if at == int(at):
        return _date_of_day(int(at // DAY))
    return datetime.fromtimestamp(at, UTC).date().isoformat()


def _days(later: float, earlier: float | None) -> float | None:
    return None if earlier is None else round((later - earlier) / DAY, 1)


def _stall_summary(f: Facts) -> str:
    parts = []
    if f.close_date_pushes:
        parts.append(f"close date pushed {f.close_date_pushes} times (+{f.close_date_slip_days} days)")
    if f.amount_cut_share:
        parts.append(f"amount cut by {round(f.amount_cut_share * 100)} %")
    if f.stage_moved_back:
        parts.append("stage moved backwards")
    return ", ".join(parts) or "no progress"


def _spoke_last(f: Facts) -> str:
    spoke = f.last_inbound_at is not None and (
        f.last_outbound_at is None or f.last_inbound_at > f.last_outbound_at
    )
    return "yes" if spoke else "no"


def _ago(at: float | None, f: Facts) -> float | None:
    return None if at is None else abs(_days(f.at, at) or 0.0)


VALUES: dict[str, Callable[[Facts], Value]] = {
    "outbound_since_inbound": lambda f: float(f.outbound_since_inbound),
    "activities": lambda f: float(f.activities),
    "days_since_outbound": lambda f: _days(f.at, f.last_outbound_at),
    "days_since_inbound": lambda f: _days(f.at, f.last_inbound_at),
    "days_since_activity": lambda f: _days(f.at, f.last_activity_at),
    "owner_changed_days": lambda f: _ago(f.owner_changed_at, f),
    "contact_left_days": lambda f: _ago(f.contact_left_at, f),
    "amount_cut_percent": lambda f: None if f.amount_cut_share is None else round(f.amount_cut_share * 100),
    "close_date_pushes": lambda f: float(f.close_date_pushes),
    "close_date_slip_days": lambda f: float(f.close_date_slip_days),
    "customer_spoke_last": _spoke_last,
    "has_outbound": lambda f: "no" if f.last_outbound_at is None and f.outbound_since_inbound == 0 else "yes",
    "stage_moved_back": lambda f: "yes" if f.stage_moved_back else "no",
    "contact_change": lambda f: f.contact_change,
    "has_lost_reason": lambda f: "yes" if f.lost_reason else "no",
    "lost_reason": lambda f: (f.lost_reason or "no reason given")[:60],
    "last_activity_on": lambda f: _day(f.last_activity_at) or "the start",
    "last_outbound_on": lambda f: _day(f.last_outbound_at),
    "last_inbound_on": lambda f: _day(f.last_inbound_at) or "the start",
    "owner_changed_on": lambda f: _day(f.owner_changed_at if f.owner_changed_at is not None else f.at),
    "contact_left_on": lambda f: _day(f.contact_left_at if f.contact_left_at is not None else f.at),
    "stall_summary": _stall_summary,
}
"""Every value rules test and excerpts show, by name, as made from the facts; ``None`` when unknown."""


class View(dict[str, Value]):
    """The facts as the flat values rules test and excerpts show (``VALUES``), each made when first asked for: a
    classification's rules look at a few of them and its excerpts at two or three more."""

    __slots__ = ("facts",)

    def __init__(self, facts: Facts):
        super().__init__()
        self.facts = facts

    def __missing__(self, key: str) -> Value:
        value = self[key] = VALUES[key](self.facts)
        return value

    def get(self, key: str, default: Value = None) -> Value:  # type: ignore[override]
        if key in VALUES:
            return self[key]
        return default


def describe(f: Facts) -> View:
    """The facts as the flat values rules test and excerpts show; ``None`` when unknown."""
    return View(f)


class Shown(dict[str, Value]):
    """A view's values as excerpts show them (numbers without trailing zeros), ``?`` for an unknown one; each
    formatted when a template first asks for it (a template names two or three of the view's values)."""

    def __init__(self, view: Mapping[str, Value]):
        super().__init__()
        self.view = view

    def __missing__(self, key: str) -> Value:
        value = self.view.get(key)
        out = "?" if value is None else f"{value:g}" if isinstance(value, float) else value
        self[key] = out
        return out


def render(template: str, view: Mapping[str, Value]) -> str:
    text = template.format_map(view if isinstance(view, Shown) else Shown(view))
    return text if len(text) <= EXCERPT_LIMIT else text[: EXCERPT_LIMIT - 1] + "…"


@dataclass(frozen=True, slots=True)
class Rule:
    cause: str
    signal: str
    excerpt: str
    weight: float
    kinds: frozenset[str] | None = None
    side: str | None = None
    minimum: Mapping[str, float] = field(default_factory=dict)
    maximum: Mapping[str, float] = field(default_factory=dict)
    equals: Mapping[str, str] = field(default_factory=dict)
    step: Mapping[str, float] = field(default_factory=dict)
    cap: float | None = None
    trigger: bool = False

    def score(self, kind: str, view: Mapping[str, Value]) -> float:
        """The weight this rule adds for these facts; 0 when it does not apply."""
        if self.kinds is not None and kind not in self.kinds:
            return 0.0
        for key, expected in self.equals.items():
            if view.get(key) != expected:
                return 0.0
        for key, bound in self.minimum.items():
            value = view.get(key)
            if not isinstance(value, float | int) or value < bound:
                return 0.0
        for key, bound in self.maximum.items():
            value = view.get(key)
            if not isinstance(value, float | int) or value > bound:
                return 0.0
        weight = self.weight
        for key, per_unit in self.step.items():
            value = view.get(key)
            if isinstance(value, float | int):
                weight += per_unit * (value - self.minimum.get(key, 0.0))
        if self.cap is not None:
            weight = min(weight, self.cap)
        return max(weight, 0.0)


@dataclass(frozen=True, slots=True)
class Relevance:
    half_life_days: float = 60.0
    floor: float = 0.3
    after_days: float = 7.0

    def factor(self, age_seconds: float) -> float:
        """How much a signal counts by its age before the interruption (negative: after it)."""
        age = age_seconds / DAY
        if age < -self.after_days:
            return 0.0
        if age <= 0:
            return 1.0
        return max(self.floor, math.pow(0.5, age / self.half_life_days))


@dataclass(frozen=True, slots=True)
class Rules:
    rules: tuple[Rule, ...]
    relevance: Mapping[str, Relevance]
    triggers: Mapping[str, tuple[str, str]]
    default_side: Mapping[str, str]
    priority: tuple[str, ...]
    repeat: float = 0.5
    unknown_below: float = 0.6
    thin: float = 0.6
    alternatives: int = 4
    evidence: int = 5
    _by_kind: dict[str, tuple[Rule, ...]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def of_kind(self, kind: str) -> tuple[Rule, ...]:
        """The rules that can apply to an interruption of ``kind``, in their order."""
        found = self._by_kind.get(kind)
        if found is None:
            found = self._by_kind[kind] = tuple(r for r in self.rules if r.kinds is None or kind in r.kinds)
        return found

    @classmethod
    def load(cls, data_dir: Path | None = None) -> Rules:
        path = (data_dir or DATA_DIR) / RULES_FILE
        return cls.from_toml(tomllib.loads(path.read_text("utf-8")))

    @classmethod
    def from_toml(cls, raw: Mapping[str, Any]) -> Rules:
        c = raw.get("classify", {})
        priority = tuple(c.get("priority", [x for x in CAUSES if x != "unknown"]))
        rules = tuple(_rule(r) for r in raw.get("rule", []))
        return cls(
            rules=rules,
            relevance={
                k: Relevance(**{n: float(x) for n, x in v.items()})
                for k, v in raw.get("relevance", {}).items()
            },
            triggers={k: (str(v["signal"]), str(v["excerpt"])) for k, v in raw.get("trigger", {}).items()},
            default_side={k: str(v) for k, v in c.get("default_side", {}).items()},
            priority=priority + tuple(x for x in CAUSES if x not in priority and x != "unknown"),
            repeat=float(c.get("repeat", 0.5)),
            unknown_below=float(c.get("unknown_below", 0.6)),
            thin=float(c.get("thin", 0.6)),
            alternatives=int(c.get("alternatives", 4)),
            evidence=int(c.get("evidence", 5)),
        )

    def relevance_of(self, kind: str) -> Relevance:
        return self.relevance.get(kind, Relevance())

    def trigger(self, facts: Facts, view: Mapping[str, Value]) -> tuple[str, str]:
        signal, template = self.triggers.get(facts.kind, ("field:deal", facts.kind))
        return signal, render(template, view)


def _rule(raw: Mapping[str, Any]) -> Rule:
    cause = raw.get("cause")
    if cause not in CAUSES or cause == "unknown":
        raise ValueError(f"rule cause {cause!r} is not a contract cause")
    side = raw.get("side")
    if side is not None and side not in SIDES:
        raise ValueError(f"rule side {side!r} is not one of {SIDES}")
    kinds = raw.get("kinds")
    return Rule(
        cause=cause,
        signal=str(raw.get("signal", f"fact:{cause}")),
        excerpt=str(raw.get("excerpt", cause)),
        weight=float(raw.get("weight", 1.0)),
        kinds=frozenset(kinds) if kinds is not None else None,
        side=side,
        minimum={k: float(v) for k, v in raw.get("min", {}).items()},
        maximum={k: float(v) for k, v in raw.get("max", {}).items()},
        equals={k: str(v) for k, v in raw.get("equals", {}).items()},
        step={k: float(v) for k, v in raw.get("step", {}).items()},
        cap=float(raw["cap"]) if "cap" in raw else None,
        trigger=bool(raw.get("trigger", False)),
    )


@cache
def default_rules() -> Rules:
    """The package's rules, read once."""
    return Rules.load()
