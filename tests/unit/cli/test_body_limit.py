from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from dealwatch.limits import BodyLimitMiddleware


class ReadingApp:
    """Reads the whole body, then answers 200 with its length; records whether it ran."""

    def __init__(self) -> None:
        self.called = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.called = True
        size = 0
        more = True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})


class SwallowingApp(ReadingApp):
    """An app that catches every error while reading and answers 400 instead."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except Exception:
            await send({"type": "http.response.start", "status": 400, "headers": []})
            await send({"type": "http.response.body", "body": b"bad"})


def call(
    app: Any, chunks: Iterable[bytes], headers: list[tuple[bytes, bytes]], limit: int = 10
) -> list[Message]:
    pending = list(chunks)
    sent: list[Message] = []

    async def receive() -> Message:
        body = pending.pop(0) if pending else b""
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    asyncio.run(BodyLimitMiddleware(app, max_bytes=limit)(scope, receive, send))
    return sent


def status(sent: list[Message]) -> int:
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1
    return int(starts[0]["status"])


def test_a_declared_length_over_the_limit_is_refused_before_the_app_runs() -> None:
    app = ReadingApp()

    sent = call(app, [b"x" * 11], [(b"content-length", b"11")])

    assert status(sent) == 413
    assert not app.called


def test_a_streamed_body_growing_over_the_limit_is_refused() -> None:
    sent = call(ReadingApp(), [b"x" * 6, b"x" * 6], [(b"transfer-encoding", b"chunked")])

    assert status(sent) == 413


def test_a_body_larger_than_its_declared_length_is_refused() -> None:
    sent = call(ReadingApp(), [b"x" * 6, b"x" * 6], [(b"content-length", b"5")])

    assert status(sent) == 413


def test_an_app_that_swallows_the_error_still_answers_413() -> None:
    sent = call(SwallowingApp(), [b"x" * 6, b"x" * 6], [])

    assert status(sent) == 413


def test_a_body_within_the_limit_reaches_the_app() -> None:
    sent = call(ReadingApp(), [b"x" * 5, b"x" * 5], [(b"content-length", b"10")])

    assert status(sent) == 200
    assert sent[-1]["body"] == b"10"


def test_an_unreadable_content_length_is_refused_with_400() -> None:
    for value in (b"ten", b"-1", b"1" * 30):
        assert status(call(ReadingApp(), [b""], [(b"content-length", value)])) == 400


def test_conflicting_content_lengths_are_refused_with_400() -> None:
    sent = call(ReadingApp(), [b"x"], [(b"content-length", b"1"), (b"content-length", b"2")])

    assert status(sent) == 400
