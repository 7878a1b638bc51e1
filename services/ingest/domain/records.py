"""A normalized change as the value of its record on ``crm.deal-changes.v1``: one writer for the webhook and the
importer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from pydantic import BaseModel

from schemas import DealChanged

pydantic_json: Callable[[DealChanged], bytes] = DealChanged.__pydantic_serializer__.to_json
"""What ``model_dump_json`` writes, as bytes at once."""


def _fields(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.__dict__
    raise TypeError(f"{type(value).__name__} is not a model")


def to_json(change: DealChanged) -> bytes:
    """A change as the record value, byte for byte what pydantic's serializer (``model_dump_json``) writes, at
    about half its cost: orjson over each model's fields in their order, UTC written as ``Z`` as pydantic writes
    it. A property test holds the two equal; anything orjson refuses goes to pydantic's serializer."""
    try:
        return orjson.dumps(change, default=_fields, option=orjson.OPT_UTC_Z)
    except orjson.JSONEncodeError:
        return pydantic_json(change)
