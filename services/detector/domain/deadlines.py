"""Quiet deadlines per partition: a heap whose cost per check grows with what expires, not with what is tracked."""

from __future__ import annotations

import heapq


class DeadlineHeap:
    """(deadline, key) pairs. Entries may be stale: the caller re-checks the deal's state when one comes due
    and pushes it again if its deadline moved. ``pending`` counts distinct keys, for metrics."""

    __slots__ = ("_due", "_heap")

    def __init__(self) -> None:
        self._heap: list[tuple[float, bytes]] = []
        self._due: dict[bytes, float] = {}

    def __len__(self) -> int:
        return len(self._due)

    def push(self, key: bytes, deadline: float) -> None:
        """Schedule ``key`` at ``deadline`` unless it is already due at that time or earlier."""
        current = self._due.get(key)
        if current is not None and current <= deadline:
            return
        self._due[key] = deadline
        heapq.heappush(self._heap, (deadline, key))

    def discard(self, key: bytes) -> None:
        self._due.pop(key, None)

    def pop_due(self, now: float, limit: int = 100_000) -> list[bytes]:
        """Keys whose deadline is at or before ``now`` (each once), earliest first."""
        out: list[bytes] = []
        heap = self._heap
        while heap and heap[0][0] <= now and len(out) < limit:
            deadline, key = heapq.heappop(heap)
            if self._due.get(key) == deadline:
                del self._due[key]
                out.append(key)
        return out

    def next_due(self) -> float | None:
        while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None
