"""What the OpenAPI document says about each webhook: its body (the endpoints read the raw bytes, so FastAPI
cannot tell) and its answers. Schemas are the normalizers' own models, inlined (an operation cannot hold
``$defs``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from schemas import GenericEvent
from services.ingest.domain.hubspot import HubSpotEvent
from services.ingest.domain.pipedrive import PipedriveEvent
from services.ingest.domain.salesforce import ChangeEventHeader

ACCEPTED = {
    "description": "Every event of the body acknowledged by the broker (acks=all); items that are authentic "
    "and well-formed but not about a deal are counted in `ignored` and not published",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["accepted", "ignored", "event_ids"],
                "properties": {
                    "accepted": {"type": "integer", "minimum": 0},
                    "ignored": {"type": "integer", "minimum": 0},
                    "event_ids": {"type": "array", "items": {"type": "string"}},
                },
            }
        }
    },
}
SOAP_ACK = {
    "description": "A Salesforce Outbound Message acknowledged (SOAP `notificationsResponse`, `Ack` true)",
    "content": {"text/xml": {"schema": {"type": "string"}}},
}
ERROR_BODY = {
    "type": "object",
    "required": ["detail"],
    "properties": {
        "error": {"type": "string", "description": "A stable code (`malformed`, `unauthorized`, ...)"},
        "detail": {"description": "What was wrong, for people"},
    },
}
"""The answer to a refused delivery; a body refused before the ingest reads it (413 from the web app's size
bound) carries ``detail`` only."""

AUTHENTICITY = {
    "generic": "Standard Webhooks: `webhook-id`, `webhook-timestamp` (5 minutes) and `webhook-signature: "
    "v1,<base64 HMAC-SHA256 of id.timestamp.body>` under DEALWATCH_GENERIC_SECRET.",
    "hubspot": "HubSpot signature v3: `X-HubSpot-Signature-v3` over method, URI, body and "
    "`X-HubSpot-Request-Timestamp` (5 minutes) under the app's client secret.",
    "pipedrive": "HTTP Basic with DEALWATCH_PIPEDRIVE_USER and DEALWATCH_PIPEDRIVE_PASSWORD.",
    "salesforce": "Change Data Capture JSON: `X-Dealwatch-Secret` (or a bearer token) equal to "
    "DEALWATCH_SALESFORCE_SECRET; Outbound Messages (SOAP): an organization id of `salesforce_org_ids`.",
}


def inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON Schema with its ``$defs`` references replaced by the definitions (no recursion)."""
    definitions = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def _one_or_many(model: type[BaseModel], max_events: int, *, by_alias: bool = False) -> dict[str, Any]:
    one = inline(model.model_json_schema(by_alias=by_alias))
    return {"anyOf": [one, {"type": "array", "items": one, "minItems": 1, "maxItems": max_events}]}


def request_body(source: str, max_events: int) -> dict[str, Any]:
    """The ``requestBody`` of ``POST /webhooks/{source}``."""
    if source == "generic":
        schema = _one_or_many(GenericEvent, max_events)
    elif source == "hubspot":
        one = inline(HubSpotEvent.model_json_schema(by_alias=True))
        schema = {"type": "array", "items": one, "minItems": 1, "maxItems": max_events}
    elif source == "pipedrive":
        schema = _one_or_many(PipedriveEvent, max_events)
    else:
        header = inline(ChangeEventHeader.model_json_schema(by_alias=True))
        cdc = {
            "type": "object",
            "required": ["ChangeEventHeader"],
            "properties": {"ChangeEventHeader": header},
        }
        schema = {"anyOf": [cdc, {"type": "array", "items": cdc, "minItems": 1, "maxItems": max_events}]}
    content: dict[str, Any] = {"application/json": {"schema": schema}}
    if source == "salesforce":
        content["text/xml"] = {"schema": {"type": "string", "description": "An Outbound Message (SOAP)"}}
    return {"required": True, "content": content}


def operation(source: str, max_events: int, errors: dict[int | str, dict[str, Any]]) -> dict[str, Any]:
    """``openapi_extra`` of a webhook route: body, authenticity and every answer with its body."""
    responses: dict[str, Any] = {"202": ACCEPTED}
    if source == "salesforce":
        responses["200"] = SOAP_ACK
    for status, answer in errors.items():
        error = {
            "description": answer["description"],
            "content": {"application/json": {"schema": ERROR_BODY}},
        }
        if status in (429, 503):
            error["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}}
        responses[str(status)] = error
    return {
        "description": f"Authenticity: {AUTHENTICITY[source]}",
        "requestBody": request_body(source, max_events),
        "responses": responses,
    }
