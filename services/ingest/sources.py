"""The webhook sources: how each one proves a request authentic and which normalizer reads its body.

A source without its secret in the settings is built anyway, with ``problem`` set: its endpoint refuses every
request (503, ``source_not_configured``) instead of accepting unauthenticated input.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import unquote

from starlette.requests import Request

from services.common.settings import Settings
from services.ingest.domain.hubspot import normalize_hubspot
from services.ingest.domain.jsonbody import parse_json
from services.ingest.domain.normalize import normalize_generic
from services.ingest.domain.outcome import Batch, MalformedBody
from services.ingest.domain.pipedrive import normalize_pipedrive
from services.ingest.domain.salesforce import normalize_salesforce
from services.ingest.domain.salesforce_soap import ACK, parse_outbound_message
from services.ingest.domain.signatures import (
    AuthFailure,
    BasicAuthVerifier,
    HubSpotV3Verifier,
    OrganizationAllowList,
    SharedSecretVerifier,
    StandardWebhooksVerifier,
)
from services.ingest.http import XML_TYPES


class Normalizer(Protocol):
    def __call__(self, payload: Any, *, received_at: datetime, max_events: int) -> Batch: ...


@dataclass(frozen=True)
class WebhookSource:
    name: str
    normalize: Normalizer
    verify_headers: Callable[[Request], None] | None = None
    """Checks that need no body (HTTP Basic): run before the body is read."""
    verify_body: Callable[[Request, bytes, datetime], None] | None = None
    """Checks over the raw body (signatures): run before it is parsed."""
    delivery_header: str | None = None
    """The header that names a delivery (the dead-letter key when no deal can be read)."""
    problem: str | None = None
    accepts_xml: bool = False
    decode: Callable[[bytes, str, int], Any] | None = None
    """Body bytes, media kind (``json``/``xml``) and maximum depth to the payload; default strict JSON."""
    xml_ack: bytes | None = None
    """The answer to an accepted XML delivery (SOAP acknowledgement, HTTP 200)."""

    def delivery_id(self, request: Request, body: bytes) -> str:
        given = request.headers.get(self.delivery_header) if self.delivery_header else None
        if given and len(given) <= 256 and given.isascii():
            return given
        return "sha256:" + hashlib.sha256(body).hexdigest()[:32]


def build_sources(settings: Settings) -> dict[str, WebhookSource]:
    sources = (_generic(settings), _hubspot(settings), _pipedrive(settings), _salesforce(settings))
    return {s.name: s for s in sources}


def _refused(name: str, normalize: Normalizer, problem: str) -> WebhookSource:
    return WebhookSource(name=name, normalize=normalize, problem=problem)


def _generic(settings: Settings) -> WebhookSource:
    if settings.generic_secret is None:
        return _refused("generic", normalize_generic, "no secret is configured (DEALWATCH_GENERIC_SECRET)")
    try:
        verifier = StandardWebhooksVerifier.from_secret(
            settings.generic_secret.get_secret_value(), settings.webhook_tolerance_seconds
        )
    except ValueError:
        return _refused("generic", normalize_generic, "DEALWATCH_GENERIC_SECRET is not whsec_ + base64")

    def verify(request: Request, body: bytes, now: datetime) -> None:
        h = request.headers
        verifier.verify(
            msg_id=h.get("webhook-id"),
            timestamp=h.get("webhook-timestamp"),
            signature=h.get("webhook-signature"),
            body=body,
            now=now,
        )

    return WebhookSource(
        name="generic", normalize=normalize_generic, verify_body=verify, delivery_header="webhook-id"
    )


def _hubspot(settings: Settings) -> WebhookSource:
    secret = settings.hubspot_client_secret.get_secret_value() if settings.hubspot_client_secret else ""
    if not secret:
        return _refused(
            "hubspot", normalize_hubspot, "no client secret is configured (DEALWATCH_HUBSPOT_CLIENT_SECRET)"
        )
    verifier = HubSpotV3Verifier(
        client_secret=secret.encode(), tolerance_seconds=settings.webhook_tolerance_seconds
    )
    public_url = settings.hubspot_webhook_url

    def verify(request: Request, body: bytes, now: datetime) -> None:
        h = request.headers
        verifier.verify(
            method=request.method,
            uris=request_uris(request, public_url),
            body=body,
            timestamp_ms=h.get("x-hubspot-request-timestamp"),
            signature=h.get("x-hubspot-signature-v3"),
            now=now,
        )

    return WebhookSource(name="hubspot", normalize=normalize_hubspot, verify_body=verify)


def _pipedrive(settings: Settings) -> WebhookSource:
    password = settings.pipedrive_password.get_secret_value() if settings.pipedrive_password else ""
    if not settings.pipedrive_user or not password:
        return _refused(
            "pipedrive",
            normalize_pipedrive,
            "no credentials are configured (DEALWATCH_PIPEDRIVE_USER, DEALWATCH_PIPEDRIVE_PASSWORD)",
        )
    verifier = BasicAuthVerifier(user=settings.pipedrive_user.encode(), password=password.encode())

    def verify(request: Request) -> None:
        verifier.verify(request.headers.get("authorization"))

    return WebhookSource(name="pipedrive", normalize=normalize_pipedrive, verify_headers=verify)


def _salesforce(settings: Settings) -> WebhookSource:
    secret = settings.salesforce_secret.get_secret_value() if settings.salesforce_secret else ""
    orgs = OrganizationAllowList.of(settings.salesforce_org_ids)
    if not secret and not orgs.org_ids:
        return _refused(
            "salesforce",
            normalize_salesforce,
            "no shared secret or organization ids are configured (DEALWATCH_SALESFORCE_SECRET, "
            "DEALWATCH_SALESFORCE_ORG_IDS)",
        )
    shared = SharedSecretVerifier(secret=secret.encode()) if secret else None

    def verify_headers(request: Request) -> None:
        if is_xml(request):
            return
        if shared is None:
            raise AuthFailure("JSON deliveries need DEALWATCH_SALESFORCE_SECRET")
        h = request.headers
        scheme, _, token = (h.get("authorization") or "").partition(" ")
        shared.verify(h.get("x-dealwatch-secret") or (token.strip() if scheme.lower() == "bearer" else None))

    def verify_body(request: Request, body: bytes, now: datetime) -> None:
        if not is_xml(request):
            return
        if not orgs.org_ids:
            raise AuthFailure("Outbound Messages need DEALWATCH_SALESFORCE_ORG_IDS")
        try:
            message = parse_outbound_message(body)
        except MalformedBody:
            raise AuthFailure("not a readable Outbound Message, so its organization is unknown") from None
        orgs.verify(message.organization_id)

    def decode(body: bytes, media: str, max_depth: int) -> Any:
        return parse_outbound_message(body) if media == "xml" else parse_json(body, max_depth=max_depth)

    return WebhookSource(
        name="salesforce",
        normalize=normalize_salesforce,
        verify_headers=verify_headers,
        verify_body=verify_body,
        accepts_xml=True,
        decode=decode,
        xml_ack=ACK,
    )


def is_xml(request: Request) -> bool:
    return (request.headers.get("content-type") or "").partition(";")[0].strip().lower() in XML_TYPES


def request_uris(request: Request, public_url: str | None = None) -> list[str]:
    """The full request URI as a sender may have signed it: as received, percent-decoded (HubSpot decodes
    some characters before signing), and the configured public URL (behind a proxy)."""
    scope = request.scope
    host = request.headers.get("host")
    if not host:
        server = scope.get("server") or ("localhost", None)
        host = server[0] if server[1] is None else f"{server[0]}:{server[1]}"
    path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    query = scope.get("query_string", b"").decode("latin-1")
    suffix = f"?{query}" if query else ""
    received = f"{scope.get('scheme', 'http')}://{host}{path}{suffix}"
    uris = [received, unquote(received)]
    if public_url:
        uris.append(public_url + suffix)
    return uris


def authenticate(source: WebhookSource, request: Request, body: bytes | None, now: datetime) -> None:
    """Raise ``AuthFailure`` unless the request is authentic (``body`` None: only the header checks)."""
    if body is None:
        if source.verify_headers is not None:
            source.verify_headers(request)
        return
    if source.verify_body is not None:
        source.verify_body(request, body, now)


__all__ = ["AuthFailure", "WebhookSource", "authenticate", "build_sources", "request_uris"]
