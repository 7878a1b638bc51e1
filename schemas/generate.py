"""Write the JSON Schema of every message to ``schemas/json``: ``python -m schemas.generate [--check]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from schemas.events import DealChanged, GenericEvent
from schemas.interruptions import InterruptionMessage
from schemas.tasks import RecoveryTask, TaskMessage

OUT = Path(__file__).parent / "json"

SCHEMAS: dict[str, Any] = {
    "generic-event.v1": GenericEvent,
    "crm.deal-changes.v1": DealChanged,
    "deals.interruptions.v1": InterruptionMessage,
    "tasks.recovery-tasks.v1": TaskMessage,
    "recovery-task": RecoveryTask,
}


def render() -> dict[str, str]:
    out = {}
    for name, model in SCHEMAS.items():
        schema = TypeAdapter(model).json_schema(mode="serialization")
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"{name}.json", **schema}
        out[f"{name}.json"] = json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
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
    OUT.mkdir(exist_ok=True)
    for name, text in rendered.items():
        (OUT / name).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
