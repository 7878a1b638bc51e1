"""``dealwatch up --demo``: a small, realistic CRM stream sent as signed generic webhooks through the real
endpoint, with timestamps relative to now."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

PLACEHOLDER = re.compile(r"\{\{(ts|date)(?:([+-])(\d+(?:\.\d+)?)d)?\}\}")
MAX_ATTEMPTS = 5


def load_demo_events(now: datetime) -> list[dict[str, Any]]:
    """The demo stream, oldest first within each deal, with every placeholder filled relative to ``now``."""
    text = resources.files("dealwatch").joinpath("data/demo.jsonl").read_text(encoding="utf-8")
    return [render(json.loads(line), now) for line in text.splitlines() if line.strip()]


def render(value: Any, now: datetime) -> Any:
    """Fill ``{{ts}}``, ``{{ts-70d}}`` (ISO-8601 UTC) and ``{{date+30d}}`` (a calendar date) in strings."""
    if isinstance(value, dict):
        return {k: render(v, now) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, now) for v in value]
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: _fill(m, now), value)
    return value


def _fill(match: re.Match[str], now: datetime) -> str:
    what, sign, days = match.groups()
    offset = timedelta(days=float(days or 0)) * (-1 if sign == "-" else 1)
    moment = (now + offset).astimezone(UTC)
    if what == "date":
        return moment.date().isoformat()
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def standard_webhook_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Headers of a Standard Webhooks v1 delivery: HMAC-SHA256 of ``id.timestamp.body``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


@dataclass
class Delivery:
    event_id: str
    status: int
    detail: str = ""


def post(
    url: str, body: bytes, headers: dict[str, str], timeout: float = 10.0
) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode("utf-8", "replace")


def deliver(
    base_url: str,
    secret: str,
    events: list[dict[str, Any]],
    wait: Callable[[float], None] = time.sleep,
    stopped: Callable[[], bool] = lambda: False,
) -> Iterator[Delivery]:
    """POST each event to ``/webhooks/generic``, signed, honouring ``Retry-After`` on 429/503, until
    ``stopped()`` says to give up."""
    url = base_url.rstrip("/") + "/webhooks/generic"
    for event in events:
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        status, detail = 0, ""
        for _attempt in range(MAX_ATTEMPTS):
            if stopped():
                return
            headers = standard_webhook_headers(secret, event["event_id"], int(time.time()), body)
            try:
                status, response_headers, detail = post(url, body, headers)
            except OSError as exc:
                status, response_headers, detail = 0, {}, str(exc)
            if status not in (0, 429, 503):
                break
            wait(_retry_after(response_headers))
        yield Delivery(event["event_id"], status, detail[:200])


def _retry_after(headers: dict[str, str]) -> float:
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                return min(30.0, max(0.5, float(value)))
            except ValueError:
                break
    return 1.0


def count_tasks(base_url: str, token: str) -> int | None:
    """How many recovery tasks the API lists (first page), or ``None`` when it cannot tell."""
    request = urllib.request.Request(
        base_url.rstrip("/") + "/api/tasks?limit=100", headers={"authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return len(json.loads(response.read())["items"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
