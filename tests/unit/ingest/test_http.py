"""The webhook's JSON answers: compact UTF-8, and valid JSON even for a string UTF-8 cannot carry; reading a
body within its size and time limits."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest
from starlette.requests import Request

from services.ingest.http import WebhookError, json_response, read_body


def test_an_answer_is_compact_utf8_json_with_its_status_and_headers() -> None:
    response = json_response(202, {"accepted": 2, "event_ids": ["evt-1", "商談-2"]}, {"X-Test": "1"})
    assert response.status_code == 202
    assert response.body == '{"accepted":2,"event_ids":["evt-1","商談-2"]}'.encode()
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-test"] == "1"


def test_a_lone_surrogate_is_written_as_an_escape_not_refused() -> None:
    response = WebhookError(400, "malformed", "id \ud800 is not text").response()
    assert response.status_code == 400
    assert json.loads(response.body.decode("ascii")) == {
        "error": "malformed",
        "detail": "id \ud800 is not text",
    }


def _request(chunks: list[bytes], then_stall: bool) -> Request:
    """A request whose body comes as ``chunks``; then it ends, or (``then_stall``) it stops coming, and each
    further read returns an empty part, as when the HTTP server wakes a stalled read once a second."""
    pending = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        return {"type": "http.request", "body": b"", "more_body": then_stall}

    return Request({"type": "http", "method": "POST", "headers": [], "path": "/"}, receive)


def _ticking() -> Callable[[], float]:
    """A clock that moves one second each time it is read."""
    ticks = itertools.count()
    return lambda: float(next(ticks))


async def test_a_body_that_stops_coming_is_refused_with_408_once_its_time_is_up() -> None:
    with pytest.raises(WebhookError) as caught:
        await read_body(_request([b'{"a":', b"1"], then_stall=True), limit=1024, timeout=5, clock=_ticking())
    assert caught.value.status == 408
    assert caught.value.code == "body_timeout"


async def test_a_body_that_arrives_in_time_is_read_whole() -> None:
    body = await read_body(
        _request([b'{"a":', b"1}"], then_stall=False), limit=1024, timeout=5, clock=_ticking()
    )
    assert body == b'{"a":1}'


async def test_a_body_over_the_limit_is_refused_with_413_before_the_deadline_matters() -> None:
    with pytest.raises(WebhookError) as caught:
        await read_body(
            _request([b"x" * 600, b"x" * 600], then_stall=True), limit=1024, timeout=5, clock=_ticking()
        )
    assert caught.value.status == 413


async def test_a_client_gone_before_its_body_ended_is_a_400() -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    request = Request({"type": "http", "method": "POST", "headers": [], "path": "/"}, receive)
    with pytest.raises(WebhookError) as caught:
        await read_body(request, limit=1024, timeout=5)
    assert (caught.value.status, caught.value.code) == (400, "client_disconnected")
