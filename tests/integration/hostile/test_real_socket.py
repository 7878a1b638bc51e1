"""T14 and T7 against the real server (``dealwatch worker ingest`` on a socket, not in process).

Two hundred connections send a request head a few bytes at a time and never finish it, while legitimate signed
webhooks are sent beside them: every legitimate one must be accepted, the slow ones must cost the server nothing
but their sockets, and the server must close each of them (and one that never sends a byte) once its head is
``http_head_timeout_seconds`` late. A body trickled past ``http_body_timeout_seconds`` is answered 408 and gives
its place among the requests in flight back. A body streamed past ``max_body_bytes`` with no declared length is
refused with 413 before the whole body is sent (how far the server read is the in-process tests' measure: here the
kernel's buffers stand between), and the client reads that 413 instead of a reset (the server closes with a
linger: ``dealwatch/lingering.py``). A body announced over the limit with ``Expect: 100-continue`` is refused
before it is sent. And the curated hostile bodies, sent three times each, must not raise the worker's peak
resident memory by 50 MiB or more.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from dealwatch.lingering import with_time_limits
from services.common.broker import free_port
from services.common.settings import Settings
from tests.conftest import eventually_sync
from tests.helpers import TEST_GENERIC_SECRET, child_process, standard_webhooks_headers
from tests.integration.hostile.test_webhook_hostile_bodies import HOSTILE

pytestmark = pytest.mark.integration

SLOW_CONNECTIONS = 200
LEGIT_REQUESTS = 200
MAX_BODY = 1024 * 1024
"""The default ``max_body_bytes``."""
PEAK_GROWTH_BOUND = 50 * 1024 * 1024
"""T7: what the hostile bodies may add to the worker's peak resident memory."""
HEAD_TIMEOUT = 8
"""``http_head_timeout_seconds`` of the worker under test: long enough for the legitimate webhooks to be sent while
the slow heads are still open."""
BODY_TIMEOUT = 4
"""``http_body_timeout_seconds`` of the worker under test."""
TRICKLED_BODIES = 20


