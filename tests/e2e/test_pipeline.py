"""The whole pipeline through `dealwatch up`: signed webhooks in, interruptions and recovery tasks out."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import eventually
from tests.e2e.conftest import RunningUp, StartUp
from tests.helpers import TEST_GENERIC_SECRET, compact, standard_webhooks_headers

pytestmark = pytest.mark.e2e

API_TOKEN = "e2e-token-0123456789abcdef"
PIPELINE_TIMEOUT = 90.0


def at(days_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()


def deal(deal_id: str, owner: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": deal_id,
        "name": f"{deal_id} rollout",
        "stage": "proposal",
        "status": "open",
        "amount": 1_200_000,
        "currency": "JPY",
        "owner_id": owner,
        "account_id": f"acct-{deal_id}",
        "account_tier": "standard",
        **fields,
    }


def deal_a_history() -> list[dict[str, Any]]:
    """Created 30 days ago by u-1, an activity 3 days ago, then handed to u-2 now."""
    return [
        {"event_id": "e2e-a-1", "occurred_at": at(30), "type": "deal.created", "deal": deal("E2E-A", "u-1")},
        {
            "event_id": "e2e-a-2",
            "occurred_at": at(3),
            "type": "activity.logged",
            "deal": deal("E2E-A", "u-1"),
            "activity": {
                "kind": "call",
                "direction": "outbound",
                "text": "導入スケジュールを確認しました",
                "actor_id": "u-1",
            },
        },
        {
            "event_id": "e2e-a-3",
            "occurred_at": at(0),
            "type": "deal.updated",
            "deal": deal("E2E-A", "u-2"),
            "previous": {"owner_id": "u-1"},
        },
    ]


def deal_b_history() -> list[dict[str, Any]]:
    """Created 90 days ago; the last activity, an outbound email, 60 days ago."""
    return [
        {"event_id": "e2e-b-1", "occurred_at": at(90), "type": "deal.created", "deal": deal("E2E-B", "u-3")},
        {
            "event_id": "e2e-b-2",
            "occurred_at": at(60),
            "type": "activity.logged",
            "deal": deal("E2E-B", "u-3"),
            "activity": {
                "kind": "email",
                "direction": "outbound",
                "text": "Sent the quote, looking forward to your feedback.",
                "actor_id": "u-3",
            },
        },
    ]


async def deliver_twice(client: httpx.AsyncClient, event: dict[str, Any]) -> None:
    """One delivery and the CRM's retry of it: same webhook-id, same body."""
    body = compact(event)
    headers = standard_webhooks_headers(TEST_GENERIC_SECRET, body, msg_id=event["event_id"])
    for _ in range(2):
        answer = await client.post("/webhooks/generic", content=body, headers=headers)
        assert answer.status_code in (200, 202), answer.text


async def items(client: httpx.AsyncClient, path: str, deal_id: str) -> list[dict[str, Any]]:
    answer = await client.get(path, params={"source": "generic", "deal_id": deal_id})
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["items"]
    return found


async def interruption_with_task(up: RunningUp, client: httpx.AsyncClient, deal_id: str, kind: str) -> Any:
    """The deal's interruption of ``kind`` and its task, once both exist."""
    up.assert_alive()
    interruptions = [i for i in await items(client, "/api/interruptions", deal_id) if i["kind"] == kind]
    if not interruptions:
        return None
    tasks = [
        t
        for t in await items(client, "/api/tasks", deal_id)
        if t["interruption_id"] == interruptions[0]["id"]
    ]
    return (interruptions[0], tasks[0]) if tasks else None


