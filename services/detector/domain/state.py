"""A deal's tracked state: compact, plain values only, stored in the detector's table as a short JSON array,
compressed (zstd) with a preset dictionary of the words every state repeats (a million deals are held in memory).

Times are epoch seconds (event time unless the name says wall). Lists are bounded, so a deal's state stays a few
hundred bytes whatever its history.
"""

from __future__ import annotations

import base64
import json
import operator
import threading
import uuid
import zlib
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any

import orjson
import zstandard

STATE_VERSION = 1
MAX_SEEN = 16
MAX_FIRED = 16
MAX_OUTBOUND = 8
MAX_CLOSES = 8
MAX_CONTACTS = 12
TEXT_LIMIT = 120


def short_hash(text: str) -> int:
    """A 32-bit fingerprint, enough to recognise a redelivered event among a deal's recent ones."""
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


@dataclass(slots=True)
class Episode:
    kind: str
    id: str
    at: float
    cause: str
    side: str | None
    revision: int = 0

    def to_list(self) -> list[Any]:
        return [self.kind, _pack_uuid(self.id), self.at, self.cause, self.side, self.revision]

    @classmethod
    def from_list(cls, raw: list[Any]) -> Episode:
        return cls(raw[0], _unpack_uuid(raw[1]), raw[2], raw[3], raw[4], raw[5])


@lru_cache(maxsize=4096)  # an open episode is written again with every event of its deal
def _pack_uuid(value: str) -> str:
    try:
        return base64.urlsafe_b64encode(uuid.UUID(value).bytes).decode().rstrip("=")
    except ValueError:
        return value


def _unpack_uuid(value: str) -> str:
    if len(value) != 22:
        return value
    return str(uuid.UUID(bytes=base64.urlsafe_b64decode(value + "==")))


@dataclass(slots=True)
class DealState:
    partition: int = 0
    owner: str | None = None
    owner_at: float = 0.0
    prev_owner: str | None = None
    owner_changed_at: float | None = None
    stage: str | None = None
    stage_at: float = 0.0
    stage_back_at: float | None = None
    status: str | None = None
    status_at: float = 0.0
    reopens: int = 0
    amount: float | None = None
    amount_at: float = 0.0
    amount_cut: float | None = None
    closes: list[list[float]] = field(default_factory=list)
    """[event time, close date as a day ordinal], sorted by time."""
    tier: str | None = None
    account: str | None = None
    name: str | None = None
    currency: str | None = None
    info_at: float = 0.0
    lost_reason: str | None = None
    created: float | None = None
    last_act: float | None = None
    last_in: float | None = None
    outs: list[float] = field(default_factory=list)
    acts: int = 0
    sched: float | None = None
    contacts: list[list[Any]] = field(default_factory=list)
    """[contact id, decision maker 0/1, event time, active 0/1]."""
    left: list[Any] | None = None
    """[contact id, change, event time] of the last contact who left."""
    episodes: list[Episode] = field(default_factory=list)
    fired: list[int] = field(default_factory=list)
    seen: list[int] = field(default_factory=list)
    recv: float = 0.0
    """Wall-clock time the deal last received a new event (for the settle grace)."""
    signals: list[list[Any]] = field(default_factory=list)
    """Kept cause signals: [cause, weight, at, event_id, excerpt, side, signal]."""
    stalls: int = 0
    snooze: float | None = None

    # ---------------------------------------------------------------- encoding

    def encode(self) -> bytes:
        values: list[Any] = [STATE_VERSION, *_read_all(self)]
        values[_EPISODES] = [e.to_list() for e in values[_EPISODES]]
        for i in _NUMBERS:
            value = values[i]
            if type(value) is float and value.is_integer():
                values[i] = int(value)
        while len(values) > 1 and values[-1] in _EMPTY:
            values.pop()
        try:
            plain = orjson.dumps(values)
        except TypeError:  # an integer beyond 64 bits, say: as the standard library writes it
            plain = _dumps(values).encode("utf-8", "replace")
        return _ZSTD + _zstd().compress(plain)[len(_ZSTD_MAGIC) :]

    @staticmethod
    def plain(raw: bytes) -> bytes:
        """The JSON text of a stored state (decompressed if it was stored compressed)."""
        marker = raw[:1]
        if marker == _ZSTD:
            try:
                return _unzstd().decompress(_ZSTD_MAGIC + raw[1:])
            except zstandard.ZstdError as exc:
                raise ValueError(f"deal state does not decompress: {exc}") from exc
        if marker == _DEFLATED:
            try:
                return zlib.decompressobj(-15, _ZDICT).decompress(raw[1:])
            except zlib.error as exc:
                raise ValueError(f"deal state does not inflate: {exc}") from exc
        return raw

    @classmethod
    def decode(cls, raw: bytes) -> DealState:
        plain = cls.plain(raw)
        try:
            values = orjson.loads(plain)
        except orjson.JSONDecodeError:
            values = json.loads(plain)
        if not isinstance(values, list) or not values or values[0] != STATE_VERSION:
            raise ValueError("unknown deal state format")
        if len(values) > len(_FIELDS) + 1:
            raise ValueError("deal state with more fields than this version knows")
        state = cls(*values[1:])
        if state.episodes:
            state.episodes = [Episode.from_list(v) for v in state.episodes]  # type: ignore[arg-type]
        return state

    # ---------------------------------------------------------------- queries

    def open_episode(self, kind: str) -> Episode | None:
        for ep in self.episodes:
            if ep.kind == kind:
                return ep
        return None

    def active_contacts(self) -> list[list[Any]]:
        return [c for c in self.contacts if c[3]]

    def outbound_since_inbound(self, until: float | None = None) -> int:
        floor = self.last_in if self.last_in is not None else float("-inf")
        return sum(1 for t in self.outs if t > floor and (until is None or t <= until))

    def close_pushes(self) -> tuple[int, int]:
        """How often the close date moved later, and by how many days in total, in event-time order."""
        pushes = slip = 0
        for (_, before), (_, after) in zip(self.closes, self.closes[1:], strict=False):
            if after > before:
                pushes += 1
                slip += int(after - before)
        return pushes, slip