@dataclass(frozen=True)
class Served:
    url: str
    pid: int

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def peak_rss(self) -> int:
        """The process's peak resident set size (``VmHWM``), in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc/PID/status")


@pytest.fixture
def ingest(broker_bootstrap: str, tmp_path: Path) -> Iterator[Served]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEALWATCH_", "PROMETHEUS_"))}
    env.update(
        {
            "DEALWATCH_KAFKA_BOOTSTRAP": broker_bootstrap,
            "DEALWATCH_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:10]}.",
            "DEALWATCH_HTTP_PORT": str(port),
            "DEALWATCH_GENERIC_SECRET": TEST_GENERIC_SECRET,
            "DEALWATCH_MAX_BODY_BYTES": str(MAX_BODY),
            "DEALWATCH_HTTP_HEAD_TIMEOUT_SECONDS": str(HEAD_TIMEOUT),
            "DEALWATCH_HTTP_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        }
    )
    url = f"http://127.0.0.1:{port}"
    with child_process(["-m", "dealwatch", "worker", "ingest"], env, tmp_path, "ingest.log") as process:

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError((tmp_path / "ingest.log").read_text(errors="replace"))
            try:
                return httpx.get(url + "/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        eventually_sync(ready, timeout=60, interval=0.2, what="the ingest worker to be ready")
        yield Served(url, process.pid)
        assert process.poll() is None, (tmp_path / "ingest.log").read_text(errors="replace")


def event(n: int) -> bytes:
    return json.dumps(
        {
            "event_id": f"slow-clients-{uuid.uuid4().hex}",
            "occurred_at": "2026-11-02T09:15:00+09:00",
            "type": "deal.updated",
            "deal": {
                "id": f"D-{n}",
                "name": f"Deal {n}",
                "stage": "proposal",
                "status": "open",
                "owner_id": "u-1",
            },
        }
    ).encode()


async def test_slow_request_heads_do_not_hold_up_legitimate_webhooks_and_are_closed(ingest: Served) -> None:
    port = ingest.port
    head = f"POST /webhooks/generic HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
    stop = asyncio.Event()
    sent_bytes = [0] * SLOW_CONNECTIONS
    closed_by_server = [False] * SLOW_CONNECTIONS

    async def trickle(i: int) -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(head.encode())  # the head up to a last header that never ends (no blank line)
            sent_bytes[i] = len(head)
            pad = b"X-Pad: " + b"a" * 4000
            while not stop.is_set() and sent_bytes[i] < len(head) + len(pad):
                at = sent_bytes[i] - len(head)
                writer.write(pad[at : at + 3])
                await writer.drain()
                sent_bytes[i] += 3
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=0.1)
        except (ConnectionError, OSError):
            closed_by_server[i] = True
        finally:
            writer.close()

    async def silent() -> bool:
        """A connection that never sends a byte: True once the server has closed it."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            return await asyncio.wait_for(reader.read(1), timeout=HEAD_TIMEOUT + 60) == b""
        except (ConnectionError, OSError):
            return True
        finally:
            writer.close()

    idle = asyncio.create_task(silent())
    slow = [asyncio.create_task(trickle(i)) for i in range(SLOW_CONNECTIONS)]
    latencies: list[float] = []
    statuses: list[int] = []
    try:
        while sum(1 for n in sent_bytes if n) < SLOW_CONNECTIONS:  # every slow head under way
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient(base_url=ingest.url, timeout=30) as client:

            async def one(n: int) -> None:
                body = event(n)
                started = time.perf_counter()
                answer = await client.post(
                    "/webhooks/generic",
                    content=body,
                    headers=standard_webhooks_headers(TEST_GENERIC_SECRET, body),
                )
                latencies.append(time.perf_counter() - started)
                statuses.append(answer.status_code)

            for start in range(0, LEGIT_REQUESTS, 8):  # 8 at a time
                await asyncio.gather(*(one(n) for n in range(start, min(start + 8, LEGIT_REQUESTS))))
        still_open = sum(1 for c in closed_by_server if not c)
        deadline = time.monotonic() + HEAD_TIMEOUT + 60
        while not all(closed_by_server) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # polling the trickles' state until the deadline
        idle_closed = await idle
    finally:
        stop.set()
        await asyncio.gather(*slow, return_exceptions=True)
        idle.cancel()

    assert statuses == [202] * LEGIT_REQUESTS
    assert sum(closed_by_server) == SLOW_CONNECTIONS, "the server left unfinished request heads open"
    assert idle_closed, "the server left a connection that never sent anything open"
    latencies.sort()
    p99 = latencies[int(0.99 * (len(latencies) - 1))]
    print(
        f"\nslow clients: {SLOW_CONNECTIONS} connections sending a request head 3 bytes every 0.1 s "
        f"({min(sent_bytes)}-{max(sent_bytes)} bytes each, {still_open} still open when the legitimate ones were "
        f"done, all closed by the server after the {HEAD_TIMEOUT} s head timeout); "
        f"{LEGIT_REQUESTS} signed webhooks beside them, 8 at a time: all 202, "
        f"p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
    )


async def test_a_streamed_body_over_the_limit_is_refused_before_it_ends(ingest: Served) -> None:
    port = ingest.port
    size, chunk = 11 * 1024 * 1024, b" " * 8192
    signature = standard_webhooks_headers(TEST_GENERIC_SECRET, b" " * size)  # authentic: only too large
    head = "".join(f"{k}: {v}\r\n" for k, v in signature.items())
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = f"POST /webhooks/generic HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTransfer-Encoding: chunked\r\n"
    writer.write(f"{start}{head}\r\n".encode())
    answer = asyncio.create_task(reader.readline())  # the status line, whenever the server sends it
    streamed = 0
    while streamed < size and not answer.done():  # a reset here (the answer lost) fails the test
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()
        streamed += len(chunk)
        await asyncio.sleep(0)
    status_line = await asyncio.wait_for(answer, timeout=30)
    writer.close()
    assert status_line.split(b" ")[1:2] == [b"413"], status_line
    assert streamed < size
    print(
        f"\nstreamed body: 413 before the client had pushed {streamed:,} of {size:,} bytes into its socket (limit "
        f"{MAX_BODY:,}; the kernel buffers a few MB on loopback, so the server read less)"
    )


