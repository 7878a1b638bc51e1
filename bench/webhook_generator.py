"""The load generator of ``bench/webhook_load.py``: a process of its own, pinned to its own core.

    webhook_generator.py closed --url URL --connections N --warmup S --seconds S --out result.json
    webhook_generator.py open   --url URL --rate R --seconds S --out result.json
    webhook_generator.py e2e    --url URL --rate R --seconds S --bootstrap HOST:PORT --topic T --out result.json

The Standard Webhooks secret comes from ``DEALWATCH_GENERIC_SECRET``. Requests go over plain keep-alive
HTTP/1.1 connections written by hand (pre-formatted bytes, one ``readuntil`` per response), so that the
generator costs far less than the server it measures. ``closed``: N connections each send the next request as
soon as the last one is answered (throughput at saturation). ``open``: requests at fixed intended times
(``open_loop_schedule``), whatever happened to the earlier ones, with the latency measured from the intended
send time (queueing in the generator counts against the server, as it would for a CRM). ``e2e``: one
owner change per request (each opens a ``reassigned`` interruption, then a recovery task); the time from its
intended send time to its ``RecoveryTaskCreated`` on the tasks topic, read with aiokafka in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import math
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

CLK_TCK = os.sysconf("SC_CLK_TCK")
REQUEST_TIMEOUT = 10.0
IDLE_REUSE_SECONDS = 3.0
"""A connection idle longer than this is not reused: uvicorn closes idle keep-alive connections after 5 s."""

# ============================================================================================== pure parts


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``q`` % of the values at or below it."""
    if not values:
        raise ValueError("no values")
    if not 0 < q <= 100:
        raise ValueError(f"percentile {q} is not in (0, 100]")
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered) - 1e-9)
    return ordered[max(rank, 1) - 1]


def open_loop_schedule(rate: float, seconds: float) -> list[float]:
    """Intended send times, in seconds from the start, of a constant-rate open loop: request ``i`` at
    ``i / rate``, for every request that starts within ``seconds``. The times never depend on responses."""
    if rate <= 0 or seconds <= 0:
        raise ValueError("rate and seconds must be positive")
    count = math.ceil(rate * seconds - 1e-9)
    return [i / rate for i in range(count)]


