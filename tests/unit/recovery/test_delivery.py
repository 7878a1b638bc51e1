"""Outgoing webhook signatures, message ids and retry times."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import timedelta

from schemas import RecoveryTaskCreated
from services.recovery.domain.delivery import headers, message_id, next_attempt_at, sign
from services.recovery.domain.playbooks import TaskPolicy, build_task, load_playbooks
from tests.unit.recovery.factories import NOW, interruption

SECRET = "whsec_" + base64.b64encode(b"subscriber-secret-0123456789abcd").decode()


def test_the_signature_is_the_standard_webhooks_hmac_of_id_timestamp_and_body() -> None:
    body = b'{"a": 1}'
    expected = hmac.new(
        base64.b64decode(SECRET[len("whsec_") :]), b"msg_1.1700000000." + body, hashlib.sha256
    ).digest()
    assert sign(SECRET, "msg_1", 1700000000, body) == "v1," + base64.b64encode(expected).decode()
    assert sign(SECRET, "msg_1", 1700000001, body) != sign(SECRET, "msg_1", 1700000000, body)


def test_the_headers_carry_the_id_the_timestamp_in_seconds_and_the_signature() -> None:
    signed = headers(SECRET, "msg_1", NOW, b"{}")
    assert signed["webhook-id"] == "msg_1"
    assert signed["webhook-timestamp"] == str(int(NOW.timestamp()))
    assert signed["webhook-signature"] == sign(SECRET, "msg_1", int(NOW.timestamp()), b"{}")


def test_a_task_message_keeps_its_id_across_deliveries_and_versions_differ() -> None:
    task = build_task(interruption(), NOW, TaskPolicy(load_playbooks()))
    first = RecoveryTaskCreated(task=task).model_dump_json()
    second = RecoveryTaskCreated(task=task.model_copy(update={"version": 2})).model_dump_json()
    assert message_id(first, "x") == message_id(first, "y") == f"msg_{task.id}_v1"
    assert message_id(second, "x") != message_id(first, "x")


def test_a_value_that_names_no_task_gets_the_fallback_id() -> None:
    assert [message_id(v, "msg_outbox_7") for v in ("not json", "{}", '{"task": {"id": "t"}}')] == [
        "msg_outbox_7"
    ] * 3


def test_retries_back_off_exponentially_up_to_the_cap() -> None:
    delays = [next_attempt_at(n, NOW, 0.5, 3.0) - NOW for n in range(1, 6)]
    assert delays == [timedelta(seconds=s) for s in (0.5, 1.0, 2.0, 3.0, 3.0)]
