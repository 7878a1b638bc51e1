"""The detector benchmark's own pieces: realistic data, and the pure figures at tiny sizes (no broker)."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"
sys.path.insert(0, str(BENCH))

import detector_bench  # noqa: E402
from detector_data import change_events, generic_lines, histories_by_deal  # noqa: E402

from schemas.events import DealChanged  # noqa: E402
from services.detector.replay import replay  # noqa: E402

NOW = time.time()


def test_change_events_are_valid_contract_json_with_a_realistic_mix() -> None:
    events = list(change_events(2_000, now=NOW))
    assert len(events) == 2_000
    models = [DealChanged.model_validate_json(v) for _, v in events]
    assert all(k == m.key.encode() for (k, _), m in zip(events, models, strict=True))
    types = Counter(m.type for m in models)
    assert {"deal.created", "activity.logged", "deal.updated", "contact.changed"} <= set(types)
    notes = [m.activity.text for m in models if m.activity and m.activity.text]
    assert any(not n.isascii() for n in notes) and any(n.isascii() for n in notes)
    assert any(m.previous and m.previous.owner_id for m in models)
    assert any(m.previous and m.previous.close_date for m in models)
    deals = Counter(m.key for m in models)
    assert len(deals) > 100 and max(deals.values()) >= 3
    redelivered = len(models) - len({m.event_id for m in models})
    assert 0 < redelivered <= len(models) // 50


def test_the_data_is_the_same_for_the_same_seed() -> None:
    assert list(change_events(300, now=NOW)) == list(change_events(300, now=NOW))
    assert list(change_events(300, now=NOW)) != list(change_events(300, seed=8, now=NOW))


def test_the_history_export_replays_without_rejections() -> None:
    report = replay(list(generic_lines(1_000, now=NOW)), detector_bench.build_detector(), until=NOW)
    assert report.events == 1_000 and not report.rejected and report.deals > 50


def test_histories_by_deal_are_whole_deals_in_time_order() -> None:
    for key, history in histories_by_deal(50, now=NOW):
        assert history[0]["type"] == "deal.created"
        assert all(f"{e['source']}:{e['deal_id']}" == key for e in history)
        times = [DealChanged.model_validate(e).occurred_at for e in history]
        assert times == sorted(times)


def figures(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines() if line and not line.startswith("#"))


@pytest.fixture
def tiny() -> dict[str, int]:
    return {
        **detector_bench.QUICK,
        "quiet_small": 100,
        "quiet_large": 2_000,
        "quiet_checks": 5,
        "memory_deals": 200,
        "replay_events": 500,
        "replay_one_process_events": 200,
        "profile_events": 500,
    }


def test_the_pure_figures_run_and_print_name_value_lines(
    tiny: dict[str, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    detector_bench.quiet_figures(tiny)
    detector_bench.memory_figures(tiny)
    detector_bench.replay_figures(tiny, tmp_path)
    detector_bench.profile_figures(tiny)
    out = capsys.readouterr().out
    found = figures(out)
    for name in (
        "quiet_check_2k_over_100",
        "quiet_check_core_share_2k",
        "bytes_per_deal",
        "encoded_state_bytes_avg",
        "replay_over_json_parse",
        "replay_one_process_over_json_parse",
        "replay_one_process_over_reference",
        "processor_pure_events_per_s",
    ):
        assert float(found[name]) > 0, name
    assert "# profile:" in out
    assert found["replay_one_process_events"] == "200" and found["replay_events"] == "500"


def test_the_last_record_of_each_partition_is_sent_on_its_own() -> None:
    records = [(f"k{i}".encode(), b"v", i % 3) for i in range(10)]
    bulk, tail = detector_bench.split_tail(records)
    assert sorted(r[2] for r in tail) == [0, 1, 2]
    assert {r[0] for r in tail} == {b"k9", b"k8", b"k7"}
    assert len(bulk) + len(tail) == 10


def test_sizes_name_the_figures() -> None:
    assert detector_bench.size_suffix(1_000_000) == "1m"
    assert detector_bench.size_suffix(100_000) == "100k"
    assert detector_bench.size_suffix(1_500) == "1500"
    assert json.loads(json.dumps(detector_bench.FULL))["restart_deals"] == 1_000_000
