"""uvicorn's h11 protocol with a lingering close, so that a refusal sent before a request body ends is read.

The ingest answers a body over ``max_body_bytes`` with 413 without reading the rest of it (413 on a declared
length before any of it, and on a streamed one once past the limit). uvicorn then closes the socket at once, with
the client's unread bytes in the kernel's receive buffer, and the kernel answers such a close with a reset: the
client, still sending, gets "connection reset" and loses the 413 it had not read yet. A sender takes a reset for a
network fault and retries; a 413 tells it to stop.

So a connection closed while the request's body is still coming closes as HTTP servers commonly do (a lingering
close): the answer is flushed and the write side shut (the client reads the answer, then end of stream), and what
the client still sends is read and dropped, without parsing, until it closes its side, or for at most
``LINGER_SECONDS`` and ``LINGER_BYTES``, whichever comes first. Every other close is immediate, as before.

uvicorn has no time limit on a request head: its keep-alive timer stops at the first byte, so a client that sends
a head a few bytes at a time (or opens a connection and sends nothing) holds its connection for as long as it
likes. Here a connection must finish each request's head within ``head_timeout`` seconds of opening or of its
previous answer, or it is closed (as a proxy's header timeout would: nothing can be answered to half a head).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

LINGER_SECONDS = 5.0
LINGER_BYTES = 32 * 1024 * 1024
"""What a client may still send after its answer before the connection is closed anyway (and reset)."""


class _LingeringTransport:
    """The connection's transport for uvicorn: ``close`` lingers when the request body was not read in full."""

    def __init__(self, transport: asyncio.Transport, protocol: LingeringH11Protocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._lingering = False
        self._dropped = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self._lingering or self._transport.is_closing()

    def close(self) -> None:
        transport = self._transport
        if (
            self._lingering
            or transport.is_closing()
            or not self._body_unread()
            or not transport.can_write_eof()
        ):
            transport.close()
            return
        self._lingering = True
        transport.write_eof()  # after what is buffered: the answer goes out, then end of stream
        self._protocol.data_received = self._drop  # type: ignore[method-assign]
        self._protocol.eof_received = self._client_done  # type: ignore[method-assign]
        asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.close)
        transport.resume_reading()

    def _body_unread(self) -> bool:
        return self._protocol.conn.their_state is h11.SEND_BODY

    def _drop(self, data: bytes) -> None:
        self._dropped += len(data)
        if self._dropped > LINGER_BYTES:
            self._transport.close()

    def _client_done(self) -> None:
        self._transport.close()


class LingeringH11Protocol(H11Protocol):
    """``H11Protocol`` whose transport closes with a linger when the request body was not read in full, and which
    closes a connection whose request head does not arrive in full within ``head_timeout`` seconds."""

    head_timeout: float = 30.0
    _head_timer: asyncio.TimerHandle | None = None
    _head_cycle: object = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_LingeringTransport(transport, self))  # type: ignore[arg-type]
        self._wait_for_head()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._wait_for_head()  # the next request's head, on a connection kept alive

    def _wait_for_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_cycle = self.cycle  # uvicorn starts a new cycle for each request whose head is complete
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_late)

    def _head_late(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.cycle is not self._head_cycle:
            return  # a head arrived in time: the timer starts again once that request is answered
        if self.conn.their_state is not h11.IDLE:
            self._wait_for_head()  # the previous request's body is still coming after its answer: later
            return
        with contextlib.suppress(h11.LocalProtocolError):
            self.conn.send(h11.ConnectionClosed())
        self.transport.close()


def with_head_timeout(seconds: float) -> type[LingeringH11Protocol]:
    """The protocol class for uvicorn's ``http`` with its request-head time limit set."""
    return type("LingeringH11Protocol", (LingeringH11Protocol,), {"head_timeout": float(seconds)})
