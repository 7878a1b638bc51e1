"""The dashboard, ``GET /api/operations`` and ``/metrics`` of the web app against the real broker and database:
the metrics parse as Prometheus text, hold no secret, and the consumer lag follows a paused consumer group."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from dealwatch.web import create_web_app
from schemas import Topics
from services.api.web import ApiService
from services.common.broker import ensure_topics
from services.common.db import make_engine
from services.common.repositories import SqlAlchemyStore
from services.common.settings import Settings
from services.ingest.web import IngestService
from services.recovery.domain.playbooks import TaskPolicy, build_task, load_playbooks
from tests.conftest import eventually
from tests.helpers import TEST_GENERIC_SECRET, standard_webhooks_headers
from tests.unit.recovery.factories import NOW, interruption

pytestmark = pytest.mark.integration
TOKEN = "ops-test-token-6f1d0c"
HUBSPOT_SECRET = "hubspot-secret-9a8b7c"


@pytest.fixture
def settings(broker_bootstrap: str, sqlite_url: str, created_topics: Topics) -> Settings:
    return Settings(
        kafka_bootstrap=broker_bootstrap,
        database_url=sqlite_url,
        topic_prefix=created_topics.prefix,
        api_token=TOKEN,
        generic_secret=TEST_GENERIC_SECRET,
        hubspot_client_secret=HUBSPOT_SECRET,
        lag_check_interval=0.2,
    )


@pytest.fixture
async def client(settings: Settings, created_topics: Topics) -> AsyncIterator[httpx.AsyncClient]:
    app = create_web_app(
        settings, [IngestService(settings, created_topics), ApiService(settings, created_topics)]
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://web") as c:
            yield c


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


async def scrape(client: httpx.AsyncClient) -> dict[str, list[tuple[dict[str, str], float]]]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    families = text_string_to_metric_families(response.text)
    return {f.name: [(s.labels, s.value) for s in f.samples] for f in families}


async def test_the_dashboard_page_and_its_script_are_served_without_data(client: httpx.AsyncClient) -> None:
    page = await client.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/dashboard/dashboard.js">' in page.text
    script = await client.get("/dashboard/dashboard.js")
    assert script.status_code == 200 and "sessionStorage" in script.text
    assert (await client.get("/api/operations")).status_code == 401
    assert (await client.get("/api/stats")).status_code == 401


async def test_operations_count_open_and_overdue_tasks(client: httpx.AsyncClient, settings: Settings) -> None:
    store = SqlAlchemyStore(make_engine(settings.database_url))
    policy = TaskPolicy(load_playbooks())
    long_ago = NOW - timedelta(days=400)
    with store.transaction() as tx:
        for n, (at, status) in enumerate([(long_ago, "open"), (long_ago, "done"), (NOW, "open")]):
            i = interruption(deal_id=f"OPS-{n}", detected_at=at)
            tx.record_interruption(i)
            task = build_task(i, at, policy)
            if status == "done":
                task = task.model_copy(update={"status": "done"})
            if at == NOW:
                task = task.model_copy(update={"due_at": NOW + timedelta(days=3650)})
            tx.create_task(task)
    store.engine.dispose()
    answer = (await client.get("/api/operations", headers=auth())).json()
    assert answer["tasks_by_status"] == {"open": 2, "done": 1}
    assert answer["overdue_tasks"] == 1
    assert [t["deal_id"] for t in answer["oldest_overdue"]] == ["OPS-0"]
    assert answer["broker"] in ("ok", "unavailable")


async def test_metrics_parse_as_prometheus_text_and_never_carry_a_secret(
    client: httpx.AsyncClient, created_topics: Topics
) -> None:
    body = b'{"event_id": "e-1", "occurred_at": "2026-11-02T09:00:00Z", "type": "deal.updated", "deal": {}}'
    headers = standard_webhooks_headers(TEST_GENERIC_SECRET, body)
    await client.post("/webhooks/generic", content=body, headers=headers)  # 422: no deal id, dead-lettered
    forged = {**headers, "webhook-signature": f"v1,{TEST_GENERIC_SECRET}"}
    assert (await client.post("/webhooks/generic", content=body, headers=forged)).status_code == 401
    await client.post("/webhooks/hubspot", content=b"[]", headers={"X-HubSpot-Signature-v3": HUBSPOT_SECRET})
    await client.get("/api/tasks", headers={"Authorization": f"Bearer {TEST_GENERIC_SECRET}"})
    await client.get("/api/tasks", headers=auth())

    async def broker_read() -> bool:
        ends = (await scrape(client)).get("dealwatch_topic_end_offset", [])
        return {labels["topic"] for labels, _ in ends} >= set(created_topics.all())

    await eventually(broker_read, what="the broker reading in /metrics")
    text = (await client.get("/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for secret in (TOKEN, TEST_GENERIC_SECRET, TEST_GENERIC_SECRET.removeprefix("whsec_"), HUBSPOT_SECRET):
        assert secret not in text
    responses = {
        (s.labels["source"], s.labels["status"])
        for s in families["dealwatch_webhook_responses"].samples
        if s.name.endswith("_total")
    }
    assert {("generic", "422"), ("generic", "401")} <= responses
    outs = {s.labels["topic"] for s in families["dealwatch_events_out"].samples if s.name.endswith("_total")}
    assert created_topics.dead_letters in outs
    ends = {s.labels["topic"] for s in families["dealwatch_topic_end_offset"].samples}
    assert set(created_topics.all()) <= ends


async def test_consumer_lag_grows_while_a_group_is_paused_and_falls_when_it_resumes(
    client: httpx.AsyncClient, broker_bootstrap: str, created_topics: Topics
) -> None:
    topic, group = f"{created_topics.prefix}lag-probe", f"lag-test-{uuid.uuid4().hex[:8]}"
    await ensure_topics(broker_bootstrap, [topic], partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=broker_bootstrap, acks="all")
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await producer.start()
    await consumer.start()

    async def lag() -> float | None:
        samples = (await scrape(client)).get("dealwatch_consumer_lag", [])
        mine = [v for labels, v in samples if labels["group"] == group and labels["topic"] == topic]
        return sum(mine) if mine else None

    async def consume(expected: int) -> None:
        got = 0
        while got < expected:
            batch = await consumer.getmany(timeout_ms=1000)
            got += sum(len(records) for records in batch.values())
        await consumer.commit()

    try:
        for n in range(4):
            await producer.send_and_wait(topic, b"before", key=f"k{n}".encode())
        await consume(4)

        async def no_lag() -> bool:
            return await lag() == 0

        await eventually(no_lag, what="lag 0 after the group consumed everything")

        consumer.pause(*consumer.assignment())
        for n in range(6):
            await producer.send_and_wait(topic, b"while paused", key=f"k{n}".encode())
        assert await consumer.getmany(timeout_ms=200) == {}

        async def lag_of_six() -> bool:
            return await lag() == 6

        await eventually(lag_of_six, what="lag 6 while the group is paused")

        consumer.resume(*consumer.assignment())
        await consume(6)
        await eventually(no_lag, what="lag back to 0 once the group resumed")
    finally:
        await consumer.stop()
        await producer.stop()
