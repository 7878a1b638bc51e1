import json
from datetime import datetime, timedelta

from services.common.settings import Settings
from services.detector.replay import replay
from services.detector.wiring import build_detector
from tests.unit.detector.events import NOW, days_ago


def line(deal_id: str, at, type: str, **body) -> str:
    return json.dumps(
        {
            "event_id": f"{deal_id}-{type}-{at.timestamp()}",
            "occurred_at": at.isoformat(),
            "type": type,
            "deal": {"id": deal_id, **body.pop("deal", {})},
            **body,
        }
    )


HISTORY = [
    line("A", days_ago(8), "deal.created", deal={"owner_id": "u-1", "stage": "proposal", "status": "open"}),
    line("A", days_ago(3), "activity.logged", activity={"kind": "call", "direction": "outbound"}),
    line("A", days_ago(2), "deal.updated", deal={"owner_id": "u-2"}, previous={"owner_id": "u-1"}),
    line("B", days_ago(90), "deal.created", deal={"owner_id": "u-3", "stage": "proposal", "status": "open"}),
    line(
        "B",
        days_ago(88),
        "activity.logged",
        activity={"kind": "email", "direction": "outbound", "text": "Sent the proposal"},
    ),
]


def test_replay_reports_what_would_have_fired():
    report = replay(HISTORY, build_detector(Settings()), until=NOW.timestamp())
    assert report.summary()["by_kind"] == {"reassigned": 1, "went_quiet": 1}
    assert report.events == 5 and report.deals == 2


def test_a_quiet_deadline_fires_at_its_own_time_during_the_replay():
    out = []
    replay(HISTORY, build_detector(Settings()), until=NOW.timestamp(), emit=out.append)
    quiet = next(m for m in out if m["kind"] == "went_quiet")
    assert quiet["deal_id"] == "B"
    assert datetime.fromisoformat(quiet["detected_at"]) < NOW - timedelta(days=60)


def test_thresholds_change_what_fires():
    lenient = build_detector(Settings(quiet={"default_days": 200, "by_stage": {}}))
    report = replay(HISTORY, lenient, until=NOW.timestamp())
    assert report.summary()["by_kind"] == {"reassigned": 1}


def test_bad_lines_are_counted_with_their_reason_and_the_rest_goes_on():
    report = replay(
        ["{not json", json.dumps({"deal": {}}), *HISTORY, "", json.dumps([1])],
        build_detector(Settings()),
        until=NOW.timestamp(),
    )
    assert report.summary()["rejected"] == 3
    assert report.events == 5
    assert len(report.first_rejections) == 3


def test_replaying_the_same_history_twice_counts_every_duplicate():
    report = replay(HISTORY + HISTORY, build_detector(Settings()), until=NOW.timestamp())
    assert report.duplicates == 5
    assert report.summary()["interruptions"] == 2


def test_the_deals_two_replays_differ_on_are_named_by_kind():
    from collections import Counter

    from services.detector.replay import ReplayReport, differences

    here = ReplayReport(
        fired={"s:a": Counter(went_quiet=1), "s:b": Counter(stalled=2), "s:c": Counter(stalled=1)}
    )
    there = ReplayReport(
        fired={"s:b": Counter(stalled=1), "s:c": Counter(stalled=1), "s:d": Counter(reassigned=1)}
    )
    found = differences(here, there, examples=1)
    assert found["deals"] == 3
    assert found["by_kind"] == {
        "reassigned": {"more_here": 0, "more_compared": 1, "examples_here": [], "examples_compared": ["s:d"]},
        "stalled": {"more_here": 1, "more_compared": 0, "examples_here": ["s:b"], "examples_compared": []},
        "went_quiet": {"more_here": 1, "more_compared": 0, "examples_here": ["s:a"], "examples_compared": []},
    }


def test_replay_keeps_what_opened_for_each_deal_when_asked():
    from services.detector.replay import replay_share

    report = replay_share(HISTORY, build_detector(Settings()), until=NOW.timestamp(), by_deal=True)
    assert report.fired == {"generic:A": {"reassigned": 1}, "generic:B": {"went_quiet": 1}}
    assert replay(HISTORY, build_detector(Settings()), until=NOW.timestamp()).fired is None


def test_an_activity_of_no_known_shape_is_a_rejected_line_not_a_crash():
    odd = line("C", days_ago(5), "activity.logged", activity={"kind": ["call"], "direction": "outbound"})
    for native in (True, False):
        report = replay([*HISTORY, odd], build_detector(Settings()), until=NOW.timestamp(), native=native)
        assert report.summary()["rejected_by_reason"] == {"activity.kind must be a string": 1}
        assert report.events == 5
