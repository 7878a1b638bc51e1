"""The detector's figures at the scale of a whole CRM; run it as ``bench/run [--quick]``.

Every figure is a ratio against a baseline measured in the same run on the same data (and, for the stream
figures, on the same broker and topic). Lines ``name=value`` are the figures and the sizes; lines starting with
``#`` are notes (machine load, what a figure means).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import pstats
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from detector_data import (  # noqa: E402
    change_events,
    creation_event,
    generic_lines,
    histories_by_deal,
)

PARTITIONS = 3  # the detector's default (Settings.topic_partitions)

QUICK = {
    "stream_events": 60_000,
    "stream_rounds": 1,
    "restart_deals": 100_000,
    "quiet_small": 1_000,
    "quiet_large": 1_000_000,
    "quiet_expiring": 10,
    "quiet_checks": 200,
    "memory_deals": 30_000,
    "replay_events": 100_000,
    "replay_one_process_events": 30_000,
    "profile_events": 10_000,
}
FULL = {
    **QUICK,
    "stream_events": 300_000,
    "stream_rounds": 3,
    "restart_deals": 1_000_000,
    "memory_deals": 300_000,
    "replay_events": 1_000_000,
    "replay_one_process_events": 1_000_000,
    "profile_events": 50_000,
}


def emit(name: str, value: Any) -> None:
    if isinstance(value, float):
        value = f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    print(f"{name}={value}", flush=True)


def note(text: str) -> None:
    print(f"# {text}", flush=True)


def size_suffix(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def machine_load(seconds: float = 1.0) -> float:
    """Cores busy on the whole machine over a short sample (taken while this benchmark is idle)."""

    def busy() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = values[3] + values[4]
        return sum(values[:8]) - idle, sum(values[:8])

    b0, t0 = busy()
    time.sleep(seconds)
    b1, t1 = busy()
    return (b1 - b0) / max(t1 - t0, 1) * (os.cpu_count() or 1)


def report_load(where: str) -> None:
    load = machine_load()
    busy = " (machine busy: other work was running)" if load > 0.3 else ""
    note(f"load before {where}: {load:.2f} of {os.cpu_count()} cores busy with other processes{busy}")


def build_detector() -> Any:
    from services.common.settings import Settings
    from services.detector.wiring import build_detector as build

    return build(Settings())


# ============================================================================================== broker side


class Broker:
    """One Tansu broker for the whole run; worker processes of the benchmark started against it."""

    def __init__(self, workdir: Path):
        from services.common.broker import EmbeddedBroker

        self.workdir = workdir
        self.broker = EmbeddedBroker(log_path=workdir / "tansu.log").start()
        self.bootstrap = self.broker.bootstrap
        self.pid = self.broker.process.pid if self.broker.process else 0

    def stop(self) -> None:
        self.broker.stop()

    def run_worker(self, mode: str, n: int, timeout: float, **opts: str) -> dict[str, Any]:
        """Start one benchmark consumer, wait for its result, stop it. Returns the result and its wall times."""
        tag = f"{mode}-{uuid.uuid4().hex[:6]}"
        cwd = self.workdir / tag
        cwd.mkdir()
        out = cwd / "result.json"
        cmd = [sys.executable, str(HERE / "detector_worker.py"), mode, "--bootstrap", self.bootstrap]
        cmd += ["--n", str(n), "--out", str(out), "--broker-pid", str(self.pid)]
        for k, v in opts.items():
            cmd += [f"--{k.replace('_', '-')}", v]
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("DEALWATCH_") or k == "DEALWATCH_LOG_LEVEL"
        }
        env["PYTHONPATH"] = str(ROOT)
        log = (cwd / "worker.log").open("wb")
        started = time.time()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while not out.exists():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{mode} worker exited with {proc.returncode}:\n{tail(cwd / 'worker.log')}"
                    )
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{mode} worker gave no result in {timeout}s:\n{tail(cwd / 'worker.log')}"
                    )
                time.sleep(0.02)
            result: dict[str, Any] = json.loads(out.read_text())
            result["wall_started"] = started
            result["log"] = str(cwd / "worker.log")
            return result
        finally:
            stop_process(proc)
            log.close()


def recovery_done_at(log: str) -> float | None:
    """Wall time of Faust's 'Recovery complete' line in a worker log (its timestamps are local time)."""
    for line in Path(log).read_text(errors="replace").splitlines():
        if "Recovery complete" in line and line.startswith("["):
            stamp = line[1 : line.index("]")]
            moment = time.strptime(stamp.split(",")[0], "%Y-%m-%d %H:%M:%S")
            return time.mktime(moment) + int(stamp.split(",")[1]) / 1000
    return None


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


