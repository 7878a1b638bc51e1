"""Hostile input against the web app that ``dealwatch up`` serves: the ingest and API services together, in
process, on the real broker (Tansu) and a real PostgreSQL database.

The app runs on one event loop in a background thread, started once (its lifespan) for the whole directory;
tests talk to it through a synchronous ``requests`` session, so Hypothesis and schemathesis drive it alike.
``DEALWATCH_FUZZ_EXAMPLES`` scales every generated test (examples per test, and per API operation): the default
keeps the whole directory near a minute; ``make fuzz`` runs it with 500 (about 20,000 requests).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import http.server
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from dealwatch.web import create_web_app
from schemas import Topics
from services.api.web import ApiService
from services.common.settings import Settings
from services.ingest.web import IngestService
from tests.helpers import TEST_GENERIC_SECRET, standard_webhooks_headers
from tests.integration.hostile.inprocess import served

EXAMPLES = max(1, int(os.environ.get("DEALWATCH_FUZZ_EXAMPLES", "20")))
HOST = "testserver"
HUBSPOT_SECRET = "hubspot-client-secret-hostile-4f1c"
PIPEDRIVE_USER, PIPEDRIVE_PASSWORD = "dealwatch-hook", "pipedrive-password-hostile-77ab"
SALESFORCE_SECRET = "salesforce-shared-secret-hostile-c0de"
SALESFORCE_ORG = "00D5g000004AbCdEAK"
API_TOKEN = "api-token-all-scopes-hostile-9e2d"
READ_TOKEN = "api-token-read-only-hostile-51aa"
SECRETS = {
    "generic": TEST_GENERIC_SECRET,
    "generic key": base64.b64decode(TEST_GENERIC_SECRET.removeprefix("whsec_")).decode(),
    "hubspot": HUBSPOT_SECRET,
    "pipedrive": PIPEDRIVE_PASSWORD,
    "pipedrive basic": base64.b64encode(f"{PIPEDRIVE_USER}:{PIPEDRIVE_PASSWORD}".encode()).decode(),
    "salesforce": SALESFORCE_SECRET,
    "api token": API_TOKEN,
    "read token": READ_TOKEN,
}
"""Every configured secret, as configured and as it travels (the decoded generic key, the Basic header)."""


@dataclass
class Tally:
    """Requests sent by the hostile tests, by endpoint and by status: the figures of a fuzzing run."""

    by_endpoint: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    short_of: str = ""
    known_gaps: Counter[str] = field(default_factory=Counter)
    """Answers that are right but not described by ``/openapi.json`` (``test_openapi_fuzz.KNOWN_GAPS``)."""

    def record(self, endpoint: str, status: int, what: str = "") -> None:
        self.by_endpoint[endpoint] += 1
        self.by_status[status] += 1
        if status >= 500:
            self.server_errors.append(f"{endpoint} -> {status} {what}"[:300])


TALLY = Tally()


MIN_REQUESTS = int(os.environ.get("DEALWATCH_FUZZ_MIN_REQUESTS", "0"))
"""A full-size run (``make fuzz``) fails unless it sent at least this many requests."""


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    total = sum(TALLY.by_endpoint.values())
    if MIN_REQUESTS and exitstatus == 0 and total < MIN_REQUESTS:
        session.exitstatus = 1
        TALLY.short_of = f"only {total:,} requests were sent; the full-size run needs {MIN_REQUESTS:,}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY.by_endpoint:
        return
    total = sum(TALLY.by_endpoint.values())
    terminalreporter.write_sep(
        "-", f"hostile input: {total:,} requests, {len(TALLY.server_errors)} answered 5xx"
    )
    for endpoint, n in sorted(TALLY.by_endpoint.items()):
        terminalreporter.write_line(f"  {endpoint:<40} {n:>8,}")
    terminalreporter.write_line(f"  by status: {dict(sorted(TALLY.by_status.items()))}")
    for gap, n in sorted(TALLY.known_gaps.items()):
        terminalreporter.write_line(f"  known documentation gap, {n:,} times: {gap}")
    if TALLY.short_of:
        terminalreporter.write_line(f"FAILED: {TALLY.short_of}", red=True)


@dataclass
class Web:
    """The running app, a synchronous client for it, and what the tests need to sign and check."""

    app: FastAPI
    client: requests.Session
    settings: Settings
    topics: Topics
    ingest: IngestService
    api: ApiService

    def send(
        self,
        method: str,
        path: str,
        *,
        body: bytes | Any = b"",
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> requests.Response:
        url = path if "://" in path else f"http://{HOST}{path}"
        answer = self.client.request(method, url, data=body, headers=dict(headers or {}), params=params)
        TALLY.record(endpoint_of(method, path), answer.status_code, answer.text[:200])
        return answer


def endpoint_of(method: str, path: str) -> str:
    parts = path.split("?")[0].strip("/").split("/")
    if parts[:1] == ["api"] and len(parts) > 2:
        parts = [*parts[:2], "{id}", *parts[3:]]
    return f"{method.upper()} /{'/'.join(parts)}"


def hostile_settings(bootstrap: str, database_url: str, detector_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "kafka_bootstrap": bootstrap,
        "database_url": database_url,
        "detector_url": detector_url,
        "generic_secret": TEST_GENERIC_SECRET,
        "hubspot_client_secret": HUBSPOT_SECRET,
        "pipedrive_user": PIPEDRIVE_USER,
        "pipedrive_password": PIPEDRIVE_PASSWORD,
        "salesforce_secret": SALESFORCE_SECRET,
        "salesforce_org_ids": [SALESFORCE_ORG],
        "api_token": API_TOKEN,
        "api_tokens": [{"token": READ_TOKEN, "scopes": ["read"], "name": "dashboard"}],
        "broker_timeout_seconds": 5.0,
        "topic_partitions": 1,
        "max_body_bytes": 256 * 1024,
        "max_batch_events": 200,
    }
    values.update(overrides)
    return Settings(**values)


class _NoDeals(http.server.BaseHTTPRequestHandler):
    """The detector's deal-state endpoint as seen by the API when no deal is tracked: 404 for every key."""

    def do_GET(self) -> None:
        body = b'{"detail":"no such deal"}'
        self.send_response(404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="package")
