"""Webhook subscribers in the configuration: refused when deliveries to them could never be signed or made."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from services.common.settings import Settings, Subscriber

SECRET = "whsec_" + base64.b64encode(b"subscriber-secret-0123456789abcd").decode()


def test_a_subscriber_takes_an_http_url_and_a_standard_webhooks_secret() -> None:
    subscriber = Subscriber.model_validate({"url": "https://example.com/hook", "secret": SECRET})
    assert (subscriber.url, subscriber.max_attempts) == ("https://example.com/hook", 5)


@pytest.mark.parametrize(
    "fields",
    [
        {"url": "example.com/hook", "secret": SECRET},
        {"url": "https://example.com/hook", "secret": "whsec_not base64!"},
        {"url": "https://example.com/hook", "secret": "whsec_"},
        {"url": "https://example.com/hook", "secret": SECRET, "max_attempts": 0},
    ],
)
def test_a_subscriber_that_could_not_be_delivered_to_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Subscriber.model_validate(fields)


def test_each_subscriber_url_appears_once() -> None:
    twice = [{"url": "https://example.com/hook", "secret": SECRET}] * 2
    with pytest.raises(ValidationError, match="appears once"):
        Settings(subscribers=twice)
