"""Schema-driven fuzzing: schemathesis generates requests for every operation of ``/openapi.json`` (the API, the
webhooks and the operational routes), valid and invalid by the schema, and checks every answer with all of its
checks (no server error, documented status, content type, body and headers, ...).

API requests carry the all-scopes token; webhook bodies are signed as their CRM signs them, so the generated
data reaches the code behind the authentication. A webhook's documented body describes what the CRM sends; the
receiver is a tolerant reader (unknown fields ignored, an id as a number or a string) and refuses what it cannot
use with 400/422, so the checks that a schema-valid body is accepted and a schema-invalid one refused do not
apply to webhooks; the webhook tests check those answers against the normalizers themselves. The check that a
wrong credential is refused (``ignored_auth``) sends its own requests past this in-process client, so
``test_credentials`` does that job instead, for every route.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Verbosity, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import ignored_auth, negative_data_rejection, positive_data_acceptance

from dealwatch.web import create_web_app
from services.api.web import ApiService
from services.common.settings import Settings
from services.ingest.web import IngestService
from tests.integration.hostile.conftest import (
    API_TOKEN,
    EXAMPLES,
    HOST,
    TALLY,
    Web,
    assert_still_serving,
    endpoint_of,
    signed,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning"),
]

REJECTIONS = ("400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429")
"""A schema-violating request must be refused with a 4xx; 413 (the body is over the size bound) is one too."""
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {"negative_data_rejection": {"expected-statuses": list(REJECTIONS)}},
        "auth": {"openapi": {"bearer": {"bearer": API_TOKEN}}},
    }
)
MAX_REPORT = 2500
BASE_URL = f"http://{HOST}"
ONLY = os.environ.get("DEALWATCH_FUZZ_OPERATIONS", "")
"""Fuzz only the operations whose label holds this text (``POST /api/deals``), to chase one failure."""

KNOWN_GAPS = {
    (
        "/api/",
        "ST202",
        400,
        "invalid cursor",
    ): "a cursor of the documented characters that this API did not give "
    "is refused (cursors are opaque: no schema tells a valid one)",
    ("/api/", "ST202", 422, "in the future"): "a snooze until a time already past is refused (no schema "
    "compares a time with the present)",
}
"""Documentation gaps of the API (not of the ingest): answers that are right but that ``/openapi.json`` cannot
foretell. They are counted and shown, not failed, so that the fuzzing goes on looking for server
errors behind them; any other failed check fails the test. Keyed by path prefix, check code, status and words
of the failure or of the answer."""


def known_gap(path: str, failure: Failure, status: int, answer: str) -> str | None:
    for (prefix, code, gap_status, mentions), why in KNOWN_GAPS.items():
        if (
            path.startswith(prefix)
            and failure.code == code
            and status == gap_status
            and (mentions in str(failure) or mentions in answer)
        ):
            return why
    return None


def send_case(web: Web, case: Any) -> requests.Response:
    """The case as its sender would send it: a webhook body signed, API requests as generated (with the token)."""
    kwargs = case.as_transport_kwargs(base_url=BASE_URL)
    kwargs.pop("cookies", None)
    prepared = requests.Request(**kwargs).prepare()
    path = case.formatted_path
    if path.startswith("/webhooks/") and case.media_type != "text/xml":
        body = prepared.body or b""
        prepared.headers.update(
            signed(path.rsplit("/", 1)[-1], body.encode() if isinstance(body, str) else body)
        )
        if case.media_type is not None:
            prepared.headers["content-type"] = str(kwargs["headers"].get("Content-Type", case.media_type))
    answer = web.client.send(prepared)
    TALLY.record(endpoint_of(case.method, path), answer.status_code, answer.text[:200])
    return answer


def fuzz_operation(web: Web, operation: Any, mode: GenerationMode) -> None:
    webhook = operation.path.startswith("/webhooks/")
    excluded = (
        [ignored_auth, positive_data_acceptance, negative_data_rejection] if webhook else [ignored_auth]
    )

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
    )
    def run(case: Any) -> None:
        answer = send_case(web, case)
        assert answer.status_code < 500, (case.method, case.formatted_path, answer.status_code, answer.text)
        try:
            case.validate_response(
                answer,
                excluded_checks=excluded,
                transport_kwargs={"session": web.client, "base_url": BASE_URL},
            )
        except (Failure, FailureGroup) as exc:
            failures = list(exc.exceptions) if isinstance(exc, FailureGroup) else [exc]
            gaps = [known_gap(operation.path, f, answer.status_code, answer.text) for f in failures]
            if not all(gaps):
                raise
            TALLY.known_gaps.update(f"{operation.label}: {gap}" for gap in gaps if gap)

    try:
        run()
    except FailureGroup as exc:  # a BaseExceptionGroup: raised as an AssertionError so that pytest reports it
        raise AssertionError(str(exc)[: MAX_REPORT * 2]) from None
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE or operation.definition.raw.get("parameters"):
            raise  # only an operation without parameters or body has no invalid request to make


def operation_labels() -> list[str]:
    """The operations of the app's document, read at collection from an app that is built, never started."""
    settings = Settings(kafka_bootstrap="127.0.0.1:9", database_url="sqlite://")
    app = create_web_app(settings, [IngestService(settings), ApiService(settings)])
    schema = schemathesis.openapi.from_dict(app.openapi(), config=CONFIG)
    return sorted(result.ok().label for result in schema.get_all_operations())


LABELS = operation_labels()


@pytest.fixture(scope="module")
def operations(web: Web) -> dict[str, Any]:
    """The operations of the running app's ``/openapi.json``, by label."""
    document = web.send("GET", "/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document, config=CONFIG)
    return {op.label: op for op in (result.ok() for result in schema.get_all_operations())}


def test_every_operation_of_the_served_document_is_fuzzed(operations: dict[str, Any]) -> None:
    assert sorted(operations) == LABELS
    assert {"GET /api/tasks", "PATCH /api/tasks/{task_id}", "POST /webhooks/generic", "GET /healthz"} <= set(
        LABELS
    )


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
@pytest.mark.parametrize("label", [label for label in LABELS if ONLY in label])
def test_generated_requests_get_no_server_error_nor_an_answer_the_schema_does_not_document(
    web: Web, operations: dict[str, Any], label: str, mode: GenerationMode
) -> None:
    fuzz_operation(web, operations[label], mode)
    assert_still_serving(web)