async def test_signed_webhooks_become_exactly_one_interruption_and_one_task_per_deal(
    start_up: StartUp,
) -> None:
    up = start_up(
        env={
            "DEALWATCH_GENERIC_SECRET": TEST_GENERIC_SECRET,
            "DEALWATCH_API_TOKEN": API_TOKEN,
            "DEALWATCH_QUIET_SCAN_INTERVAL": "1",
            "DEALWATCH_QUIET__GRACE_SECONDS": "1",
        }
    )
    headers = {"authorization": f"Bearer {API_TOKEN}"}
    async with httpx.AsyncClient(base_url=up.url, headers=headers, timeout=30) as client:
        forged = compact(
            {
                "event_id": "e2e-c-1",
                "occurred_at": at(0),
                "type": "deal.updated",
                "deal": deal("E2E-C", "u-9"),
                "previous": {"owner_id": "u-8"},
            }
        )
        bad_signature = standard_webhooks_headers(TEST_GENERIC_SECRET, forged + b" ", msg_id="e2e-c-1")
        assert (
            await client.post("/webhooks/generic", content=forged, headers=bad_signature)
        ).status_code == 401
        invalid = compact({"event_id": "e2e-d-1", "type": "deal.updated", "deal": {"name": "no id, no time"}})
        invalid_headers = standard_webhooks_headers(TEST_GENERIC_SECRET, invalid, msg_id="e2e-d-1")
        assert (
            await client.post("/webhooks/generic", content=invalid, headers=invalid_headers)
        ).status_code == 422
        not_json = b'{"event_id": "e2e-d-2", '
        not_json_headers = standard_webhooks_headers(TEST_GENERIC_SECRET, not_json, msg_id="e2e-d-2")
        assert (
            await client.post("/webhooks/generic", content=not_json, headers=not_json_headers)
        ).status_code == 400

        for event in deal_a_history() + deal_b_history():
            await deliver_twice(client, event)

        a_interruption, a_task = await eventually(
            lambda: interruption_with_task(up, client, "E2E-A", "reassigned"),
            timeout=PIPELINE_TIMEOUT,
            interval=0.5,
            what="deal A's reassigned interruption with its task",
        )
        b_interruption, b_task = await eventually(
            lambda: interruption_with_task(up, client, "E2E-B", "went_quiet"),
            timeout=PIPELINE_TIMEOUT,
            interval=0.5,
            what="deal B's went_quiet interruption with its task",
        )

        assert [i["id"] for i in await items(client, "/api/interruptions", "E2E-A")] == [a_interruption["id"]]
        assert [t["id"] for t in await items(client, "/api/tasks", "E2E-A")] == [a_task["id"]]
        assert [i["id"] for i in await items(client, "/api/interruptions", "E2E-B")] == [b_interruption["id"]]
        assert [t["id"] for t in await items(client, "/api/tasks", "E2E-B")] == [b_task["id"]]
        assert a_interruption["evidence"] and b_interruption["evidence"]
        everything = (await client.get("/api/interruptions")).json()["items"]
        assert {i["deal_id"] for i in everything} == {"E2E-A", "E2E-B"}  # nothing from the refused requests
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        tracked = (await client.get("/api/deals/E2E-A")).json()
        assert tracked["owner_id"] == "u-2"
        assert [i["id"] for i in tracked["open_interruptions"]] == [a_interruption["id"]]

    assert up.stop(signal.SIGINT) == 0
    assert "all services stopped" in up.output()


def token_from(up_dir: Path) -> str:
    for line in (up_dir / "dev-secrets.env").read_text().splitlines():
        if line.startswith("DEALWATCH_API_TOKEN="):
            return line.split("=", 1)[1]
    raise AssertionError("no API token in dev-secrets.env")


HEALTHY_DEMO_DEALS = ("DEMO-1009", "DEMO-1010", "DEMO-1011")


async def test_up_demo_brings_recovery_tasks_into_the_api_within_a_minute_and_a_half(
    start_up: StartUp,
) -> None:
    up = start_up("--demo")
    headers = {"authorization": f"Bearer {token_from(up.data_dir)}"}

    async with httpx.AsyncClient(base_url=up.url, headers=headers, timeout=30) as client:

        async def handover_task() -> Any:
            up.assert_alive()
            return await items(client, "/api/tasks", "DEMO-1001")

        await eventually(handover_task, timeout=90, interval=1, what="the demo's handover task")
        assert (await client.get("/api/tasks")).json()["items"]
        for deal_id in HEALTHY_DEMO_DEALS:
            assert await items(client, "/api/interruptions", deal_id) == []

    assert "demo:" in up.output()
    assert up.stop(signal.SIGINT) == 0