async def produce(
    bootstrap: str, topic: str, records: Iterable[tuple[bytes, bytes, int | None]], *, chunk: int = 5000
) -> int:
    """Send (key, value, partition) records, acks=all, in large batches; wait for all of them."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=20,
        max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
        enable_idempotence=False,
    )
    await producer.start()
    n = 0
    try:
        pending: list[asyncio.Future[Any]] = []
        for key, value, partition in records:
            pending.append(await producer.send(topic, value, key=key, partition=partition))
            n += 1
            if len(pending) >= chunk:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return n


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


def partition_of(key: bytes) -> int:
    """The default partitioner's choice (murmur2 of the key), as the ingest's producer would place a deal."""
    from aiokafka.partitioner import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % PARTITIONS


def split_tail(records: list[tuple[bytes, bytes, int | None]]) -> tuple[list[Any], list[Any]]:
    """The last record of each partition apart: Tansu reports a partition's end offset as the base offset of
    its last record batch + 1, so whatever else shares the last batch would be past the end Faust recovers
    to. Sent on its own, the last batch is that one record."""
    last: dict[int | None, int] = {}
    for i, (_, _, p) in enumerate(records):
        last[p] = i
    tail_at = set(last.values())
    return [r for i, r in enumerate(records) if i not in tail_at], [records[i] for i in sorted(tail_at)]


def stream_figures(broker: Broker, sizes: dict[str, int], profile_worker: bool = False) -> None:
    from schemas.topics import Topics
    from services.common.broker import ensure_topics

    n = sizes["stream_events"]
    topic = f"bench{uuid.uuid4().hex[:8]}.crm.deal-changes.v1"
    now = time.time()
    t0 = time.perf_counter()
    events = [(k, v, partition_of(k)) for k, v in change_events(n, now=now)]
    deals = len({k for k, _, _ in events})
    size = sum(len(v) for _, v, _ in events) / len(events)
    asyncio.run(ensure_topics(broker.bootstrap, [topic], PARTITIONS))
    asyncio.run(produce(broker.bootstrap, topic, events))
    del events
    emit("stream_events", n)
    emit("stream_deals", deals)
    emit("stream_partitions", PARTITIONS)
    emit("stream_event_bytes_avg", round(size))
    note(
        f"produced in {time.perf_counter() - t0:.1f}s; rounds of raw/bare/detector: {sizes['stream_rounds']}"
    )

    rates: dict[str, list[float]] = {"raw": [], "bare": [], "detector": []}
    for r in range(sizes["stream_rounds"]):
        report_load(f"stream round {r + 1}")
        timeout = 120 + n / 500
        # the baselines are short and vary more from run to run: three raw runs and two bare ones per round
        for mode in ("raw", "raw", "raw", "bare", "bare", "detector"):
            if mode == "raw":
                res = broker.run_worker(
                    mode, n, timeout, topic=topic, group=f"bench-raw-{uuid.uuid4().hex[:8]}"
                )
            elif mode == "bare":
                res = broker.run_worker(
                    mode, n, timeout, topic=topic, app_id=f"bench-bare-{uuid.uuid4().hex[:8]}"
                )
            else:
                prefix = f"bench{uuid.uuid4().hex[:8]}."
                asyncio.run(ensure_topics(broker.bootstrap, Topics(prefix).all(), PARTITIONS))
                extra = {}
                if profile_worker and r == sizes["stream_rounds"] - 1:
                    extra["profile"] = str(broker.workdir / "worker.prof")
                res = broker.run_worker(mode, n, timeout, topic=topic, prefix=prefix, **extra)
            rate = res["counted"] / res["seconds"]
            rates[mode].append(rate)
            if mode == "detector":
                note(
                    f"round {r + 1} detector: {res['batches']} batches in the window, "
                    f"{res['counted'] / max(res['batches'], 1):.1f} events per batch on average "
                    f"(take_events max {res['batch_size']}); DetectorProcessor.process took "
                    f"{res['in_process_s'] / res['seconds']:.0%} of the window"
                    + (
                        f"; DEBUG logging enabled for {', '.join(res['debug_logging'])}"
                        if res["debug_logging"]
                        else ""
                    )
                )
            note(
                f"round {r + 1} {mode}: {rate:,.0f} events/s over {res['seconds']:.2f}s ({res['counted']} events); "
                f"cores used: worker {res['own_cores']:.2f}, broker {res['broker_cores']:.2f}, "
                f"other processes {res['other_cores']:.2f}"
                + (" (machine busy)" if res["other_cores"] > 0.3 else "")
            )
    raw, bare, det = (statistics.median(rates[m]) for m in ("raw", "bare", "detector"))
    emit("raw_aiokafka_events_per_s", raw)
    emit("bare_faust_events_per_s", bare)
    emit("detector_events_per_s", det)
    emit("detector_over_bare_faust", det / bare)
    emit("bare_faust_over_raw_aiokafka", bare / raw)
    note(
        "each stream rate is the median of its runs (per round: raw 3, bare 2, detector 1; "
        f"{sizes['stream_rounds']} round(s), each running raw, bare and detector in turn)"
    )
    if profile_worker:
        note("the detector's rate above was measured under cProfile in the last round (slower than without)")
        print_profile(
            pstats.Stats(str(broker.workdir / "worker.prof")),
            n,
            "tottime",
            15,
            "the real detector worker's event-loop thread (Faust included) during the window",
        )


def print_profile(stats: pstats.Stats, n: int, key: str, top: int, what: str) -> None:
    """Top functions of a profile, by cumulative ("cumtime") or own ("tottime") time, per event."""
    index = 3 if key == "cumtime" else 2
    entries = stats.stats.items()  # type: ignore[attr-defined]
    total = (
        max(v[3] for v in stats.stats.values())
        if key == "cumtime"
        else sum(v[2] for v in stats.stats.values())
    )  # type: ignore[attr-defined]
    rows = sorted(entries, key=lambda kv: kv[1][index], reverse=True)
    print(f"# profile: {what}, {n} events, top {top} by {key}", flush=True)
    print(f"# {'share%':>6} {'us/event':>9} {'calls':>9}  function", flush=True)
    for (file, line, name), values in rows[:top]:
        ncalls, t = values[1], values[index]
        if file == "~":
            where = "builtin"
        elif file.startswith(str(ROOT)) and ".venv" not in file:
            where = f"{Path(file).relative_to(ROOT)}:{line}"
        else:
            where = f"{'/'.join(Path(file).parts[-2:])}:{line}"
        print(f"# {t / total * 100:6.1f} {t / n * 1e6:9.2f} {ncalls:9d}  {name} ({where})", flush=True)


def restart_figures(broker: Broker, sizes: dict[str, int]) -> None:
    """A detector worker restarted on a changelog of N deals: time until its first event is processed."""
    from schemas.topics import Topics
    from services.common.broker import ensure_topics
    from services.detector.domain.state import DealState

    n = sizes["restart_deals"]
    detector = build_detector()
    now = time.time()
    # a pool of realistic states (full histories through the real rules), re-keyed for N distinct deals; each
    # also through the quiet check a live detector's ticks would have run, so that the deals already past their
    # deadline carry their went_quiet episode, as in a real changelog (otherwise the first tick after the restart
    # would find a third of the million deals newly quiet at once)
    pool: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    quiet = 0
    for key, history in histories_by_deal(min(n, 6_000), now=now):
        p = partition_of(key.encode())
        state: DealState | None = None
        for ev in history:
            state = detector.apply(state, ev, deal_key=key, partition=p, now=now - 3600).state
        assert state is not None
        opened, _ = detector.check_quiet(state, deal_key=key, now=now)
        quiet += bool(opened)
        pool[p].append(state.encode())
    pooled = sum(len(v) for v in pool.values())
    note(f"restart: changelog values from {pooled} realistic states ({quiet} of them already gone quiet)")

    def changelog(count: int) -> list[tuple[bytes, bytes, int | None]]:
        out: list[tuple[bytes, bytes, int | None]] = []
        for i in range(count):
            key = f"hubspot:R{i:08d}".encode()
            p = partition_of(key)
            out.append((key, pool[p][i % len(pool[p])], p))
        return out

    def probe() -> tuple[bytes, bytes]:
        key, value = next(change_events(1, seed=99, now=now))
        return key, value

    results: dict[str, float] = {}
    for label, count in (("empty", 0), (size_suffix(n), n)):
        prefix = f"bench{uuid.uuid4().hex[:8]}."
        topics = Topics(prefix)
        table_topic = f"{prefix}dealwatch-detector-deals-changelog"
        asyncio.run(ensure_topics(broker.bootstrap, topics.all(), PARTITIONS))
        asyncio.run(
            ensure_topics(
                broker.bootstrap,
                [table_topic],
                PARTITIONS,
                configs={table_topic: {"cleanup.policy": "compact"}},
            )
        )
        t0 = time.perf_counter()
        bulk, tail_records = split_tail(changelog(count))
        produced = asyncio.run(produce(broker.bootstrap, table_topic, bulk))
        if bulk:
            ends = asyncio.run(end_offsets(broker.bootstrap, table_topic))
            per_partition = Counter(p for _, _, p in bulk)
            short = sum(per_partition[p] - ends.get(p, 0) for p in per_partition)
            if short:
                note(
                    f"the broker reports end offsets {short} records short of what was produced in batches "
                    "(Tansu: end offset = base offset of the last batch + 1); the last record of each partition "
                    "is therefore sent alone, so that Faust's recovery reads to the true end"
                )
        for record in tail_records:
            produced += asyncio.run(produce(broker.bootstrap, table_topic, [record]))
        produce_s = time.perf_counter() - t0
        key, value = probe()
        asyncio.run(produce(broker.bootstrap, topics.deal_changes, [(key, value, partition_of(key))]))
        report_load(f"restart with {count} deals")
        res = broker.run_worker("detector", 1, 60 + n / 2000, prefix=prefix)
        ready = res["wall_ready"] - res["wall_started"]
        results[label] = ready
        recovered = recovery_done_at(res["log"])
        recovered_s = f"{recovered - res['wall_started']:.1f}s" if recovered else "unknown"
        note(
            f"restart with {produced} changelog records (produced in {produce_s:.1f}s): first event processed "
            f"{ready:.2f}s after the worker process started (Faust's 'Recovery complete' at {recovered_s}; "
            f"{res['ticks_before']} quiet ticks handled before the event, {res['tick_s_before']:.1f}s); "
            f"table held {res['store_len']} deals"
        )
        if res["store_len"] < count:
            note(f"WARNING: the table recovered only {res['store_len']} of {count} deals")
    emit(f"restart_ready_s_{size_suffix(n)}", results[size_suffix(n)])
    emit("restart_ready_s_empty", results["empty"])
    note(
        "restart_ready_s_*: worker process start -> table recovered -> probe event processed (startup included)"
    )


# ============================================================================================== pure side


def quiet_figures(sizes: dict[str, int]) -> None:
    from services.detector.processor import DetectorProcessor, Incoming

    detector = build_detector()
    now = time.time()
    expiring = sizes["quiet_expiring"]
    ticks_topic = "bench.ticks"

    async def noop_send(*_: Any) -> None:
        return None

    def build(n: int) -> tuple[DetectorProcessor, dict[bytes, bytes], float]:
        store: dict[bytes, bytes] = {}
        started = time.perf_counter()
        pool: list[bytes] = []
        for i in range(n):
            # every deal on partition 0 (the worst case: one partition holds them all); `expiring` of them
            # went silent months ago, the rest had news yesterday (past the first few thousand, their states are
            # copies of those, under keys of their own: what a check costs does not depend on the state's content)
            old = i < expiring
            ev = creation_event(
                i, at=now - (120 if old else 1) * 86_400, stage=("proposal", "negotiation", "lead")[i % 3]
            )
            key = f"{ev['source']}:{ev['deal_id']}"
            if old or len(pool) < 3_000:
                raw = detector.apply(None, ev, deal_key=key, partition=0, now=now - 3600).state.encode()
                if not old:
                    pool.append(raw)
            else:
                raw = pool[i % len(pool)]
            store[key.encode()] = raw
        build_s = time.perf_counter() - started
        processor = DetectorProcessor(
            detector=detector,
            store=store,
            changelog=lambda *_: None,
            send_interruption=noop_send,
            send_dead_letter=noop_send,
            ticks_topic=ticks_topic,
            clock=lambda: now,
        )
        return processor, store, build_s

    class Bench:
        """One processor over its store, with the same `expiring` deals re-armed before every check."""

        def __init__(self, n: int):
            self.n = n
            self.processor, self.store, self.build_s = build(n)
            self.due = list(self.store)[:expiring]
            self.originals = {k: self.store[k] for k in self.due}
            self.deadlines = {k: detector.next_check(self.processor._load(k)) for k in self.due}
            assert all(d is not None and d <= now for d in self.deadlines.values())
            self.tick = [Incoming(ticks_topic, 0, None, b'{"t":0}')]
            self.times: list[float] = []
            self.rebuild = 0.0

        async def first(self) -> None:
            started = time.perf_counter()
            await self.processor.process(
                self.tick
            )  # after an assignment: the heap is rebuilt from the table,
            while self.processor.rebuilding:  # a slice at a time, as the worker's ticks drive it
                await self.processor.process(self.tick)
            self.rebuild = time.perf_counter() - started

        async def check(self, record: bool = True) -> None:
            heap = self.processor.heaps[0]
            for k in self.due:  # re-arm the same expiring deals, outside the timing
                self.store[k] = self.originals[k]
                heap.push(k, self.deadlines[k])  # type: ignore[arg-type]
            t = time.perf_counter()
            await self.processor.process(self.tick)
            if record:
                self.times.append(time.perf_counter() - t)

    async def measure(benches: list[Bench], reps: int) -> None:
        for b in benches:
            await b.first()
        for _ in range(20):  # the same warm-up for both
            for b in benches:
                await b.check(record=False)
        for _ in range(reps):  # alternating, so that both see the same machine
            for b in benches:
                await b.check()

    benches = [Bench(sizes["quiet_small"]), Bench(sizes["quiet_large"])]
    asyncio.run(measure(benches, sizes["quiet_checks"]))
    results = {}
    rebuilds = {}
    for b in benches:
        heap = b.processor.heaps[0]
        assert len(heap) == b.n - expiring and len(b.times) == sizes["quiet_checks"]
        results[b.n], rebuilds[b.n] = b.times, b.rebuild
        note(
            f"quiet check, {b.n} tracked deals: median {statistics.median(b.times) * 1e3:.3f} ms, mean "
            f"{statistics.fmean(b.times) * 1e3:.3f} ms, max {max(b.times) * 1e3:.2f} ms over {len(b.times)} "
            f"checks; states built with Detector.apply in {b.build_s:.1f}s; first tick (heap rebuild) "
            f"{b.rebuild:.2f}s"
        )
    del benches
    gc.collect()
    small, large = sizes["quiet_small"], sizes["quiet_large"]
    emit("quiet_check_tracked_small", small)
    emit("quiet_check_tracked_large", large)
    emit("quiet_check_expiring", expiring)
    emit(
        f"quiet_check_{size_suffix(large)}_over_{size_suffix(small)}",
        statistics.median(results[large]) / statistics.median(results[small]),
    )
    emit(f"quiet_check_core_share_{size_suffix(large)}", statistics.fmean(results[large]) / 60.0)
    emit(f"quiet_first_tick_s_{size_suffix(large)}", rebuilds[large])
    note(
        f"quiet_first_tick_s_{size_suffix(large)}: time to read every deal's deadline back from the table after "
        "an assignment (one pass over the table for all the partitions assigned, in slices of at most 0.2 s "
        "between batches of events, so that the stream keeps flowing meanwhile)"
    )
    note(
        "quiet check = one tick through DetectorProcessor.process (heap pop, check_quiet, state writes, messages); "
        "ratio of medians; core share = mean cost of one check per minute / 60 s (all deals on one partition)"
    )


def memory_figures(sizes: dict[str, int]) -> None:
    n = sizes["memory_deals"]
    detector = build_detector()
    now = time.time()

    def states(count: int, seed: int) -> Iterable[tuple[bytes, bytes]]:
        for key, history in histories_by_deal(count, seed=seed, now=now):
            state = None
            for ev in history:
                state = detector.apply(state, ev, deal_key=key, partition=0, now=now - 3600).state
            assert state is not None
            yield key.encode(), state.encode()

    # The states are built first, untraced (the rules run several times faster without tracemalloc, and their
    # bounded caches of working-day deadlines, parsed times and packed ids are not a cost per deal); then a store
    # of fresh copies of the keys and states is traced as it fills: what grows is the cost of each deal.
    built = list(states(n, seed=2))
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    store: dict[bytes, bytes] = {}
    total_len = 0
    for key, raw in built:
        store[bytes(bytearray(key))] = bytes(bytearray(raw))  # copies, allocated while traced
        total_len += len(raw)
    del built
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    emit("memory_deals", n)
    emit("bytes_per_deal", (after - before) / n)
    emit("encoded_state_bytes_avg", total_len / n)
    key_len = sum(len(k) for k in store) / n
    note(
        f"bytes_per_deal: tracemalloc growth of a dict store (key bytes -> encoded state bytes) / deals; "
        f"of which encoded value {total_len / n:.0f}, key {key_len:.0f}, the rest object headers and the dict"
    )
    print_state_breakdown(list(store.values())[:5_000])
    del store


def print_state_breakdown(values: list[bytes]) -> None:
    """Where the encoded bytes go: the JSON of each field of the state array, averaged, largest first."""
    from services.detector.domain.state import _FIELDS, DealState

    sizes: Counter[str] = Counter()
    for raw in values:
        array = json.loads(DealState.plain(raw))
        for name, value in zip(_FIELDS, array[1:], strict=False):
            sizes[name] += len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()) + 1
    total = sum(len(v) for v in values)
    plain = sum(len(DealState.plain(v)) for v in values)
    top = ", ".join(f"{name} {b / len(values):.0f}" for name, b in sizes.most_common(8))
    note(
        f"state JSON bytes by field (average over {len(values)} deals, of {plain / len(values):.0f}, stored "
        f"compressed to {total / len(values):.0f}): {top}"
    )


def in_child(run: Callable[[], Any]) -> tuple[Any, float]:
    """``run()`` in a process forked from this one, and how long it took there (the fork not counted)."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    def child() -> None:
        try:
            began = time.perf_counter()
            value = run()
            send.send(("ok", (value, time.perf_counter() - began)))
        except BaseException as exc:  # sent to the parent, which raises it
            send.send(("error", f"{type(exc).__name__}: {exc}"))

    process = context.Process(target=child)  # not a daemon: a replay there forks its own workers
    process.start()
    send.close()
    try:
        outcome, value = receive.recv()
    except EOFError:  # it died before it could say
        outcome, value = "error", None
    finally:
        process.join()
        receive.close()
    if outcome != "ok":
        raise RuntimeError(value or f"the measuring process ended without a result (exit {process.exitcode})")
    return value  # type: ignore[no-any-return]


