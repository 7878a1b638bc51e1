import json
from datetime import UTC, datetime

from schemas import DealInterrupted, DealSnapshot, RecoveryTask, RecoveryTaskCreated
from schemas.generate import render


def test_checked_in_json_schemas_match_the_models():
    from schemas.generate import OUT

    stale = [name for name, text in render().items() if (OUT / name).read_text() != text]
    assert stale == [], f"run `python -m schemas.generate`: {stale}"


def test_the_asyncapi_document_names_every_topic_of_the_contract():
    doc = json.loads(render()["asyncapi.json"])
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == {
        "crm.deal-changes.v1",
        "crm.deal-changes.dlq.v1",
        "deals.interruptions.v1",
        "tasks.recovery-tasks.v1",
    }


def test_messages_carry_their_schema_version():
    now = datetime(2026, 11, 2, tzinfo=UTC)
    interrupted = DealInterrupted(
        id="i",
        deal_key="generic:D",
        source="generic",
        deal_id="D",
        kind="reassigned",
        cause="staff_change",
        side="ours",
        confidence=0.8,
        occurred_at=now,
        detected_at=now,
        deal=DealSnapshot(),
    )
    task = RecoveryTask(
        id="t",
        interruption_id="i",
        deal_key="generic:D",
        source="generic",
        deal_id="D",
        kind="reassigned",
        cause="staff_change",
        title="Handover",
        due_at=now,
        created_at=now,
        updated_at=now,
    )
    for message in (interrupted, RecoveryTaskCreated(task=task)):
        assert json.loads(message.model_dump_json())["schema_version"] == 1
