"""Strict parsing of webhook bodies: hostile input is refused with a reason, never with a crash."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.domain import jsonbody
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


# The fast path (orjson, then checks) must give exactly what the strict decoder gives, or leave the body to it.

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.sampled_from('ab:":{}[]\\ 0123456789期予算\U0001f600\u3000\n'), max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(alphabet=st.sampled_from('ab:c"{'), max_size=3), inner, max_size=4)
    ),
    max_leaves=25,
)


def _strict_outcome(body: bytes, max_depth: int) -> object:
    try:
        return ("value", jsonbody._strict(body, max_depth, 100))
    except MalformedBody as exc:
        return ("refused", exc.reason)


def _mutations(text: str, data: st.DataObject) -> str:
    """Hostile edits the fast path has to notice: a key repeated, long and huge numbers, escapes, depth."""
    kind = data.draw(
        st.sampled_from(["none", "dup", "bignum", "longfloat", "escape", "surrogate", "nan", "deep"])
    )
    if kind == "dup" and text.startswith("{") and len(text) > 2:
        return '{"k": 1, "k": 2, ' + text[1:]
    if kind == "bignum":
        return "[" + "9" * data.draw(st.integers(17, 120)) + ", " + text + "]"
    if kind == "longfloat":
        return "[1." + "0" * data.draw(st.integers(10, 120)) + "1, " + text + "]"
    if kind == "escape":
        # a repeated key whose lost colon an escaped one in a kept string makes up for
        return '[{"k": 1, "k": 2, "x": "\\u003a"}, ' + text + "]"
    if kind == "surrogate":
        return '["\\ud800", ' + text + "]"
    if kind == "nan":
        return "[NaN, " + text + "]"
    if kind == "deep":
        n = data.draw(st.integers(20, 40))
        return "[" * n + text + "]" * n
    return text


@settings(max_examples=400, deadline=None)
@given(value=_json_values, compact=st.booleans(), ascii_only=st.booleans(), data=st.data())
def test_the_fast_path_agrees_with_the_strict_decoder(
    value: object, compact: bool, ascii_only: bool, data: st.DataObject
) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, separators=(",", ":") if compact else None)
    body = _mutations(text, data).encode("utf-8", "surrogatepass")
    try:
        fast = jsonbody._fast(body, 32, 100)
    except MalformedBody as exc:  # the fast path's own depth check
        assert _strict_outcome(body, 32) == ("refused", exc.reason)
        return
    if fast is not None:
        assert _strict_outcome(body, 32) == ("value", fast)
    outcome: object
    try:
        outcome = ("value", parse_json(body, max_depth=32))
    except MalformedBody as exc:
        outcome = ("refused", exc.reason)
    assert outcome == _strict_outcome(body, 32)


def test_a_repeated_key_is_refused_even_when_colons_inside_strings_could_hide_it() -> None:
    # the dropped value held a colon, the kept one none: the colon counts still differ
    assert reason_for(b'{"a": "x:y", "a": 1}') == "duplicate_key"
    assert reason_for(b'{"a": 1, "b": {"c": 2, "c": "::"}}') == "duplicate_key"


def test_integers_beyond_64_bits_stay_integers() -> None:
    assert parse(b'{"n": 18446744073709551616}') == {"n": 18446744073709551616}