async def test_a_body_trickled_past_its_time_is_refused_with_408_and_frees_its_place(ingest: Served) -> None:
    port = ingest.port
    body = event(0)
    signature = standard_webhooks_headers(TEST_GENERIC_SECRET, body)
    head = "".join(f"{k}: {v}\r\n" for k, v in signature.items())
    start = f"POST /webhooks/generic HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\n"

    async def trickle() -> bytes:
        """A signed head and the first half of its body, then nothing: the server's status line."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(f"{start}{head}\r\n".encode() + body[: len(body) // 2])
            await writer.drain()
            return await asyncio.wait_for(reader.readline(), timeout=BODY_TIMEOUT + 60)
        finally:
            writer.close()

    statuses = await asyncio.gather(*(trickle() for _ in range(TRICKLED_BODIES)))
    assert [line.split(b" ")[1:2] for line in statuses] == [[b"408"]] * TRICKLED_BODIES, statuses

    async with httpx.AsyncClient(base_url=ingest.url, timeout=30) as client:
        answer = await client.post("/webhooks/generic", content=body, headers=signature)
        assert answer.status_code == 202  # the same body, sent whole: accepted
        metrics = (await client.get("/metrics")).text
    in_flight = [
        line for line in metrics.splitlines() if line.startswith("dealwatch_webhook_requests_in_flight")
    ]
    assert in_flight and float(in_flight[0].split()[-1]) == 0.0, in_flight


async def test_a_body_that_never_ends_closes_its_connection_on_any_route() -> None:
    """A route that reads its body with no deadline of its own (a JSON body FastAPI parses, as the API's) must not
    keep a connection whose body never ends: the HTTP server closes it ``BODY_GRACE_SECONDS`` after its limit."""
    app = FastAPI()

    @app.post("/echo")
    async def echo(payload: dict[str, int]) -> dict[str, int]:
        return payload

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=with_time_limits(30, 1), lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not serving.done(), "the server did not start"
            await asyncio.sleep(0.02)  # polling the server's own flag
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            head = f"POST /echo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            writer.write(f"{head}Content-Length: 100\r\n\r\n".encode() + b'{"a": 1')
            await writer.drain()
            rest = await asyncio.wait_for(reader.read(), timeout=60)  # up to the server's close
        finally:
            writer.close()
        assert rest == b"", rest  # closed without an answer: nothing can be answered to half a body
    finally:
        server.should_exit = True
        await serving


async def asking_first(port: int, body: bytes) -> int:
    """POST a signed body with ``Expect: 100-continue``: the body goes only after a ``100 Continue``; the final
    status."""
    headers = {**standard_webhooks_headers(TEST_GENERIC_SECRET, body), "Expect": "100-continue"}
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"POST /webhooks/generic HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\n"
            f"{head}\r\n".encode()
        )
        status = int((await reader.readline()).split()[1])
        if status == 100:
            await reader.readline()  # the blank line after the interim answer
            writer.write(body)
            status = int((await reader.readline()).split()[1])
        return status
    finally:
        writer.close()


async def test_a_body_announced_over_the_limit_is_refused_before_it_is_sent(ingest: Served) -> None:
    assert await asking_first(ingest.port, b" " * (MAX_BODY * 10)) == 413
    assert await asking_first(ingest.port, event(1)) == 202  # the same exchange for a body within the limit


async def test_hostile_bodies_leave_the_worker_s_peak_memory_bounded(ingest: Served) -> None:
    stand_in = SimpleNamespace(settings=Settings(max_body_bytes=MAX_BODY))
    async with httpx.AsyncClient(base_url=ingest.url, timeout=60) as client:

        async def send(body: bytes) -> int:
            headers = standard_webhooks_headers(TEST_GENERIC_SECRET, body)
            return (await client.post("/webhooks/generic", content=body, headers=headers)).status_code

        for n in range(20):  # warm: imports, caches, the producer's buffers
            assert await send(event(n)) == 202
        before = ingest.peak_rss()
        for _ in range(3):
            for name, (make, status, _) in HOSTILE.items():
                assert await send(make(stand_in)) == status, name  # type: ignore[arg-type]
        assert await send(event(0)) == 202
    grown = ingest.peak_rss() - before
    print(
        f"\nhostile bodies over the socket: {len(HOSTILE)} kinds x 3, each refused with its code; peak RSS "
        f"{before / 2**20:.0f} MiB before, +{grown / 2**20:.1f} MiB after"
    )
    assert grown < PEAK_GROWTH_BOUND


async def test_a_body_sent_whole_past_the_limit_gets_its_413_not_a_reset(ingest: Served) -> None:
    body = b" " * (10 * MAX_BODY)  # more than the kernel's buffers take before the server's close
    headers = standard_webhooks_headers(TEST_GENERIC_SECRET, body)
    async with httpx.AsyncClient(base_url=ingest.url, timeout=60) as client:
        for _ in range(5):
            answer = await client.post("/webhooks/generic", content=body, headers=headers)
            assert answer.status_code == 413
            assert answer.json()["detail"] == "request body too large"
        valid = event(2)
        valid_headers = standard_webhooks_headers(TEST_GENERIC_SECRET, valid)
        assert (
            await client.post("/webhooks/generic", content=valid, headers=valid_headers)
        ).status_code == 202