def latencies_from_intended(intended: Sequence[float], done: Sequence[float | None]) -> list[float]:
    """Each answered request's latency from its intended send time (not from when it actually left)."""
    return [d - i for i, d in zip(intended, done, strict=True) if d is not None]


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_request(host: str, path: str, key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    """A complete HTTP/1.1 POST of ``body``, signed as a Standard Webhooks sender signs it."""
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        f"webhook-id: {msg_id}\r\nwebhook-timestamp: {timestamp}\r\n"
        f"webhook-signature: {signature(key, msg_id, timestamp, body)}\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def parse_response_head(head: bytes) -> tuple[int, int, bool]:
    """(status, content length, keep-alive) of an HTTP/1.1 response head."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ValueError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    status = int(parts[1])
    length = 0
    keep_alive = parts[0] == b"HTTP/1.1"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"connection":
            keep_alive = value.strip().lower() != b"close"
    return status, length, keep_alive


STAGES = ("lead", "qualification", "proposal", "negotiation", "contract")
TEXTS = (
    "先方、競合A社の値引き提案を検討中とのこと",
    "Called the buyer; budget review moved to next quarter",
    "Sent the revised quote and the implementation plan",
    "担当者が異動のため、後任の方を紹介いただく予定",
    "Meeting notes: the customer asked for a pilot with 20 seats first",
)


def load_event(run: str, event_id: str, rng: random.Random, occurred_at: str) -> dict[str, Any]:
    """One generic event of a plausible mix: activities, updates, contact changes, a few owner changes."""
    deal = rng.randrange(50_000)
    event: dict[str, Any] = {
        "event_id": event_id,
        "occurred_at": occurred_at,
        "type": "deal.updated",
        "deal": {
            "id": f"{run}-D{deal}",
            "name": f"Deal {deal} {10 + deal % 390} seats",
            "stage": STAGES[deal % len(STAGES)],
            "status": "open",
            "amount": (100 + deal % 5000) * 1000,
            "currency": "JPY",
            "close_date": "2027-03-31",
            "owner_id": f"u-{deal % 40}",
            "account_id": f"A-{deal % 500}",
            "account_tier": ("key", "standard", "small")[deal % 3],
        },
    }
    kind = rng.random()
    if kind < 0.5:
        event["type"] = "activity.logged"
        event["activity"] = {
            "kind": rng.choice(("note", "call", "email", "meeting")),
            "direction": rng.choice(("inbound", "outbound", "internal")),
            "text": rng.choice(TEXTS),
            "actor_id": f"u-{deal % 40}",
        }
    elif kind < 0.6:
        event["type"] = "contact.changed"
        event["contact"] = {"id": f"C-{deal}", "name": "Sato", "title": "部長", "change": "left_company"}
    elif kind < 0.7:
        event["previous"] = {"owner_id": f"u-{(deal + 1) % 40}"}
    else:
        event["previous"] = {"stage": STAGES[(deal + 4) % len(STAGES)]}
    return event


def reassignment_event(run: str, deal_id: str, occurred_at: str) -> dict[str, Any]:
    """An owner change of a deal the detector has not seen: it opens a ``reassigned`` interruption at once."""
    n = sum(deal_id.encode()) % 40
    return {
        "event_id": f"{run}-{deal_id}-owner",
        "occurred_at": occurred_at,
        "type": "deal.updated",
        "deal": {
            "id": deal_id,
            "name": f"{deal_id} renewal",
            "stage": "proposal",
            "status": "open",
            "amount": 1_200_000,
            "currency": "JPY",
            "owner_id": f"u-{n + 100}",
            "account_id": f"A-{n}",
            "account_tier": "standard",
        },
        "previous": {"owner_id": f"u-{n}"},
    }


def compact(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ============================================================================================== HTTP


@dataclass
class Target:
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        assert parts.hostname and parts.port, url
        return cls(parts.hostname, parts.port, parts.path or "/")

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"


class Connection:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.used = time.monotonic()
        self.open = True

    @classmethod
    async def connect(cls, target: Target) -> Connection:
        reader, writer = await asyncio.open_connection(target.host, target.port)
        return cls(reader, writer)

    async def request(self, data: bytes) -> int:
        self.writer.write(data)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status, length, keep_alive = parse_response_head(head)
        if length:
            await self.reader.readexactly(length)
        self.used = time.monotonic()
        self.open = keep_alive
        return status

    def close(self) -> None:
        self.open = False
        self.writer.close()


class Pool:
    """Idle connections for the open loop, opened on demand (no cap below ``limit``: a late server means
    more connections in flight, as with a real sender, not a slower sender)."""

    def __init__(self, target: Target, limit: int = 1000) -> None:
        self.target = target
        self.idle: list[Connection] = []
        self.slots = asyncio.Semaphore(limit)
        self.opened = 0

    async def get(self) -> Connection:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if conn.open and now - conn.used < IDLE_REUSE_SECONDS:
                return conn
            conn.close()
        self.opened += 1
        return await Connection.connect(self.target)

    def put(self, conn: Connection) -> None:
        if conn.open:
            self.idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


@dataclass
class Outcome:
    """What happened to the requests of one run: per request, intended time, answer time, status."""

    intended: list[float] = field(default_factory=list)
    done: list[float | None] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    send_lag: list[float] = field(default_factory=list)


async def send_one(pool: Pool, data: bytes, outcome: Outcome, index: int) -> None:
    async with pool.slots:
        conn: Connection | None = None
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                conn = await pool.get()
                status = await conn.request(data)
            finished = time.monotonic()
        except TimeoutError:
            outcome.statuses["timeout"] += 1
            if conn is not None:
                conn.close()
            return
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            outcome.statuses[type(exc).__name__] += 1
            if conn is not None:
                conn.close()
            return
        pool.put(conn)
    outcome.statuses[str(status)] += 1
    if 200 <= status < 300:
        outcome.done[index] = finished


async def open_loop(
    target: Target, schedule: Sequence[float], make_request: Callable[[int], bytes], start: float
) -> Outcome:
    """Send request ``i`` at ``start + schedule[i]`` (monotonic clock); wait for every answer."""
    pool = Pool(target)
    outcome = Outcome(intended=[start + s for s in schedule], done=[None] * len(schedule))
    tasks: list[asyncio.Task[None]] = []
    for i, at in enumerate(outcome.intended):
        delay = at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        data = make_request(i)
        outcome.send_lag.append(time.monotonic() - at)
        tasks.append(asyncio.create_task(send_one(pool, data, outcome, i)))
    await asyncio.gather(*tasks)
    pool.close()
    outcome.statuses["connections_opened"] = pool.opened
    return outcome


async def closed_loop(
    target: Target, connections: int, warmup: float, seconds: float, make_request: Callable[[], bytes]
) -> dict[str, Any]:
    """``connections`` senders, each sending its next request when the last is answered. Counts the
    requests answered inside the window [warmup, warmup + seconds]."""
    start = time.monotonic()
    window = (start + warmup, start + warmup + seconds)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()

    async def sender() -> None:
        conn: Connection | None = None
        while time.monotonic() < window[1]:
            sent = time.monotonic()
            try:
                if conn is None or not conn.open:
                    conn = await Connection.connect(target)
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    status = await conn.request(make_request())
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                statuses[type(exc).__name__] += 1
                if conn is not None:
                    conn.close()
                conn = None
                await asyncio.sleep(0.01)
                continue
            done = time.monotonic()
            if window[0] <= done <= window[1]:
                statuses[str(status)] += 1
                latencies.append(done - sent)
        if conn is not None:
            conn.close()

    cpu = CpuWatch()
    senders = [asyncio.create_task(sender()) for _ in range(connections)]
    await asyncio.sleep(max(0.0, window[0] - time.monotonic()))
    cpu.begin()
    await asyncio.sleep(max(0.0, window[1] - time.monotonic()))
    cores = cpu.end()
    await asyncio.gather(*senders)
    accepted = sum(n for s, n in statuses.items() if s.isdigit() and 200 <= int(s) < 300)
    return {
        "seconds": seconds,
        "accepted": accepted,
        "accepted_per_s": accepted / seconds,
        "statuses": dict(statuses),
        "latency_ms": summary_ms(latencies),
        "cores": cores,
    }


def summary_ms(latencies: Sequence[float]) -> dict[str, float]:
    if not latencies:
        return {"count": 0}
    return {
        "count": len(latencies),
        "p50": percentile(latencies, 50) * 1e3,
        "p99": percentile(latencies, 99) * 1e3,
        "max": max(latencies) * 1e3,
    }


# ============================================================================================== CPU


class CpuWatch:
    """Cores used during a window by this process, by watched process trees, and by the rest of the machine."""

    watched: ClassVar[dict[str, int]] = {}

    def __init__(self) -> None:
        self.start: dict[str, float] = {}

    @staticmethod
    def tree_seconds(root: int, children: dict[int, list[int]], ticks: dict[int, int]) -> float:
        total, stack = 0, [root]
        while stack:
            pid = stack.pop()
            total += ticks.get(pid, 0)
            stack.extend(children.get(pid, ()))
        return total / CLK_TCK

    def snapshot(self) -> dict[str, float]:
        children: dict[int, list[int]] = {}
        ticks: dict[int, int] = {}
        if self.watched:
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                pid = int(entry.name)
                children.setdefault(int(fields[1]), []).append(pid)
                ticks[pid] = int(fields[11]) + int(fields[12])
        snap: dict[str, float] = {}
        for name, root in self.watched.items():
            snap[name] = self.tree_seconds(root, children, ticks)
            for child in children.get(root, ()):  # a supervisor's children, one by one ("pipeline/detector")
                snap[f"{name}/{process_name(child)}"] = self.tree_seconds(child, children, ticks)
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        snap["machine"] = (sum(values[:8]) - values[3] - values[4]) / CLK_TCK
        snap["generator"] = time.process_time()
        snap["wall"] = time.monotonic()
        return snap

    def begin(self) -> None:
        self.start = self.snapshot()

    def end(self) -> dict[str, float]:
        end = self.snapshot()
        wall = max(end["wall"] - self.start["wall"], 1e-9)
        cores = {k: (end[k] - self.start.get(k, 0.0)) / wall for k in end if k != "wall"}
        ours = sum(v for k, v in cores.items() if k != "machine" and "/" not in k)
        cores["other"] = max(0.0, cores.pop("machine") - ours)
        return cores


def process_name(pid: int) -> str:
    """``detector`` for ``python -m dealwatch worker detector``, else the program's name."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return str(pid)
    words = [a.decode(errors="replace") for a in argv if a]
    if "worker" in words and words.index("worker") + 1 < len(words):
        return words[words.index("worker") + 1]
    name = Path(words[0]).name if words else str(pid)
    return "broker" if name.startswith("tansu") else name


# ============================================================================================== modes


class Requests:
    """Signed requests of the load mix: 1 to ``max_events`` events per body. A pool of bodies is built before
    the clock starts, each with a ``%(n)d`` in its event ids that makes them unique per request; the body is
    filled in and signed at send time, so the generator's cost per request stays small."""

    POOL = 1024

    def __init__(self, target: Target, key: bytes, max_events: int, run: str, seed: int = 11) -> None:
        self.target = target
        self.key = key
        self.n = 0
        self.events = 0
        rng = random.Random(seed)
        occurred_at = iso_now()
        self.pool: list[tuple[bytes, int]] = []
        for slot in range(self.POOL):
            count = rng.randint(1, max_events)
            events = [load_event(run, f"{run}-{slot}.{k}-%(n)d", rng, occurred_at) for k in range(count)]
            template = compact(events[0] if count == 1 else events)
            assert template.count(b"%") == count, "only the event ids may hold a % sign"
            self.pool.append((template, count))
        self.run = run

    def next(self, _index: int = 0) -> bytes:
        template, count = self.pool[self.n % self.POOL]
        self.n += 1
        self.events += count
        body = template % {b"n": self.n}
        msg_id = f"msg_{self.run}_{self.n}"
        return signed_request(
            self.target.authority, self.target.path, self.key, msg_id, int(time.time()), body
        )


def run_closed(args: argparse.Namespace, key: bytes) -> dict[str, Any]:
    target = Target.parse(args.url)
    requests = Requests(target, key, args.max_events, args.run)
    result = asyncio.run(closed_loop(target, args.connections, args.warmup, args.seconds, requests.next))
    result["events_per_request"] = requests.events / max(requests.n, 1)
    return result


def run_open(args: argparse.Namespace, key: bytes) -> dict[str, Any]:
    target = Target.parse(args.url)
    requests = Requests(target, key, args.max_events, args.run)

    async def go() -> dict[str, Any]:
        schedule = open_loop_schedule(args.rate, args.seconds)
        cpu = CpuWatch()
        start = time.monotonic() + 0.2
        cpu.begin()
        outcome = await open_loop(target, schedule, requests.next, start)
        return outcome_result(outcome, args.seconds, cpu.end())

    result = asyncio.run(go())
    result["events_per_request"] = requests.events / max(requests.n, 1)
    return result


def outcome_result(outcome: Outcome, seconds: float, cores: dict[str, float]) -> dict[str, Any]:
    latencies = latencies_from_intended(outcome.intended, outcome.done)
    accepted = len(latencies)
    return {
        "seconds": seconds,
        "sent": len(outcome.intended),
        "accepted": accepted,
        "accepted_per_s": accepted / seconds,
        "statuses": dict(outcome.statuses),
        "latency_ms": summary_ms(latencies),
        "send_lag_ms": summary_ms(outcome.send_lag),
        "cores": cores,
    }


async def e2e(args: argparse.Namespace, key: bytes) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    target = Target.parse(args.url)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=20
    )
    await consumer.start()
    arrivals: dict[str, float] = {}
    detected: dict[str, float] = {}
    try:
        tps = []
        for topic in (args.topic, args.interruptions_topic):
            deadline = time.monotonic() + 30
            parts = consumer.partitions_for_topic(topic)
            while not parts and time.monotonic() < deadline:
                await consumer.force_metadata_update()
                parts = consumer.partitions_for_topic(topic)
            if not parts:
                raise RuntimeError(f"no topic {topic} on {args.bootstrap}")
            tps += [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)

        async def read_tasks() -> None:
            while True:
                batch = await consumer.getmany(timeout_ms=100)
                now = time.monotonic()
                for records in batch.values():
                    for record in records:
                        message = json.loads(record.value)
                        if message.get("event") == "RecoveryTaskCreated":
                            arrivals.setdefault(message["task"]["deal_id"], now)
                        elif message.get("event") == "DealInterrupted":
                            detected.setdefault(message["deal_id"], now)

        reader = asyncio.create_task(read_tasks())
        try:
            return await e2e_run(args, key, target, arrivals, detected)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    finally:
        await consumer.stop()


