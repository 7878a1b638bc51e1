"""Webhook load figures: ``bench/webhook_load.py [--quick] [--only load,e2e]``; ``bench/run`` runs it too.

Two sections, each with its own processes on loopback; the load generator (``webhook_generator.py``) always
runs in a process of its own, pinned to the last core, and everything it measures to the other core(s):

- ``load``: the ingest server as ``dealwatch worker ingest`` runs it (``webhook_server.py``: uvicorn, the same app
  factory, ``IngestService``) on the embedded broker, with one benchmark-only bare route in the same app that
  answers 202 without doing anything. Throughput at saturation (closed loop, N connections, the two endpoints
  alternately) gives ``ingest_over_bare_endpoint``; then signed traffic at a fixed rate (open loop, latency from
  the intended send time) for the sustained window gives ``webhook_p99_ms`` and the errors.
- ``e2e``: ``dealwatch up`` with a generated configuration (embedded broker, SQLite); one owner change per
  request at a fixed rate; the time from each webhook's intended send time until its recovery task is on
  ``tasks.recovery-tasks.v1``. The pipeline may use every core, as ``dealwatch up`` does on this machine (the
  generator needs about a tenth of its core at 200 requests/s); ``--set e2e_pinned=1`` keeps it off the
  generator's core.

Lines ``name=value`` are the figures; lines starting with ``#`` are notes (machine load, what a figure means).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from detector_bench import emit, note, report_load, stop_process, tail  # noqa: E402

QUICK = {
    "connections": 64,
    "max_events": 10,
    "saturation_seconds": 4,
    "saturation_warmup": 1,
    "saturation_rounds": 1,
    "rate": 200,
    "sustained_seconds": 8,
    "bare_rate_seconds": 4,
    "e2e_rate": 200,
    "e2e_seconds": 10,
    "e2e_drain": 15,
    "e2e_pinned": 0,
    "knee_seconds": 0,
}
FULL = {
    **QUICK,
    "saturation_seconds": 20,  # 3 rounds: 60 s of sustained saturation on each route
    "saturation_warmup": 2,
    "saturation_rounds": 3,
    "sustained_seconds": 60,
    "bare_rate_seconds": 15,
    "e2e_seconds": 60,
    "e2e_drain": 30,
    "knee_seconds": 10,
}
KNEE_RATES = (100, 200, 400, 800)
"""Requests/s of the load steps that look for the knee (T10: report only; full sizes)."""
KNEE_P99_MS = 250.0
BUSY = 0.3
"""Cores used by other processes above which a phase is noted as run on a busy machine."""


def split_cores(available: Sequence[int]) -> tuple[list[int], list[int]]:
    """(cores of the measured side, core of the load generator): the generator gets the last core."""
    cores = sorted(available)
    if len(cores) < 2:
        return cores, cores
    return cores[:-1], cores[-1:]


def start_pinned(cmd: list[str], cores: Sequence[int], **popen: Any) -> subprocess.Popen[bytes]:
    """Start ``cmd`` on ``cores`` (with ``taskset`` where installed, else by setting the affinity at once)."""
    cpus = ",".join(str(c) for c in cores)
    if shutil.which("taskset"):
        return subprocess.Popen(["taskset", "-c", cpus, *cmd], **popen)
    proc = subprocess.Popen(cmd, **popen)
    os.sched_setaffinity(proc.pid, set(cores))
    return proc


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEALWATCH_", "PROMETHEUS_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode} before it was ready:\n{tail(log)}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url}/readyz not ready within {timeout}s:\n{tail(log)}")


class Rig:
    """Where the processes of a run go: the work directory and the core split."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.server_cores, self.generator_cores = split_cores(os.sched_getaffinity(0))
        self.secret = new_secret()
        self.run_id = uuid.uuid4().hex[:8]

    def generate(self, mode: str, timeout: float, watch: dict[str, int], **opts: Any) -> dict[str, Any]:
        """One run of the load generator, pinned to its core; its result."""
        tag = f"{mode}-{uuid.uuid4().hex[:6]}"
        out = self.workdir / f"{tag}.json"
        log_path = self.workdir / f"{tag}.log"
        cmd = [sys.executable, str(HERE / "webhook_generator.py"), mode, "--out", str(out)]
        cmd += ["--run", f"{self.run_id}{tag[-6:]}"]
        for k, v in opts.items():
            cmd += [f"--{k.replace('_', '-')}", str(v)]
        for name, pid in watch.items():
            cmd += ["--watch", f"{name}={pid}"]
        env = clean_env(DEALWATCH_GENERIC_SECRET=self.secret)
        with log_path.open("wb") as log:
            proc = start_pinned(cmd, self.generator_cores, env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise TimeoutError(f"the {mode} generator gave no result in {timeout}s") from None
            finally:
                stop_process(proc)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"the {mode} generator exited with {proc.returncode}:\n{tail(log_path)}")
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def describe_cores(cores: dict[str, float]) -> str:
    """The cores of each watched process (a supervisor's children in brackets after it), the generator, the
    rest of the machine."""
    parts = []
    for name, value in cores.items():
        if name == "other" or "/" in name:
            continue
        inner = [f"{k.split('/', 1)[1]} {v:.2f}" for k, v in cores.items() if k.startswith(f"{name}/")]
        parts.append(f"{name} {value:.2f}" + (f" ({', '.join(inner)})" if inner else ""))
    text = ", ".join(parts)
    busy = " (machine busy)" if cores.get("other", 0.0) > BUSY else ""
    return f"cores used: {text}, other processes {cores.get('other', 0.0):.2f}{busy}"


