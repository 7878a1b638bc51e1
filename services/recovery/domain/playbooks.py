"""Recovery playbooks: the task a person gets for an interruption.

The texts live in one TOML file per language (``data/playbooks.<lang>.toml``); this module only loads them and
assembles a :class:`schemas.RecoveryTask` from a :class:`schemas.DealInterrupted` and ``now``.
"""

from __future__ import annotations

import re
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from schemas import ChecklistItem, DealInterrupted, RecoveryTask
from schemas.interruptions import CAUSES, KINDS
from services.recovery.domain.priority import PriorityRules, priority_of
from services.recovery.domain.workdays import WorkCalendar, add_working_days

DATA_DIR = Path(__file__).parent / "data"
LANGUAGES = ("ja", "en")
ROLES = ("owner", "previous_owner", "manager")
TASK_NAMESPACE = uuid.UUID("7b0f4a53-2d1e-5c8a-9e61-64a7d3c2b9f1")
DUE_WORKING_DAYS = {"went_quiet": 2, "reassigned": 5, "contact_left": 3, "stalled": 3, "closed_lost": 5}
DUE_BY_PRIORITY = {"urgent": 1, "high": 2}
"""Upper bounds on the working days to the due time of urgent and high-priority tasks."""
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")


class PlaybookError(ValueError):
    """A playbook file is missing a kind or a cause, or has an entry of the wrong shape."""


@dataclass(frozen=True)
class Step:
    item: str
    role: str = "owner"


@dataclass(frozen=True)
class KindText:
    action: str
    description: str
    checklist: tuple[Step, ...]
    cause_steps: bool = True


