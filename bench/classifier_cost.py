#!/usr/bin/env python3
"""What the cause classifier adds to the detector's cost per event, measured in one run.

The real stream step (``DetectorProcessor.process``, in-process, a dict as the table store, no-op sends) runs over
the same realistic change events twice per round: with the real lexicon, and with a lexicon that finds nothing
(so no text signal is extracted and every classification has only structured facts). Rounds alternate to share
machine noise; the median ratio is printed as ``classifier_cost_share`` (goal: 0.10 or less).

    .venv/bin/python bench/classifier_cost.py [--events N] [--rounds R]
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=500)
    args = ap.parse_args()
    settings = Settings()
    config = build_config(settings)
    real = Detector(config, Lexicon.load(competitors=settings.competitors))
    silent = Detector(config, SilentLexicon())
    records = [Incoming("changes", hash(k) % 3, k, v) for k, v in change_events(args.events, now=time.time())]
    texts = sum(1 for r in records if b'"text":"' in (r.value or b""))
    ratios, with_s, without_s = [], [], []
    run_once(real, records[:2000], args.batch)  # warm-up: imports, regex compilation, caches
    for _ in range(args.rounds):
        a = run_once(real, records, args.batch)
        b = run_once(silent, records, args.batch)
        with_s.append(a)
        without_s.append(b)
        ratios.append(a / b - 1.0)
    print(f"events={len(records)} with_text={texts} rounds={args.rounds}")
    print(f"detector_step_events_per_s_with_classifier={len(records) / statistics.median(with_s):.0f}")
    print(
        f"detector_step_events_per_s_without_text_classifier={len(records) / statistics.median(without_s):.0f}"
    )
    print(f"classifier_cost_share={statistics.median(ratios):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
