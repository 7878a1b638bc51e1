"""The detector's Faust monitor: the clock Faust reads to warn about stalled streams, no per-record statistics."""

from __future__ import annotations

from faust.types import TP

from schemas.topics import Topics
from services.common.settings import Settings
from services.detector.app import create_app
from services.detector.sensors import StreamClockMonitor


def test_the_detector_app_uses_the_stream_clock_monitor() -> None:
    app = create_app(Settings(), Topics(prefix="t."), bootstrap="127.0.0.1:1")
    assert isinstance(app.monitor, StreamClockMonitor)


def test_a_stream_event_sets_its_partition_clock_and_counts_nothing() -> None:
    monitor = StreamClockMonitor()
    tp = TP("t.crm.deal-changes.v1", 2)
    assert tp not in monitor.stream_inbound_time
    assert monitor.on_stream_event_in(tp, 7, stream=object(), event=object()) is None
    first = monitor.stream_inbound_time[tp]
    monitor.on_stream_event_in(tp, 8, stream=object(), event=object())
    assert monitor.stream_inbound_time[tp] >= first
    monitor.on_message_in(tp, 8, message=object())
    monitor.on_stream_event_out(tp, 8, stream=object(), event=object())
    monitor.on_message_out(tp, 8, message=object())
    assert (monitor.events_total, monitor.messages_received_total, monitor.messages_active) == (0, 0, 0)