@dataclass(frozen=True)
class CauseText:
    label: str
    advice: str
    checklist: tuple[Step, ...]
    side_labels: Mapping[str, str] = field(default_factory=dict)
    side_checklists: Mapping[str, tuple[Step, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Playbook:
    language: str
    title: str
    deal_fallback: str
    evidence_label: str
    kinds: Mapping[str, KindText]
    causes: Mapping[str, CauseText]
    flags: Mapping[str, tuple[Step, ...]]


@dataclass(frozen=True)
class TaskPolicy:
    """Everything besides the interruption that decides a task: texts, calendar, managers, priority rules."""

    playbooks: Mapping[str, Playbook]
    calendar: WorkCalendar = field(default_factory=WorkCalendar)
    managers: Mapping[str, str] = field(default_factory=dict)
    """Rep id -> manager id; ``default`` for everyone else."""
    language: str | None = None
    """Force one language; None picks it from the interruption's text."""
    priority: PriorityRules = field(default_factory=PriorityRules)


def _steps(raw: Any, where: str) -> tuple[Step, ...]:
    if not isinstance(raw, list):
        raise PlaybookError(f"{where}: checklist must be a list")
    steps = []
    for entry in raw:
        if isinstance(entry, str):
            steps.append(Step(entry))
        elif (
            isinstance(entry, dict)
            and isinstance(entry.get("item"), str)
            and entry.get("role", "owner") in ROLES
        ):
            steps.append(Step(entry["item"], entry.get("role", "owner")))
        else:
            raise PlaybookError(f"{where}: bad checklist entry {entry!r}")
    return tuple(steps)


def _cause(name: str, raw: dict[str, Any]) -> CauseText:
    sides = raw.get("sides", {})
    return CauseText(
        label=raw["label"],
        advice=raw.get("advice", ""),
        checklist=_steps(raw.get("checklist", []), name),
        side_labels={s: v["label"] for s, v in sides.items()},
        side_checklists={s: _steps(v.get("checklist", []), f"{name}.{s}") for s, v in sides.items()},
    )


def load_playbook(path: Path) -> Playbook:
    """Read one language's playbook; every kind and every cause must be there."""
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    try:
        kinds = {
            k: KindText(
                v["action"],
                v.get("description", ""),
                _steps(v["checklist"], k),
                bool(v.get("cause_steps", True)),
            )
            for k, v in raw["kinds"].items()
        }
        causes = {c: _cause(c, v) for c, v in raw["causes"].items()}
        flags = {f: _steps(v.get("checklist", []), f) for f, v in raw.get("flags", {}).items()}
        fmt = raw["format"]
        playbook = Playbook(
            raw["language"], fmt["title"], fmt["deal_fallback"], fmt.get("evidence", ""), kinds, causes, flags
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise PlaybookError(f"{path.name}: missing or malformed entry {exc}") from exc
    missing = [k for k in KINDS if k not in kinds] + [c for c in CAUSES if c not in causes]
    if missing:
        raise PlaybookError(f"{path.name}: no text for {', '.join(missing)}")
    return playbook


def load_playbooks(directory: Path = DATA_DIR) -> dict[str, Playbook]:
    return {lang: load_playbook(directory / f"playbooks.{lang}.toml") for lang in LANGUAGES}


def task_id(interruption_id: str) -> str:
    """Deterministic: the same interruption always gets the same task id."""
    return str(uuid.uuid5(TASK_NAMESPACE, interruption_id))


def language_of(interruption: DealInterrupted) -> str:
    """Japanese when the evidence text has kana or kanji; English when it has other words; otherwise the
    deal's own name decides."""
    texts = [
        e.excerpt for e in interruption.evidence if e.signal.startswith("text:") or _CJK.search(e.excerpt)
    ]
    if texts:
        return "ja" if any(_CJK.search(t) for t in texts) else "en"
    names = (interruption.deal.name or "", interruption.deal.lost_reason or "")
    return "ja" if any(_CJK.search(n) for n in names) else "en"


def build_task(interruption: DealInterrupted, now: datetime, policy: TaskPolicy) -> RecoveryTask:
    forced = policy.language or ""
    lang = forced if forced in policy.playbooks else language_of(interruption)
    book = policy.playbooks[lang]
    deal = interruption.deal
    owner = deal.owner_id
    manager = policy.managers.get(owner or "") or policy.managers.get("default")
    previous = deal.previous_owner_id if interruption.kind == "reassigned" else None
    people = {"owner": owner or manager, "previous_owner": previous or owner, "manager": manager or owner}
    priority = priority_of(interruption, policy.priority)
    days = min(DUE_WORKING_DAYS[interruption.kind], DUE_BY_PRIORITY.get(priority, 99))
    return RecoveryTask(
        id=task_id(interruption.id),
        interruption_id=interruption.id,
        deal_key=interruption.deal_key,
        source=interruption.source,
        deal_id=interruption.deal_id,
        kind=interruption.kind,
        cause=interruption.cause,
        side=interruption.side,
        title=_title(book, interruption),
        description=_description(book, interruption),
        assignee=owner or manager,
        participants=[p for p in (previous,) if p and p != owner],
        manager=manager,
        priority=priority,
        due_at=add_working_days(interruption.detected_at, days, policy.calendar),
        checklist=[
            ChecklistItem(item=s.item, assignee=people[s.role]) for s in _checklist(book, interruption)
        ],
        language=lang,
        created_at=now,
        updated_at=now,
    )


def _cause_label(book: Playbook, interruption: DealInterrupted) -> str:
    cause = book.causes[interruption.cause]
    return cause.side_labels.get(interruption.side or "", cause.label)


def _title(book: Playbook, interruption: DealInterrupted) -> str:
    name = (interruption.deal.name or "").strip()[:80]
    deal = name or book.deal_fallback.format(deal_id=interruption.deal_id[:80])
    return book.title.format(
        action=book.kinds[interruption.kind].action, cause=_cause_label(book, interruption), deal=deal
    )


def _description(book: Playbook, interruption: DealInterrupted) -> str:
    parts = [book.kinds[interruption.kind].description, book.causes[interruption.cause].advice]
    excerpts = [e.excerpt[:200] for e in interruption.evidence[:3] if e.excerpt]
    if excerpts:
        parts.append(f"{book.evidence_label}: " + " / ".join(excerpts))
    return "\n\n".join(p for p in parts if p)


def _checklist(book: Playbook, interruption: DealInterrupted) -> list[Step]:
    kind, cause = book.kinds[interruption.kind], book.causes[interruption.cause]
    steps = list(kind.checklist)
    if kind.cause_steps:
        steps += cause.checklist
        steps += cause.side_checklists.get(interruption.side or "", ())
    for flag in interruption.flags:
        steps += book.flags.get(flag, ())
    unique: dict[str, Step] = {}
    for step in steps:
        unique.setdefault(step.item, step)
    return list(unique.values())
