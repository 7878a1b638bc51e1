"""The webhook's JSON answers: compact UTF-8, and valid JSON even for a string UTF-8 cannot carry."""

from __future__ import annotations

import json

from services.ingest.http import WebhookError, json_response


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
