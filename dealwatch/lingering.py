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
previous answer, or it is closed (as a proxy's header timeout would: nothing can be answered to half a head),
give or take the second between two looks. And a request's body, once its head is in, must be in within
``body_timeout`` seconds: the webhooks answer 408 then (``services/ingest/http.py``), and any connection whose body
is still coming ``BODY_GRACE_SECONDS`` later is closed, whatever the route and whether or not it reads the body.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

SWEEP_SECONDS = 1.0
"""How often the connections are looked at for late request heads and stalled bodies."""
BODY_GRACE_SECONDS = 3.0
"""How long past ``body_timeout`` a body may still be coming before the connection is closed: time for the app
to answer 408 first where it keeps that deadline itself (the webhooks), and the limit for every other route."""
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
    closes a connection whose request head does not arrive in full within ``head_timeout`` seconds.

    No timer a request: once a second one sweep of the server's connections closes those whose head is late, and
    wakes the reads of bodies that have stopped coming, so that the app can check its own deadline for them
    (``services/ingest/http.py``: ``read_body``, 408). A timer armed and cancelled for every request cost the
    ingest about 3 % of its throughput."""

    head_timeout: float = 30.0
    body_timeout: float = 30.0
    _head_cycle: object = None
    _waiting_since: float = 0.0
    _body_cycle: object = None
    _body_since: float = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_LingeringTransport(transport, self))  # type: ignore[arg-type]
        self._wait_for_head()
        state = self.server_state
        if not getattr(state, "_dealwatch_sweeping", False):
            state._dealwatch_sweeping = True  # type: ignore[attr-defined]
            self.loop.call_later(SWEEP_SECONDS, _sweep, self.loop, state)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._wait_for_head()  # the next request's head, on a connection kept alive

    def _wait_for_head(self) -> None:
        self._head_cycle = self.cycle  # uvicorn starts a new cycle for each request whose head is complete
        self._waiting_since = self.loop.time()

    def sweep(self, now: float) -> None:
        """Close the connection if its request head is late, or its body later than the app's own deadline
        (``body_timeout``, after which the ingest answers 408) and a grace; else wake the read of a body that
        stopped coming, so that the app can look at its clock."""
        if self.transport.is_closing():
            return
        cycle = self.cycle
        their = self.conn.their_state
        if their is h11.SEND_BODY:
            if self._body_cycle is not cycle:  # first seen here: timed from this look, a second late at most
                self._body_cycle, self._body_since = cycle, now
            elif now - self._body_since > self.body_timeout + BODY_GRACE_SECONDS:
                self.transport.close()  # any route's body, read or not: the close lingers (see above)
                return
            if cycle is not None and not cycle.response_started:
                cycle.message_event.set()  # the app's read returns an empty part and looks at its clock
        elif (
            cycle is self._head_cycle and their is h11.IDLE and now - self._waiting_since > self.head_timeout
        ):
            with contextlib.suppress(h11.LocalProtocolError):
                self.conn.send(h11.ConnectionClosed())
            self.transport.close()


def _sweep(loop: asyncio.AbstractEventLoop, state: Any) -> None:
    """Once a second while the server has connections: each connection's ``sweep``."""
    connections = state.connections
    if not connections:
        state._dealwatch_sweeping = False
        return
    now = loop.time()
    for protocol in list(connections):
        if isinstance(protocol, LingeringH11Protocol):
            protocol.sweep(now)
    loop.call_later(SWEEP_SECONDS, _sweep, loop, state)


def with_time_limits(head_seconds: float, body_seconds: float) -> type[LingeringH11Protocol]:
    """The protocol class for uvicorn's ``http`` with its time limits on request heads and bodies set."""
    limits = {"head_timeout": float(head_seconds), "body_timeout": float(body_seconds)}
    return type("LingeringH11Protocol", (LingeringH11Protocol,), limits)
