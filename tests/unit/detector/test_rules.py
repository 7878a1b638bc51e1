import json
import zlib
from datetime import timedelta

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.settings import Settings
from services.detector.domain import state as state_module
from services.detector.domain.event import BadEvent, parse_time
from services.detector.domain.outcomes import Opened, Resumed
from services.detector.domain.rules import Detector
from services.detector.domain.state import DealState
from services.detector.wiring import build_detector
from tests.unit.detector.events import NOW, activity, change, created, days_ago

KEY = "generic:D-1"


@pytest.fixture(scope="module")
def detector() -> Detector:
    return build_detector(Settings(quiet={"grace_seconds": 10}))


def run(detector: Detector, events, now: float | None = None, settle: bool = True):
    """Apply events in the given order, then (optionally) a quiet check once deliveries have settled."""
    now = NOW.timestamp() if now is None else now
    state: DealState | None = None
    outcomes = []
    for ev in events:
        applied = detector.apply(state, ev, deal_key=KEY, partition=0, now=now)
        state = applied.state
        outcomes += applied.outcomes
    if settle and state is not None:
        opened, _ = detector.check_quiet(state, deal_key=KEY, now=now + 3600)
        outcomes += opened
    return state, outcomes


def opened(outcomes, kind=None):
    return [
        o for o in outcomes if isinstance(o, Opened) and o.revision == 0 and (kind is None or o.kind == kind)
    ]


def test_owner_change_opens_one_reassigned_interruption(detector):
    _, out = run(
        detector,
        [
            created(at=days_ago(30)),
            activity(at=days_ago(3)),
            change(at=days_ago(0.1), deal={"owner_id": "u-2"}, previous={"owner_id": "u-1"}),
        ],
    )
    found = opened(out, "reassigned")
    assert len(found) == 1
    assert found[0].evidence
    assert any(e[1] == "field:owner_id" for e in found[0].evidence)


def test_owner_change_without_previous_is_seen_from_the_state(detector):
    _, out = run(
        detector,
        [
            created(at=days_ago(30)),
            activity(at=days_ago(1)),
            change(at=days_ago(0.5), deal={"owner_id": "u-9"}),
        ],
    )
    assert [o.kind for o in opened(out)] == ["reassigned"]


def test_a_redelivered_event_changes_nothing(detector):
    ev = change(at=days_ago(0.1), deal={"owner_id": "u-2"}, previous={"owner_id": "u-1"})
    state, out = run(detector, [created(at=days_ago(30)), ev], settle=False)
    again = detector.apply(state, ev, deal_key=KEY, partition=0, now=NOW.timestamp())
    assert again.duplicate and again.outcomes == []
    assert len(opened(out, "reassigned")) == 1


def test_an_old_owner_change_arriving_late_gives_the_same_interruption(detector):
    a = [
        created(at=days_ago(30)),
        change(at=days_ago(2), deal={"owner_id": "u-2"}, previous={"owner_id": "u-1"}),
        activity(at=days_ago(1), deal={"owner_id": "u-2"}),
    ]
    _, in_order = run(detector, a)
    _, reversed_ = run(detector, list(reversed(a)))
    assert {o.id for o in opened(in_order)} == {o.id for o in opened(reversed_)}


def test_a_deal_silent_for_sixty_days_goes_quiet_once(detector):
    state, out = run(detector, [created(at=days_ago(90)), activity(at=days_ago(60))])
    assert [o.kind for o in opened(out)] == ["went_quiet"]
    again, _ = detector.check_quiet(state, deal_key=KEY, now=NOW.timestamp() + 7200)
    assert again == []


def test_a_deal_with_recent_activity_is_not_quiet(detector):
    _, out = run(detector, [created(at=days_ago(90)), activity(at=days_ago(2))])
    assert opened(out) == []


def test_internal_notes_do_not_reset_the_quiet_clock(detector):
    _, out = run(
        detector,
        [
            created(at=days_ago(90)),
            activity(at=days_ago(60)),
            activity(at=days_ago(1), kind="note", direction="internal", text="確認中"),
        ],
    )
    assert [o.kind for o in opened(out)] == ["went_quiet"]


def test_a_booked_meeting_postpones_the_quiet_deadline(detector):
    booked = activity(at=days_ago(60), kind="meeting", scheduled_at=NOW + timedelta(days=5), done=False)
    _, out = run(detector, [created(at=days_ago(90)), booked])
    assert opened(out) == []


