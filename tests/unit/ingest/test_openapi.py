"""The webhooks in ``/openapi.json``: a body schema with no dangling reference, and every answer documented."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI

from services.common.settings import Settings
from services.ingest.web import IngestService


@pytest.fixture(scope="module")
def document() -> dict[str, object]:
    app = FastAPI()
    app.include_router(IngestService(Settings(max_batch_events=50)).router)
    return app.openapi()


@pytest.mark.parametrize("source", ["generic", "hubspot", "pipedrive", "salesforce"])
def test_each_webhook_documents_its_body_and_every_answer(document: dict[str, object], source: str) -> None:
    operation = document["paths"][f"/webhooks/{source}"]["post"]  # type: ignore[index]
    body = operation["requestBody"]
    assert body["required"] is True and "application/json" in body["content"]
    text = json.dumps(body)
    assert "$defs" not in text and "#/$defs/" not in text
    assert '"maxItems": 50' in text
    assert {"202", "400", "401", "413", "415", "422", "429", "503"} <= set(operation["responses"])
    assert "Retry-After" in operation["responses"]["503"]["headers"]
    assert operation["description"].startswith("Authenticity: ")


def test_salesforce_also_documents_its_soap_body_and_acknowledgement(document: dict[str, object]) -> None:
    operation = document["paths"]["/webhooks/salesforce"]["post"]  # type: ignore[index]
    assert "text/xml" in operation["requestBody"]["content"]
    assert "text/xml" in operation["responses"]["200"]["content"]