def replay_figures(sizes: dict[str, int], workdir: Path) -> None:
    """The replay against parsing the same export. Each replay is measured as `dealwatch replay` runs it: in a
    process that has done nothing else (forked from this one, which has only built the detector and warmed it up
    on 2,000 lines). A process that generated the export, or replayed another one before, hands its forked
    workers a heap whose pages they copy as they write to them: in this run's process that made the same replay
    about a fifth slower (see docs/figures-history.md, 2026-12-02)."""
    from services.detector.domain.event import loads
    from services.detector.replay import replay
    from services.detector.replay_parallel import replay_file, usable_cores

    n = sizes["replay_events"]
    now = time.time()
    path = workdir / "history.jsonl"

    def write_export() -> int:  # in a process of its own: this one's heap stays as a fresh process's
        with path.open("w", encoding="utf-8") as f:
            for line in generic_lines(n, now=now):
                f.write(line + "\n")
        return n

    in_child(write_export)
    path.read_bytes()  # in the page cache for both sides
    detector = build_detector()
    jobs = usable_cores()

    def parse() -> (
        int
    ):  # with orjson (event.loads), as the detector reads an event (the replay reads its own way)
        count = 0
        with path.open("rb") as f:
            for line in f:
                loads(line)
                count += 1
        return count

    def run_replay(processes: int, export: Path = path) -> int:  # as `dealwatch replay --jobs N` runs it
        report = replay_file(export, detector, jobs=processes, until=now)
        assert not report.rejected, report.first_rejections
        return report.events

    head_path = path  # the one-process replay, on the export's first lines at quick size (for time)
    if sizes["replay_one_process_events"] < n:
        head_path = workdir / "history-head.jsonl"
        with path.open("rb") as f, head_path.open("wb") as out:
            for _ in range(sizes["replay_one_process_events"]):
                out.write(f.readline())

    with path.open("rb") as f:  # the same warm-up for both: the first 2,000 lines
        head = [next(f) for _ in range(min(n, 2_000))]
    for line in head:
        loads(line)
    replay(head, build_detector(), until=now)
    with path.open(
        "rb"
    ) as f:  # the Python reference (what makes --out's messages), on the first 30,000 lines
        reference_lines = [line for _, line in zip(range(30_000), f, strict=False)]
    reference, reference_s = in_child(
        lambda: replay(reference_lines, detector, until=now, native=False).events
    )

    # the fastest of three on both sides of the ratio (each pass in a process of its own), alternating: the same
    # statistic for both, so that noise flatters neither
    parse_s = replay_s = float("inf")
    for _ in range(3):
        parsed, seconds = in_child(parse)
        parse_s = min(parse_s, seconds)
        replayed, seconds = in_child(lambda: run_replay(jobs))
        replay_s = min(replay_s, seconds)
    alone, alone_s = in_child(lambda: run_replay(1, head_path))
    emit("replay_events", n)
    emit("replay_processes", jobs)
    emit("replay_events_per_s", replayed / replay_s)
    emit("replay_one_process_events", alone)
    emit("replay_one_process_events_per_s", alone / alone_s)
    emit("json_parse_events_per_s", parsed / parse_s)
    emit("replay_over_json_parse", (replayed / replay_s) / (parsed / parse_s))
    emit("replay_one_process_over_json_parse", (alone / alone_s) / (parsed / parse_s))
    emit("replay_reference_events_per_s", reference / reference_s)
    emit("replay_one_process_over_reference", (alone / alone_s) / (reference / reference_s))
    note(
        "replay_over_json_parse: events/s of the replay (as `dealwatch replay` runs it by default: one process "
        f"a usable core, {jobs} here, each replaying a share of the deals) over events/s of parsing each line "
        "in one process with orjson (services.detector.domain.event.loads, as the detector reads events; the "
        "replay's compiled engine reads the lines itself), each measured in a process forked for it from one "
        "that has only built the detector "
        f"({replay_s:.2f}s vs {parse_s:.2f}s, the fastest of three of each; in one process {alone_s:.1f}s for the "
        f"first {alone:,} events; the Python reference {reference_s:.1f}s for the first {reference:,})"
    )
    path.unlink()
    head_path.unlink(missing_ok=True)


