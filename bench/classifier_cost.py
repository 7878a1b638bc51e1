#!/usr/bin/env python3
"""What the cause classifier adds to the detector's cost per event, measured in one run, at two levels.

Both compare the detector with the real lexicon against the same detector with a lexicon that finds nothing (so
no text signal is extracted, kept or weighed, and every classification has only structured facts), on the same
realistic change events, in alternating runs that share the machine's noise; each prints the median ratio.

* ``classifier_cost_share`` (goal: 0.10 or less): the detector's throughput, the figure of ``bench/run``'s
  stream section. A real detector worker (Faust, the embedded broker, its tables and changelogs) consumes a
  pre-produced topic, once with and once without the text classifier, in each of ``--pairs`` pairs (the order
  swaps from pair to pair); the share is how much longer an event takes with it.
* ``classifier_step_cost_share``: the same comparison for the in-process stream step alone
  (``DetectorProcessor.process``, a dict as the table store, no-op sends), without Faust and the broker. It is
  the stricter figure: the step is the part of the detector's cost the classifier adds to.
* ``classifier_step_instruction_share`` (``--level instructions``; needs valgrind): the step again, counted by
  cachegrind instead of timed: instructions executed, and a cycle estimate that adds the simulated cache misses
  (10 cycles a first-level miss, 100 a last-level one). Counts do not move with what else the machine is doing,
  so this figure tells a change of the classifier from a noisy machine; each of the four runs counts a start-up
  and a prefix of the events, and the difference between two prefixes is the cost of the events between them.

    .venv/bin/python bench/classifier_cost.py [--level both|worker|step|instructions] [--events N] [--rounds R]
        [--pairs P]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from detector_data import change_events

from services.common.settings import Settings
from services.detector.domain.causes import Lexicon, Signal
from services.detector.domain.rules import Detector
from services.detector.processor import DetectorProcessor, Incoming
from services.detector.wiring import build_config


class SilentLexicon(Lexicon):
    """Finds no cause in any text: the detector without its text classifier."""

    def __init__(self) -> None:
        pass

    def extract(self, text: str, **_: Any) -> list[Signal]:
        return []


async def _nothing(*_: Any) -> None:
    return None


def run_once(detector: Detector, records: list[Incoming], batch: int) -> float:
    proc = DetectorProcessor(
        detector=detector,
        store={},
        changelog=lambda *_: None,
        send_interruption=_nothing,
        send_dead_letter=_nothing,
        ticks_topic="ticks",
    )
    loop = asyncio.new_event_loop()
    try:
        started = time.perf_counter()
        for i in range(0, len(records), batch):
            loop.run_until_complete(proc.process(records[i : i + batch]))
        return time.perf_counter() - started
    finally:
        loop.close()


def worker_share(events: int, pairs: int) -> None:
    """The worker-level figure: real detector workers on the embedded broker, with and without the classifier."""
    import shutil
    import tempfile
    import uuid

    from detector_bench import PARTITIONS, Broker, partition_of, produce

    from schemas.topics import Topics
    from services.common.broker import ensure_topics

    workdir = Path(tempfile.mkdtemp(prefix="dealwatch-classifier-cost-"))
    broker = Broker(workdir)
    failed = False
    try:
        topic = f"cost{uuid.uuid4().hex[:8]}.crm.deal-changes.v1"
        records = [(k, v, partition_of(k)) for k, v in change_events(events, now=time.time())]
        asyncio.run(ensure_topics(broker.bootstrap, [topic], PARTITIONS))
        asyncio.run(produce(broker.bootstrap, topic, records))
        del records
        rates: dict[str, list[float]] = {"on": [], "off": []}
        shares = []
        for pair in range(pairs):
            order = ("on", "off") if pair % 2 == 0 else ("off", "on")
            got = {}
            for classifier in order:
                prefix = f"cost{uuid.uuid4().hex[:8]}."
                asyncio.run(ensure_topics(broker.bootstrap, Topics(prefix).all(), PARTITIONS))
                res = broker.run_worker(
                    "detector",
                    events,
                    120 + events / 500,
                    topic=topic,
                    prefix=prefix,
                    text_classifier=classifier,
                )
                got[classifier] = res["counted"] / res["seconds"]
                rates[classifier].append(got[classifier])
                print(
                    f"# pair {pair + 1} classifier {classifier}: {got[classifier]:,.0f} events/s over "
                    f"{res['seconds']:.2f}s; cores used: worker {res['own_cores']:.2f}, broker "
                    f"{res['broker_cores']:.2f}, other processes {res['other_cores']:.2f}",
                    flush=True,
                )
            shares.append(got["off"] / got["on"] - 1.0)
        print(f"worker_events={events} pairs={pairs} shares={','.join(f'{x:.3f}' for x in shares)}")
        print(f"detector_events_per_s_with_classifier={statistics.median(rates['on']):.0f}")
        print(f"detector_events_per_s_without_text_classifier={statistics.median(rates['off']):.0f}")
        print(f"classifier_cost_share={statistics.median(shares):.3f}", flush=True)
    except Exception:
        failed = True
        print(f"# worker logs kept in {workdir}", flush=True)
        raise
    finally:
        broker.stop()
        if not failed:
            shutil.rmtree(workdir, ignore_errors=True)


def step_share(events: int, rounds: int, batch: int) -> None:
    """The step-level figure: ``DetectorProcessor.process`` in-process, with and without the classifier."""
    settings = Settings()
    config = build_config(settings)
    real = Detector(config, Lexicon.load(competitors=settings.competitors))
    silent = Detector(config, SilentLexicon())
    records = [Incoming("changes", hash(k) % 3, k, v) for k, v in change_events(events, now=time.time())]
    texts = sum(1 for r in records if b'"text":"' in (r.value or b""))
    ratios, with_s, without_s = [], [], []
    run_once(real, records[:2000], batch)  # warm-up: imports, regex compilation, caches
    for _ in range(rounds):
        a = run_once(real, records, batch)
        b = run_once(silent, records, batch)
        with_s.append(a)
        without_s.append(b)
        ratios.append(a / b - 1.0)
    print(f"step_events={len(records)} with_text={texts} rounds={rounds}")
    print(f"detector_step_events_per_s_with_classifier={len(records) / statistics.median(with_s):.0f}")
    print(
        f"detector_step_events_per_s_without_text_classifier={len(records) / statistics.median(without_s):.0f}"
    )
    print(f"classifier_step_cost_share={statistics.median(ratios):.3f}", flush=True)


COUNTED = ("Ir", "I1mr", "ILmr", "Dr", "D1mr", "DLmr", "Dw", "D1mw", "DLmw")
"""The counts of a cachegrind run with its cache simulation, in the order of its summary line."""
FIXED_NOW = 1_790_000_000.0
"""The same events in every counted run (``change_events`` takes its times from ``now``)."""


def counted_child(classifier: str, events: int, total: int, batch: int) -> None:
    """The process cachegrind counts: build a detector, then run the step over the first ``events`` of ``total``
    events (the same ``total`` in every run: a shorter history is not a prefix of a longer one)."""
    settings = Settings()
    config = build_config(settings)
    lexicon = Lexicon.load(competitors=settings.competitors) if classifier == "on" else SilentLexicon()
    records = [Incoming("changes", hash(k) % 3, k, v) for k, v in change_events(total, now=FIXED_NOW)]
    run_once(Detector(config, lexicon), records[:events], batch)


def instruction_share(lo: int, hi: int, batch: int) -> None:
    """The step's instructions and estimated cycles an event, with and without the classifier, from cachegrind."""
    import os
    import shutil
    import subprocess
    import tempfile

    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("--level instructions needs valgrind (Debian: apt-get install valgrind)")
    if not 0 < lo < hi:
        raise SystemExit("--count-events needs two sizes, the first smaller: e.g. 1000,4000")
    out = Path(tempfile.mkdtemp(prefix="dealwatch-instructions-"))
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same partitions and set orders in every run
    runs = [(c, n) for c in ("on", "off") for n in (lo, hi)]
    procs = {}
    try:
        # two at a time: the counts do not depend on what runs beside them, only the wall time does
        for i in range(0, len(runs), 2):
            for classifier, n in runs[i : i + 2]:
                cmd = [
                    valgrind, "--tool=cachegrind", "--cache-sim=yes",
                    f"--cachegrind-out-file={out / f'{classifier}-{n}.out'}",
                    sys.executable, __file__, "--counted-child", classifier, str(n), str(hi), "--batch", str(batch),
                ]  # fmt: skip
                log = (out / f"{classifier}-{n}.log").open("wb")
                procs[classifier, n] = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
            for key in runs[i : i + 2]:
                if procs[key].wait() != 0:
                    log_text = (out / f"{key[0]}-{key[1]}.log").read_text(errors="replace")
                    raise SystemExit(f"counted run {key} failed:\n{log_text[-2000:]}")
        per_event = {}
        for classifier in ("on", "off"):
            low, high = (_counts(out / f"{classifier}-{n}.out") for n in (lo, hi))
            per_event[classifier] = {k: (high[k] - low[k]) / (hi - lo) for k in COUNTED}
    finally:
        shutil.rmtree(out, ignore_errors=True)

    def cycles(c: dict[str, float]) -> float:
        return c["Ir"] + 10 * (c["I1mr"] + c["D1mr"] + c["D1mw"]) + 100 * (c["ILmr"] + c["DLmr"] + c["DLmw"])

    on, off = per_event["on"], per_event["off"]
    print(f"counted_events={hi - lo} (events {lo} to {hi} of the step's runs)")
    print(f"detector_step_instructions_per_event_with_classifier={on['Ir']:.0f}")
    print(f"detector_step_instructions_per_event_without_text_classifier={off['Ir']:.0f}")
    print(f"classifier_step_instruction_share={on['Ir'] / off['Ir'] - 1:.3f}")
    print(f"classifier_step_cycle_estimate_share={cycles(on) / cycles(off) - 1:.3f}", flush=True)


