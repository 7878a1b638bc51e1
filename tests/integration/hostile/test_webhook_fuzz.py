"""Property-based fuzzing of every webhook endpoint, signed like its CRM: each answer is the one the ingest's own
parser and normalizer give for the body (202 with exactly the normalized events, 400, 413, 422), never a 5xx,
and the topics receive exactly what was acknowledged: the events of the 202s, one dead letter per 400/422."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.domain.jsonbody import parse_json
from services.ingest.domain.outcome import InvalidEvent, MalformedBody, TooManyEvents
from tests.integration.hostile.conftest import (
    EXAMPLES,
    SOURCES,
    Web,
    assert_still_serving,
    signed,
    topic_sizes,
    valid_body,
    written_between,
)
from tests.integration.hostile.strategies import damaged, encoded, payloads

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning"),
]
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@dataclass
class Expected:
    status: int
    event_ids: list[str]


def expected(web: Web, source: str, body: bytes) -> Expected:
    """What the ingest must answer to an authentic JSON ``body``, by its own pure code."""
    if len(body) > web.settings.max_body_bytes:
        return Expected(413, [])
    receiver = web.ingest.sources[source]
    depth = web.settings.max_json_depth
    try:
        payload = (
            receiver.decode(body, "json", depth) if receiver.decode else parse_json(body, max_depth=depth)
        )
    except MalformedBody:
        return Expected(400, [])
    try:
        batch = receiver.normalize(
            payload, received_at=datetime.now(UTC), max_events=web.settings.max_batch_events
        )
    except TooManyEvents:
        return Expected(413, [])
    except InvalidEvent:
        return Expected(422, [])
    return Expected(202, [e.event_id for e in batch.events])


@dataclass
class Written:
    events: int = 0
    dead_letters: int = 0

    def expect(self, answer: Expected) -> None:
        self.events += len(answer.event_ids)
        self.dead_letters += answer.status in (400, 422)


def post(web: Web, source: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
    return web.send("POST", f"/webhooks/{source}", body=body, headers=headers or signed(source, body))


def check_answer(web: Web, source: str, body: bytes, written: Written) -> None:
    want = expected(web, source, body)
    answer = post(web, source, body)
    assert answer.status_code == want.status, (source, body[:300], answer.status_code, answer.text[:300])
    if want.status == 202:
        assert answer.json()["event_ids"] == want.event_ids
    written.expect(want)


@pytest.mark.parametrize("source", SOURCES)
def test_signed_json_bodies_get_exactly_the_answer_and_the_records_the_normalizer_gives(
    web: Web, source: str
) -> None:
    before, written = topic_sizes(web), Written()

    @FUZZ
    @given(payload=payloads(source))
    def deliver(payload: Any) -> None:
        check_answer(web, source, encoded(payload), written)

    deliver()
    after = topic_sizes(web)
    assert written_between(before, after, web.topics.deal_changes) == written.events
    assert written_between(before, after, web.topics.dead_letters) == written.dead_letters
    assert_still_serving(web)


@pytest.mark.parametrize("source", SOURCES)
def test_damaged_and_arbitrary_bytes_signed_as_the_crm_does_never_get_a_server_error(
    web: Web, source: str
) -> None:
    before, written = topic_sizes(web), Written()
    bodies = st.one_of(
        st.integers(min_value=0, max_value=10**6).flatmap(lambda n: damaged(valid_body(source, n))),
        st.binary(max_size=200),
    )

    @FUZZ
    @given(body=bodies)
    def deliver(body: bytes) -> None:
        check_answer(web, source, body, written)

    deliver()
    after = topic_sizes(web)
    assert written_between(before, after, web.topics.deal_changes) == written.events
    assert written_between(before, after, web.topics.dead_letters) == written.dead_letters
    assert_still_serving(web)


def test_every_event_of_a_batch_of_the_largest_allowed_size_is_published(web: Web) -> None:
    limit = web.settings.max_batch_events
    events = [json.loads(valid_body("generic", n)) for n in range(limit)]
    body = json.dumps(events).encode()

    answer = post(web, "generic", body)
    over = post(web, "generic", json.dumps([*events, events[0]]).encode())

    assert answer.status_code == 202 and answer.json()["accepted"] == limit
    assert over.status_code == 413 and over.json()["error"] == "too_many_events"
