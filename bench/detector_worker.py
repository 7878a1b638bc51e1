"""One consumer of the benchmark, in its own process (started by ``bench/detector_bench.py``, not by hand).

Modes, all reading the same pre-produced topic from the beginning, in a consumer group of their own:

* ``raw``: an aiokafka consumer loop that parses every value with ``json.loads`` (the limit).
* ``bare``: a Faust agent that does nothing with the events (``async for _ in stream``), counting them; with the
  detector's App settings and its consumer fetch wait (Faust's fixed 1.5 s left the bare agent idle half the time
  on the embedded broker, which made the baseline slower than Faust is), and Faust's own record delivery.
* ``detector``: the real detector app (``services.detector.app.create_app``) in a real Faust worker.

Each writes one JSON result file when it has consumed ``--n`` events and then waits to be stopped. Times are
taken inside the process, so worker startup, group join and table recovery are not in the rate: the window runs
from the end of the first unit of delivery (one event for the bare agent, one batch for the detector and the
raw loop) to the moment the last event is done, and the rate counts only the events done inside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_snapshot(broker_pid: int | None) -> dict[str, float]:
    """CPU seconds so far: this process, the broker, the whole machine (busy, all cores)."""
    snap = {"wall": time.perf_counter(), "own": time.process_time(), "broker": 0.0, "machine": 0.0}
    if broker_pid:
        try:
            fields = Path(f"/proc/{broker_pid}/stat").read_text().rsplit(")", 1)[1].split()
            snap["broker"] = (int(fields[11]) + int(fields[12])) / CLK_TCK
        except OSError:
            pass
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in parts]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    snap["machine"] = (sum(values[:8]) - idle) / CLK_TCK
    return snap


def window(start: dict[str, float], end: dict[str, float]) -> dict[str, float]:
    """Cores used during a window by this process, the broker, and everything else on the machine."""
    wall = max(end["wall"] - start["wall"], 1e-9)
    own = (end["own"] - start["own"]) / wall
    broker = (end["broker"] - start["broker"]) / wall
    machine = (end["machine"] - start["machine"]) / wall
    return {
        "seconds": wall,
        "own_cores": own,
        "broker_cores": broker,
        "other_cores": max(0.0, machine - own - broker),
    }


def write_result(path: str, result: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    Path(tmp).write_text(json.dumps(result))
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------- raw aiokafka


async def run_raw(args: argparse.Namespace) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
    )
    await consumer.start()
    n = 0
    first: dict[str, float] | None = None
    n_first = 0
    loads = json.loads
    try:
        while n < args.n:
            batches = await consumer.getmany(timeout_ms=500, max_records=args.batch)
            for records in batches.values():
                for rec in records:
                    loads(rec.value)
                n += len(records)
            if first is None and n:
                first, n_first = cpu_snapshot(args.broker_pid), n
        last = cpu_snapshot(args.broker_pid)
        assert first is not None
        write_result(args.out, {"events": n, "counted": n - n_first, **window(first, last)})
        await asyncio.sleep(3600)
    finally:
        await consumer.stop()


# ---------------------------------------------------------------------------------------------- Faust


def faust_conf() -> dict[str, Any]:
    """The App settings the detector's ``create_app`` uses, for the bare agent."""
    from services.common.settings import Settings

    s = Settings()
    return {
        "store": "memory://",
        "topic_partitions": s.topic_partitions,
        "topic_replication_factor": s.topic_replication,
        "producer_acks": -1,
        "consumer_auto_offset_reset": "earliest",
        "broker_rebalance_timeout": s.rebalance_timeout,
        "broker_session_timeout": s.session_timeout,
        "broker_heartbeat_interval": s.heartbeat_interval,
        "table_standby_replicas": s.standby_replicas,
        "stream_buffer_maxsize": max(4096, s.detector_batch_size * 4),
        "producer_max_batch_size": 256 * 1024,
        "worker_redirect_stdouts": False,
        "autodiscover": False,
        "web_enabled": False,
    }


def run_worker(app: Any) -> None:
    """A Faust worker as ``services.detector.worker.run`` starts it, at the default log level (INFO).

    Not WARNING: at WARNING or above, Faust's console spinner sets the root logger to DEBUG, and then every
    ``log.debug`` of aiokafka and Faust builds a record (several per event)."""
    import faust

    from services.common.settings import Settings

    level = Settings().log_level.upper()
    faust.Worker(app, loglevel=level, quiet=True, redirect_stdouts=False).execute_from_commandline()


