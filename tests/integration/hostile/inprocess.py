"""An ASGI app served in process on an event loop of its own (a thread), with a synchronous ``requests``
session that reaches it: Hypothesis and schemathesis drive it from plain test functions, while the app, its
producer and its database engine live on one loop for the whole run, as under a server."""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import httpx
import requests
import requests.adapters
import urllib3
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI


class _AppAdapter(requests.adapters.HTTPAdapter):
    """Sends each prepared request to the app through the portal and builds the ``requests`` answer."""

    def __init__(self, portal: BlockingPortal, client: httpx.AsyncClient) -> None:
        super().__init__()
        self._portal = portal
        self._client = client

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        status, headers, body = self._portal.call(_exchange, self._client, request)
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(body),
            headers=headers,
            status=status,
            version=11,
            preload_content=False,
            decode_content=False,
            request_method=request.method,
        )
        return self.build_response(request, raw)

    def close(self) -> None:
        pass


async def _stream(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def _exchange(
    client: httpx.AsyncClient, request: requests.PreparedRequest
) -> tuple[int, list[tuple[str, str]], bytes]:
    body: Any = request.body
    if isinstance(body, str):
        body = body.encode()
    elif body is not None and not isinstance(body, bytes):
        body = _stream(body)  # a generator: sent in chunks, without a length
    headers = [(name.encode("latin-1"), _octets(value)) for name, value in request.headers.items()]
    answer = await client.request(request.method or "GET", request.url or "/", headers=headers, content=body)
    return answer.status_code, list(answer.headers.multi_items()), answer.content


@contextlib.contextmanager
def served(app: FastAPI, base_url: str) -> Iterator[requests.Session]:
    """``app`` started (its lifespan) on a loop of its own until the block ends; a session that reaches it."""
    with contextlib.ExitStack() as stack:
        portal = stack.enter_context(start_blocking_portal())
        stack.enter_context(portal.wrap_async_context_manager(app.router.lifespan_context(app)))
        client = portal.call(_client, app, base_url)
        stack.callback(portal.call, client.aclose)
        session = requests.Session()
        session.mount("http://", _AppAdapter(portal, client))
        session.mount("https://", _AppAdapter(portal, client))
        yield session


def _octets(value: str | bytes) -> bytes:
    """A header value as a server receives it: latin-1 as HTTP/1.1 carries it (UTF-8 past latin-1)."""
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


async def _client(app: FastAPI, base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)
