"""Forged, replayed and expired deliveries: every forgery is refused with 401 and nothing reaches a topic; a
delivery replayed inside the tolerance is accepted again with the same event ids (the downstream drops them);
one signed outside it (301 seconds either way) is refused."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.hostile.conftest import (
    EXAMPLES,
    PIPEDRIVE_PASSWORD,
    PIPEDRIVE_USER,
    SALESFORCE_SECRET,
    SOURCES,
    Web,
    assert_still_serving,
    generic_headers,
    hubspot_headers,
    nothing_written,
    pipedrive_headers,
    salesforce_headers,
    signed,
    topic_sizes,
    valid_body,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning"),
]
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
WHSEC_OTHER = "whsec_" + base64.b64encode(b"not-the-configured-secret-012345").decode()
JUNK_HEADER = "x" * 8192


def flip(text: str, at: int) -> str:
    raw = bytearray(base64.b64decode(text + "=" * (-len(text) % 4)))
    raw[at % len(raw)] ^= 1 << (at % 8)
    return base64.b64encode(bytes(raw)).decode()


def forged_generic(body: bytes, how: str, n: int) -> tuple[bytes, dict[str, str]]:
    headers = generic_headers(body)
    now = int(time.time())
    if how == "flipped":
        headers["webhook-signature"] = "v1," + flip(headers["webhook-signature"][3:], n)
    elif how == "other_body":
        body = body + b" "
    elif how == "other_secret":
        headers = generic_headers(body, secret=WHSEC_OTHER)
    elif how == "empty":
        headers["webhook-signature"] = ""
    elif how == "missing":
        del headers[("webhook-id", "webhook-timestamp", "webhook-signature")[n % 3]]
    elif how == "scheme":
        headers["webhook-signature"] = ("v2,", "v1a,", "V1,", "v1 ")[n % 4] + headers["webhook-signature"][3:]
    elif how == "many_wrong":
        headers["webhook-signature"] = " ".join(
            f"v1,{flip(headers['webhook-signature'][3:], i)}" for i in range(5)
        )
    elif how == "milliseconds":
        headers = generic_headers(body, timestamp=now * 1000)
    elif how == "expired":
        headers = generic_headers(body, timestamp=now - 301 - n)
    elif how == "future":
        headers = generic_headers(body, timestamp=now + 301 + n)
    elif how == "huge":
        headers["webhook-signature"] = JUNK_HEADER
    else:  # other id: the signature covers the id
        headers["webhook-id"] = headers["webhook-id"] + "x"
    return body, headers


def forged_hubspot(body: bytes, how: str, n: int) -> tuple[bytes, dict[str, str]]:
    headers = hubspot_headers(body)
    now_ms = int(time.time() * 1000)
    if how == "flipped":
        headers["x-hubspot-signature-v3"] = flip(headers["x-hubspot-signature-v3"], n)
    elif how == "other_body":
        body = body + b" "
    elif how == "other_secret":
        headers = hubspot_headers(body, secret="another-client-secret")
    elif how == "empty":
        headers["x-hubspot-signature-v3"] = ""
    elif how == "missing":
        del headers[("x-hubspot-signature-v3", "x-hubspot-request-timestamp")[n % 2]]
    elif how == "scheme":  # a v1 signature (sha256 of secret + body) is not accepted where v3 is required
        headers["x-hubspot-signature-v3"] = base64.b64encode(b"v1-style" * 4).decode()
    elif how == "many_wrong":
        headers["x-hubspot-signature-v3"] = ",".join(
            flip(headers["x-hubspot-signature-v3"], i) for i in range(3)
        )
    elif how == "milliseconds":  # seconds where HubSpot sends milliseconds: far in the past
        headers = hubspot_headers(body, ts_ms=now_ms // 1000)
    elif how == "expired":
        headers = hubspot_headers(body, ts_ms=now_ms - (301 + n) * 1000)
    elif how == "future":
        headers = hubspot_headers(body, ts_ms=now_ms + (301 + n) * 1000)
    elif how == "huge":
        headers["x-hubspot-signature-v3"] = JUNK_HEADER
    else:  # signed for another URL
        headers = hubspot_headers(body, uri="https://elsewhere.example/webhooks/hubspot")
    return body, headers


def forged_pipedrive(body: bytes, how: str, n: int) -> tuple[bytes, dict[str, str]]:
    variants = {
        "flipped": pipedrive_headers(password=PIPEDRIVE_PASSWORD[:-1] + chr(ord(PIPEDRIVE_PASSWORD[-1]) ^ 1)),
        "other_body": pipedrive_headers(user=PIPEDRIVE_USER + "x"),
        "other_secret": pipedrive_headers(password="guess"),
        "empty": {"content-type": "application/json", "authorization": ""},
        "missing": {"content-type": "application/json"},
        "scheme": {"content-type": "application/json", "authorization": f"Bearer {PIPEDRIVE_PASSWORD}"},
        "many_wrong": {"content-type": "application/json", "authorization": "Basic !!!not-base64!!!"},
        "milliseconds": pipedrive_headers(user=PIPEDRIVE_USER.upper()),
        "expired": pipedrive_headers(password=PIPEDRIVE_PASSWORD + "\x00"),
        "future": {
            "content-type": "application/json",
            "authorization": "Basic " + base64.b64encode(b"nocolon").decode(),
        },
        "huge": {"content-type": "application/json", "authorization": "Basic " + JUNK_HEADER},
        "other_id": pipedrive_headers(password=""),
    }
    return body, variants[how]


def forged_salesforce(body: bytes, how: str, n: int) -> tuple[bytes, dict[str, str]]:
    variants = {
        "flipped": salesforce_headers(SALESFORCE_SECRET[:-1] + chr(ord(SALESFORCE_SECRET[-1]) ^ 1)),
        "other_body": salesforce_headers(SALESFORCE_SECRET + " "),
        "other_secret": salesforce_headers("guess"),
        "empty": salesforce_headers(""),
        "missing": {"content-type": "application/json"},
        "scheme": {"content-type": "application/json", "authorization": f"Basic {SALESFORCE_SECRET}"},
        "many_wrong": {"content-type": "application/json", "authorization": "Bearer wrong"},
        "milliseconds": salesforce_headers(SALESFORCE_SECRET.upper()),
        "expired": salesforce_headers(SALESFORCE_SECRET[1:]),
        "future": salesforce_headers(SALESFORCE_SECRET + SALESFORCE_SECRET),
        "huge": salesforce_headers(JUNK_HEADER),
        "other_id": {"content-type": "application/json", "x-dealwatch-secret": "é" + SALESFORCE_SECRET},
    }
    return body, variants[how]


FORGERS = {
    "generic": forged_generic,
    "hubspot": forged_hubspot,
    "pipedrive": forged_pipedrive,
    "salesforce": forged_salesforce,
}
HOW = [
    "flipped",
    "other_body",
    "other_secret",
    "empty",
    "missing",
    "scheme",
    "many_wrong",
    "milliseconds",
    "expired",
    "future",
    "huge",
    "other_id",
]


@pytest.mark.parametrize("source", SOURCES)
def test_every_forged_delivery_gets_401_and_nothing_reaches_a_topic(web: Web, source: str) -> None:
    before = topic_sizes(web)

    @FUZZ
    @given(how=st.sampled_from(HOW), n=st.integers(min_value=0, max_value=10_000), deal=st.integers(0, 10**6))
    def forge(how: str, n: int, deal: int) -> None:
        body, headers = FORGERS[source](valid_body(source, deal), how, n)
        answer = web.send("POST", f"/webhooks/{source}", body=body, headers=headers)
        assert answer.status_code == 401, (source, how, answer.status_code, answer.text)
        assert answer.json()["error"] == "unauthorized"

    forge()
    for how in HOW:  # every kind at least once, whatever the sample drew
        body, headers = FORGERS[source](valid_body(source), how, 1)
        assert web.send("POST", f"/webhooks/{source}", body=body, headers=headers).status_code == 401, how
    assert nothing_written(web, before)
    assert_still_serving(web)


@pytest.mark.parametrize("source", SOURCES)
def test_a_delivery_replayed_inside_the_tolerance_is_accepted_with_the_same_event_ids(
    web: Web, source: str
) -> None:
    body = valid_body(source, 7)
    headers = signed(source, body)

    answers = [web.send("POST", f"/webhooks/{source}", body=body, headers=headers) for _ in range(5)]

    assert [a.status_code for a in answers] == [202] * 5
    ids = [tuple(a.json()["event_ids"]) for a in answers]
    assert len(set(ids)) == 1 and ids[0]


@pytest.mark.parametrize("skew", [-301, 301, -3600, 86_400])
def test_a_delivery_signed_more_than_five_minutes_away_is_refused(web: Web, skew: int) -> None:
    before = topic_sizes(web)
    body = valid_body("generic")
    generic = generic_headers(body, timestamp=int(time.time()) + skew)
    hubspot_body = valid_body("hubspot")
    hubspot = hubspot_headers(hubspot_body, ts_ms=int((time.time() + skew) * 1000))

    assert web.send("POST", "/webhooks/generic", body=body, headers=generic).status_code == 401
    assert web.send("POST", "/webhooks/hubspot", body=hubspot_body, headers=hubspot).status_code == 401
    assert nothing_written(web, before)


def test_a_replay_of_a_captured_delivery_after_the_tolerance_is_refused(web: Web) -> None:
    body = valid_body("generic")
    signed_at = int(time.time()) - 60
    captured = generic_headers(body, timestamp=signed_at)
    first = web.send("POST", "/webhooks/generic", body=body, headers=captured)
    # The same capture as it stands six minutes after its signature (no sleeping: its timestamp moves back).
    replayed_late = generic_headers(body, msg_id=captured["webhook-id"], timestamp=signed_at - 300)

    assert first.status_code == 202
    assert web.send("POST", "/webhooks/generic", body=body, headers=replayed_late).status_code == 401


def test_a_body_signed_for_one_source_is_refused_by_the_others(web: Web) -> None:
    body = valid_body("generic")
    headers: dict[str, Any] = generic_headers(body)
    for source in ("hubspot", "pipedrive", "salesforce"):
        answer = web.send("POST", f"/webhooks/{source}", body=body, headers=headers)
        assert answer.status_code == 401, (source, answer.text)
    assert json.loads(web.send("POST", "/webhooks/generic", body=body, headers=headers).text)["accepted"] == 1
