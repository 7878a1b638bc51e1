"""``deals.commands.v1``: what a person asks of a deal's tracking. Written by the API, read by the detector."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DealSnoozed(BaseModel):
    """No quiet verdict on the deal before ``until`` (``None`` lifts an earlier snooze)."""

    model_config = ConfigDict(extra="ignore", frozen=True, title="DealSnoozed")

    event: Literal["DealSnoozed"] = "DealSnoozed"
    schema_version: Literal[1] = 1
    command_id: str
    deal_key: str
    source: str
    deal_id: str
    until: datetime | None
    reason: str = Field(default="", max_length=1000)
    requested_by: str | None = None
    requested_at: datetime