def run_bare(args: argparse.Namespace) -> None:
    import faust

    from services.common.settings import Settings
    from services.detector.app import _prompt_fetches

    _prompt_fetches(Settings().fetch_max_wait_ms)  # the detector's fetch wait, as create_app sets it
    app = faust.App(args.app_id, broker=f"kafka://{args.bootstrap}", **faust_conf())
    raw: Any = faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    topic = app.topic(args.topic, schema=raw)
    target = args.n
    out = args.out
    broker_pid = args.broker_pid

    @app.agent(topic, name="bare")
    async def bare(stream: Any) -> None:
        n = 0
        first: dict[str, float] | None = None
        async for _ in stream:
            n += 1
            if n == 1:
                first = cpu_snapshot(broker_pid)
            if n == target:
                assert first is not None
                write_result(out, {"events": n, "counted": n - 1, **window(first, cpu_snapshot(broker_pid))})

    run_worker(app)


def run_detector(args: argparse.Namespace) -> None:
    from dataclasses import dataclass

    from schemas.topics import Topics
    from services.common.settings import Settings
    from services.detector import metrics
    from services.detector.app import create_app

    @dataclass(frozen=True)
    class BenchTopics(Topics):
        """The run's own topics (and app id) except the change topic, which every consumer shares."""

        source: str = ""

        @property
        def deal_changes(self) -> str:
            return self.source or super().deal_changes

    settings = Settings(kafka_bootstrap=args.bootstrap, topic_prefix=args.prefix)
    topics = BenchTopics(prefix=args.prefix, source=args.topic or "")
    app = create_app(settings, topics)
    processor = app.dealwatch_processor  # type: ignore[attr-defined]
    if args.text_classifier == "off":
        from classifier_cost import SilentLexicon

        from services.detector.domain.rules import Detector

        processor.detector = Detector(processor.detector.cfg, SilentLexicon())
    process = processor.process
    target = args.n
    out = args.out
    broker_pid = args.broker_pid
    seen: dict[str, Any] = {"first": None, "n_first": 0, "batches": 0, "in_process": 0.0}
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()

    def events_so_far() -> int:
        return int(metrics.EVENTS._value.get())

    async def timed_process(batch: Any) -> None:
        started = time.perf_counter()
        await process(batch)
        n = events_so_far()
        if not n:
            return
        if seen["first"] is not None:
            seen["in_process"] += time.perf_counter() - started
            seen["batches"] += 1
        if seen["first"] is None:
            seen["first"], seen["n_first"] = cpu_snapshot(broker_pid), n
            if profiler is not None and n < target:
                profiler.enable()
        if n >= target and "done" not in seen:
            seen["done"] = True
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(args.profile)
            first: Any = seen["first"]
            write_result(
                out,
                {
                    "events": n,
                    "counted": n - int(seen["n_first"]),
                    "batches": seen["batches"],
                    "wall_ready": time.time(),
                    "store_len": len(processor.store),
                    "batch_size": settings.detector_batch_size,
                    "in_process_s": seen["in_process"],
                    "ticks_before": seen.get("ticks", 0),
                    "tick_s_before": seen.get("tick_s", 0.0),
                    "log_levels": {
                        name or "root": (
                            logging.getLogger(name).level,
                            logging.getLogger(name).getEffectiveLevel(),
                        )
                        for name in ("", "aiokafka", "faust", "mode", "services")
                    },
                    "debug_logging": sorted(
                        name
                        for name in ("aiokafka", "faust", "mode", "services")
                        if logging.getLogger(name).isEnabledFor(logging.DEBUG)
                    ),
                    **window(first, cpu_snapshot(broker_pid)),
                },
            )

    tick = processor._tick

    def timed_tick(*a: Any, **kw: Any) -> Any:
        """Quiet checks run before the target was reached (a restart: the ticks queued during recovery)."""
        started = time.perf_counter()
        try:
            return tick(*a, **kw)
        finally:
            if "done" not in seen:
                seen["ticks"] = seen.get("ticks", 0) + 1
                seen["tick_s"] = seen.get("tick_s", 0.0) + time.perf_counter() - started

    processor.process = timed_process
    processor._tick = timed_tick
    run_worker(app)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["raw", "bare", "detector"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", default="")
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--group", default="")
    parser.add_argument("--app-id", default="")
    parser.add_argument("--prefix", default="")
    parser.add_argument("--broker-pid", type=int, default=0)
    parser.add_argument(
        "--batch", type=int, default=500, help="raw: max records per getmany (the detector's batch)"
    )
    parser.add_argument("--profile", default="", help="detector: cProfile the measured window into this file")
    parser.add_argument(
        "--text-classifier",
        choices=["on", "off"],
        default="on",
        help="detector: off gives it a lexicon that finds nothing in any text (the cost of the text classifier)",
    )
    args = parser.parse_args()
    if args.mode == "raw":
        asyncio.run(run_raw(args))
    elif args.mode == "bare":
        run_bare(args)
    else:
        run_detector(args)


if __name__ == "__main__":
    main()
