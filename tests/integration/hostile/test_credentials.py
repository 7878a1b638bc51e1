"""No route of the ingest or the API answers without its credential (routes discovered from the services' own
route tables, so a new route is covered the day it is added), and no configured secret ever appears in a log
record, an answer or ``/metrics``, whatever is sent."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute

from dealwatch.web import create_web_app
from schemas import Topics
from services.api.web import ApiService
from services.common.settings import Settings
from services.ingest.web import IngestService
from tests.integration.hostile.conftest import (
    API_TOKEN,
    HOST,
    READ_TOKEN,
    SECRETS,
    SOURCES,
    Web,
    generic_headers,
    hostile_settings,
    hubspot_headers,
    pipedrive_headers,
    salesforce_headers,
    signed,
    valid_body,
)

pytestmark = pytest.mark.integration


PUBLIC_STATIC = {"/dashboard", "/dashboard/dashboard.js"}
"""Routes that answer without a credential, because they hold no data (the dashboard's page and script: the
page asks the API with the token its user types). Each must also pass ``is_static``; any other route must
answer 401 without its credential."""


def api_routes(router: APIRouter, prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """The routes of a router with their full paths, through included routers (FastAPI may keep those nested)."""
    for route in router.routes:
        original = getattr(route, "original_router", None)
        if original is not None:
            context = getattr(route, "include_context", None)
            yield from api_routes(original, prefix + (getattr(context, "prefix", "") or ""))
        else:
            assert isinstance(route, APIRoute), route
            yield prefix + route.path, route


def routes(*services: IngestService | ApiService) -> Iterator[tuple[str, str, str]]:
    """Every (service, method, path) of the services' route tables, path parameters filled."""
    for service in services:
        name = "ingest" if isinstance(service, IngestService) else "api"
        for path, route in api_routes(service.router):
            filled = re.sub(r"\{[^}]+\}", "x-1", path)
            for method in sorted(route.methods):
                yield name, method, filled


def is_static(answer: Any, with_token: Any) -> bool:
    """A page or script that is the same whoever asks: no data behind it."""
    kind = answer.headers.get("content-type", "")
    return kind.startswith(("text/html", "text/javascript")) and answer.content == with_token.content


def request_body(path: str) -> tuple[bytes, dict[str, str]]:
    if path.startswith("/webhooks/"):
        return valid_body(path.rsplit("/", 1)[-1]), {"content-type": "application/json"}
    return b'{"status": "done", "until": "2099-01-01T00:00:00Z", "reason": "r"}', {
        "content-type": "application/json"
    }


def test_the_route_tables_hold_the_contracts_endpoints(web: Web) -> None:
    found = {(method, path) for _, method, path in routes(web.ingest, web.api)}
    assert {("POST", f"/webhooks/{s}") for s in SOURCES} <= found
    assert {
        ("GET", "/api/interruptions"),
        ("GET", "/api/tasks"),
        ("PATCH", "/api/tasks/x-1"),
        ("GET", "/api/stats"),
    } <= found


@pytest.mark.parametrize("credential", ["none", "wrong", "wrong scheme"])
def test_no_route_answers_without_its_credential(web: Web, credential: str) -> None:
    answers: list[tuple[str, str, int]] = []
    for service, method, path in routes(web.ingest, web.api):
        body, headers = request_body(path)
        if credential == "wrong":
            headers.update(WRONG)
        elif credential == "wrong scheme":  # the right secret, presented the wrong way
            token = API_TOKEN if service == "api" else SECRETS["pipedrive basic"]
            headers["authorization"] = f"Basic {token}" if service == "api" else f"Bearer {token}"
        answer = web.send(method, path, body=body, headers=headers)
        if path in PUBLIC_STATIC:
            with_token = web.send(method, path, headers={"authorization": f"Bearer {API_TOKEN}"})
            assert answer.status_code == 200 and is_static(answer, with_token), (method, path)
            continue
        answers.append((method, path, answer.status_code))
    assert len(answers) >= 10
    assert [a for a in answers if a[2] != 401] == []


WRONG = {
    "authorization": "Bearer not-a-token",
    "webhook-id": "msg_1",
    "webhook-timestamp": "1",
    "webhook-signature": "v1,AAAA",
    "x-hubspot-signature-v3": "AAAA",
    "x-hubspot-request-timestamp": "1",
    "x-dealwatch-secret": "not-the-secret",
}


def test_a_read_only_token_reads_but_changes_nothing(web: Web) -> None:
    answers = []
    for _, method, path in routes(web.api):
        body, headers = request_body(path)
        answer = web.send(
            method, path, body=body, headers={**headers, "authorization": f"Bearer {READ_TOKEN}"}
        )
        answers.append((method, path, answer.status_code))
    assert any(method != "GET" for method, _, _ in answers)
    for method, path, status in answers:
        if method == "GET":
            assert status not in (401, 403), (method, path, status)
        else:
            assert status == 403, (method, path, status)


