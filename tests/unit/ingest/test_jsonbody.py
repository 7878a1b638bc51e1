"""Strict parsing of webhook bodies: hostile input is refused with a reason, never with a crash."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.domain.jsonbody import parse_json
from services.ingest.domain.outcome import MalformedBody


def parse(body: bytes, max_depth: int = 32) -> object:
    return parse_json(body, max_depth=max_depth)


def reason_for(body: bytes, max_depth: int = 32) -> str:
    with pytest.raises(MalformedBody) as caught:
        parse(body, max_depth)
    return caught.value.reason


def test_an_object_with_japanese_text_is_parsed() -> None:
    assert parse('{"text": "先方、競合A社の値引き提案を検討中"}'.encode()) == {
        "text": "先方、競合A社の値引き提案を検討中"
    }


def test_an_array_of_objects_is_parsed() -> None:
    assert parse(b'[{"a": 1}, {"b": 2.5}]') == [{"a": 1}, {"b": 2.5}]


def test_a_leading_byte_order_mark_is_ignored() -> None:
    assert parse(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}


def test_a_surrogate_pair_escape_is_one_character() -> None:
    assert parse(b'{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"a": "\xff"}', "bad_utf8"),
        (b'{"a": "\xed\xa0\x80"}', "bad_utf8"),
        ('{"a": "é"}'.encode("latin-1"), "bad_utf8"),
        (b"", "not_json"),
        (b"{", "not_json"),
        (b"{'a': 1}", "not_json"),
        (b'{"a": 1} {"b": 2}', "not_json"),
        (b'{"a": NaN}', "non_finite_number"),
        (b'{"a": Infinity}', "non_finite_number"),
        (b'{"a": -Infinity}', "non_finite_number"),
        (b'{"a": 1, "a": 2}', "duplicate_key"),
        (b'[{"x": {"a": 1, "b": 2, "a": 3}}]', "duplicate_key"),
        (b'{"a": ' + b"9" * 101 + b"}", "number_too_long"),
        (b'{"a": 1.' + b"5" * 200 + b"}", "number_too_long"),
        (b'{"a": ' + b"1" * 100_000 + b"}", "number_too_long"),
        (b'{"a": "\\ud800"}', "bad_unicode"),
        (b'{"\\udfff": 1}', "bad_unicode"),
        (b"42", "not_an_object"),
        (b'"text"', "not_an_object"),
        (b"null", "not_an_object"),
        (b"true", "not_an_object"),
    ],
)
def test_malformed_bodies_are_refused_with_their_reason(body: bytes, reason: str) -> None:
    assert reason_for(body) == reason


def test_nesting_one_level_deeper_than_allowed_is_refused() -> None:
    assert parse(b"[" * 4 + b"]" * 4, max_depth=4) == [[[[]]]]
    assert reason_for(b"[" * 5 + b"]" * 5, max_depth=4) == "too_deep"


@pytest.mark.parametrize("depth", [10_000, 100_000])
def test_nesting_tens_of_thousands_deep_is_refused_without_crashing(depth: int) -> None:
    assert reason_for(b'{"a":' * depth + b"1" + b"}" * depth) == "too_deep"
    assert reason_for(b"[" * depth + b"]" * depth) == "too_deep"


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_either_parse_or_are_refused(body: bytes) -> None:
    try:
        value = parse(body)
    except MalformedBody as exc:
        assert exc.reason
    else:
        assert isinstance(value, dict | list)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_any_json_object_written_by_a_serializer_reads_back_the_same(obj: dict[str, object]) -> None:
    body = json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")
    try:
        value = parse(body)
    except MalformedBody as exc:
        assert exc.reason in ("bad_utf8", "too_deep", "number_too_long")
    else:
        assert value == obj
