"""Strict JSON for webhook bodies: one parse with guards, so that hostile input is refused, not trusted.

Refused (``MalformedBody``): bytes that are not UTF-8, text that is not JSON, ``NaN``/``Infinity``, duplicate
keys in an object, numbers longer than ``max_number_chars``, nesting deeper than ``max_depth``, lone UTF-16
surrogates (they could not be written back out as UTF-8), and a top-level scalar. A leading UTF-8 byte order
mark is stripped (RFC 8259 lets a parser ignore it); the signature is checked on the raw bytes before this.

Most bodies are parsed once by orjson, which refuses invalid UTF-8, ``NaN``, lone surrogates and nesting beyond
1,024 levels itself, and is checked for what orjson would let through: duplicate keys (orjson keeps the last) and
integers beyond 64 bits (it reads them as floats). Whatever the fast path cannot vouch for, refusals included,
goes through the standard library's decoder with hooks, which says exactly what is wrong.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

import orjson

from services.ingest.domain.outcome import MalformedBody

BOM = b"\xef\xbb\xbf"
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_LONG_DIGITS = 19
"""A run of this many digits may be an integer beyond 64 bits, or part of a number longer than the limit: such a
body takes the strict decoder. A number of ``n`` characters holds at most four that are not digits, so one of its
at most three runs of digits is at least ``(n - 3) // 3`` long."""


class _Refused(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused("duplicate_key", f"the key {key[:64]!r} appears twice in one object")
            seen.add(key)
    return obj


def _no_constants(name: str) -> Any:
    raise _Refused("non_finite_number", f"{name} is not JSON")


@lru_cache(maxsize=8)
def _decoder(max_number_chars: int) -> json.JSONDecoder:
    """A strict decoder, made once per number limit (``json.loads`` with hooks would make one per call)."""

    def bounded_int(text: str) -> int:
        if len(text) > max_number_chars:
            raise _Refused("number_too_long", f"a number of {len(text)} digits")
        return int(text)

    def bounded_float(text: str) -> float:
        if len(text) > max_number_chars:
            raise _Refused("number_too_long", f"a number of {len(text)} characters")
        return float(text)

    return json.JSONDecoder(
        object_pairs_hook=_unique_keys,
        parse_constant=_no_constants,
        parse_int=bounded_int,
        parse_float=bounded_float,
    )


_DIGITS_ONLY = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
"""Every digit as ``0``, everything else as a space: a run of digits is then a plain substring (``re`` would
try a repeat like ``[0-9]{19}`` at every position of the body, several times slower)."""


@lru_cache(maxsize=8)
def _digit_run(max_number_chars: int) -> bytes:
    return b"0" * max(1, min(_LONG_DIGITS, (max_number_chars - 3) // 3))


def parse_json(body: bytes, *, max_depth: int, max_number_chars: int = 100) -> dict[str, Any] | list[Any]:
    """Parse a webhook body into an object or an array, or raise ``MalformedBody``."""
    if body.startswith(BOM):
        body = body[len(BOM) :]
    value = _fast(body, max_depth, max_number_chars)
    if value is not None:
        return value
    return _strict(body, max_depth, max_number_chars)


def _fast(body: bytes, max_depth: int, max_number_chars: int) -> dict[str, Any] | list[Any] | None:
    """The body parsed by orjson when that is what the strict decoder would give, else None."""
    if _digit_run(max_number_chars) in body.translate(_DIGITS_ONLY) or b"\\u003" in body:
        return None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict | list):
        return None
    # Every key of the text is followed by a colon outside strings; every other colon is a string's own, written
    # as it is (no ``\\u003a``, checked above). Written back compactly, the value has a colon per key it kept
    # and the same string colons, less those of anything a duplicate key dropped: the counts agree exactly when
    # no key was dropped.
    if body.count(b":") != orjson.dumps(value).count(b":"):
        return None
    if body.count(b"{") + body.count(b"[") > max_depth and _openings_bound(value) > max_depth:
        _check_shape(value, max_depth, check_strings=False)
    return value


def _openings_bound(value: dict[str, Any] | list[Any]) -> int:
    """A bound on the nesting depth: one, plus the most brackets any one member of the top level holds (so a
    batch of many shallow events needs no walk, where the body's own count of brackets would ask for one)."""
    members = value.values() if isinstance(value, dict) else value
    deepest = 0
    for member in members:
        if isinstance(member, dict | list):
            text = orjson.dumps(member)
            deepest = max(deepest, text.count(b"{") + text.count(b"["))
    return 1 + deepest


def _strict(body: bytes, max_depth: int, max_number_chars: int) -> dict[str, Any] | list[Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody("bad_utf8", f"the body is not UTF-8 (byte {exc.start})") from None
    try:
        value = _decoder(max_number_chars).decode(text)
    except _Refused as exc:
        raise MalformedBody(exc.reason, str(exc)) from None
    except json.JSONDecodeError as exc:
        raise MalformedBody("not_json", f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise MalformedBody("too_deep", f"nesting deeper than {max_depth}") from None
    except ValueError as exc:  # e.g. the interpreter's own integer digit limit
        raise MalformedBody("not_json", str(exc)[:200]) from None
    if not isinstance(value, dict | list):
        raise MalformedBody("not_an_object", "the body must be a JSON object or an array of objects")
    check_strings = _SURROGATE_ESCAPE.search(text) is not None
    # Nesting can be no deeper than the number of opening brackets in the text (inside strings or not): when
    # that is within the limit and no string needs checking, the walk over the whole value is not needed.
    if check_strings or text.count("{") + text.count("[") > max_depth:
        _check_shape(value, max_depth, check_strings=check_strings)
    return value


def _check_shape(root: dict[str, Any] | list[Any], max_depth: int, *, check_strings: bool) -> None:
    """Depth (iteratively, no recursion) and, when the text had surrogate escapes, string encodability."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise MalformedBody("too_deep", f"nesting deeper than {max_depth}")
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            if check_strings and isinstance(key, str):
                _encodable(key)
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
            elif check_strings and isinstance(child, str):
                _encodable(child)


def _encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedBody("bad_unicode", "a string holds a lone UTF-16 surrogate") from None
