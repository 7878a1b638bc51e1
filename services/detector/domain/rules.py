"""The detector's decisions: fold an event into a deal's state and say what opened, changed or resumed; check a
deal's quiet deadline. Pure: ``now`` is passed in, nothing is read from the clock or the outside."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

from services.detector.domain.causes import (
    CAUSES,
    Classification,
    Facts,
    Lexicon,
    Signal,
    classify,
    rank_for_keeping,
    verdict,
)
from services.detector.domain.config import DetectorConfig
from services.detector.domain.event import Event, check, parse_time, section, text
from services.detector.domain.fold import fold_activity, fold_contact, fold_deal_fields
from services.detector.domain.outcomes import Opened, Outcome, Resumed, Trigger, interruption_id
from services.detector.domain.state import MAX_FIRED, MAX_SEEN, DealState, Episode, short_hash

INTERRUPTION_KINDS = frozenset({"went_quiet", "reassigned", "contact_left", "stalled", "closed_lost"})
EXCERPT_KEPT = 40
_round2 = lru_cache(maxsize=1024, typed=True)(partial(round, ndigits=2))
"""A kept signal's weight to two places: Python's round goes through decimal digits (about 2,600 instructions a
call), and a lexicon's weights repeat."""
_TEXT_NAMES = {cause: f"text:{cause}" for cause in CAUSES}
"""The evidence name of a text signal of each cause, which a kept signal leaves out."""
SINGLE_EPISODE_KINDS = frozenset({"went_quiet", "stalled", "closed_lost"})
RESUMERS = {
    "customer_activity": INTERRUPTION_KINDS - {"closed_lost"},
    "progress": INTERRUPTION_KINDS - {"closed_lost"},
    "won": INTERRUPTION_KINDS,
    "reopened": frozenset({"closed_lost"}),
}


@dataclass(frozen=True, slots=True)
class Applied:
    state: DealState
    outcomes: list[Outcome]
    duplicate: bool = False