def test_no_quiet_verdict_while_deliveries_are_still_arriving(detector):
    state, _ = run(detector, [created(at=days_ago(90)), activity(at=days_ago(60))], settle=False)
    early, due = detector.check_quiet(state, deal_key=KEY, now=NOW.timestamp() + 1)
    assert early == [] and due == NOW.timestamp() + 10


def test_key_accounts_go_quiet_sooner(detector):
    cfg = detector.cfg
    assert cfg.quiet_threshold_days("proposal", "key") < cfg.quiet_threshold_days("proposal", "standard")


def test_thresholds_per_stage_and_tier_come_from_configuration():
    d = build_detector(
        Settings(quiet={"by_stage": {"proposal": 3}, "by_tier": {}, "by_stage_tier": {"negotiation/key": 1}})
    )
    assert d.cfg.quiet_threshold_days("proposal", "standard") == 3
    assert d.cfg.quiet_threshold_days("negotiation", "key") == 1
    assert d.cfg.quiet_threshold_days("unknown-stage", None) == d.cfg.quiet_default_days


def test_customer_reply_resumes_the_quiet_episode(detector):
    state, out = run(detector, [created(at=days_ago(90)), activity(at=days_ago(60))])
    quiet = opened(out, "went_quiet")[0]
    reply = activity(at=days_ago(0), direction="inbound", text="Sorry for the delay")
    applied = detector.apply(state, reply, deal_key=KEY, partition=0, now=NOW.timestamp() + 7200)
    assert [(o.id, o.reason) for o in applied.outcomes if isinstance(o, Resumed)] == [
        (quiet.id, "customer_activity")
    ]


def test_closed_lost_carries_the_lost_reason_as_evidence(detector):
    _, out = run(
        detector,
        [
            created(at=days_ago(40)),
            activity(at=days_ago(3)),
            change(at=days_ago(1), deal={"status": "lost", "lost_reason": "競合A社に決定"}),
        ],
    )
    lost = opened(out, "closed_lost")
    assert len(lost) == 1
    assert any("競合" in e[2] for e in lost[0].evidence)


def test_contact_leaving_flags_a_deal_left_without_contacts(detector):
    _, out = run(
        detector,
        [
            created(at=days_ago(40)),
            change(
                at=days_ago(39),
                type="contact.changed",
                contact={"id": "C-1", "title": "部長", "change": "added"},
            ),
            activity(at=days_ago(3)),
            change(at=days_ago(1), type="contact.changed", contact={"id": "C-1", "change": "left_company"}),
        ],
    )
    left = opened(out, "contact_left")
    assert len(left) == 1 and "no_contact_left" in left[0].flags


def test_contact_leaving_flags_a_deal_left_without_a_decision_maker(detector):
    _, out = run(
        detector,
        [
            created(at=days_ago(40)),
            change(
                at=days_ago(39),
                type="contact.changed",
                contact={"id": "C-1", "title": "部長", "change": "added"},
            ),
            change(
                at=days_ago(39),
                type="contact.changed",
                contact={"id": "C-2", "title": "担当", "change": "added"},
            ),
            activity(at=days_ago(3)),
            change(at=days_ago(1), type="contact.changed", contact={"id": "C-1", "change": "role_changed"}),
        ],
    )
    assert opened(out, "contact_left")[0].flags == ("no_decision_maker",)


def test_close_date_pushed_twice_is_a_stall(detector):
    _, out = run(
        detector,
        [
            created(at=days_ago(60), close_date="2026-11-01"),
            activity(at=days_ago(3)),
            change(at=days_ago(20), deal={"close_date": "2026-12-01"}),
            change(at=days_ago(2), deal={"close_date": "2027-01-15"}),
        ],
    )
    assert [o.kind for o in opened(out)] == ["stalled"]


def test_stage_moving_backwards_is_a_stall(detector):
    _, out = run(
        detector,
        [
            created(at=days_ago(30), stage="negotiation"),
            activity(at=days_ago(2)),
            change(at=days_ago(1), deal={"stage": "proposal"}),
        ],
    )
    assert [o.kind for o in opened(out)] == ["stalled"]


