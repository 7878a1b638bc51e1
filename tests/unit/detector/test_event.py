import codecs
import json

import pytest

from services.detector.domain.event import BadEvent, loads, parse_time

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