def detector_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NoDeals)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="package")
def hostile_db(pg_server_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for the hostile tests (the production database: stricter than SQLite)."""
    from sqlalchemy import text

    from services.common.db import make_engine

    name = f"dw_hostile_{uuid.uuid4().hex[:12]}"
    admin = make_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base, _, _ = pg_server_url.rpartition("/")
    yield f"{base}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="package")
def web(broker_bootstrap: str, hostile_db: str, detector_url: str) -> Iterator[Web]:
    """The combined app, started once for the hostile tests, on a loop of its own."""
    settings = hostile_settings(broker_bootstrap, hostile_db, detector_url)
    topics = Topics(prefix=f"h{uuid.uuid4().hex[:10]}.")
    ingest, api = IngestService(settings, topics), ApiService(settings, topics)
    app = create_web_app(settings, [ingest, api])
    with served(app, f"http://{HOST}") as client:
        yield Web(app, client, settings, topics, ingest, api)


async def _fences(bootstrap: str, topics: list[str]) -> dict[str, int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sent = {
            topic: await producer.send_and_wait(topic, b'{"fence": true}', key=b"fence") for topic in topics
        }
        return {topic: meta.offset for topic, meta in sent.items()}
    finally:
        await producer.stop()


def topic_sizes(web: Web) -> dict[str, int]:
    """A position on the changes and dead-letter topics (one partition each): a fence record's offset, so that
    the difference of two positions, less one, counts the records written between them. (The embedded broker's
    end offsets undercount after batches of several records, so they cannot be used.)"""
    topics = [web.topics.deal_changes, web.topics.dead_letters]
    return asyncio.run(_fences(web.settings.kafka_bootstrap or "", topics))


def written_between(before: dict[str, int], after: dict[str, int], topic: str) -> int:
    return after[topic] - before[topic] - 1


def nothing_written(web: Web, before: dict[str, int]) -> bool:
    after = topic_sizes(web)
    return all(written_between(before, after, topic) == 0 for topic in before)


# Signing like the CRMs ---------------------------------------------------------------------------------------


def generic_headers(
    body: bytes, *, secret: str = TEST_GENERIC_SECRET, msg_id: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    return standard_webhooks_headers(secret, body, msg_id, timestamp)


def hubspot_headers(
    body: bytes, *, secret: str = HUBSPOT_SECRET, ts_ms: int | None = None, uri: str | None = None
) -> dict[str, str]:
    ts = str(int(time.time() * 1000) if ts_ms is None else ts_ms)
    uri = uri or f"http://{HOST}/webhooks/hubspot"
    mac = hmac.new(secret.encode(), b"POST" + uri.encode() + body + ts.encode(), hashlib.sha256).digest()
    return {
        "content-type": "application/json",
        "x-hubspot-request-timestamp": ts,
        "x-hubspot-signature-v3": base64.b64encode(mac).decode(),
    }


def pipedrive_headers(user: str = PIPEDRIVE_USER, password: str = PIPEDRIVE_PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"content-type": "application/json", "authorization": f"Basic {token}"}


def salesforce_headers(secret: str = SALESFORCE_SECRET) -> dict[str, str]:
    return {"content-type": "application/json", "x-dealwatch-secret": secret}


def signed(source: str, body: bytes) -> dict[str, str]:
    """Headers that make ``body`` authentic for ``source``."""
    if source == "generic":
        return generic_headers(body)
    if source == "hubspot":
        return hubspot_headers(body)
    if source == "pipedrive":
        return pipedrive_headers()
    return salesforce_headers()


SOURCES = ("generic", "hubspot", "pipedrive", "salesforce")


def valid_body(source: str, n: int = 0) -> bytes:
    """One delivery each source accepts (202) and publishes."""
    import json

    deal = f"D-{n}"
    payload: Any
    if source == "generic":
        payload = {
            "event_id": f"hostile-{uuid.uuid4().hex}",
            "occurred_at": "2026-11-02T09:15:00+09:00",
            "type": "deal.updated",
            "deal": {"id": deal, "stage": "proposal", "owner_id": "u-7"},
        }
    elif source == "hubspot":
        payload = [
            {
                "eventId": 100 + n,
                "subscriptionId": 9,
                "portalId": 62515,
                "occurredAt": 1_790_000_000_000,
                "subscriptionType": "deal.propertyChange",
                "objectId": 1000 + n,
                "propertyName": "dealstage",
                "propertyValue": "contractsent",
            }
        ]
    elif source == "pipedrive":
        payload = {
            "meta": {"action": "change", "entity": "deal", "entity_id": 500 + n, "id": f"pd-{uuid.uuid4()}"},
            "data": {"id": 500 + n, "title": "Northwind", "stage_id": 3, "status": "open", "owner_id": 7},
            "previous": {"stage_id": 2},
        }
    else:
        payload = {
            "ChangeEventHeader": {
                "entityName": "Opportunity",
                "recordIds": ["0065g00000AbCdEAAV"],
                "changeType": "UPDATE",
                "transactionKey": f"tx-{uuid.uuid4().hex}",
                "sequenceNumber": 1,
                "commitTimestamp": 1_790_000_000_000,
                "changedFields": ["StageName"],
            },
            "StageName": "Negotiation/Review",
        }
    return json.dumps(payload, ensure_ascii=False).encode()


def assert_still_serving(web: Web) -> None:
    """After whatever came before, every source still takes a valid delivery (202: the broker acknowledged)."""
    for source in SOURCES:
        body = valid_body(source)
        answer = web.send("POST", f"/webhooks/{source}", body=body, headers=signed(source, body))
        assert answer.status_code == 202, (source, answer.status_code, answer.text)
