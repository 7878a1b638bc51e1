"""The webhook load benchmark's pure parts: percentiles, the open-loop schedule, signing, response parsing."""

from __future__ import annotations

import base64
import itertools
import json
import random
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"
sys.path.insert(0, str(BENCH))

import webhook_generator as gen  # noqa: E402
import webhook_load  # noqa: E402

from services.ingest.domain.normalize import normalize_generic  # noqa: E402
from services.ingest.domain.signatures import StandardWebhooksVerifier  # noqa: E402
from tests.helpers import TEST_GENERIC_SECRET, standard_webhooks_headers  # noqa: E402

KEY = base64.b64decode(TEST_GENERIC_SECRET.removeprefix("whsec_"))


def test_percentiles_are_nearest_rank() -> None:
    values = list(range(100, 0, -1))  # 1..100, unsorted
    assert gen.percentile(values, 50) == 50
    assert gen.percentile(values, 99) == 99
    assert gen.percentile(values, 100) == 100
    assert gen.percentile(values, 1) == 1
    assert gen.percentile([7.5], 99) == 7.5
    assert gen.percentile([1, 2, 3, 1000], 50) == 2
    assert gen.percentile([1, 2, 3, 1000], 99) == 1000


def test_a_percentile_of_nothing_or_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError):
        gen.percentile([], 50)
    with pytest.raises(ValueError):
        gen.percentile([1.0], 0)
    with pytest.raises(ValueError):
        gen.percentile([1.0], 101)


def test_the_open_loop_schedule_is_a_fixed_rate_from_zero() -> None:
    schedule = gen.open_loop_schedule(200, 15)
    assert len(schedule) == 3000
    assert schedule[0] == 0.0
    assert schedule[-1] < 15
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(schedule)}
    assert gaps == {0.005}
    assert len(gen.open_loop_schedule(3, 1)) == 3
    assert len(gen.open_loop_schedule(0.5, 3)) == 2  # at 0 s and 2 s


def test_an_empty_schedule_is_refused() -> None:
    with pytest.raises(ValueError):
        gen.open_loop_schedule(0, 10)
    with pytest.raises(ValueError):
        gen.open_loop_schedule(200, 0)


def test_latency_counts_from_the_intended_send_time_and_skips_unanswered_requests() -> None:
    intended = [10.0, 10.005, 10.010]
    done = [10.002, None, 10.5]  # the third one was sent late: the lateness counts
    assert gen.latencies_from_intended(intended, done) == pytest.approx([0.002, 0.49])


def test_the_generator_signs_as_the_helpers_and_the_receiver_expect() -> None:
    body = gen.compact(gen.reassignment_event("r1", "D-1", "2026-11-30T00:00:00Z"))
    headers = standard_webhooks_headers(TEST_GENERIC_SECRET, body, msg_id="msg_1", timestamp=1_800_000_000)
    assert gen.signature(KEY, "msg_1", 1_800_000_000, body) == headers["webhook-signature"]
    request = gen.signed_request("127.0.0.1:8080", "/webhooks/generic", KEY, "msg_1", 1_800_000_000, body)
    head, _, sent = request.partition(b"\r\n\r\n")
    assert sent == body
    lines = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    assert int(lines["content-length"]) == len(body)
    verifier = StandardWebhooksVerifier.from_secret(TEST_GENERIC_SECRET)
    verifier.verify(
        msg_id=lines["webhook-id"],
        timestamp=lines["webhook-timestamp"],
        signature=lines["webhook-signature"],
        body=sent,
        now=datetime.fromtimestamp(1_800_000_000, UTC),
    )


def test_the_load_bodies_are_valid_generic_events_with_ids_unique_per_request() -> None:
    requests = gen.Requests(gen.Target("127.0.0.1", 1, "/webhooks/generic"), KEY, max_events=10, run="t")
    bodies = [requests.next().partition(b"\r\n\r\n")[2] for _ in range(3 * gen.Requests.POOL)]
    ids = []
    for body in bodies:
        payload = json.loads(body)
        batch = normalize_generic(payload, received_at=datetime.now(UTC), max_events=1000)
        assert 1 <= len(batch.events) <= 10
        ids += [e.event_id for e in batch.events]
    assert len(ids) == len(set(ids)) == requests.events


def test_the_owner_change_names_the_old_owner() -> None:
    event = gen.reassignment_event("r1", "D-9", "2026-11-30T00:00:00Z")
    assert event["previous"]["owner_id"] != event["deal"]["owner_id"]
    assert event["deal"]["id"] == "D-9"


def test_response_heads_are_parsed() -> None:
    head = b"HTTP/1.1 202 Accepted\r\ncontent-length: 17\r\ncontent-type: application/json\r\n\r\n"
    assert gen.parse_response_head(head) == (202, 17, True)
    closing = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    assert gen.parse_response_head(closing) == (503, 0, False)
    with pytest.raises(ValueError):
        gen.parse_response_head(b"garbage\r\n\r\n")


def test_the_generator_gets_the_last_core_and_the_server_the_others() -> None:
    assert webhook_load.split_cores([1, 0]) == ([0], [1])
    assert webhook_load.split_cores([0, 1, 2, 3]) == ([0, 1, 2], [3])
    assert webhook_load.split_cores([0]) == ([0], [0])


def test_errors_are_every_answer_but_2xx() -> None:
    result = {
        "statuses": {"202": 990, "503": 4, "timeout": 5, "ConnectionResetError": 1, "connections_opened": 9}
    }
    assert webhook_load.errors_of(result) == 10


def test_machine_load_notes_name_each_process_and_flag_a_busy_machine() -> None:
    text = webhook_load.describe_cores(
        {"pipeline": 0.9, "pipeline/detector": 0.2, "pipeline/web": 0.5, "generator": 0.1, "other": 0.6}
    )
    assert "pipeline 0.90 (detector 0.20, web 0.50)" in text
    assert "generator 0.10" in text and "other processes 0.60 (machine busy)" in text
    assert "busy" not in webhook_load.describe_cores({"server": 1.0, "other": 0.1})


def test_the_load_mix_is_seeded() -> None:
    a = gen.load_event("r", "e1", random.Random(3), "2026-11-30T00:00:00Z")
    b = gen.load_event("r", "e1", random.Random(3), "2026-11-30T00:00:00Z")
    assert a == b