def profile_figures(sizes: dict[str, int]) -> None:
    from services.detector.processor import DetectorProcessor, Incoming

    n = sizes["profile_events"]
    now = time.time()
    records = [Incoming("bench.changes", partition_of(k), k, v) for k, v in change_events(n, seed=3, now=now)]
    batch = 500

    async def noop_send(*_: Any) -> None:
        return None

    def make() -> DetectorProcessor:
        return DetectorProcessor(
            detector=build_detector(),
            store={},
            changelog=lambda *_: None,
            send_interruption=noop_send,
            send_dead_letter=noop_send,
            ticks_topic="bench.ticks",
            clock=lambda: now,
        )

    async def run(processor: DetectorProcessor, profiler: cProfile.Profile | None = None) -> float:
        started = time.perf_counter()
        for i in range(0, len(records), batch):
            chunk = records[i : i + batch]
            if profiler:
                profiler.enable()
            await processor.process(chunk)
            if profiler:
                profiler.disable()
        return time.perf_counter() - started

    asyncio.run(run(make()))  # warm-up, then one clean timing and one profiled pass
    elapsed = asyncio.run(run(make()))
    emit("processor_pure_events_per_s", n / elapsed)
    note(
        "processor_pure_events_per_s: DetectorProcessor.process alone (dict store, no-op sends), "
        f"batches of {batch}, {n} events: the ceiling of the detector without Faust and the broker"
    )
    profiler = cProfile.Profile()
    asyncio.run(run(make(), profiler))
    stats = pstats.Stats(profiler)
    print_profile(stats, n, "cumtime", 10, "DetectorProcessor.process in-process (cProfile)")
    print_profile(stats, n, "tottime", 10, "the same, by own time")