_FIELDS = tuple(f.name for f in fields(DealState))
_read_all = operator.attrgetter(*_FIELDS)
_EPISODES = 1 + _FIELDS.index("episodes")
_NUMBERS = tuple(1 + i for i, f in enumerate(fields(DealState)) if f.type in ("float", "float | None"))
"""Positions (in the encoded array) of the fields holding a time or an amount: whole floats are written as ints."""
_EMPTY: tuple[Any, ...] = (None, [], 0, 0.0)
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
"""What orjson writes (the same text), for what orjson cannot write."""
_ZSTD = b"Z"
"""First byte of a state compressed with zstd (the dictionary below as raw content, level 3, the frame's 4-byte
magic number left out: every such frame has it). 7.6 µs a state against 17.5 for deflate at level 1 (whose
Huffman trees are built for every state however short), for 362 bytes against 348 (on 2026-12-01, with the
dictionary digested once: 8.4 µs against 11.8 when it was loaded for every state). A plain JSON state (written
before compression) starts with ``[``."""
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_ZSTD_LEVEL = 3
_DEFLATED = b"z"
"""First byte of a state deflated with the dictionary below (written until 2026-11-30); still read."""
_ZDICT = ",".join(
    [
        *(f'"{w}"' for w in ("went_quiet", "reassigned", "contact_left", "stalled", "closed_lost")),
        *(f'"{w}"' for w in ("competitor", "budget", "staff_change", "policy_change", "needs_change")),
        *(f'"{w}"' for w in ("external", "internal_resources", "no_response", "follow_up_lapsed", "unknown")),
        *(f'"{w}"' for w in ("lead", "qualification", "discovery", "demo", "proposal", "negotiation")),
        *(f'"{w}"' for w in ("contract", "open", "won", "lost", "key", "standard", "small", "ours")),
        *(f'"{w}"' for w in ("customer", "left_company", "removed", "role_changed", "JPY", "USD", "EUR")),
        '"field:owner_id"',
        '"field:lost_reason"',
        '"field:close_date"',
        ",null,null,",
        ",0,0,",
        ",[],",
        "[[",
        "]]",
        "[1,",
    ]
).encode()
"""Preset dictionary: the words and shapes that recur in every deal's state, so that even a short state
compresses well. Changing it makes stored states unreadable: only ever add a new dictionary beside it."""
_codecs = threading.local()
"""A zstd compressor and decompressor per thread (their objects may not be shared by threads at once)."""


def _zstd() -> zstandard.ZstdCompressor:
    try:
        packer: zstandard.ZstdCompressor = _codecs.packer
    except AttributeError:
        # A level, not explicit parameters: the compressor then digests the dictionary once (a CDict) and
        # references it for every state; with parameters it loads the dictionary again for each one, which cost
        # 11.8 µs a state against 8.4 (frames that decode alike, a byte smaller on average).
        packer = _codecs.packer = zstandard.ZstdCompressor(
            level=_ZSTD_LEVEL,
            dict_data=_zstd_dict(),
            write_checksum=False,
            write_content_size=True,
            write_dict_id=False,
        )
    return packer


def _unzstd() -> zstandard.ZstdDecompressor:
    try:
        unpacker: zstandard.ZstdDecompressor = _codecs.unpacker
    except AttributeError:
        unpacker = _codecs.unpacker = zstandard.ZstdDecompressor(dict_data=_zstd_dict())
    return unpacker


@lru_cache(maxsize=1)
def _zstd_dict() -> zstandard.ZstdCompressionDict:
    return zstandard.ZstdCompressionDict(_ZDICT, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
