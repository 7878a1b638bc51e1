"""Outgoing webhooks, the pure parts: Standard Webhooks signatures, message ids, retry times."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` with the ``whsec_`` + base64 secret."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(secret: str, message_id: str, now: datetime, body: bytes) -> dict[str, str]:
    timestamp = int(now.timestamp())
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }


def message_id(value: str, fallback: str) -> str:
    """The same for every delivery of one task message (a republished one included): task id and version;
    ``fallback`` for a value that does not say them."""
    try:
        task = json.loads(value)["task"]
        return f"msg_{task['id']}_v{int(task['version'])}"
    except (ValueError, KeyError, TypeError):
        return fallback


def next_attempt_at(attempts: int, now: datetime, base_seconds: float, max_seconds: float) -> datetime:
    """After ``attempts`` failed tries: base, 2 * base, 4 * base, ... capped at ``max_seconds``."""
    return now + timedelta(seconds=min(base_seconds * 2 ** max(attempts - 1, 0), max_seconds))
