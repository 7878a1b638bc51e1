"""The contract between dealwatch's services: topic names and the pydantic models of every message.

Services import from here and never from each other. JSON Schema files generated from these models are checked in
under ``schemas/json`` (``python -m schemas.generate`` rewrites them; a test fails when they drift).
"""

from schemas.events import (
    ActivityInfo,
    ContactInfo,
    DealChanged,
    DealFields,
    GenericEvent,
    deal_key,
)
from schemas.interruptions import (
    Alternative,
    DealInterrupted,
    DealResumed,
    DealSnapshot,
    Evidence,
    InterruptionMessage,
    RelationshipProfile,
)
from schemas.tasks import (
    TASK_TRANSITIONS,
    ChecklistItem,
    RecoveryTask,
    RecoveryTaskCreated,
    RecoveryTaskUpdated,
    TaskMessage,
    can_move,
)
from schemas.topics import Topics

__all__ = [
    "TASK_TRANSITIONS",
    "ActivityInfo",
    "Alternative",
    "ChecklistItem",
    "ContactInfo",
    "DealChanged",
    "DealFields",
    "DealInterrupted",
    "DealResumed",
    "DealSnapshot",
    "Evidence",
    "GenericEvent",
    "InterruptionMessage",
    "RecoveryTask",
    "RecoveryTaskCreated",
    "RecoveryTaskUpdated",
    "RelationshipProfile",
    "TaskMessage",
    "Topics",
    "can_move",
    "deal_key",
]
