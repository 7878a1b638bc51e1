"""Webhook authenticity: known answers, forgeries, the timestamp window, and constant-time comparison."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.domain import signatures
from services.ingest.domain.signatures import (
    AuthFailure,
    BasicAuthVerifier,
    HubSpotV3Verifier,
    StandardWebhooksVerifier,
)

# The example of the Standard Webhooks specification (standard-webhooks/standard-webhooks).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = "1614265330"
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
SPEC_NOW = datetime.fromtimestamp(int(SPEC_TS), tz=UTC)

HUBSPOT_SECRET = "hs-client-secret-7c1f"
HUBSPOT_URI = "https://dealwatch.example.com/webhooks/hubspot"
HUBSPOT_TS = "1767225600000"
HUBSPOT_NOW = datetime.fromtimestamp(int(HUBSPOT_TS) / 1000, tz=UTC)


def spec_verifier() -> StandardWebhooksVerifier:
    return StandardWebhooksVerifier.from_secret(SPEC_SECRET, tolerance_seconds=300)


def verify_spec(**overrides: object) -> None:
    args: dict[str, object] = {
        "msg_id": SPEC_ID,
        "timestamp": SPEC_TS,
        "signature": SPEC_SIGNATURE,
        "body": SPEC_BODY,
        "now": SPEC_NOW,
    }
    args.update(overrides)
    spec_verifier().verify(**args)  # type: ignore[arg-type]


def hubspot_signature(body: bytes, uri: str = HUBSPOT_URI, ts: str = HUBSPOT_TS, method: str = "POST") -> str:
    mac = hmac.new(
        HUBSPOT_SECRET.encode(), method.encode() + uri.encode() + body + ts.encode(), hashlib.sha256
    )
    return base64.b64encode(mac.digest()).decode()


def verify_hubspot(signed_body: bytes = b"[]", **overrides: object) -> None:
    args: dict[str, object] = {
        "method": "POST",
        "uris": [HUBSPOT_URI],
        "body": signed_body,
        "timestamp_ms": HUBSPOT_TS,
        "signature": hubspot_signature(signed_body),
        "now": HUBSPOT_NOW,
    }
    args.update(overrides)
    HubSpotV3Verifier(client_secret=HUBSPOT_SECRET.encode()).verify(**args)  # type: ignore[arg-type]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_the_specification_example_is_accepted() -> None:
    verify_spec()


def test_the_signature_matches_the_specification_example() -> None:
    assert "v1," + spec_verifier().sign(SPEC_ID, SPEC_TS, SPEC_BODY) == SPEC_SIGNATURE


def test_one_matching_signature_among_several_is_enough() -> None:
    verify_spec(signature=f"v1,bm90IGl0 v1a,c29tZXRoaW5n {SPEC_SIGNATURE}")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("body", b'{"test": 2432232315}'),
        ("body", SPEC_BODY + b" "),
        ("msg_id", "msg_other"),
        ("timestamp", str(int(SPEC_TS) + 1)),
        ("signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OF="),
        ("signature", "v2," + SPEC_SIGNATURE[3:]),
        ("signature", SPEC_SIGNATURE[3:]),
        ("signature", ""),
        ("signature", None),
        ("msg_id", None),
        ("msg_id", ""),
        ("timestamp", None),
        ("timestamp", "16142653.30"),
        ("timestamp", "-1614265330"),
        ("timestamp", SPEC_TS + "000"),
    ],
)
def test_a_forged_or_incomplete_generic_request_is_refused(field: str, value: object) -> None:
    with pytest.raises(AuthFailure):
        verify_spec(**{field: value})


def test_a_signature_made_with_another_secret_is_refused() -> None:
    other = StandardWebhooksVerifier.from_secret("whsec_" + base64.b64encode(b"another key").decode())
    forged = "v1," + other.sign(SPEC_ID, SPEC_TS, SPEC_BODY)
    with pytest.raises(AuthFailure):
        verify_spec(signature=forged)


@pytest.mark.parametrize("skew", [300, -300])
def test_a_timestamp_at_the_edge_of_the_window_is_accepted(skew: int) -> None:
    verify_spec(now=SPEC_NOW + timedelta(seconds=skew))


@pytest.mark.parametrize("skew", [301, -301])
def test_a_timestamp_301_seconds_away_is_refused(skew: int) -> None:
    with pytest.raises(AuthFailure, match="timestamp"):
        verify_spec(now=SPEC_NOW + timedelta(seconds=skew))


def test_an_8_kb_signature_header_is_refused() -> None:
    with pytest.raises(AuthFailure):
        verify_spec(signature=" ".join(["v1,AAAA"] * 2000))


@pytest.mark.parametrize("secret", ["whsec_not base64!", "whsec_", "whsec_===="])
def test_a_secret_that_is_not_base64_is_a_configuration_error(secret: str) -> None:
    with pytest.raises(ValueError):
        StandardWebhooksVerifier.from_secret(secret)


@settings(max_examples=300, deadline=None)
@given(
    position=st.integers(min_value=0),
    bit=st.integers(min_value=0, max_value=7),
    part=st.sampled_from(["body", "signature", "msg_id"]),
)
def test_any_single_bit_flip_is_refused(position: int, bit: int, part: str) -> None:
    original = {"body": SPEC_BODY, "signature": SPEC_SIGNATURE.encode(), "msg_id": SPEC_ID.encode()}[part]
    flipped = bytearray(original)
    flipped[position % len(flipped)] ^= 1 << bit
    value: object = bytes(flipped) if part == "body" else bytes(flipped).decode("latin-1")
    with pytest.raises(AuthFailure):
        verify_spec(**{part: value})


def test_signatures_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(signatures.hmac, "compare_digest", spy)
    verify_spec()
    verify_hubspot()
    BasicAuthVerifier(user=b"u", password=b"p").verify(basic("u", "p"))
    assert len(calls) >= 4


def test_a_hubspot_request_signed_over_method_uri_body_and_timestamp_is_accepted() -> None:
    verify_hubspot(b'[{"eventId": 1}]')


def test_a_hubspot_request_signed_for_one_of_the_candidate_uris_is_accepted() -> None:
    body = b"[]"
    verify_hubspot(body, uris=["http://127.0.0.1:8080/webhooks/hubspot", HUBSPOT_URI])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("body", b'[{"eventId": 2}]'),
        ("uris", ["https://dealwatch.example.com/webhooks/hubspot?x=1"]),
        ("method", "PUT"),
        ("timestamp_ms", str(int(HUBSPOT_TS) + 1)),
        ("timestamp_ms", None),
        ("timestamp_ms", "1767225600.000"),
        ("signature", None),
        ("signature", ""),
        ("signature", hashlib.sha256(HUBSPOT_SECRET.encode() + b"[]").hexdigest()),
    ],
)
def test_a_forged_hubspot_request_is_refused(field: str, value: object) -> None:
    with pytest.raises(AuthFailure):
        verify_hubspot(b"[]", **{field: value})


@pytest.mark.parametrize("skew", [301, -301])
def test_a_hubspot_timestamp_301_seconds_away_is_refused(skew: int) -> None:
    with pytest.raises(AuthFailure, match="timestamp"):
        verify_hubspot(now=HUBSPOT_NOW + timedelta(seconds=skew))


def test_a_hubspot_timestamp_in_seconds_instead_of_milliseconds_is_refused() -> None:
    seconds = str(int(HUBSPOT_TS) // 1000)
    with pytest.raises(AuthFailure):
        verify_hubspot(timestamp_ms=seconds, signature=hubspot_signature(b"[]", ts=seconds))


def test_the_right_basic_credentials_are_accepted() -> None:
    BasicAuthVerifier(user="営業".encode(), password=b"s3cret:with:colons").verify(
        basic("営業", "s3cret:with:colons")
    )


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        basic("user", "wrong"),
        basic("wrong", "pass"),
        basic("user", "pass "),
        basic("user", ""),
        "Basic " + base64.b64encode(b"userpass").decode(),
        "Bearer " + base64.b64encode(b"user:pass").decode(),
        "Basic not-base64!!",
    ],
)
def test_wrong_or_missing_basic_credentials_are_refused(header: str | None) -> None:
    with pytest.raises(AuthFailure):
        BasicAuthVerifier(user=b"user", password=b"pass").verify(header)
