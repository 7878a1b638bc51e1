"""Process settings every long-running dealwatch process shares."""

from __future__ import annotations

import gc


def calm_garbage_collector() -> None:
    """Fewer, cheaper collections for a long-running server or stream worker.

    What was built at start-up (modules, the app, settings, schemas) moves to a generation that is never
    scanned again, and the youngest generation is collected every 10,000 allocations instead of 700. Every
    request or event allocates many short-lived tracked objects (pydantic validation, aiokafka records, decoded
    events and deal states); with dozens of requests in flight, each young collection walked about ten thousand
    live objects, some 100-250 µs per webhook. Memory is still reclaimed: reference counting frees almost
    everything, and cycles are still collected, only in larger steps.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)
