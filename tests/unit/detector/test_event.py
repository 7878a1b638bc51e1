import codecs
import json

import pytest

from services.detector.domain.event import BadEvent, check, loads, number, parse_time

EVENT = {"event_id": "e-1", "deal": {"id": "D-1", "name": "北風 40 席"}}


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps(EVENT, ensure_ascii=False).encode(),
        json.dumps(EVENT, ensure_ascii=False),
        codecs.BOM_UTF8 + json.dumps(EVENT, ensure_ascii=False).encode(),
        json.dumps(EVENT, ensure_ascii=False).encode("utf-16"),
        json.dumps(EVENT, ensure_ascii=False).encode("utf-32-le"),
    ],
)
def test_an_event_reads_as_json_loads_reads_it_whatever_its_encoding(raw: bytes | str):
    assert loads(raw) == json.loads(raw) == EVENT


@pytest.mark.parametrize("raw", [b"", b"{", b'{"a": 1} x', b"\xff\xfe{", "\ufeff{}", b"\xc3("])
def test_what_is_not_json_fails_as_json_loads_fails(raw: bytes | str):
    with pytest.raises(ValueError) as expected:
        json.loads(raw)
    with pytest.raises(ValueError) as got:
        loads(raw)
    assert type(got.value) is type(expected.value)
    assert str(got.value) == str(expected.value)


def test_a_time_is_read_to_the_second():
    assert parse_time("2026-11-02T09:15:00.900+09:00") == parse_time("2026-11-02T00:15:00Z") == 1793578500


@pytest.mark.parametrize("value", ["2026-11-02T09:15:00", "yesterday", 1793610900])
def test_a_bad_time_is_refused_every_time_it_is_seen(value: object):
    for _ in range(2):  # the second time too, not answered from the times kept
        with pytest.raises(BadEvent):
            parse_time(value)


def test_a_lone_surrogate_is_refused_and_a_pair_is_one_character():
    with pytest.raises(BadEvent, match="surrogate"):
        loads(b'{"deal": {"name": "a\\ud800b"}}')
    assert loads(b'{"name": "\\ud83d\\ude00"}') == {"name": "\U0001f600"}


def test_what_only_the_standard_library_reads_is_read_as_it_reads_it():
    raw = b'{"amount": NaN, "n": 123456789012345678901234567890}'
    got = loads(raw)
    assert got["n"] == 123456789012345678901234567890
    assert got["amount"] != got["amount"]  # NaN


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), True, "12", None])
def test_what_is_not_a_finite_number_is_no_amount(value: object):
    assert number(value) is None


def test_a_number_is_a_float():
    assert number(12) == 12.0 and number(2.5) == 2.5


@pytest.mark.parametrize("name", ["kind", "direction"])
@pytest.mark.parametrize("value", [["call"], {"a": 1}, 5, True])
def test_an_activity_whose_kind_or_direction_is_not_a_string_is_refused(name: str, value: object):
    event = {
        "event_id": "e1",
        "source": "generic",
        "deal_id": "d1",
        "type": "activity.logged",
        "occurred_at": "2026-01-05T10:00:00Z",
        "deal": {"id": "d1"},
        "activity": {"kind": "call", "direction": "outbound", name: value},
    }
    with pytest.raises(BadEvent, match=f"activity.{name} must be a string"):
        check(event)
    event["activity"][name] = None
    assert check(event) is event
