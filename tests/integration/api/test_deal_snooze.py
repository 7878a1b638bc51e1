"""Snoozing a deal through the API writes a DealSnoozed command to the outbox, for the detector."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from schemas.commands import DealSnoozed
from services.common.repositories import SqlAlchemyStore
from tests.integration.api.test_api import ALL, READER, REP7, TOPICS, auth, client, store  # noqa: F401

pytestmark = pytest.mark.integration


def commands(store: SqlAlchemyStore) -> list[DealSnoozed]:  # noqa: F811
    return [
        DealSnoozed.model_validate_json(m.value)
        for m in store.pending_outbox(100)
        if m.topic == TOPICS.deal_commands
    ]


async def test_snoozing_a_deal_sends_a_command_to_the_detector(client: httpx.AsyncClient, store):  # noqa: F811
    until = datetime.now(UTC) + timedelta(days=14)
    r = await client.post(
        "/api/deals/D-1/snooze",
        headers=auth(),
        json={"until": until.isoformat(), "reason": "先方の決算期明けまで待つ"},
    )
    assert r.status_code == 202, r.text
    [command] = commands(store)
    assert (command.deal_key, command.until, command.reason) == (
        "generic:D-1",
        until,
        "先方の決算期明けまで待つ",
    )
    assert command.command_id == r.json()["command_id"]


async def test_lifting_a_snooze_sends_a_command_without_a_date(client: httpx.AsyncClient, store):  # noqa: F811
    r = await client.delete("/api/deals/101/snooze", params={"source": "hubspot"}, headers=auth())
    assert r.status_code == 202, r.text
    [command] = commands(store)
    assert command.deal_key == "hubspot:101" and command.until is None


async def test_a_snooze_needs_a_future_date_and_a_reason(client: httpx.AsyncClient, store):  # noqa: F811
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    for body in (
        {"until": past, "reason": "x"},
        {"until": future},
        {"until": "tomorrow", "reason": "x"},
        {"until": future, "reason": "x", "owner_id": "u-1"},
    ):
        r = await client.post("/api/deals/D-1/snooze", headers=auth(), json=body)
        assert r.status_code == 422, (body, r.text)
    assert commands(store) == []


async def test_a_rep_can_snooze_only_their_own_deals(client: httpx.AsyncClient, store):  # noqa: F811
    body = {"until": (datetime.now(UTC) + timedelta(days=3)).isoformat(), "reason": "on leave"}
    own = await client.post("/api/deals/D-1/snooze", headers=auth(REP7), json=body)
    foreign = await client.post("/api/deals/D-3/snooze", headers=auth(REP7), json=body)
    reader = await client.post("/api/deals/D-1/snooze", headers=auth(READER), json=body)
    assert (own.status_code, foreign.status_code, reader.status_code) == (202, 404, 403)
    assert [c.deal_key for c in commands(store)] == ["generic:D-1"]
    assert json.loads(foreign.text)
