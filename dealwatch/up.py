"""``dealwatch up``: broker, topics and schema, then every service as a supervised child process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click

from dealwatch import demo as demo_stream
from dealwatch.runplan import RunPlan, write_secrets_file
from dealwatch.supervisor import ChildSpec, Supervisor
from dealwatch.topics_cmd import BROKER_FILE
from schemas.topics import Topics
from services.common.settings import Settings

CHILDREN = ("detector", "recovery", "stats", "web")
COLORS = {"up": "white", "detector": "cyan", "recovery": "magenta", "stats": "blue", "web": "green"}
WIDTH = max(len(name) for name in (*CHILDREN, "up"))
DEMO_WATCH_SECONDS = 90.0


def emit(name: str, line: str) -> None:
    prefix = f"{name:<{WIDTH}} |"
    if sys.stdout.isatty():
        prefix = click.style(prefix, fg=COLORS.get(name, "white"), bold=name == "up")
    click.echo(f"{prefix} {line}")


def say(line: str) -> None:
    emit("up", line)


def child_specs(env: dict[str, str]) -> list[ChildSpec]:
    return [ChildSpec(name, [sys.executable, "-m", "dealwatch", "worker", name], env) for name in CHILDREN]


def local_url(settings: Settings, port: int) -> str:
    host = settings.http_host
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def prepare_database(settings: Settings, embedded_broker: bool) -> None:
    """Create the schema. A fresh embedded broker starts with empty topics, so consumer positions that an
    earlier run stored in the database point past their end: forget them."""
    from sqlalchemy import delete

    from services.common.db import ConsumedOffsetRow, create_schema, make_engine

    engine = make_engine(settings.database_url)
    try:
        create_schema(engine)
        if embedded_broker:
            with engine.begin() as conn:
                conn.execute(delete(ConsumedOffsetRow))
    finally:
        engine.dispose()


async def create_topics(settings: Settings, bootstrap: str) -> None:
    from services.common.broker import ensure_topics

    await ensure_topics(
        bootstrap,
        Topics(settings.topic_prefix).all(),
        settings.topic_partitions,
        replication=settings.topic_replication,
    )


def readiness(url: str) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
            return response.status == 200, f"{response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{exc.code} {exc.read()[:200].decode('utf-8', 'replace')}"
    except OSError as exc:
        return False, str(exc)


async def wait_ready(url: str, supervisor: Supervisor) -> bool:
    """Poll ``/readyz`` of the web child until it answers 200, or the supervisor stops."""
    said_at = time.monotonic()
    while not supervisor.stopping:
        ok, answer = await asyncio.to_thread(readiness, url)
        if ok:
            return True
        if time.monotonic() - said_at > 30:
            say(f"still waiting for {url}/readyz (last answer: {answer})")
            said_at = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(supervisor.wait_stopping(), timeout=0.5)
    return False


def banner(plan: RunPlan, url: str, secrets_file: Path | None) -> list[str]:
    lines = [
        f"dealwatch is ready at {url}",
        f"  webhooks  POST {url}/webhooks/generic  (also /webhooks/hubspot, /webhooks/pipedrive, "
        "/webhooks/salesforce)",
        f"  API       GET  {url}/api/tasks, /api/interruptions, /api/stats  (bearer token)",
        f"  docs      {url}/docs",
        f"  metrics   GET  {url}/metrics  (every service)",
    ]
    for variable, label in (
        ("DEALWATCH_API_TOKEN", "API token"),
        ("DEALWATCH_GENERIC_SECRET", "generic secret"),
    ):
        value = plan.generated.get(variable)
        if value is None:
            lines.append(f"  {label:<15} from your configuration ({variable} or dealwatch.toml)")
        else:
            lines.append(f"  {label:<15} {value}")
    if plan.generated:
        lines.append(
            "  Generated for this run because they were not configured (a local development default, new on "
            "every run): " + ", ".join(sorted(plan.generated))
        )
        if secrets_file is not None:
            lines.append(f"  They are in {secrets_file}: set -a; . {secrets_file}; set +a")
        lines.append("  Set them in the environment or dealwatch.toml to choose your own.")
    lines.append("Press Ctrl-C to stop.")
    return lines


async def feed_demo(plan: RunPlan, url: str, stopped: Callable[[], bool]) -> None:
    secret = plan.secret("generic_secret")
    token = plan.secret("api_token")
    if secret is None or token is None:
        say("demo: needs DEALWATCH_GENERIC_SECRET and an API token; not sending")
        return
    events = demo_stream.load_demo_events(datetime.now(UTC))
    say(
        f"demo: sending {len(events)} CRM events for {len({e['deal']['id'] for e in events})} deals "
        "as signed webhooks to /webhooks/generic"
    )
    deliveries = await asyncio.to_thread(
        lambda: list(demo_stream.deliver(url, secret, events, stopped=stopped))
    )
    refused = [d for d in deliveries if not 200 <= d.status < 300]
    for d in refused:
        say(f"demo: {d.event_id} was answered {d.status or 'nothing'} {d.detail}")
    say(
        f"demo: {len(deliveries) - len(refused)} of {len(deliveries)} events accepted. Recovery tasks appear "
        "within a minute:"
    )
    shown = token if "DEALWATCH_API_TOKEN" in plan.generated else "$DEALWATCH_API_TOKEN"
    say(f"  curl -s -H 'Authorization: Bearer {shown}' {url}/api/tasks")
    await watch_tasks(url, token)


async def watch_tasks(url: str, token: str) -> None:
    """Tell the user as recovery tasks appear, for a while."""
    seen = 0
    deadline = time.monotonic() + DEMO_WATCH_SECONDS
    while time.monotonic() < deadline:
        count = await asyncio.to_thread(demo_stream.count_tasks, url, token)
        if count is not None and count > seen:
            seen = count
            say(f"demo: {count} recovery task{'s' if count != 1 else ''} in GET /api/tasks")
        await asyncio.sleep(3)


class Up:
    """One run of ``dealwatch up``."""

    def __init__(
        self, plan: RunPlan, demo: bool, children: Callable[[dict[str, str]], list[ChildSpec]] = child_specs
    ) -> None:
        self.plan = plan
        self.demo = demo
        self.children = children
        self.supervisor: Supervisor | None = None
        self.stop_requested = False

    def request_stop(self) -> None:
        """Ctrl-C or SIGTERM: stop the children (or, during start-up, stop after the current step)."""
        if self.stop_requested:
            say("still stopping; children that do not stop in time will be killed")
        else:
            say("stopping ...")
        self.stop_requested = True
        if self.supervisor is not None:
            self.supervisor.stop()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)
        broker = None
        broker_file = self.plan.settings.data_dir / BROKER_FILE
        metrics_dir = Path(tempfile.mkdtemp(prefix="dealwatch-metrics-"))
        try:
            settings = self.plan.settings
            if settings.embedded_broker:
                from services.common.broker import EmbeddedBroker

                log_path = settings.data_dir / "broker.log"
                broker = EmbeddedBroker(log_path=log_path, own_session=True)
                await asyncio.to_thread(broker.start)
                bootstrap = broker.bootstrap
                say(f"embedded broker on {bootstrap} (memory only; log: {log_path})")
                broker_file.write_text(bootstrap + "\n")  # for `dealwatch topics` in another shell
            else:
                assert settings.kafka_bootstrap is not None
                bootstrap = settings.kafka_bootstrap
                say(f"broker: {bootstrap}")
            if not self.stop_requested:
                await create_topics(settings, bootstrap)
            if not self.stop_requested:
                await asyncio.to_thread(prepare_database, settings, broker is not None)
                say(f"topics and database ready ({redact_url(settings.database_url)})")
            if self.stop_requested:
                say("stopped before start-up finished")
                return 0
            return await self.supervise(bootstrap, metrics_dir)
        except Exception as exc:
            say(f"error: start-up failed: {scrub(f'{type(exc).__name__}: {exc}', self.plan.settings)}")
            return 1
        finally:
            if broker is not None:
                broker_file.unlink(missing_ok=True)
                await asyncio.to_thread(broker.stop)
                say("embedded broker stopped")
            shutil.rmtree(metrics_dir, ignore_errors=True)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def supervise(self, bootstrap: str, metrics_dir: Path) -> int:
        settings = self.plan.settings
        secrets_file = None
        if self.plan.generated:
            secrets_file = settings.data_dir / "dev-secrets.env"
            write_secrets_file(secrets_file, self.plan.generated)
        env = self.plan.child_environment(os.environ, bootstrap, metrics_dir, self.demo)
        env["DEALWATCH_SUPERVISOR_PID"] = str(os.getpid())
        supervisor = self.supervisor = Supervisor(
            self.children(env), emit, on_exit=forget_metrics(metrics_dir)
        )
        if self.stop_requested:
            supervisor.stop()
        running = asyncio.create_task(supervisor.run())
        url = local_url(settings, self.plan.port)
        side: asyncio.Task[None] | None = None
        if await wait_ready(url, self.supervisor):
            for line in banner(self.plan, url, secrets_file):
                say(line)
            if self.demo:
                side = asyncio.create_task(feed_demo(self.plan, url, lambda: supervisor.stopping))
        code = await running
        if side is not None:
            side.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await side
        if self.supervisor.failure:
            say(f"error: {self.supervisor.failure}")
        else:
            say("all services stopped")
        return code


def forget_metrics(metrics_dir: Path) -> Callable[[int], None]:
    def on_exit(pid: int) -> None:
        from prometheus_client import multiprocess

        with contextlib.suppress(OSError):
            multiprocess.mark_process_dead(pid, str(metrics_dir))  # type: ignore[no-untyped-call]

    return on_exit


def scrub(text: str, settings: Settings) -> str:
    """``text`` without the database password (error messages may quote the URL)."""
    from sqlalchemy.engine import make_url

    try:
        password = make_url(settings.database_url).password
    except Exception:
        return text
    return text.replace(str(password), "***") if password else text


def redact_url(url: str) -> str:
    """A database URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(database URL)"