async def _unconfigured_answers() -> list[tuple[str, str, int]]:
    settings = Settings(
        kafka_bootstrap="127.0.0.1:9", database_url="sqlite://", detector_url="http://127.0.0.1:9"
    )
    topics = Topics(prefix="unconfigured.")
    ingest, api = IngestService(settings, topics), ApiService(settings, topics)
    app = create_web_app(settings, [ingest, api])  # not started: a refusal must not need the broker
    answers = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{HOST}") as client:
        for _, method, path in routes(ingest, api):
            if path in PUBLIC_STATIC:
                continue
            body, headers = request_body(path)
            if path.startswith("/webhooks/"):
                headers.update(signed(path.rsplit("/", 1)[-1], body))
            headers.setdefault("authorization", f"Bearer {API_TOKEN}")
            answer = await client.request(method, path, content=body, headers=headers)
            answers.append((method, path, answer.status_code))
    return answers


def test_with_no_secret_configured_every_route_is_refused_not_open() -> None:
    answers = asyncio.run(_unconfigured_answers())

    assert len(answers) >= 10
    for method, path, status in answers:
        expected = 503 if path.startswith("/webhooks/") else 401
        assert status == expected, (method, path, status)


async def _exercise(settings: Settings, topics: Topics) -> list[str]:
    """Start an app, send it right and wrong credentials everywhere, stop it; every answer's text."""
    app = create_web_app(settings, [IngestService(settings, topics), ApiService(settings, topics)])
    texts: list[str] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{HOST}") as client:

            async def post(source: str, body: bytes, headers: dict[str, str]) -> None:
                answer = await client.post(f"/webhooks/{source}", content=body, headers=headers)
                texts.append(f"{answer.status_code} {answer.headers} {answer.text}")

            for source in SOURCES:
                body = valid_body(source)
                await post(source, body, signed(source, body))
                await post(source, body + b" ", signed(source, body))
            wrong_key = "whsec_" + base64.b64encode(b"x" * 32).decode()
            body = valid_body("generic")
            await post("generic", body, generic_headers(body, secret=wrong_key))
            await post(
                "hubspot", valid_body("hubspot"), hubspot_headers(valid_body("hubspot"), secret="nope")
            )
            await post("pipedrive", valid_body("pipedrive"), pipedrive_headers(password="nope"))
            await post("pipedrive", valid_body("pipedrive"), pipedrive_headers(user="root"))
            await post("salesforce", valid_body("salesforce"), salesforce_headers("nope"))
            await post("generic", b"{broken", generic_headers(b"{broken"))
            for token in (API_TOKEN, READ_TOKEN, "wrong-token", API_TOKEN + "x"):
                for path in ("/api/tasks", "/api/interruptions/x", "/api/stats", "/api/deals/x"):
                    answer = await client.get(path, headers={"authorization": f"Bearer {token}"})
                    texts.append(f"{answer.status_code} {answer.headers} {answer.text}")
            for path in ("/metrics", "/readyz", "/healthz", "/openapi.json"):
                texts.append((await client.get(path)).text)
    return texts


def leaked(text: str, secrets: dict[str, str]) -> list[str]:
    return [name for name, secret in secrets.items() if secret and secret in text]


def test_secrets_never_appear_in_logs_answers_or_metrics(
    broker_bootstrap: str, hostile_db: str, detector_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    topics = Topics(prefix=f"s{uuid.uuid4().hex[:10]}.")
    settings = hostile_settings(broker_bootstrap, hostile_db, detector_url)
    # A second app whose generic secret is not whsec_ + base64: the warning about it must not quote it.
    misconfigured_secret = "plain-text-generic-secret-b7c1"
    misconfigured = hostile_settings(
        broker_bootstrap, hostile_db, detector_url, generic_secret=misconfigured_secret
    )

    with caplog.at_level(logging.DEBUG):
        texts = asyncio.run(_exercise(settings, topics))
        texts += asyncio.run(_exercise(misconfigured, topics))

    records: list[Any] = caplog.records
    assert records, "nothing was logged, so nothing was checked"
    logged = caplog.text + "\n".join(f"{r.args!r} {r.__dict__!r}" for r in records)
    secrets = {**SECRETS, "misconfigured generic": misconfigured_secret}
    assert leaked(logged, secrets) == []
    assert leaked("\n".join(texts), secrets) == []
    metrics = texts[-4]
    assert "dealwatch_webhook_responses" in metrics and leaked(metrics, secrets) == []
    assert any("refused" in r.getMessage() and "generic" in r.getMessage() for r in records)
