"""The replay's compiled engine (``_replay.pyx``), built by ``make setup``; ``replay.replay_share`` is its user."""

from collections.abc import Callable, Iterable
from typing import Any

from services.detector.domain.rules import Detector

class Engine:
    opened: dict[tuple[str, str], int]
    revised: int
    resumed: int
    def __init__(self, detector: Detector) -> None: ...
    def replay(
        self,
        lines: Iterable[bytes | str],
        report: Any,
        *,
        until: float | None,
        source: str,
        progress: Callable[[int], None] | None,
        share_index: int,
        share_count: int,
        reject: Callable[[Any, int, Exception], None],
        keep: bool = False,
        window: int | None = None,
    ) -> Any: ...
