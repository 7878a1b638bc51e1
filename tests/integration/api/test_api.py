"""The read/act API over a real database (SQLite and PostgreSQL), through HTTP in process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from schemas import RecoveryTaskUpdated, Topics
from services.api.app import create_app
from services.common.db import make_engine
from services.common.repositories import SqlAlchemyStore
from services.common.settings import Settings
from services.common.stats_repository import SqlAlchemyStatsStore, StatCell
from services.recovery.domain.playbooks import TaskPolicy, build_task, load_playbooks
from tests.unit.recovery.factories import NOW, interruption, resumed

pytestmark = pytest.mark.integration
ALL, READER, REP7 = "all-scopes-token", "read-only-token", "rep-u7-token"
POLICY = TaskPolicy(load_playbooks())
TOPICS = Topics(prefix="api-test.")


@pytest.fixture
def store(db_url: str) -> Iterator[SqlAlchemyStore]:
    s = SqlAlchemyStore(make_engine(db_url))
    s.create_schema()
    seed(s)
    yield s
    s.engine.dispose()


def seed(store: SqlAlchemyStore) -> None:
    """Six deals: three of rep u-7, three of rep u-8, different kinds, causes, sources and times."""
    specs = [
        ("generic", "D-1", "went_quiet", "competitor", "u-7", 0),
        ("generic", "D-2", "stalled", "budget", "u-7", 1),
        ("hubspot", "101", "went_quiet", "budget", "u-8", 2),
        ("hubspot", "102", "closed_lost", "competitor", "u-8", 3),
        ("pipedrive", "7", "contact_left", "staff_change", "u-7", 4),
        ("generic", "D-3", "went_quiet", "no_response", "u-8", 5),
    ]
    with store.transaction() as tx:
        for source, deal_id, kind, cause, owner, day in specs:
            side = "customer" if cause == "staff_change" else None
            i = interruption(
                kind,
                cause,
                source=source,
                deal_id=deal_id,
                owner_id=owner,
                side=side,
                detected_at=NOW + timedelta(days=day),
            )
            tx.record_interruption(i)
            tx.create_task(build_task(i, NOW + timedelta(days=day), POLICY))
        tx.mark_resumed(resumed(interruption("stalled", "budget", deal_id="D-2")))


@pytest.fixture
async def client(store: SqlAlchemyStore, db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=db_url,
        api_token=ALL,
        api_tokens=[
            {"token": READER, "scopes": ["read"], "name": "dashboard"},
            {"token": REP7, "scopes": ["read", "write"], "rep": "u-7", "name": "rep"},
        ],
    )
    app = create_app(settings, TOPICS)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
            yield c


def auth(token: str = ALL) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def get(client: httpx.AsyncClient, path: str, token: str = ALL, **params: Any) -> Any:
    response = await client.get(path, params=params, headers=auth(token))
    assert response.status_code == 200, response.text
    return response.json()


async def all_pages(
    client: httpx.AsyncClient, path: str, token: str = ALL, **params: Any
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await get(client, path, token, **params, **({"cursor": cursor} if cursor else {}))
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def task_of(client: httpx.AsyncClient, source: str, deal_id: str) -> dict[str, Any]:
    page = await get(client, "/api/tasks", source=source, deal_id=deal_id)
    assert len(page["items"]) == 1
    return page["items"][0]  # type: ignore[no-any-return]


async def patch(
    client: httpx.AsyncClient, task_id: str, body: dict[str, Any], token: str = ALL
) -> httpx.Response:
    return await client.patch(f"/api/tasks/{task_id}", json=body, headers=auth(token))


class TestReading:
    async def test_a_request_without_a_valid_token_is_refused_with_a_bearer_challenge(
        self, client: httpx.AsyncClient
    ) -> None:
        for headers in ({}, auth("wrong"), {"Authorization": "Basic dXNlcjpwYXNz"}, auth("")):
            response = await client.get("/api/tasks", headers=headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith("Bearer")

    async def test_interruption_items_carry_the_contract_fields(self, client: httpx.AsyncClient) -> None:
        page = await get(client, "/api/interruptions", source="hubspot", deal_id="101")
        assert [i["deal_id"] for i in page["items"]] == ["101"] and page["next_cursor"] is None
        item = page["items"][0]
        for name in (
            "id",
            "source",
            "deal_id",
            "kind",
            "cause",
            "side",
            "confidence",
            "alternatives",
            "evidence",
            "detected_at",
        ):
            assert name in item
        assert item["alternatives"][0].keys() >= {"cause", "confidence"}
        assert item["evidence"][0].keys() >= {"event_id", "signal", "excerpt"}
        assert (await get(client, f"/api/interruptions/{item['id']}"))["id"] == item["id"]

    async def test_interruptions_filter_by_kind_cause_time_and_status(
        self, client: httpx.AsyncClient
    ) -> None:
        def deals(page: dict[str, Any]) -> set[str]:
            return {i["deal_id"] for i in page["items"]}

        assert deals(await get(client, "/api/interruptions", kind="went_quiet")) == {"D-1", "101", "D-3"}
        assert deals(await get(client, "/api/interruptions", cause="budget")) == {"D-2", "101"}
        since = (NOW + timedelta(days=3)).isoformat()
        assert deals(await get(client, "/api/interruptions", since=since)) == {"102", "7", "D-3"}
        assert deals(await get(client, "/api/interruptions", status="resumed")) == {"D-2"}
        assert deals(await get(client, "/api/interruptions", deal_id="7", source="pipedrive")) == {"7"}

    async def test_interruptions_since_is_a_date_time_or_a_date_never_a_number(
        self, client: httpx.AsyncClient
    ) -> None:
        day = (NOW + timedelta(days=3)).date()
        by_date = await get(client, "/api/interruptions", since=day.isoformat())
        at_midnight = datetime(day.year, day.month, day.day, tzinfo=UTC).isoformat()
        assert by_date == await get(client, "/api/interruptions", since=at_midnight)
        for number in ("0", "0.0", "1700000000", "-1"):
            answer = await client.get("/api/interruptions", params={"since": number}, headers=auth(ALL))
            assert answer.status_code == 422, (number, answer.text)

    async def test_a_query_parameter_given_twice_is_refused(self, client: httpx.AsyncClient) -> None:
        for path, params in (
            ("/api/interruptions", [("deal_id", "7"), ("deal_id", "D-1")]),
            ("/api/tasks", [("status", "open"), ("limit", "5"), ("status", "done")]),
        ):
            answer = await client.get(path, params=params, headers=auth(ALL))
            assert answer.status_code == 422, answer.text
            assert "given more than once" in answer.json()["detail"]
        assert (await client.get("/api/tasks", params={"limit": "5"}, headers=auth(ALL))).status_code == 200

    async def test_tasks_filter_by_deal_assignee_and_status(self, client: httpx.AsyncClient) -> None:
        task = await task_of(client, "generic", "D-1")
        for name in (
            "id",
            "source",
            "deal_id",
            "interruption_id",
            "kind",
            "cause",
            "title",
            "assignee",
            "status",
            "priority",
            "due_at",
            "checklist",
        ):
            assert name in task
        mine = await get(client, "/api/tasks", assignee="u-8")
        assert {t["deal_id"] for t in mine["items"]} == {"101", "102", "D-3"}
        assert len((await get(client, "/api/tasks", status="open"))["items"]) == 6
        assert (await get(client, "/api/tasks", status="done"))["items"] == []

    async def test_following_the_cursor_visits_every_item_once(self, client: httpx.AsyncClient) -> None:
        for path in ("/api/interruptions", "/api/tasks"):
            items = await all_pages(client, path, limit=4)
            assert len(items) == 6 and len({i["id"] for i in items}) == 6
            assert len(await all_pages(client, path, limit=1)) == 6

    @pytest.mark.parametrize(
        "path,params,status",
        [
            ("/api/interruptions", {"cursor": "not-a-cursor"}, 400),
            ("/api/tasks", {"cursor": "eyJ4IjoxfQ"}, 400),
            ("/api/interruptions", {"kind": "bogus"}, 422),
            ("/api/interruptions", {"since": "yesterday"}, 422),
            ("/api/tasks", {"status": "finished"}, 422),
            ("/api/tasks", {"limit": 0}, 422),
            ("/api/tasks", {"limit": 100000}, 422),
            ("/api/stats", {"group_by": "kind,planet"}, 422),
            ("/api/stats", {"group_by": "kind, cause"}, 422),
            ("/api/stats", {"since": "1793926800"}, 422),
            ("/api/stats", {"until": "2026-02-30"}, 422),
            ("/api/tasks", {"cursor": "a b"}, 422),
            ("/api/stats", {"period": "year"}, 422),
            ("/api/tasks", {"deal_id": "x" * 300}, 422),
            ("/api/interruptions/nope", {}, 404),
            ("/api/tasks/nope", {}, 404),
        ],
    )
    async def test_a_bad_cursor_or_filter_is_a_client_error(
        self, client: httpx.AsyncClient, path: str, params: dict[str, Any], status: int
    ) -> None:
        response = await client.get(path, params=params, headers=auth())
        assert response.status_code == status, response.text

    async def test_an_empty_cursor_is_the_first_page(self, client: httpx.AsyncClient) -> None:
        first = await get(client, "/api/tasks", cursor="", limit=2)
        assert first == await get(client, "/api/tasks", limit=2)

    async def test_a_group_named_twice_counts_once(self, client: httpx.AsyncClient) -> None:
        assert (await get(client, "/api/stats", group_by="kind,kind"))["group_by"] == ["kind"]
        assert (await get(client, "/api/stats", since="2026-11-01", until="2026-11-30"))["since"] == "2026-11"

    @pytest.mark.parametrize("since", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
    async def test_a_time_at_the_calendar_s_end_is_a_bound_not_an_error(
        self, client: httpx.AsyncClient, since: str
    ) -> None:
        items = (await get(client, "/api/interruptions", since=since))["items"]
        assert len(items) == (6 if since.startswith("0001") else 0)

    async def test_a_nul_character_in_a_filter_or_an_id_matches_nothing(
        self, client: httpx.AsyncClient
    ) -> None:
        for path, params in [
            ("/api/tasks", {"deal_id": "D\x001"}),
            ("/api/tasks", {"assignee": "u\x00"}),
            ("/api/interruptions", {"deal_id": "D\x001"}),
        ]:
            response = await client.get(path, params=params, headers=auth())
            assert response.status_code == 200 and response.json()["items"] == [], response.text
        for path in ("/api/tasks/t%00", "/api/interruptions/i%00"):
            assert (await client.get(path, headers=auth())).status_code == 404

    async def test_the_openapi_document_describes_the_routes_and_the_bearer_scheme(
        self, client: httpx.AsyncClient
    ) -> None:
        doc = (await client.get("/openapi.json")).json()
        assert {
            "/api/interruptions",
            "/api/interruptions/{interruption_id}",
            "/api/tasks",
            "/api/tasks/{task_id}",
            "/api/stats",
        } <= set(doc["paths"])
        assert "patch" in doc["paths"]["/api/tasks/{task_id}"]
        assert doc["components"]["securitySchemes"]["bearer"]["scheme"].lower() == "bearer"
        listed = doc["paths"]["/api/tasks"]["get"]["responses"]["200"]["content"]["application/json"][
            "schema"
        ]
        assert listed["$ref"].endswith("TaskPage")

    async def test_the_openapi_document_describes_every_refusal_of_the_api(
        self, client: httpx.AsyncClient
    ) -> None:
        doc = (await client.get("/openapi.json")).json()
        schemas = doc["components"]["schemas"]
        operations = [
            op for path, ops in doc["paths"].items() if path.startswith("/api/") for op in ops.values()
        ]
        assert len(operations) >= 10
        for op in operations:
            assert {"400", "401", "403", "422", "503"} <= set(op["responses"]), op["operationId"]
            refused = op["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
            assert refused.endswith("/InvalidRequestAnswer")
        detail = schemas["InvalidRequestAnswer"]["properties"]["detail"]["anyOf"]
        assert {d.get("type") for d in detail} == {"string", "array"}


class TestChanging:
    async def test_a_task_moves_open_in_progress_done_and_no_further(
        self, client: httpx.AsyncClient, store: SqlAlchemyStore
    ) -> None:
        task = await task_of(client, "generic", "D-1")
        started = await patch(client, task["id"], {"status": "in_progress"})
        assert started.status_code == 200 and started.json()["version"] == 2
        done = await patch(client, task["id"], {"status": "done"})
        assert done.json()["status"] == "done"
        refused = await patch(client, task["id"], {"status": "open"})
        assert refused.status_code == 409
        messages = [json.loads(m.value) for m in store.pending_outbox()]
        assert [(m["event"], m["change"], m["task"]["version"]) for m in messages] == [
            ("RecoveryTaskUpdated", "status", 2),
            ("RecoveryTaskUpdated", "status", 3),
        ]
        assert {m.topic for m in store.pending_outbox()} == {TOPICS.recovery_tasks}
        RecoveryTaskUpdated.model_validate(messages[-1])

    @pytest.mark.parametrize(
        "body",
        [
            {"status": "dismissed"},
            {"status": "snoozed", "reason": "holiday"},
            {"status": "snoozed", "until": "2999-01-01T00:00:00Z"},
            {"status": "snoozed", "reason": "holiday", "until": "2999-01-01T00:00:00"},
            {"checklist": [{"index": 999}]},
            {"checklist": [{"item": "no such step"}]},
            {"status": "open", "tenant_id": "other-tenant"},
            {"assignee": "u-666"},
            {"id": "another-id", "status": "in_progress"},
            {"status": 5},
        ],
    )
    async def test_an_incomplete_or_foreign_change_is_refused_and_nothing_is_applied(
        self, client: httpx.AsyncClient, store: SqlAlchemyStore, body: dict[str, Any]
    ) -> None:
        task = await task_of(client, "generic", "D-1")
        response = await patch(client, task["id"], body)
        assert response.status_code == 422, response.text
        assert await task_of(client, "generic", "D-1") == task
        assert store.pending_outbox() == []

    async def test_snoozing_with_a_reason_and_time_and_ticking_items_are_kept(
        self, client: httpx.AsyncClient
    ) -> None:
        task = await task_of(client, "generic", "D-1")
        body = {
            "status": "snoozed",
            "reason": "waiting for the budget meeting",
            "until": "2999-01-01T00:00:00Z",
            "checklist": [{"index": 0}, {"item": task["checklist"][1]["item"], "done": True}],
        }
        response = await patch(client, task["id"], body)
        assert response.status_code == 200, response.text
        after = response.json()
        assert (after["status"], after["status_reason"]) == ("snoozed", "waiting for the budget meeting")
        assert [c["done"] for c in after["checklist"][:3]] == [True, True, False]
        assert (await get(client, f"/api/tasks/{task['id']}")) == after

    async def test_a_change_to_a_version_that_moved_on_is_a_conflict(self, client: httpx.AsyncClient) -> None:
        task = await task_of(client, "generic", "D-1")
        assert (await patch(client, task["id"], {"status": "in_progress", "version": 1})).status_code == 200
        assert (await patch(client, task["id"], {"status": "done", "version": 1})).status_code == 409

    async def test_a_read_only_token_cannot_change_a_task(self, client: httpx.AsyncClient) -> None:
        task = await task_of(client, "generic", "D-1")
        assert (await patch(client, task["id"], {"status": "in_progress"}, token=READER)).status_code == 403


class TestRepScope:
    async def test_a_rep_token_sees_only_the_reps_tasks_and_interruptions(
        self, client: httpx.AsyncClient
    ) -> None:
        tasks = await all_pages(client, "/api/tasks", token=REP7)
        assert {t["deal_id"] for t in tasks} == {"D-1", "D-2", "7"}
        assert (await get(client, "/api/tasks", token=REP7, assignee="u-8"))["items"] == []
        interruptions = await all_pages(client, "/api/interruptions", token=REP7)
        assert {i["deal_id"] for i in interruptions} == {"D-1", "D-2", "7"}

    async def test_another_reps_task_is_not_found_exactly_like_a_missing_one(
        self, client: httpx.AsyncClient
    ) -> None:
        foreign = await task_of(client, "hubspot", "101")
        foreign_interruption = foreign["interruption_id"]
        answers = []
        for path in (
            f"/api/tasks/{foreign['id']}",
            "/api/tasks/does-not-exist",
            f"/api/interruptions/{foreign_interruption}",
            "/api/interruptions/does-not-exist",
        ):
            response = await client.get(path, headers=auth(REP7))
            answers.append((response.status_code, response.json()["detail"].split()[-1]))
        for task_id in (foreign["id"], "does-not-exist"):
            response = await patch(client, task_id, {"status": "in_progress"}, token=REP7)
            answers.append((response.status_code, response.json()["detail"].split()[-1]))
        assert answers == [
            (404, "task"),
            (404, "task"),
            (404, "interruption"),
            (404, "interruption"),
            (404, "task"),
            (404, "task"),
        ]
        assert (await task_of(client, "hubspot", "101"))["status"] == "open"

    async def test_a_rep_may_change_their_own_task(self, client: httpx.AsyncClient) -> None:
        own = await task_of(client, "generic", "D-2")
        assert (await patch(client, own["id"], {"status": "in_progress"}, token=REP7)).status_code == 200


class TestStatsAndMetrics:
    async def test_stats_answer_counts_and_rates_grouped_by_kind_and_week(
        self, client: httpx.AsyncClient, db_url: str
    ) -> None:
        stats = SqlAlchemyStatsStore(make_engine(db_url))
        with stats.transaction() as tx:
            tx.add_counts(
                {
                    StatCell("interruptions", "week", "2026-W45", kind="went_quiet", cause="budget"): 4,
                    StatCell("resumed", "week", "2026-W45", kind="went_quiet", cause="budget"): 1,
                    StatCell("interruptions", "week", "2026-W46", kind="stalled", owner="u-8"): 2,
                }
            )
        stats.engine.dispose()
        answer = await get(client, "/api/stats", group_by="kind,period", period="week")
        assert answer["group_by"] == ["kind", "period"]
        by_group = {(i["group"]["kind"], i["group"]["period"]): i for i in answer["items"]}
        assert {k: v for k, v in by_group[("went_quiet", "2026-W45")]["counts"].items() if v} == {
            "interruptions": 4,
            "resumed": 1,
        }
        assert by_group[("went_quiet", "2026-W45")]["rates"]["resumed"] == 0.25
        assert answer["totals"]["counts"]["interruptions"] == 6
        mine = await get(client, "/api/stats", token=REP7, group_by="kind", period="week")
        assert mine["items"] == [] and set(mine["totals"]["counts"].values()) == {0}

    async def test_requests_are_counted_by_route_template_and_status(self, client: httpx.AsyncClient) -> None:
        def count() -> float:
            labels = {"method": "GET", "route": "/api/tasks/{task_id}", "status": "404"}
            return REGISTRY.get_sample_value("dealwatch_api_requests_total", labels) or 0.0

        before = count()
        await client.get("/api/tasks/missing-1", headers=auth())
        await client.get("/api/tasks/missing-2", headers=auth())
        assert count() == before + 2