def test_a_sharp_amount_cut_is_a_stall_but_a_small_one_is_not(detector):
    _, big = run(
        detector,
        [
            created(at=days_ago(30), amount=1000),
            activity(at=days_ago(2)),
            change(at=days_ago(1), deal={"amount": 500}),
        ],
    )
    _, small = run(
        detector,
        [
            created(at=days_ago(30), amount=1000),
            activity(at=days_ago(2)),
            change(at=days_ago(1), deal={"amount": 900}),
        ],
    )
    assert [o.kind for o in opened(big)] == ["stalled"]
    assert opened(small) == []


def test_the_state_round_trips_through_its_compact_encoding(detector):
    state, _ = run(
        detector,
        [
            created(at=days_ago(60), close_date="2026-11-01", name="北辰精工 生産管理"),
            change(
                at=days_ago(39),
                type="contact.changed",
                contact={"id": "C-1", "title": "部長", "change": "added"},
            ),
            activity(at=days_ago(20), text="競合A社の値引き提案を検討中"),
            change(at=days_ago(2), deal={"owner_id": "u-2"}, previous={"owner_id": "u-1"}),
        ],
        settle=False,
    )
    raw = state.encode()
    assert DealState.decode(raw) == state
    assert len(raw) < 512
    # written with orjson, it is the very text the standard library writes, so states stored either way match
    assert (
        DealState.plain(raw)
        == json.dumps(json.loads(DealState.plain(raw)), ensure_ascii=False, separators=(",", ":")).encode()
    )


def test_a_state_stored_with_zlibs_default_window_still_reads(detector):
    """States written before the smaller deflate window (32 KiB, memLevel 9) decode as they did."""
    state, _ = run(
        detector, [created(at=days_ago(20), name="北辰精工"), activity(at=days_ago(3))], settle=False
    )
    old = zlib.compressobj(1, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, state_module._ZDICT)
    raw = b"z" + old.compress(DealState.plain(state.encode())) + old.flush()
    assert DealState.decode(raw) == state


def test_a_state_deflated_as_states_were_written_before_zstd_still_reads(detector):
    """Until 2026-11-30 states were deflated (4 KiB window, memLevel 5); changelogs still hold such states."""
    state, _ = run(
        detector,
        [created(at=days_ago(20), name="北辰精工"), activity(at=days_ago(3), text="予算が凍結")],
        settle=False,
    )
    before = zlib.compressobj(1, zlib.DEFLATED, -12, 5, zlib.Z_DEFAULT_STRATEGY, state_module._ZDICT)
    raw = b"z" + before.compress(DealState.plain(state.encode())) + before.flush()
    assert DealState.decode(raw) == state
    assert state.encode()[:1] == b"Z" and len(state.encode()) < len(DealState.plain(state.encode()))


def test_a_state_compressed_with_the_dictionary_loaded_per_state_still_reads(detector):
    """Until 2026-12-01 the compressor took explicit parameters and loaded the dictionary for every state; its
    frames differ in bytes from today's (which reference the digested dictionary) and must decode all the same."""
    state, _ = run(
        detector,
        [created(at=days_ago(20), name="北辰精工"), activity(at=days_ago(3), text="予算が凍結")],
        settle=False,
    )
    params = zstandard.ZstdCompressionParameters.from_level(
        3, write_checksum=0, write_content_size=1, write_dict_id=0
    )
    before = zstandard.ZstdCompressor(dict_data=state_module._zstd_dict(), compression_params=params)
    frame = before.compress(DealState.plain(state.encode()))
    assert frame[:4] == state_module._ZSTD_MAGIC
    assert DealState.decode(b"Z" + frame[4:]) == state


def test_a_damaged_stored_state_is_refused_with_a_clear_error(detector):
    state, _ = run(detector, [created(at=days_ago(10), name="big")], settle=False)
    raw = state.encode()
    with pytest.raises(ValueError, match="does not decompress"):
        DealState.decode(raw[:1] + b"\x00\x01garbage")
    with pytest.raises(ValueError, match="does not inflate"):
        DealState.decode(b"z\xff\xfegarbage")
    with pytest.raises(ValueError, match="unknown deal state format"):
        DealState.decode(b"[2]")


def test_a_state_with_what_orjson_cannot_write_is_still_stored(detector):
    state, _ = run(detector, [created(at=days_ago(10), name="big")], settle=False)
    state.acts = 2**70  # beyond 64 bits: orjson refuses it, the standard library writes it
    assert DealState.decode(state.encode()) == state


# ---------------------------------------------------------------- order independence