async def e2e_run(
    args: argparse.Namespace,
    key: bytes,
    target: Target,
    arrivals: dict[str, float],
    detected: dict[str, float],
) -> dict[str, Any]:
    def request(deal_id: str) -> bytes:
        body = compact(reassignment_event(args.run, deal_id, iso_now()))
        msg_id = f"msg_{args.run}_{deal_id}"
        return signed_request(target.authority, target.path, key, msg_id, int(time.time()), body)

    # warm-up: the workers have joined their groups and the first tasks flow before the clock starts
    pool = Pool(target)
    warm = Outcome()
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < args.warmup_timeout:
        deal = f"{args.run}-warm{sent}"
        warm.done.append(None)
        await send_one(pool, request(deal), warm, sent)
        sent += 1
        if sum(1 for k in arrivals if k.startswith(f"{args.run}-warm")) >= 5:
            break
        await asyncio.sleep(0.2)
    else:
        raise RuntimeError(
            f"no recovery task within {args.warmup_timeout}s of the first webhook (warm-up: {dict(warm.statuses)})"
        )
    pool.close()
    warmup_s = time.monotonic() - started
    await asyncio.sleep(2.0)

    deals = [f"{args.run}-L{i}" for i in range(math.ceil(args.rate * args.seconds - 1e-9))]
    schedule = open_loop_schedule(args.rate, args.seconds)
    cpu = CpuWatch()
    start = time.monotonic() + 0.2
    cpu.begin()
    outcome = await open_loop(target, schedule, lambda i: request(deals[i]), start)
    cores = cpu.end()
    accepted = [d for d, done in zip(deals, outcome.done, strict=True) if done is not None]
    drain_until = time.monotonic() + args.drain
    while time.monotonic() < drain_until and any(d not in arrivals for d in accepted):
        await asyncio.sleep(0.1)
    result = outcome_result(outcome, args.seconds, cores)
    task_latencies = [
        arrivals[d] - at
        for d, at, done in zip(deals, outcome.intended, outcome.done, strict=True)
        if done is not None and d in arrivals
    ]
    result["task_latency_ms"] = summary_ms(task_latencies)
    result["interruption_latency_ms"] = summary_ms(
        [
            detected[d] - at
            for d, at, done in zip(deals, outcome.intended, outcome.done, strict=True)
            if done is not None and d in detected
        ]
    )
    for name, seen in (("task", arrivals), ("interruption", detected)):
        by_second: dict[int, list[float]] = {}
        for d, at, done in zip(deals, outcome.intended, outcome.done, strict=True):
            if done is not None and d in seen:
                by_second.setdefault(int(at - start), []).append(seen[d] - at)
        result[f"{name}_p50_by_second_ms"] = [
            round(percentile(v, 50) * 1e3) for _, v in sorted(by_second.items())
        ]
    result["tasks_missing"] = sum(1 for d in accepted if d not in arrivals)
    result["warmup_s"] = warmup_s
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["closed", "open", "e2e"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--run", default="bench")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--max-events", type=int, default=10)
    parser.add_argument("--bootstrap")
    parser.add_argument("--topic", help="the tasks topic")
    parser.add_argument("--interruptions-topic")
    parser.add_argument("--drain", type=float, default=30.0)
    parser.add_argument("--warmup-timeout", type=float, default=180.0)
    parser.add_argument(
        "--watch", action="append", default=[], help="name=pid: report the cores of that process tree"
    )
    args = parser.parse_args()
    CpuWatch.watched = {name: int(pid) for name, _, pid in (w.partition("=") for w in args.watch)}
    secret = os.environ["DEALWATCH_GENERIC_SECRET"]
    key = base64.b64decode(secret.removeprefix("whsec_"))
    if args.mode == "closed":
        result = run_closed(args, key)
    elif args.mode == "open":
        result = run_open(args, key)
    else:
        result = asyncio.run(e2e(args, key))
    result["affinity"] = sorted(os.sched_getaffinity(0))
    tmp = f"{args.out}.tmp"
    Path(tmp).write_text(json.dumps(result))
    os.replace(tmp, args.out)


if __name__ == "__main__":
    sys.exit(main())
