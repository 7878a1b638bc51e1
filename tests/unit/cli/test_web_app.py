from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.testclient import TestClient

from dealwatch.web import create_web_app
from services.common.settings import load_settings


class StandInService:
    """A web part with one route, recording its lifecycle."""

    def __init__(self, name: str, journal: list[str], ready: Any = True) -> None:
        self.name = name
        self.journal = journal
        self._ready = ready
        self.router = APIRouter()

        @self.router.post(f"/{name}")
        async def echo(body: dict[str, Any]) -> dict[str, Any]:
            return {"got": body}

    async def start(self) -> None:
        self.journal.append(f"start {self.name}")

    async def stop(self) -> None:
        self.journal.append(f"stop {self.name}")

    def ready(self) -> bool:
        if isinstance(self._ready, Exception):
            raise self._ready
        return bool(self._ready)


class SlowStartService(StandInService):
    async def ready(self) -> bool:  # type: ignore[override]
        return False


def client_for(*parts: StandInService, **settings: Any) -> TestClient:
    return TestClient(create_web_app(load_settings(**settings), list(parts)))


def test_parts_start_in_order_and_stop_in_reverse_with_the_app() -> None:
    journal: list[str] = []
    with client_for(StandInService("ingest", journal), StandInService("api", journal)):
        assert journal == ["start ingest", "start api"]

    assert journal == ["start ingest", "start api", "stop api", "stop ingest"]


def test_the_app_serves_the_routes_of_every_part() -> None:
    journal: list[str] = []
    with client_for(StandInService("ingest", journal), StandInService("api", journal)) as client:
        assert client.post("/ingest", json={"a": 1}).json() == {"got": {"a": 1}}
        assert client.post("/api", json={"b": 2}).json() == {"got": {"b": 2}}
        assert client.get("/openapi.json").json()["info"]["title"] == "dealwatch"


def test_healthz_answers_while_the_process_lives() -> None:
    with client_for(StandInService("ingest", [], ready=False)) as client:
        assert client.get("/healthz").status_code == 200


def test_readyz_answers_200_when_every_part_is_ready() -> None:
    with client_for(StandInService("ingest", []), StandInService("api", [])) as client:
        answer = client.get("/readyz")

    assert answer.status_code == 200


def test_readyz_answers_503_when_one_part_is_not_ready() -> None:
    with client_for(StandInService("ingest", []), SlowStartService("api", [])) as client:
        answer = client.get("/readyz")

    assert answer.status_code == 503
    assert answer.json()["parts"] == {"StandInService": True, "SlowStartService": False}


def test_readyz_answers_503_not_500_when_a_readiness_check_raises() -> None:
    with client_for(StandInService("ingest", [], ready=RuntimeError("broker gone"))) as client:
        answer = client.get("/readyz")

    assert answer.status_code == 503


def test_metrics_are_served_as_prometheus_text() -> None:
    with client_for(StandInService("ingest", [])) as client:
        answer = client.get("/metrics")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert "python_info" in answer.text


def test_metrics_are_documented_as_text() -> None:
    with client_for(StandInService("ingest", [])) as client:
        documented = client.get("/openapi.json").json()["paths"]["/metrics"]["get"]["responses"]["200"]

    assert set(documented["content"]) == {"text/plain"}


def test_a_body_over_the_configured_limit_is_refused_with_413() -> None:
    with client_for(StandInService("ingest", []), max_body_bytes=64) as client:
        small = client.post("/ingest", json={"a": "x"})
        large = client.post("/ingest", json={"a": "x" * 100})

    assert small.status_code == 200
    assert large.status_code == 413
