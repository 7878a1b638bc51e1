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
