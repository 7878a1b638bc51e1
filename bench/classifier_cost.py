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

    .venv/bin/python bench/classifier_cost.py [--level both|worker|step] [--events N] [--rounds R] [--pairs P]
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--level", choices=["both", "worker", "step"], default="both")
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
    if args.level in ("both", "step"):
        step_share(args.events, args.rounds, args.batch)
    if args.level in ("both", "worker"):
        worker_share(args.worker_events, args.pairs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
