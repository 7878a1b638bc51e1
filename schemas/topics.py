"""Topic names of the contract. Every message is JSON, keyed by the deal key (``source:deal_id``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    """The contract's topics. ``prefix`` is for tests, which give every test its own set."""

    prefix: str = ""

    @property
    def deal_changes(self) -> str:
        return f"{self.prefix}crm.deal-changes.v1"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}crm.deal-changes.dlq.v1"

    @property
    def interruptions(self) -> str:
        return f"{self.prefix}deals.interruptions.v1"

    @property
    def recovery_tasks(self) -> str:
        return f"{self.prefix}tasks.recovery-tasks.v1"

    @property
    def deal_commands(self) -> str:
        """Commands about a deal's tracking (snooze), written by the API through its outbox."""
        return f"{self.prefix}deals.commands.v1"

    @property
    def detector_ticks(self) -> str:
        """Internal: the detector's clock, one tick per partition, so that expiry runs inside the stream."""
        return f"{self.prefix}dealwatch.detector-ticks.v1"

    def all(self) -> list[str]:
        return [
            self.deal_changes,
            self.dead_letters,
            self.interruptions,
            self.recovery_tasks,
            self.deal_commands,
            self.detector_ticks,
        ]


DLQ_HEADERS = ("dlq.reason", "dlq.source", "dlq.stage", "dlq.received_at")
