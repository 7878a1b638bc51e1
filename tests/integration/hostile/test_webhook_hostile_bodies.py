"""Curated hostile bodies, authentic (signed) so that they reach the parser, against every webhook: each is
refused with the contract's code (400 malformed, 413 too large, 415 wrong content type or encoding, 422 not an
event), and the service goes on taking valid deliveries."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator

import pytest

from tests.integration.hostile.conftest import (
    SALESFORCE_ORG,
    SOURCES,
    Web,
    assert_still_serving,
    nothing_written,
    signed,
    topic_sizes,
    valid_body,
    written_between,
)

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


HOSTILE: dict[str, tuple[Callable[[Web], bytes], int, str]] = {
    "not UTF-8": (lambda _: b'{"event_id": "\xff\xfe"}', 400, "malformed"),
    "overlong UTF-8": (lambda _: b'{"event_id": "\xc0\xaf"}', 400, "malformed"),
    "lone surrogate": (lambda _: b'{"event_id": "\\ud800"}', 400, "malformed"),
    "NaN": (lambda _: b'{"amount": NaN}', 400, "malformed"),
    "Infinity": (lambda _: b"[Infinity]", 400, "malformed"),
    "duplicate keys": (lambda _: b'{"event_id": "a", "event_id": "b"}', 400, "malformed"),
    "100,000-digit integer": (lambda _: b'{"n": ' + b"9" * 100_000 + b"}", 400, "malformed"),
    "depth 10,000": (lambda _: nested(10_000), 400, "malformed"),
    "depth 100,000": (lambda _: nested(100_000), 400, "malformed"),
    "top-level string": (lambda _: b'"deal.updated"', 400, "malformed"),
    "top-level number": (lambda _: b"42", 400, "malformed"),
    "null": (lambda _: b"null", 400, "malformed"),
    "empty body": (lambda _: b"", 400, "malformed"),
    "not JSON": (lambda _: b"<deal id='1'/>", 400, "malformed"),
    "trailing garbage": (lambda w: valid_body("generic") + b" x", 400, "malformed"),
    "empty batch": (lambda _: b"[]", 422, "invalid_event"),
    "batch over the bound": (
        lambda w: json.dumps([{}] * (w.settings.max_batch_events + 1)).encode(),
        413,
        "",
    ),
    "100,000-item batch": (lambda _: b"[" + b",".join([b"{}"] * 100_000) + b"]", 413, ""),
    "body over the size bound": (lambda w: b" " * (w.settings.max_body_bytes + 1), 413, ""),
    "10 MiB body": (lambda _: b"[" + b"0," * (5 * MiB) + b"0]", 413, ""),
}


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_body_is_refused_with_the_contracts_code(web: Web, source: str, name: str) -> None:
    make, status, error = HOSTILE[name]
    body = make(web)

    answer = web.send("POST", f"/webhooks/{source}", body=body, headers=signed(source, body))

    assert answer.status_code == status, (name, answer.text[:300])
    if error:
        assert answer.json()["error"] == error


def chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("source", SOURCES)
def test_a_body_streamed_past_the_bound_without_a_length_is_cut_off_with_413(web: Web, source: str) -> None:
    body = b" " * (web.settings.max_body_bytes + 1)
    headers = signed(source, body)

    answer = web.send("POST", f"/webhooks/{source}", body=chunks(body), headers=headers)

    assert answer.status_code == 413


CONTENT_TYPES = [
    None,
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/json; charset=latin-1",
    "application/json; charset=utf-16",
    "application/octet-stream",
]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_a_body_of_another_content_type_is_refused_with_415(
    web: Web, source: str, content_type: str | None
) -> None:
    body = valid_body(source)
    headers = signed(source, body)
    headers.pop("content-type")
    if content_type is not None:
        headers["content-type"] = content_type

    answer = web.send("POST", f"/webhooks/{source}", body=body, headers=headers)

    assert answer.status_code == 415, answer.text


@pytest.mark.parametrize("source", SOURCES)
def test_a_compressed_body_even_a_gzip_bomb_is_refused_with_415_unopened(web: Web, source: str) -> None:
    bomb = gzip.compress(b"[" + b"{}," * (10 * MiB) + b"{}]", compresslevel=9)
    headers = {**signed(source, bomb), "content-encoding": "gzip"}

    answer = web.send("POST", f"/webhooks/{source}", body=bomb, headers=headers)

    assert answer.status_code == 415
    assert "compressed" in answer.json()["detail"]


def soap(org: str, declaration: str = "") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>{declaration}
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>
 <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
  <OrganizationId>{org}</OrganizationId><ActionId>04k5g0000008OAbAAM</ActionId>
  <Notification><Id>04l5g00000AbCdEAAZ</Id>
   <sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
    <sf:Id>0065g00000AbCdEAAV</sf:Id><sf:StageName>Negotiation/Review</sf:StageName>
   </sObject>
  </Notification>
 </notifications></soapenv:Body></soapenv:Envelope>"""


XML = {"content-type": "text/xml; charset=utf-8"}
LAUGHS = (
    '<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
    + "]>"
)


@pytest.mark.parametrize(
    ("name", "body", "status"),
    [
        ("allowed organization", soap(SALESFORCE_ORG).encode(), 200),
        ("unknown organization", soap("00D000000000001AAA").encode(), 401),
        ("billion laughs", soap(SALESFORCE_ORG, LAUGHS).encode(), 401),
        (
            "external entity",
            soap(SALESFORCE_ORG, '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>').encode(),
            401,
        ),
        (
            "UTF-16 with a declaration",
            soap(SALESFORCE_ORG, LAUGHS).replace("UTF-8", "UTF-16").encode("utf-16"),
            401,
        ),
        ("not XML", b"<notifications>", 401),
    ],
)
def test_outbound_messages_are_acknowledged_only_from_allowed_organizations_and_never_expanded(
    web: Web, name: str, body: bytes, status: int
) -> None:
    before = topic_sizes(web)

    answer = web.send("POST", "/webhooks/salesforce", body=body, headers=XML)

    assert answer.status_code == status, (name, answer.text[:300])
    if status == 200:
        assert b"<Ack>true</Ack>" in answer.content
        assert written_between(before, topic_sizes(web), web.topics.deal_changes) == 1
    else:
        assert nothing_written(web, before)


def test_after_every_hostile_body_the_service_still_takes_valid_deliveries(web: Web) -> None:
    assert_still_serving(web)