class Detector:
    """Detection rules over one deal's state. One instance serves every deal."""

    def __init__(self, config: DetectorConfig, lexicon: Lexicon):
        self.cfg = config
        self.lexicon = lexicon

    # ------------------------------------------------------------------ events

    def apply(
        self, state: DealState | None, ev: Event, *, deal_key: str, partition: int, now: float
    ) -> Applied:
        """Fold the decoded change event ``ev`` into the deal's state. Raises ``BadEvent`` for a malformed one."""
        check(ev)
        if state is None:
            state = DealState(partition=partition)
        state.partition = partition
        fingerprint = short_hash(ev["event_id"])
        if fingerprint in state.seen:
            return Applied(state, [], duplicate=True)
        state.seen.append(fingerprint)
        if len(state.seen) > MAX_SEEN:
            del state.seen[0]
        t = parse_time(ev["occurred_at"])
        state.recv = float(math.ceil(now))
        state.created = t if state.created is None else min(state.created, t)
        triggers = fold_deal_fields(state, ev, t, self.cfg)
        triggers += fold_activity(state, ev, t, self.cfg)
        triggers += fold_contact(state, ev, t, self.cfg)
        new_signals = self._keep_signals(state, ev, t)
        outcomes: list[Outcome] = []
        for trigger in triggers:
            outcomes += self._on_trigger(state, trigger, deal_key)
        if new_signals:
            outcomes += self._revise(state, {o.id for o in outcomes if isinstance(o, Opened)})
        return Applied(state, outcomes)

    def snooze(
        self, state: DealState | None, command_id: str, until: float | None, *, partition: int
    ) -> Applied:
        """A person snoozed the deal: no quiet verdict before ``until`` (None lifts the snooze)."""
        if state is None:
            state = DealState(partition=partition)
        fingerprint = short_hash(command_id)
        if fingerprint in state.seen:
            return Applied(state, [], duplicate=True)
        state.seen.append(fingerprint)
        if len(state.seen) > MAX_SEEN:
            del state.seen[0]
        state.snooze = None if until is None else float(int(until))
        return Applied(state, [])

    def _keep_signals(self, state: DealState, ev: Event, t: float) -> bool:
        found: list[Signal] = []
        act = section(ev, "activity")
        note = text(act.get("text"))
        if note:
            found += self.lexicon.extract(
                note,
                event_id=ev["event_id"],
                at=t,
                direction=str(act.get("direction") or "internal"),
                kind=str(act.get("kind") or "note"),
            )
        reason = text(section(ev, "deal").get("lost_reason"))
        if reason:
            found += self.lexicon.extract(
                reason, event_id=ev["event_id"], at=t, direction="internal", kind="lost_reason"
            )
        if not found:
            return False
        # The kept ones are ranked as they are stored; only the new ones that stay are turned into lists.
        kept: list[Any] = rank_for_keeping([*state.signals, *found], self.cfg.signals_kept)
        state.signals = [
            s
            if type(s) is list
            else [
                s.cause,
                _round2(s.weight),
                int(s.at),
                s.event_id,
                s.excerpt[:EXCERPT_KEPT],
                s.side,
                None if s.signal == _TEXT_NAMES.get(s.cause) else s.signal,
            ]
            for s in kept
        ]
        return True

    def _on_trigger(self, state: DealState, trigger: Trigger, deal_key: str) -> list[Outcome]:
        resumes = RESUMERS.get(trigger.kind)
        if resumes is not None:
            return self._resume(state, trigger, resumes)
        if trigger.kind not in INTERRUPTION_KINDS:
            return []
        if trigger.kind in SINGLE_EPISODE_KINDS and state.open_episode(trigger.kind) is not None:
            return []
        return self._open(state, trigger, deal_key)

    def _open(self, state: DealState, trigger: Trigger, deal_key: str) -> list[Outcome]:
        fingerprint = short_hash(trigger.identity)
        if fingerprint in state.fired:
            return []
        state.fired.append(fingerprint)
        if len(state.fired) > MAX_FIRED:
            del state.fired[0]
        found = self._classify(state, trigger.kind, trigger.at)
        evidence = found.evidence
        if trigger.event_id is not None and all(e[1] != trigger.signal for e in evidence):
            evidence = ((trigger.event_id, trigger.signal, trigger.excerpt), *evidence)
        ident = interruption_id(deal_key, trigger.identity)
        state.episodes.append(Episode(trigger.kind, ident, int(trigger.at), found.cause, found.side))
        return [
            Opened(
                ident,
                trigger.kind,
                trigger.at,
                found.cause,
                found.side,
                found.confidence,
                found.alternatives,
                evidence,
                0,
                trigger.batch_id,
                trigger.flags,
            )
        ]

    def _resume(self, state: DealState, trigger: Trigger, kinds: frozenset[str]) -> list[Outcome]:
        out: list[Outcome] = []
        keep: list[Episode] = []
        for ep in state.episodes:
            if ep.kind in kinds and trigger.at > ep.at:
                out.append(Resumed(ep.id, ep.kind, trigger.at, trigger.kind, trigger.event_id))
                if ep.kind == "stalled":
                    state.stalls += 1
            else:
                keep.append(ep)
        state.episodes = keep
        return out

    def _revise(self, state: DealState, just_opened: set[str]) -> list[Outcome]:
        """New evidence may change an open interruption's cause: emit it again, same id, next revision."""
        out: list[Outcome] = []
        newest = max((s[2] for s in state.signals), default=None)
        for ep in state.episodes:
            if ep.id in just_opened or newest is None:
                continue
            lo, hi = self._window(ep.kind, ep.at)
            if not lo <= newest <= hi:
                continue
            facts, window = self._evidence(state, ep.kind, ep.at)
            if verdict(facts, window) == (ep.cause, ep.side):
                continue
            found = classify(facts, window)
            ep.cause, ep.side, ep.revision = found.cause, found.side, ep.revision + 1
            out.append(
                Opened(
                    ep.id,
                    ep.kind,
                    ep.at,
                    found.cause,
                    found.side,
                    found.confidence,
                    found.alternatives,
                    found.evidence,
                    ep.revision,
                )
            )
        return out

    # ------------------------------------------------------------------ classification

    def facts(self, state: DealState, kind: str, at: float) -> Facts:
        pushes, slip = state.close_pushes()
        left = state.left
        return Facts(
            kind=kind,
            at=at,
            owner_changed_at=state.owner_changed_at,
            contact_left_at=left[2] if left else None,
            contact_change=left[1] if left else None,
            amount_cut_share=state.amount_cut,
            close_date_pushes=pushes,
            close_date_slip_days=slip,
            stage_moved_back=state.stage_back_at is not None,
            lost_reason=state.lost_reason,
            outbound_since_inbound=state.outbound_since_inbound(),
            last_outbound_at=state.outs[-1] if state.outs else None,
            last_inbound_at=state.last_in,
            last_activity_at=state.last_act,
            activities=state.acts,
        )

    def _window(self, kind: str, at: float) -> tuple[float, float]:
        """Text from a window before the interruption and a little after it counts as its evidence; for a quiet
        deal, everything written during the silence too (internal notes explain why nobody hears from them)."""
        hi = float("inf") if kind == "went_quiet" else at + self.cfg.revise_window_seconds
        return at - self.cfg.signal_window_seconds, hi

    def _evidence(self, state: DealState, kind: str, at: float) -> tuple[Facts, list[list[Any]]]:
        """An interruption's facts and the kept signals in its window, as ``classify`` takes them."""
        lo, hi = self._window(kind, at)
        return self.facts(state, kind, at), [s for s in state.signals if lo <= s[2] <= hi]

    def _classify(self, state: DealState, kind: str, at: float) -> Classification:
        return classify(*self._evidence(state, kind, at))

    # ------------------------------------------------------------------ quiet deals

    def quiet_anchor(self, state: DealState) -> float | None:
        """Event time from which silence is counted: the last qualifying activity, else the deal's creation."""
        return state.last_act if state.last_act is not None else state.created

    def quiet_deadline(self, state: DealState) -> float | None:
        """When the deal counts as quiet, in event time; None when it is not watched (closed, already quiet)."""
        if state.status not in (None, "open") or state.open_episode("went_quiet") is not None:
            return None
        anchor = self.quiet_anchor(state)
        if anchor is None:
            return None
        days = self.cfg.quiet_threshold_days(state.stage, state.tier)
        deadline = self.cfg.calendar.add_working_days(anchor, days)
        for later in (state.sched, state.snooze):
            if later is not None and later > deadline:
                deadline = later
        return deadline

    def next_check(self, state: DealState) -> float | None:
        deadline = self.quiet_deadline(state)
        if deadline is None:
            return None
        return max(deadline, state.recv + self.cfg.grace_seconds)

    def check_quiet(
        self, state: DealState, *, deal_key: str, now: float
    ) -> tuple[list[Outcome], float | None]:
        """At wall-clock ``now``: the went_quiet interruption if the deadline has passed and the deal's deliveries
        have settled, and when to look again."""
        deadline = self.quiet_deadline(state)
        if deadline is None:
            return [], None
        due = max(deadline, state.recv + self.cfg.grace_seconds)
        if now < due:
            return [], due
        anchor = self.quiet_anchor(state)
        days = self.cfg.quiet_threshold_days(state.stage, state.tier)
        trigger = Trigger(
            "went_quiet",
            f"went_quiet|{int(anchor or 0)}",
            deadline,
            None,
            "field:last_activity",
            f"no qualifying activity for {days:g} working days",
        )
        return self._open(state, trigger, deal_key), None
