"""Write the JSON Schema of every message to ``schemas/json``: ``python -m schemas.generate [--check]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from schemas.commands import DealSnoozed
from schemas.events import DealChanged, GenericEvent
from schemas.interruptions import InterruptionMessage
from schemas.tasks import RecoveryTask, TaskMessage

OUT = Path(__file__).parent

SCHEMAS: dict[str, Any] = {
    "generic-event.v1": GenericEvent,
    "crm.deal-changes.v1": DealChanged,
    "deals.interruptions.v1": InterruptionMessage,
    "tasks.recovery-tasks.v1": TaskMessage,
    "recovery-task": RecoveryTask,
    "deals.commands.v1": DealSnoozed,
}


TOPIC_DOCS = {
    "crm.deal-changes.v1": (
        "crm.deal-changes.v1",
        "Normalized CRM change events; written by ingest and import.",
    ),
    "deals.interruptions.v1": (
        "deals.interruptions.v1",
        "DealInterrupted (revisions share the id) and DealResumed.",
    ),
    "tasks.recovery-tasks.v1": (
        "tasks.recovery-tasks.v1",
        "RecoveryTaskCreated / RecoveryTaskUpdated, whole task.",
    ),
}


def asyncapi() -> dict[str, Any]:
    """An AsyncAPI 3.0 document of the contract's topics, pointing at the generated JSON Schemas."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for name, (address, text) in TOPIC_DOCS.items():
        cid = name.replace(".", "_").replace("-", "_")
        channels[cid] = {
            "address": address,
            "description": text + " JSON values, keyed by the deal key (source:deal_id).",
            "messages": {
                "value": {"contentType": "application/json", "payload": {"$ref": f"json/{name}.json"}}
            },
        }
        operations[f"consume_{cid}"] = {"action": "receive", "channel": {"$ref": f"#/channels/{cid}"}}
    channels["crm_deal_changes_dlq_v1"] = {
        "address": "crm.deal-changes.dlq.v1",
        "description": "Rejected bytes as received; headers dlq.reason, dlq.source, dlq.stage, dlq.received_at.",
        "messages": {"value": {"contentType": "application/octet-stream", "payload": {"type": "string"}}},
    }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "dealwatch topics", "version": "1.0.0"},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
    }


def render() -> dict[str, str]:
    out = {}
    for name, model in SCHEMAS.items():
        schema = TypeAdapter(model).json_schema(mode="serialization")
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"{name}.json", **schema}
        out[f"json/{name}.json"] = json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    out["asyncapi.json"] = json.dumps(asyncapi(), indent=2, ensure_ascii=False) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    rendered = render()
    if "--check" in args:
        stale = [n for n, text in rendered.items() if not (OUT / n).exists() or (OUT / n).read_text() != text]
        if stale:
            print("JSON Schemas drifted from the models: " + ", ".join(stale), file=sys.stderr)
            return 1
        return 0
    for name, text in rendered.items():
        (OUT / name).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
