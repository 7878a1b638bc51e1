"""The demo's webhook delivery against a stand-in receiver on loopback."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from dealwatch.demo import deliver, load_demo_events
from tests.helpers import TEST_GENERIC_SECRET, standard_webhooks_headers

pytestmark = pytest.mark.integration


class Receiver(http.server.ThreadingHTTPServer):
    def __init__(self, refusals: int) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.refusals = refusals
        self.received: list[tuple[dict[str, str], bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.server.refusals > 0:
            self.server.refusals -= 1
            self.send_response(503)
            self.send_header("retry-after", "2")
        else:
            self.server.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    server = Receiver(refusals=getattr(request, "param", 0))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_every_demo_event_arrives_signed_with_its_event_id_as_webhook_id(receiver: Receiver) -> None:
    events = load_demo_events(datetime.now(UTC))

    deliveries = list(deliver(receiver.url, TEST_GENERIC_SECRET, events))

    assert [d.status for d in deliveries] == [202] * len(events)
    assert [json.loads(body)["event_id"] for _, body in receiver.received] == [e["event_id"] for e in events]
    for headers, body in receiver.received:
        expected = standard_webhooks_headers(
            TEST_GENERIC_SECRET, body, headers["webhook-id"], int(headers["webhook-timestamp"])
        )
        assert headers["webhook-signature"] == expected["webhook-signature"]
        assert headers["webhook-id"] == json.loads(body)["event_id"]


@pytest.mark.parametrize("receiver", [2], indirect=True)
def test_a_busy_receiver_is_retried_after_the_time_it_asks_for(receiver: Receiver) -> None:
    waits: list[float] = []
    events = load_demo_events(datetime.now(UTC))[:1]

    deliveries = list(deliver(receiver.url, TEST_GENERIC_SECRET, events, wait=waits.append))

    assert [d.status for d in deliveries] == [202]
    assert waits == [2.0, 2.0]
    assert len(receiver.received) == 1


def test_delivery_stops_when_the_run_stops(receiver: Receiver) -> None:
    events = load_demo_events(datetime.now(UTC))

    deliveries = list(deliver(receiver.url, TEST_GENERIC_SECRET, events, stopped=lambda: True))

    assert deliveries == []
    assert receiver.received == []
