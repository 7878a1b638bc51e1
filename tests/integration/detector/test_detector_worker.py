"""The detector as it runs in production: a Faust worker process on the real broker."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas import DealChanged, DealInterrupted
from schemas.topics import Topics
from services.common.broker import ensure_topics, free_port, make_producer
from tests.conftest import eventually
from tests.helpers import child_process, read_topic

pytestmark = pytest.mark.integration


@pytest.fixture
def web_port() -> int:
    return free_port()


@pytest.fixture
def detector_worker(
    broker_bootstrap: str, topics: Topics, tmp_path: Path, web_port: int
) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "DEALWATCH_KAFKA_BOOTSTRAP": broker_bootstrap,
        "DEALWATCH_TOPIC_PREFIX": topics.prefix,
        "DEALWATCH_QUIET_SCAN_INTERVAL": "1",
        "DEALWATCH_QUIET__GRACE_SECONDS": "1",
        "DEALWATCH_LOG_LEVEL": "WARNING",
        "DEALWATCH_WEB_PORT": str(web_port),
    }
    with child_process(["-m", "services.detector"], env, tmp_path, "detector.log") as proc:
        yield proc


def event(deal_id: str, days_ago: float, type: str, **body: object) -> DealChanged:
    at = datetime.now(UTC) - timedelta(days=days_ago)
    return DealChanged.model_validate(
        {
            "event_id": f"e-{uuid.uuid4().hex}",
            "source": "generic",
            "deal_id": deal_id,
            "occurred_at": at,
            "received_at": datetime.now(UTC),
            "type": type,
            "deal": {"id": deal_id, **body.pop("deal", {})},
            **body,
        }
    )


async def interruptions(bootstrap: str, topics: Topics) -> list[dict[str, object]]:
    return [json.loads(r.value) for r in await read_topic(bootstrap, topics.interruptions)]


async def test_detector_finds_a_reassignment_and_a_quiet_deal_once_despite_redelivery(
    broker_bootstrap: str, topics: Topics, detector_worker: subprocess.Popen[bytes]
) -> None:
    await ensure_topics(broker_bootstrap, topics.all(), partitions=3)
    history = [
        event("A", 30, "deal.created", deal={"owner_id": "u-1", "stage": "proposal", "status": "open"}),
        event("A", 3, "activity.logged", activity={"kind": "call", "direction": "outbound"}),
        event("A", 0, "deal.updated", deal={"owner_id": "u-2"}, previous={"owner_id": "u-1"}),
        event("B", 90, "deal.created", deal={"owner_id": "u-3", "stage": "proposal", "status": "open"}),
        event(
            "B",
            60,
            "activity.logged",
            activity={"kind": "email", "direction": "outbound", "text": "見積送付"},
        ),
    ]
    producer = make_producer(broker_bootstrap)
    await producer.start()
    try:
        for ev in history + history:  # every event delivered twice
            await producer.send_and_wait(
                topics.deal_changes, ev.model_dump_json().encode(), key=ev.key.encode()
            )
        await producer.send_and_wait(topics.deal_changes, b"{not json", key=b"generic:broken")
    finally:
        await producer.stop()

    async def both_found() -> list[dict[str, object]] | None:
        assert detector_worker.poll() is None, "the detector worker exited"
        found = await interruptions(broker_bootstrap, topics)
        kinds = {(m["deal_id"], m["kind"]) for m in found if m.get("event") == "DealInterrupted"}
        return found if {("A", "reassigned"), ("B", "went_quiet")} <= kinds else None

    found = await eventually(both_found, timeout=90, interval=0.5, what="both interruptions")
    assert detector_worker.poll() is None, "the detector must survive a poison message"
    opened = [DealInterrupted.model_validate(m) for m in found if m.get("event") == "DealInterrupted"]
    per_deal = sorted((m.deal_id, m.kind) for m in opened if m.revision == 0)
    assert per_deal == [("A", "reassigned"), ("B", "went_quiet")]
    assert all(m.evidence for m in opened)
    dead = await read_topic(broker_bootstrap, topics.dead_letters)
    assert [dict(r.headers)["dlq.stage"] for r in dead] == [b"detector"]
    assert dict(dead[0].headers)["dlq.reason"].startswith(b"invalid change event")


async def test_the_api_shows_a_deals_tracked_state_from_the_detector(
    broker_bootstrap: str,
    topics: Topics,
    detector_worker: subprocess.Popen[bytes],
    web_port: int,
    sqlite_url: str,
) -> None:
    import httpx

    from services.api.app import create_app
    from services.common.settings import Settings

    await ensure_topics(broker_bootstrap, topics.all(), partitions=3)
    history = [
        event(
            "A",
            30,
            "deal.created",
            deal={"owner_id": "u-1", "stage": "proposal", "status": "open"},
            contact={"id": "C-1", "title": "部長", "change": "added"},
        ),
        event("A", 3, "activity.logged", activity={"kind": "call", "direction": "outbound"}),
        event("A", 0, "deal.updated", deal={"owner_id": "u-2"}, previous={"owner_id": "u-1"}),
    ]
    producer = make_producer(broker_bootstrap)
    await producer.start()
    try:
        for ev in history:
            await producer.send_and_wait(
                topics.deal_changes, ev.model_dump_json().encode(), key=ev.key.encode()
            )
    finally:
        await producer.stop()
    settings = Settings(
        database_url=sqlite_url,
        api_token="t",
        api_tokens=[{"token": "rep-u9", "scopes": ["read"], "rep": "u-9"}],
        detector_url=f"http://127.0.0.1:{web_port}",
    )
    app = create_app(settings, topics)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://a") as client,
    ):

        async def reassigned_view() -> dict[str, object] | None:
            assert detector_worker.poll() is None, "the detector worker exited"
            r = await client.get("/api/deals/A", headers={"Authorization": "Bearer t"})
            if r.status_code != 200:
                return None
            view = r.json()
            return view if view["open_interruptions"] else None

        view = await eventually(reassigned_view, timeout=60, interval=0.5, what="the deal's state")
        assert (view["owner_id"], view["previous_owner_id"]) == ("u-2", "u-1")
        assert [i["kind"] for i in view["open_interruptions"]] == ["reassigned"]
        assert view["contacts"][0]["decision_maker"] is True
        assert view["quiet_deadline"] is not None
        unknown = await client.get("/api/deals/nope", headers={"Authorization": "Bearer t"})
        foreign = await client.get("/api/deals/A", headers={"Authorization": "Bearer rep-u9"})
        assert (unknown.status_code, foreign.status_code) == (404, 404)
