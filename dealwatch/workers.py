"""``dealwatch worker <role>``: one service in the foreground. Services are imported here, lazily."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from dealwatch.web import WebPart, create_web_app, metrics_registry
from services.common.runtime import calm_garbage_collector
from services.common.settings import Settings

HTTP_ROLES: dict[str, tuple[str, ...]] = {
    "ingest": ("ingest",),
    "api": ("api",),
    "web": ("ingest", "api"),
}
STREAM_ROLES = ("detector", "recovery", "stats")
ROLES = (*HTTP_ROLES, *STREAM_ROLES)

MAX_HEADER_BYTES = 16 * 1024
"""Bound on an incomplete HTTP request head (uvicorn's h11 ``h11_max_incomplete_event_size``)."""
KEEP_ALIVE_SECONDS = 5
GRACEFUL_SHUTDOWN_SECONDS = 10

log = logging.getLogger("dealwatch.worker")


class ServiceUnavailable(Exception):
    """A service's module cannot be imported (not built yet, or broken)."""


def web_part(name: str, settings: Settings) -> WebPart:
    try:
        if name == "ingest":
            from services.ingest.web import IngestService

            part: WebPart = IngestService(settings)
        else:
            from services.api.web import ApiService

            part = ApiService(settings)
    except ImportError as exc:
        raise ServiceUnavailable(f"the {name} service cannot be loaded: {exc}") from exc
    return part


StreamRunner = Callable[..., Awaitable[Any]]


def stream_runner(role: str) -> Any:
    try:
        if role == "detector":
            from services.detector.worker import run as detector_run

            return detector_run
        if role == "recovery":
            from services.recovery.worker import run as recovery_run

            return recovery_run
        from services.stats.worker import run as stats_run

        return stats_run
    except ImportError as exc:
        raise ServiceUnavailable(f"the {role} service cannot be loaded: {exc}") from exc


def run_worker(role: str, settings: Settings) -> int:
    """Run ``role`` until SIGINT/SIGTERM; the exit status."""
    die_with_parent()
    if role in HTTP_ROLES:
        parts = [web_part(name, settings) for name in HTTP_ROLES[role]]
        return serve_http(settings, parts)
    runner = stream_runner(role)
    if role == "detector":
        return int(runner(settings) or 0)  # serves its own metrics port
    serve_metrics(settings)
    return asyncio.run(run_until_signalled(runner, settings))


def serve_metrics(settings: Settings) -> None:
    """``/metrics`` of a worker without HTTP on ``metrics_port`` (``web_host``), when configured."""
    if settings.metrics_port is None:
        return
    from prometheus_client import start_http_server

    try:
        start_http_server(settings.metrics_port, addr=settings.web_host, registry=metrics_registry())
    except OSError as exc:
        log.warning("cannot serve metrics on %s:%s: %s", settings.web_host, settings.metrics_port, exc)


def serve_http(settings: Settings, parts: list[WebPart]) -> int:
    import uvicorn

    from dealwatch.lingering import with_time_limits

    config = uvicorn.Config(
        create_web_app(settings, parts),
        host=settings.http_host,
        port=settings.http_port,
        # uvicorn's h11, closing with a linger when a body is left unread, and with a time limit on request heads
        http=with_time_limits(settings.http_head_timeout_seconds, settings.http_body_timeout_seconds),
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        lifespan="on",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        log_level=settings.log_level.lower(),
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the SIGINT/SIGTERM it shut down for once it is done, to the handlers it found; with
    # these no-op handlers a requested, graceful stop ends the process with status 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _ignore_signal)
    calm_garbage_collector()
    server.run()
    return 0 if server.started else 3


def _ignore_signal(_sig: int, _frame: object) -> None:
    return None


async def run_until_signalled(runner: StreamRunner, settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await runner(settings, stop=stop)
    return 0


def die_with_parent() -> None:
    """Under ``dealwatch up`` (which sets ``DEALWATCH_SUPERVISOR_PID``), ask Linux for SIGTERM when the
    supervisor dies, so that a killed ``up`` leaves no orphaned workers behind."""
    expected = os.environ.get("DEALWATCH_SUPERVISOR_PID")
    if not expected or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    if str(os.getppid()) != expected:  # the supervisor died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
