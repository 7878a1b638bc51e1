"""Webhook authenticity, checked on the raw body before anything parses it. Every comparison of a secret or a
signature uses ``hmac.compare_digest``; ``now`` comes from the caller.

- Standard Webhooks (generic): base64 HMAC-SHA256 of ``id.timestamp.body`` under the ``whsec_`` key; the
  ``webhook-signature`` header may list several space-separated ``v1,<sig>`` entries (key rotation).
- HubSpot v3: base64 HMAC-SHA256 under the client secret of method + full request URI + body + the
  ``X-HubSpot-Request-Timestamp`` milliseconds.
- Pipedrive: HTTP Basic user and password.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

MAX_SIGNATURES = 16
MAX_ID_CHARS = 256
MAX_TIMESTAMP_DIGITS = 15


class AuthFailure(Exception):
    """The request is not authentic (401). The reason is for logs and the answer; it holds no secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _within(seconds: float, now: datetime, tolerance: float) -> None:
    skew = now.timestamp() - seconds
    if skew > tolerance:
        raise AuthFailure("the timestamp is too old")
    if skew < -tolerance:
        raise AuthFailure("the timestamp is too far in the future")


def _digits(value: str | None, what: str) -> int:
    if not value or len(value) > MAX_TIMESTAMP_DIGITS or not value.isascii() or not value.isdigit():
        raise AuthFailure(f"missing or invalid {what}")
    return int(value)


@dataclass(frozen=True)
class StandardWebhooksVerifier:
    key: bytes = field(repr=False)
    tolerance_seconds: float = 300

    @classmethod
    def from_secret(cls, secret: str, tolerance_seconds: float = 300) -> StandardWebhooksVerifier:
        """``whsec_`` + base64, as the spec writes it (the prefix is optional). Raises ``ValueError``."""
        encoded = secret.removeprefix("whsec_")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the generic secret is not whsec_ + base64") from None
        if not key:
            raise ValueError("the generic secret is empty")
        return cls(key=key, tolerance_seconds=tolerance_seconds)

    def sign(self, msg_id: str, timestamp: str, body: bytes) -> str:
        # ``hmac.digest`` is the one-shot OpenSSL path: no HMAC object per request.
        mac = hmac.digest(self.key, b"%s.%s.%s" % (msg_id.encode(), timestamp.encode(), body), "sha256")
        return base64.b64encode(mac).decode()

    def verify(
        self, *, msg_id: str | None, timestamp: str | None, signature: str | None, body: bytes, now: datetime
    ) -> None:
        if not msg_id or len(msg_id) > MAX_ID_CHARS or not msg_id.isascii():
            raise AuthFailure("missing or invalid webhook-id")
        seconds = _digits(timestamp, "webhook-timestamp")
        if not signature:
            raise AuthFailure("missing webhook-signature")
        _within(seconds, now, self.tolerance_seconds)
        assert timestamp is not None
        expected = self.sign(msg_id, timestamp, body).encode()
        if not _any_matches(expected, _v1_signatures(signature)):
            raise AuthFailure("no matching v1 signature")


def _v1_signatures(header: str) -> list[bytes]:
    entries = header.split()
    if len(entries) > MAX_SIGNATURES:
        raise AuthFailure("too many signatures")
    found = []
    for entry in entries:
        version, sep, sig = entry.partition(",")
        if sep and version == "v1":
            found.append(sig.encode("utf-8", "replace"))
    return found


def _any_matches(expected: bytes, candidates: Iterable[bytes]) -> bool:
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate)
    return matched


@dataclass(frozen=True)
class HubSpotV3Verifier:
    client_secret: bytes = field(repr=False)
    tolerance_seconds: float = 300

    def sign(self, method: str, uri: str, body: bytes, timestamp_ms: str) -> str:
        source = method.encode() + uri.encode() + body + timestamp_ms.encode()
        return base64.b64encode(hmac.digest(self.client_secret, source, "sha256")).decode()

    def verify(
        self,
        *,
        method: str,
        uris: Iterable[str],
        body: bytes,
        timestamp_ms: str | None,
        signature: str | None,
        now: datetime,
    ) -> None:
        """``uris``: the request URI as the sender may have signed it (as received, decoded, configured)."""
        millis = _digits(timestamp_ms, "X-HubSpot-Request-Timestamp")
        if not signature or len(signature) > 200:
            raise AuthFailure("missing or invalid X-HubSpot-Signature-v3")
        _within(millis / 1000, now, self.tolerance_seconds)
        assert timestamp_ms is not None
        given = signature.encode("utf-8", "replace")
        expected = (self.sign(method, uri, body, timestamp_ms).encode() for uri in dict.fromkeys(uris))
        if not _any_matches(given, expected):
            raise AuthFailure("the HubSpot signature does not match")


@dataclass(frozen=True)
class BasicAuthVerifier:
    user: bytes = field(repr=False)
    password: bytes = field(repr=False)

    def verify(self, authorization: str | None) -> None:
        if not authorization:
            raise AuthFailure("missing Authorization")
        scheme, _, encoded = authorization.strip().partition(" ")
        if scheme.lower() != "basic" or len(encoded) > 1024:
            raise AuthFailure("Authorization is not Basic")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise AuthFailure("Authorization is not valid base64") from None
        user, sep, password = decoded.partition(b":")
        user_ok = hmac.compare_digest(user, self.user)
        password_ok = hmac.compare_digest(password, self.password)
        if not (sep and user_ok and password_ok):
            raise AuthFailure("wrong user or password")


@dataclass(frozen=True)
class SharedSecretVerifier:
    """A secret the sender repeats in a header (``X-Dealwatch-Secret``, or ``Authorization: Bearer``)."""

    secret: bytes = field(repr=False)

    def verify(self, given: str | None) -> None:
        if not given or len(given) > 1024:
            raise AuthFailure("missing shared secret")
        if not hmac.compare_digest(given.encode("utf-8", "replace"), self.secret):
            raise AuthFailure("wrong shared secret")


@dataclass(frozen=True)
class OrganizationAllowList:
    """Salesforce organization ids allowed to send Outbound Messages. Ids compare on their 15-character,
    case-sensitive form, so the 18-character form of the same id matches."""

    org_ids: frozenset[str]

    @classmethod
    def of(cls, org_ids: Iterable[str]) -> OrganizationAllowList:
        return cls(frozenset(o.strip()[:15] for o in org_ids if o.strip()))

    def verify(self, org_id: str | None) -> None:
        if not org_id or org_id.strip()[:15] not in self.org_ids:
            raise AuthFailure("the organization is not allowed")