def _counts(path: Path) -> dict[str, int]:
    for line in path.read_text().splitlines():
        if line.startswith("summary:"):
            return dict(zip(COUNTED, map(int, line.split()[1:]), strict=True))
    raise SystemExit(f"{path}: no summary line")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--level",
        choices=["both", "worker", "step", "instructions"],
        default="both",
        help="both: step and worker (default); instructions: the step counted under cachegrind (about 3 min)",
    )
    ap.add_argument(
        "--count-events",
        default="1000,4000",
        help="instructions level: the two prefixes of events counted (default %(default)s)",
    )
    ap.add_argument("--counted-child", nargs=3, metavar=("ON_OFF", "EVENTS", "TOTAL"), help=argparse.SUPPRESS)
    ap.add_argument("--events", type=int, default=50_000, help="events of the step-level runs")
    ap.add_argument("--rounds", type=int, default=5, help="step-level rounds (each runs both detectors)")
    ap.add_argument("--batch", type=int, default=500, help="step-level batch size")
    # 40,000 events and 3 pairs gave pairs from -0.04 to 0.28 on one machine, more spread than the figure itself:
    # runs of a dozen seconds and one pair more make the median steadier, at about three minutes in all
    ap.add_argument(
        "--worker-events",
        type=int,
        default=100_000,
        help="events each detector worker consumes (default %(default)s)",
    )
    ap.add_argument(
        "--pairs",
        type=int,
        default=4,
        help="worker-level pairs, each running both detectors (default %(default)s)",
    )
    args = ap.parse_args()
    if args.counted_child:
        counted_child(
            args.counted_child[0], int(args.counted_child[1]), int(args.counted_child[2]), args.batch
        )
        return 0
    if args.level == "instructions":
        try:
            lo, hi = (int(x) for x in args.count_events.split(","))
        except ValueError:
            ap.error("--count-events takes two numbers of events, as 1000,4000")
        instruction_share(lo, hi, args.batch)
        return 0
    if args.level in ("both", "step"):
        step_share(args.events, args.rounds, args.batch)
    if args.level in ("both", "worker"):
        worker_share(args.worker_events, args.pairs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
