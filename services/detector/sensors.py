"""A Faust sensor that counts the detector's records in and out per topic in the metrics every service shares
(``dealwatch_events_in`` / ``dealwatch_events_out`` with ``service="detector"``)."""

from __future__ import annotations

from typing import Any

from faust.sensors import Sensor

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