def import_figures(quick: bool) -> None:
    """``dealwatch import`` against a bare aiokafka producer, from bench/import_bench.py (100,000 events)."""
    run_script("import_bench.py", ["--events", "100000", *(["--rounds", "2"] if quick else [])])


def webhook_figures(quick: bool) -> None:
    """The webhook load figures, from bench/webhook_load.py in a process of its own (it prints its own lines,
    and ``name=error`` for the figures of a section that failed)."""
    run_script("webhook_load.py", ["--quick"] if quick else [])


def run_script(name: str, args: list[str]) -> None:
    """Another benchmark of bench/ in a process of its own; its lines go straight to this one's output."""
    cmd = [sys.executable, str(HERE / name), *args]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    try:
        code = proc.wait()
    finally:
        if proc.poll() is None:  # stopped from outside: let it stop its own broker and `dealwatch up`
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    if code != 0:
        raise RuntimeError(f"bench/{name} exited with {code}")


# ============================================================================================== main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes; finishes within five minutes")
    parser.add_argument(
        "--only",
        default="stream,restart,quiet,memory,replay,profile,import,webhook",
        help="comma-separated sections (for development); import and webhook run bench/import_bench.py and "
        "bench/webhook_load.py",
    )
    parser.add_argument(
        "--profile-worker",
        action="store_true",
        help="also cProfile the real detector worker (last stream round)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (worker logs)")
    parser.add_argument("--section-of-run", action="store_true", help=argparse.SUPPRESS)  # a run's section
    parser.add_argument(
        "--set", action="append", default=[], help="override a size: name=value (development)"
    )
    args = parser.parse_args()
    sizes = dict(QUICK if args.quick else FULL)
    for item in args.set:
        name, _, value = item.partition("=")
        if name not in sizes:
            parser.error(f"unknown size {name!r}; one of {', '.join(sizes)}")
        sizes[name] = int(value)
    only = set(args.only.split(","))
    # stopped from outside: unwind, so that the broker and the worker processes are stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    if not args.section_of_run:
        note(
            f"dealwatch detector benchmark, {'quick' if args.quick else 'full'} sizes, {os.cpu_count()} cores"
        )
        note("load average at start: " + Path("/proc/loadavg").read_text().split(" (")[0].strip())
        emit("mode", "quick" if args.quick else "full")
    workdir = Path(tempfile.mkdtemp(prefix="dealwatch-bench-"))
    broker: Broker | None = None
    failed: list[str] = []

    def section(name: str, figures: list[str], run: Callable[[], None]) -> None:
        """Run one section; if it fails, say so on its figures' lines and go on with the others."""
        if name not in only:
            return
        begun = time.perf_counter()
        try:
            run()
        except Exception as exc:  # reported in the output; the other sections still run
            failed.append(name)
            note(f"section {name} failed: {type(exc).__name__}: {str(exc)[:2000]}")
            for figure in figures:
                emit(figure, "error")
        note(f"section {name} took {time.perf_counter() - begun:.0f}s")

    try:
        if only & {"stream", "restart"}:
            broker = Broker(workdir)
            live = broker
            section(
                "stream",
                ["detector_over_bare_faust", "bare_faust_over_raw_aiokafka"],
                lambda: stream_figures(live, sizes, args.profile_worker),
            )
            section(
                "restart",
                [f"restart_ready_s_{size_suffix(sizes['restart_deals'])}"],
                lambda: restart_figures(live, sizes),
            )
            broker.stop()
            broker = None

        def quiet() -> None:
            report_load("quiet check")
            quiet_figures(sizes)

        def replay_section() -> None:
            if only == {"replay"}:
                report_load("replay")
                replay_figures(sizes, workdir)
            else:  # in a process of its own, as `dealwatch replay` runs (not after the sections before it)
                overrides = [
                    f"--set={name}={value}" for name, value in sizes.items() if name.startswith("replay")
                ]
                run_script("detector_bench.py", ["--only=replay", "--section-of-run", *overrides])

        large, small = size_suffix(sizes["quiet_large"]), size_suffix(sizes["quiet_small"])
        section("quiet", [f"quiet_check_{large}_over_{small}", f"quiet_check_core_share_{large}"], quiet)
        section("memory", ["bytes_per_deal"], lambda: memory_figures(sizes))
        section("replay", ["replay_over_json_parse"], replay_section)
        section("profile", [], lambda: profile_figures(sizes))
        section("import", ["import_over_raw_producer"], lambda: import_figures(args.quick))
        section("webhook", [], lambda: webhook_figures(args.quick))
    finally:
        if broker is not None:
            broker.stop()
        if args.keep or failed:
            note(f"work directory kept (worker logs): {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if not args.section_of_run:
        note("load average at end: " + Path("/proc/loadavg").read_text().split(" (")[0].strip())
        note(f"total {time.perf_counter() - started:.0f}s")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    random.seed(0)
    main()