DEAL_HISTORY = [
    created(at=days_ago(120), close_date="2026-10-01", amount=5000, stage="negotiation"),
    change(
        at=days_ago(118),
        type="contact.changed",
        contact={"id": "C-1", "title": "Director", "change": "added"},
    ),
    activity(at=days_ago(100), kind="meeting", text="Demo went well"),
    change(at=days_ago(90), deal={"close_date": "2026-11-15"}),
    activity(
        at=days_ago(80), kind="note", direction="internal", text="They are comparing us with another vendor"
    ),
    change(at=days_ago(75), deal={"close_date": "2027-01-31"}),
    change(at=days_ago(70), deal={"owner_id": "u-2"}, previous={"owner_id": "u-1"}),
    change(at=days_ago(65), type="contact.changed", contact={"id": "C-1", "change": "left_company"}),
    activity(at=days_ago(64), kind="email", text="Following up on the proposal"),
]


@settings(max_examples=200, deadline=None)
@given(order=st.permutations(range(len(DEAL_HISTORY))))
def test_shuffling_a_deals_events_never_changes_its_interruptions(detector, order):
    _, expected = run(detector, DEAL_HISTORY)
    _, shuffled = run(detector, [DEAL_HISTORY[i] for i in order])
    assert {(o.id, o.kind) for o in opened(shuffled)} == {(o.id, o.kind) for o in opened(expected)}


def test_a_snoozed_deal_does_not_go_quiet_before_the_snooze_ends(detector):
    state, _ = run(detector, [created(at=days_ago(90)), activity(at=days_ago(60))], settle=False)
    until = (NOW + timedelta(days=7)).timestamp()
    state = detector.snooze(state, "cmd-1", until, partition=0).state
    during, due = detector.check_quiet(state, deal_key=KEY, now=NOW.timestamp() + 3600)
    assert during == [] and due == until
    after, _ = detector.check_quiet(state, deal_key=KEY, now=until + 1)
    assert [o.kind for o in after] == ["went_quiet"]


def test_lifting_a_snooze_makes_the_deal_quiet_again(detector):
    state, _ = run(detector, [created(at=days_ago(90)), activity(at=days_ago(60))], settle=False)
    state = detector.snooze(state, "cmd-1", (NOW + timedelta(days=7)).timestamp(), partition=0).state
    state = detector.snooze(state, "cmd-2", None, partition=0).state
    opened_now, _ = detector.check_quiet(state, deal_key=KEY, now=NOW.timestamp() + 3600)
    assert [o.kind for o in opened_now] == ["went_quiet"]


def test_a_redelivered_snooze_command_changes_nothing(detector):
    state, _ = run(detector, [created(at=days_ago(90))], settle=False)
    state = detector.snooze(state, "cmd-1", (NOW + timedelta(days=7)).timestamp(), partition=0).state
    again = detector.snooze(state, "cmd-1", None, partition=0)
    assert again.duplicate and again.state.snooze == (NOW + timedelta(days=7)).timestamp()


def test_an_event_naming_no_deal_field_leaves_the_deals_fields_as_they_were(detector):
    state, _ = run(detector, [created(at=days_ago(30), name="Northwind", amount=1_000_000)], settle=False)
    before = (state.name, state.owner, state.stage, state.status, state.amount, state.closes, state.tier)
    for ev in (
        activity(at=days_ago(2)),
        change(at=days_ago(1), deal={"name": None}, previous={"stage": "demo"}),
    ):
        state = detector.apply(state, ev, deal_key=KEY, partition=0, now=NOW.timestamp()).state
        assert (
            state.name,
            state.owner,
            state.stage,
            state.status,
            state.amount,
            state.closes,
            state.tier,
        ) == before
        assert state.info_at == ev_time(ev)


def test_a_deleted_deal_is_marked_deleted_though_the_event_names_no_field(detector):
    state, _ = run(
        detector, [created(at=days_ago(30)), change(at=days_ago(1), type="deal.deleted")], settle=False
    )
    assert state.status == "deleted"


def test_a_malformed_previous_close_date_is_refused_without_a_new_one(detector):
    state, _ = run(detector, [created(at=days_ago(30))], settle=False)
    ev = {**change(at=days_ago(1)), "previous": {"close_date": "soon"}}  # past the contract's model
    with pytest.raises(BadEvent):
        detector.apply(state, ev, deal_key=KEY, partition=0, now=NOW.timestamp())


def ev_time(ev) -> int:
    return parse_time(ev["occurred_at"])