def describe_statuses(statuses: dict[str, int]) -> str:
    return ", ".join(f"{k} x{v}" for k, v in sorted(statuses.items())) or "none"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def errors_of(result: dict[str, Any]) -> int:
    """Requests not answered 2xx: other statuses, timeouts, connection errors."""
    return sum(
        n for s, n in result["statuses"].items() if s != "connections_opened" and not s.startswith("2")
    )


# ============================================================================================== load


def load_figures(rig: Rig, sizes: dict[str, int]) -> None:
    from services.common.broker import EmbeddedBroker, free_port

    workdir = rig.workdir / "load"
    workdir.mkdir()
    broker = EmbeddedBroker(log_path=workdir / "tansu.log").start()
    server: subprocess.Popen[bytes] | None = None
    try:
        assert broker.process is not None
        os.sched_setaffinity(broker.process.pid, set(rig.server_cores))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = clean_env(
            DEALWATCH_KAFKA_BOOTSTRAP=broker.bootstrap,
            DEALWATCH_GENERIC_SECRET=rig.secret,
            DEALWATCH_HTTP_PORT=str(port),
            DEALWATCH_TOPIC_PREFIX=f"bench{rig.run_id}.",
            DEALWATCH_DATA_DIR=str(workdir),
        )
        log_path = workdir / "server.log"
        with log_path.open("wb") as log:
            server = start_pinned(
                [sys.executable, str(HERE / "webhook_server.py")],
                rig.server_cores,
                env=env,
                cwd=workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_ready(url, server, log_path, timeout=60)
        watch = {"server": server.pid, "broker": broker.process.pid}
        note(
            f"load generator on core(s) {rig.generator_cores}; ingest server and broker on "
            f"{rig.server_cores}; {sizes['connections']} connections at saturation, "
            f"1-{sizes['max_events']} events per signed request"
        )
        saturation(rig, sizes, url, watch)
        sustained(rig, sizes, url, watch)
        if sizes["knee_seconds"] > 0:
            knee(rig, sizes, url, watch)
    finally:
        if server is not None:
            stop_process(server)
        broker.stop()


def saturation(rig: Rig, sizes: dict[str, int], url: str, watch: dict[str, int]) -> None:
    """Closed loop on the bare route, the ingest with the load mix, and the ingest with one event per body."""
    runs = {
        "bare": ("/bench/bare", sizes["max_events"]),
        "ingest": ("/webhooks/generic", sizes["max_events"]),
        "ingest_1_event": ("/webhooks/generic", 1),
    }
    rates: dict[str, list[float]] = {name: [] for name in runs}
    per_core: dict[str, list[float]] = {name: [] for name in runs}
    events: dict[str, list[float]] = {name: [] for name in runs}
    p50s: dict[str, list[float]] = {name: [] for name in runs}
    p99s: dict[str, list[float]] = {name: [] for name in runs}
    errors: dict[str, int] = dict.fromkeys(runs, 0)
    for r in range(sizes["saturation_rounds"]):
        report_load(f"saturation round {r + 1}")
        for name in list(runs) if r % 2 == 0 else list(reversed(runs)):
            path, max_events = runs[name]
            res = rig.generate(
                "closed",
                timeout=120 + sizes["saturation_seconds"],
                watch=watch,
                url=url + path,
                connections=sizes["connections"],
                warmup=sizes["saturation_warmup"],
                seconds=sizes["saturation_seconds"],
                max_events=max_events,
            )
            rates[name].append(res["accepted_per_s"])
            server_side = res["cores"]["server"] + res["cores"]["broker"]
            per_core[name].append(res["accepted_per_s"] / max(server_side, 1e-3))
            events[name].append(res["events_per_request"])
            lat = res["latency_ms"]
            p50s[name].append(lat.get("p50", float("nan")))
            p99s[name].append(lat.get("p99", float("nan")))
            errors[name] += errors_of(res)
            note(
                f"round {r + 1} {name}: {res['accepted_per_s']:,.0f} requests/s answered 2xx over "
                f"{res['seconds']}s (latency p50 {lat.get('p50', 0):.1f} ms, p99 {lat.get('p99', 0):.1f} ms); "
                f"answers: {describe_statuses(res['statuses'])}; {describe_cores(res['cores'])}"
            )
            if res["cores"].get("generator", 0.0) > 0.9:
                note(f"round {r + 1} {name}: the generator used its whole core; that rate is a lower bound")
    rate = {name: statistics.median(values) for name, values in rates.items()}
    core = {name: statistics.median(values) for name, values in per_core.items()}
    per_request = statistics.fmean(events["ingest"])
    emit("webhook_connections", sizes["connections"])
    emit("webhook_events_per_request_avg", per_request)
    emit("bare_endpoint_requests_per_s", rate["bare"])
    emit("ingest_requests_per_s", rate["ingest"])
    emit("ingest_events_per_s", rate["ingest"] * per_request)
    emit("ingest_over_bare_endpoint", rate["ingest"] / rate["bare"])
    emit("ingest_saturated_seconds", sizes["saturation_rounds"] * sizes["saturation_seconds"])
    emit("ingest_saturated_p50_ms", statistics.median(p50s["ingest"]))
    emit("ingest_saturated_p99_ms", statistics.median(p99s["ingest"]))
    emit("ingest_saturated_errors", errors["ingest"])
    emit("bare_endpoint_saturated_p99_ms", statistics.median(p99s["bare"]))
    emit("ingest_over_bare_endpoint_per_core", core["ingest"] / core["bare"])
    emit("ingest_1_event_requests_per_s", rate["ingest_1_event"])
    emit("ingest_1_event_over_bare_endpoint", rate["ingest_1_event"] / rate["bare"])
    note(
        "ingest_over_bare_endpoint: requests/s answered 202 by POST /webhooks/generic (verify, parse, validate, "
        "normalize, publish acks=all, wait for the ack) over requests/s of the bare route in the same process "
        f"(reads the body, answers 202), both with 1-{sizes['max_events']} events per request; medians of "
        f"{sizes['saturation_rounds']} runs each, in alternating order; ingest_1_event_*: one event per request"
    )
    note(
        "ingest_saturated_*: the signed traffic at saturation, all its runs together "
        f"({sizes['saturation_rounds']} x {sizes['saturation_seconds']} s): latency (medians of the runs' "
        "percentiles, closed loop: each connection sends its next request when answered) and the requests not "
        "answered 2xx"
    )
    note(
        "ingest_over_bare_endpoint_per_core: the same ratio per core-second used by the server and the broker "
        "(less sensitive to other work on a shared machine, which takes the server's core away unevenly)"
    )


def sustained(rig: Rig, sizes: dict[str, int], url: str, watch: dict[str, int]) -> None:
    rate = sizes["rate"]
    report_load("fixed rate")
    bare = rig.generate(
        "open",
        timeout=120 + sizes["bare_rate_seconds"],
        watch=watch,
        url=url + "/bench/bare",
        rate=rate,
        seconds=sizes["bare_rate_seconds"],
        max_events=sizes["max_events"],
    )
    note(
        f"bare route at {rate}/s for {sizes['bare_rate_seconds']}s: p50 {bare['latency_ms']['p50']:.2f} ms, "
        f"p99 {bare['latency_ms']['p99']:.2f} ms; answers: {describe_statuses(bare['statuses'])}; "
        f"{describe_cores(bare['cores'])}"
    )
    rss_before = rss_mib(watch["server"])
    res = rig.generate(
        "open",
        timeout=120 + sizes["sustained_seconds"],
        watch=watch,
        url=url + "/webhooks/generic",
        rate=rate,
        seconds=sizes["sustained_seconds"],
        max_events=sizes["max_events"],
    )
    lat = res["latency_ms"]
    emit("webhook_rate_per_s", rate)
    emit("webhook_seconds", sizes["sustained_seconds"])
    emit("webhook_accepted_per_s", res["accepted_per_s"])
    emit("webhook_p50_ms", lat.get("p50", float("nan")))
    emit("webhook_p99_ms", lat.get("p99", float("nan")))
    emit("webhook_errors", errors_of(res))
    emit("bare_endpoint_p99_ms", bare["latency_ms"].get("p99", float("nan")))
    note(
        f"sustained ingest at {rate}/s for {sizes['sustained_seconds']}s ({res['sent']} signed requests, "
        f"{res['events_per_request']:.1f} events each on average): max {lat.get('max', 0):.1f} ms; answers: "
        f"{describe_statuses(res['statuses'])}; the generator sent late by p99 "
        f"{res['send_lag_ms'].get('p99', 0):.2f} ms; {describe_cores(res['cores'])}; server RSS "
        f"{rss_before:.0f} MiB before, {rss_mib(watch['server']):.0f} MiB after"
    )
    note(
        "webhook latencies are open-loop: from each request's intended send time (a fixed schedule) to the "
        "end of its answer, so a slow answer delays nothing else and queueing counts against the server"
    )


def knee(rig: Rig, sizes: dict[str, int], url: str, watch: dict[str, int]) -> None:
    """Signed traffic at fixed rates stepping up (open loop): where the server stops keeping up.

    The knee is the highest step answered in full (every request 2xx, none late beyond the step) with p99 within
    ``KNEE_P99_MS``; each step's own figures are printed too."""
    kept_up, holding = 0, True
    for rate in KNEE_RATES:
        report_load(f"knee step {rate}/s")
        res = rig.generate(
            "open",
            timeout=120 + sizes["knee_seconds"],
            watch=watch,
            url=url + "/webhooks/generic",
            rate=rate,
            seconds=sizes["knee_seconds"],
            max_events=sizes["max_events"],
        )
        p99 = res["latency_ms"].get("p99", float("nan"))
        errors = errors_of(res)
        emit(f"webhook_step_{rate}_accepted_per_s", res["accepted_per_s"])
        emit(f"webhook_step_{rate}_p99_ms", p99)
        emit(f"webhook_step_{rate}_errors", errors)
        note(
            f"step {rate}/s for {sizes['knee_seconds']}s: answers {describe_statuses(res['statuses'])}; "
            f"p50 {res['latency_ms'].get('p50', 0):.1f} ms; {describe_cores(res['cores'])}"
        )
        holding = holding and errors == 0 and p99 <= KNEE_P99_MS
        if holding:
            kept_up = rate
    emit("webhook_knee_per_s", kept_up)
    note(
        f"webhook_knee_per_s: the highest of the steps {', '.join(map(str, KNEE_RATES))} requests/s (each "
        f"{sizes['knee_seconds']}s, 1-{sizes['max_events']} events per request) answered without an error and "
        f"with p99 within {KNEE_P99_MS:.0f} ms, every lower step as well (0: not even the first)"
    )


# ============================================================================================== end to end


def e2e_figures(rig: Rig, sizes: dict[str, int]) -> None:
    from dealwatch.topics_cmd import BROKER_FILE
    from schemas.topics import Topics
    from services.common.broker import free_port

    workdir = rig.workdir / "e2e"
    data_dir = workdir / "var"
    data_dir.mkdir(parents=True)
    config = workdir / "dealwatch.toml"
    config.write_text(
        "# generated by bench/webhook_load.py for one run\n"
        f'data_dir = "{data_dir}"\n'
        f'database_url = "sqlite:///{workdir}/dealwatch.db"\n'
        f'generic_secret = "{rig.secret}"\n'
        f'api_token = "{secrets.token_urlsafe(24)}"\n'
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / "up.log"
    report_load("end to end")
    with log_path.open("wb") as log:
        up = start_pinned(
            [sys.executable, "-m", "dealwatch", "up", "--port", str(port)],
            rig.server_cores if sizes["e2e_pinned"] else sorted({*rig.server_cores, *rig.generator_cores}),
            env=clean_env(DEALWATCH_CONFIG=str(config)),
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        started = time.monotonic()
        wait_ready(url, up, log_path, timeout=180)
        bootstrap = (data_dir / BROKER_FILE).read_text().strip()
        note(
            "`dealwatch up` (broker, web, detector, recovery, stats; SQLite) on core(s) "
            f"{sorted(os.sched_getaffinity(up.pid))}, "
            f"ready in {time.monotonic() - started:.0f}s; load generator on {rig.generator_cores}"
        )
        rate, seconds = sizes["e2e_rate"], sizes["e2e_seconds"]
        res = rig.generate(
            "e2e",
            timeout=400 + seconds + sizes["e2e_drain"],
            watch={"pipeline": up.pid},
            url=url + "/webhooks/generic",
            rate=rate,
            seconds=seconds,
            drain=sizes["e2e_drain"],
            bootstrap=bootstrap,
            topic=Topics().recovery_tasks,
            interruptions_topic=Topics().interruptions,
        )
    finally:
        stop_up(up)
    task = res["task_latency_ms"]
    emit("webhook_to_task_rate_per_s", rate)
    emit("webhook_to_task_seconds", seconds)
    emit("webhook_to_task_p50_ms", task.get("p50", float("nan")))
    emit("webhook_to_task_p99_ms", task.get("p99", float("nan")))
    emit("webhook_to_task_missing", res["tasks_missing"])
    note(
        f"end to end: {res['sent']} owner changes at {rate}/s, {res['accepted']} answered 202 (webhook p99 "
        f"{res['latency_ms'].get('p99', 0):.1f} ms), {task.get('count', 0)} tasks seen, max "
        f"{task.get('max', 0):.0f} ms, {res['tasks_missing']} not seen within {sizes['e2e_drain']}s after the "
        f"last request; answers: {describe_statuses(res['statuses'])}; first task after {res['warmup_s']:.1f}s "
        f"of warm-up; the generator sent late by p99 {res['send_lag_ms'].get('p99', 0):.2f} ms; "
        f"{describe_cores(res['cores'])}"
    )
    detected = res["interruption_latency_ms"]
    note(
        f"of which webhook to DealInterrupted on deals.interruptions.v1 (the detector's part): p50 "
        f"{detected.get('p50', 0):.0f} ms, p99 {detected.get('p99', 0):.0f} ms ({detected.get('count', 0)} seen)"
    )
    note(
        "webhook_to_task p50 by second of the run (ms; growing means the pipeline fell behind): "
        + " ".join(str(v) for v in res["task_p50_by_second_ms"])
    )
    note(
        "webhook to DealInterrupted p50 by second of the run (ms): "
        + " ".join(str(v) for v in res["interruption_p50_by_second_ms"])
    )
    note(
        "webhook_to_task: from each webhook's intended send time to its RecoveryTaskCreated on "
        "tasks.recovery-tasks.v1 (read by the generator with aiokafka, matched by deal id)"
    )


def stop_up(up: subprocess.Popen[bytes]) -> None:
    if up.poll() is not None:
        return
    up.send_signal(signal.SIGINT)
    try:
        up.wait(timeout=90)
    except subprocess.TimeoutExpired:
        up.kill()
        up.wait(timeout=10)


# ============================================================================================== main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter windows (about two minutes in all)")
    parser.add_argument("--only", default="load,e2e", help="comma-separated sections: load, e2e")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (server and up logs)")
    parser.add_argument("--set", action="append", default=[], help="override a size: name=value")
    args = parser.parse_args()
    sizes = dict(QUICK if args.quick else FULL)
    for item in args.set:
        name, _, value = item.partition("=")
        if name not in sizes:
            parser.error(f"unknown size {name!r}; one of {', '.join(sizes)}")
        sizes[name] = int(value)
    only = set(args.only.split(","))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    note(
        f"dealwatch webhook load benchmark, {'quick' if args.quick else 'full'} sizes, {os.cpu_count()} cores"
    )
    note("load average at start: " + Path("/proc/loadavg").read_text().split(" (")[0].strip())
    workdir = Path(tempfile.mkdtemp(prefix="dealwatch-webhook-bench-"))
    rig = Rig(workdir)
    if rig.server_cores == rig.generator_cores:
        note("one core only: the load generator shares it with the server (figures are not comparable)")
    failed: list[str] = []

    def section(name: str, figures: list[str], run: Callable[[], None]) -> None:
        if name not in only:
            return
        try:
            run()
        except Exception as exc:  # reported in the output; the other section still runs
            failed.append(name)
            note(f"section {name} failed: {type(exc).__name__}: {str(exc)[:3000]}")
            for figure in figures:
                emit(figure, "error")

    try:
        section("load", ["ingest_over_bare_endpoint", "webhook_p99_ms"], lambda: load_figures(rig, sizes))
        section("e2e", ["webhook_to_task_p50_ms", "webhook_to_task_p99_ms"], lambda: e2e_figures(rig, sizes))
    finally:
        if args.keep or failed:
            note(f"work directory kept (logs): {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    note("load average at end: " + Path("/proc/loadavg").read_text().split(" (")[0].strip())
    note(f"webhook benchmark total {time.perf_counter() - started:.0f}s")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
