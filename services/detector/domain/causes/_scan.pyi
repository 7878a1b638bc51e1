"""The compiled phrase scanner (``_scan.c``), built by ``make setup``; ``text.LiteralSet`` is its only user."""

from typing import Any

class Trie:
    def __init__(
        self,
        nodes: list[int],
        edge_chars: list[int],
        edge_children: list[int],
        values: list[tuple[Any, ...]],
        depth: int,
        plain: bool,
    ) -> None: ...
    def find(self, text: str, lo: int = 0, hi: int = -1) -> list[tuple[int, int, Any]]: ...
    def search(self, text: str, lo: int = 0, hi: int = -1) -> bool: ...
    def found_in(self, text: str) -> list[Any]: ...
    def starts(self, text: str) -> tuple[Any, ...]: ...
    def spans(self, text: str) -> tuple[list[int], list[int]]: ...

class Extractor:
    def __init__(
        self,
        terms: Trie,
        term_table: list[tuple[int, int, int, int, int, float, bool, bool, bool]],
        languages: list[tuple[str, int, int, int, bool, Trie, Trie, Trie, Trie, Trie, Trie, Trie]],
        causes: list[str],
        sides: tuple[str, ...],
        settings: tuple[float, float, int, float, float, int],
    ) -> None: ...
    def extract(
        self,
        text: str,
        event_id: Any,
        at: Any,
        direction: str,
        kind: str,
        prepare: Any,
        signal: type,
        kind_factor: dict[str, float],
        direction_factor: dict[str, float],
    ) -> list[Any]: ...
    def hits(
        self, folded: str, factor: float
    ) -> list[tuple[float, str, list[tuple[float, int, int, str, str | None]]]]: ...

def prepare_stable(text: str) -> tuple[str, str] | None: ...
def rank(signals: list[Any], limit: int, half_life: float, per_cause: int) -> Any: ...
