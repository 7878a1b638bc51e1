"""HTTP plumbing of the webhooks: the error answer, content checks and reading a bounded body."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import orjson
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response


class WebhookError(Exception):
    """An answer other than 202: ``{"error": code, "detail": detail}`` with ``status``."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: Any,
        *,
        retry_after: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        if retry_after is not None:
            self.headers["Retry-After"] = str(retry_after)

    def response(self) -> Response:
        return json_response(self.status, {"error": self.code, "detail": self.detail}, self.headers)


_ESCAPING = json.JSONEncoder(separators=(",", ":"))
"""For what orjson refuses (a lone surrogate in a string, which UTF-8 cannot carry): ASCII with escapes."""


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    try:
        content = orjson.dumps(body)  # compact UTF-8, a tenth of the cost of the standard encoder
    except orjson.JSONEncodeError:
        content = _ESCAPING.encode(body).encode()
    return Response(content=content, status_code=status, media_type="application/json", headers=headers)


XML_TYPES = ("text/xml", "application/xml", "application/soap+xml")


def check_content(headers: Headers, *, allow_xml: bool = False) -> str:
    """``"json"`` (or ``"xml"`` where allowed) for a UTF-8, uncompressed body; 415 for anything else."""
    media, _, params = (headers.get("content-type") or "").partition(";")
    media = media.strip().lower()
    if media == "application/json" or (media.startswith("application/") and media.endswith("+json")):
        kind = "json"
    elif allow_xml and media in XML_TYPES:
        kind = "xml"
    else:
        wanted = "application/json or text/xml" if allow_xml else "application/json"
        raise WebhookError(415, "unsupported_media_type", f"the body must be {wanted}")
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise WebhookError(415, "unsupported_media_type", "the body must be UTF-8")
    encoding = (headers.get("content-encoding") or "identity").strip().lower()
    if encoding != "identity":
        raise WebhookError(415, "unsupported_media_type", "compressed bodies are not accepted")
    return kind


async def read_body(
    request: Request, limit: int, timeout: float, clock: Callable[[], float] = time.monotonic
) -> bytes:
    """The raw body, refusing (413) a declared length over ``limit`` at once and stopping the read as soon as
    more than ``limit`` bytes have arrived; 408 when it has not arrived in full within ``timeout`` seconds (a
    client trickling its body would otherwise hold one of the requests the ingest handles at once for as long as it
    liked).

    Read from the ASGI messages themselves, with the clock looked at after each one and no timer: the HTTP server
    (``dealwatch/lingering.py``) wakes a read whose body has stopped coming once a second, with an empty part."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise WebhookError(413, "payload_too_large", f"the body exceeds {limit} bytes")
    deadline = clock() + timeout
    chunks: list[bytes] = []
    size = 0
    receive = request.receive
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise WebhookError(400, "client_disconnected", "the body was cut off")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise WebhookError(413, "payload_too_large", f"the body exceeds {limit} bytes")
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
        if clock() > deadline:
            raise WebhookError(
                408, "body_timeout", f"the body did not arrive in full within {timeout:g} seconds"
            )
