"""A Faust sensor that counts the detector's records in and out per topic in the metrics every service shares
(``dealwatch_events_in`` / ``dealwatch_events_out`` with ``service="detector"``)."""

from __future__ import annotations

from time import monotonic
from typing import Any

from faust.sensors import Monitor, Sensor

from services.common.metrics import EVENTS_IN, EVENTS_OUT

SERVICE = "detector"


class TopicTrafficSensor(Sensor):  # type: ignore[misc]
    """Called for every record: the labelled counters are looked up once per topic, not per record."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in: dict[str, Any] = {}
        self._out: dict[str, Any] = {}

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        child = self._in.get(tp.topic)
        if child is None:
            child = self._in[tp.topic] = EVENTS_IN.labels(SERVICE, tp.topic)
        child.inc()

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        child = self._out.get(metadata.topic)
        if child is None:
            child = self._out[metadata.topic] = EVENTS_OUT.labels(SERVICE, metadata.topic)
        child.inc()


class StreamClockMonitor(Monitor):  # type: ignore[misc]
    """Faust's monitor without its per-record bookkeeping, for the detector's hot path.

    Faust's ``Monitor`` counts every record and event by topic, stream and task and times each one (a dict and
    three clock reads an event), for its own web statistics, which dealwatch does not serve: its metrics come
    from ``TopicTrafficSensor`` and the processor. What Faust itself reads from the monitor stays: when a
    partition's stream last took an event (``stream_inbound_time``, for its warnings about stalled streams),
    committed and end offsets, commit and send latencies.
    """

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        self.stream_inbound_time[tp] = monotonic()
        return None

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None) -> None:
        return None

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_table_get(self, table: Any, key: Any) -> None:
        return None

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        return None

    def on_table_del(self, table: Any, key: Any) -> None:
        return None
