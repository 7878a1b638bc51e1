"""Hypothesis strategies for webhook bodies: each CRM's shape with hostile values in every slot, arbitrary JSON,
and byte-level damage to valid bodies."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
ids = st.integers(min_value=-5, max_value=2**63) | st.text(max_size=40) | st.none() | st.booleans()
times = (
    st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat())
    | st.datetimes().map(lambda t: t.isoformat())
    | st.integers(min_value=0, max_value=2**45)
    | st.text(max_size=30)
    | st.none()
)
words = st.text(max_size=60) | st.sampled_from(
    ["先方、競合A社の値引き提案を検討中", "budget frozen", "<b>x</b>&amp;"]
)


def maybe(
    strategy: st.SearchStrategy[Any], other: st.SearchStrategy[Any] = json_values
) -> st.SearchStrategy[Any]:
    """Mostly the plausible value, sometimes anything."""
    return st.one_of(strategy, strategy, strategy, other)


def _dict(required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]]) -> Any:
    base = st.fixed_dictionaries(required, optional=optional)
    return st.one_of(
        base,
        base,
        base,
        st.tuples(base, st.dictionaries(st.text(max_size=8), json_values, max_size=3)).map(
            lambda pair: {**pair[1], **pair[0]}
        ),
    )


deal_fields = _dict(
    {"id": maybe(st.text(min_size=1, max_size=30) | st.integers(min_value=0, max_value=10**12), ids)},
    {
        "name": maybe(words),
        "stage": maybe(
            st.sampled_from(["lead", "proposal", "negotiation", "closedlost"]) | st.text(max_size=10)
        ),
        "status": maybe(st.sampled_from(["open", "won", "lost", "deleted", "paused"])),
        "amount": maybe(st.floats(allow_nan=False) | st.integers()),
        "currency": maybe(st.sampled_from(["JPY", "USD", "EURO-LONG-CODE"])),
        "close_date": maybe(st.dates().map(str) | st.text(max_size=12)),
        "owner_id": maybe(st.text(max_size=12) | st.integers()),
        "lost_reason": maybe(words),
    },
)
generic_event = _dict(
    {
        "event_id": maybe(st.text(min_size=1, max_size=40), ids),
        "occurred_at": maybe(times),
        "type": maybe(
            st.sampled_from(
                [
                    "deal.created",
                    "deal.updated",
                    "deal.deleted",
                    "activity.logged",
                    "contact.changed",
                    "deal.exploded",
                ]
            )
        ),
        "deal": maybe(deal_fields),
    },
    {
        "previous": maybe(
            _dict({}, {"owner_id": maybe(st.text(max_size=8)), "amount": maybe(st.integers())})
        ),
        "activity": maybe(
            _dict(
                {"kind": maybe(st.sampled_from(["note", "call", "email", "meeting", "task", "fax"]))},
                {
                    "direction": maybe(st.sampled_from(["inbound", "outbound", "internal", "sideways"])),
                    "text": maybe(words),
                    "scheduled_at": maybe(times),
                    "done": maybe(st.booleans()),
                },
            )
        ),
        "contact": maybe(
            _dict(
                {"id": maybe(st.text(min_size=1, max_size=10), ids)},
                {
                    "change": maybe(
                        st.sampled_from(["added", "removed", "left_company", "role_changed", "gone"])
                    )
                },
            )
        ),
    },
)
hubspot_event = _dict(
    {
        "eventId": maybe(st.integers(min_value=0, max_value=2**40), ids),
        "occurredAt": maybe(st.integers(min_value=946_684_800_000, max_value=4_102_444_800_000), times),
        "subscriptionType": maybe(
            st.sampled_from(
                [
                    "deal.creation",
                    "deal.propertyChange",
                    "deal.deletion",
                    "deal.associationChange",
                    "deal.merge",
                    "deal.restore",
                    "object.propertyChange",
                    "object.associationChange",
                    "contact.propertyChange",
                    "company.creation",
                ]
            )
        ),
    },
    {
        "portalId": maybe(st.integers(min_value=0, max_value=10**9)),
        "subscriptionId": maybe(st.integers(min_value=0, max_value=10**9)),
        "attemptNumber": maybe(st.integers(min_value=0, max_value=10)),
        "objectId": maybe(st.integers(min_value=0, max_value=10**12), ids),
        "objectTypeId": maybe(st.sampled_from(["0-3", "0-1", "0-2", "2-123"])),
        "propertyName": maybe(
            st.sampled_from(
                [
                    "dealname",
                    "dealstage",
                    "amount",
                    "closedate",
                    "hubspot_owner_id",
                    "description",
                    "notes_next_activity_date",
                    "hs_is_closed_won",
                ]
            )
        ),
        "propertyValue": maybe(st.text(max_size=20) | st.integers(min_value=0, max_value=2**50), json_values),
        "associationType": maybe(st.sampled_from(["DEAL_TO_CONTACT", "CONTACT_TO_DEAL", "DEAL_TO_COMPANY"])),
        "fromObjectId": maybe(st.integers(min_value=0, max_value=10**9), ids),
        "toObjectId": maybe(st.integers(min_value=0, max_value=10**9), ids),
        "associationRemoved": maybe(st.booleans()),
        "mergedObjectIds": maybe(st.lists(st.integers(min_value=0, max_value=10**6), max_size=5)),
        "primaryObjectId": maybe(st.integers(min_value=0, max_value=10**6)),
    },
)
pipedrive_event = _dict(
    {
        "meta": maybe(
            _dict(
                {
                    "action": maybe(
                        st.sampled_from(
                            ["create", "change", "delete", "added", "updated", "deleted", "merged"]
                        )
                    ),
                    "entity": maybe(
                        st.sampled_from(["deal", "activity", "note", "person", "organization", "product"])
                    ),
                },
                {
                    "id": maybe(st.text(min_size=1, max_size=36), ids),
                    "entity_id": maybe(st.integers(min_value=0, max_value=10**9), ids),
                    "timestamp": maybe(times),
                    "attempt": maybe(st.integers(min_value=0, max_value=5)),
                    "company_id": maybe(st.integers(min_value=0, max_value=10**6)),
                },
            )
        )
    },
    {
        "data": maybe(
            _dict(
                {},
                {
                    "id": maybe(st.integers(min_value=0, max_value=10**9), ids),
                    "deal_id": maybe(st.integers(min_value=0, max_value=10**9), ids),
                    "title": maybe(words),
                    "value": maybe(st.floats(allow_nan=False) | st.integers()),
                    "status": maybe(st.sampled_from(["open", "won", "lost", "deleted"])),
                    "stage_id": maybe(st.integers(min_value=0, max_value=20)),
                    "owner_id": maybe(
                        st.integers(min_value=0, max_value=10**6)
                        | st.fixed_dictionaries({"id": st.integers()})
                    ),
                    "person_id": maybe(st.integers(min_value=0, max_value=10**6), ids),
                    "expected_close_date": maybe(st.dates().map(str) | st.text(max_size=10)),
                    "type": maybe(st.sampled_from(["call", "meeting", "email", "lunch", "deadline", "電話"])),
                    "subject": maybe(words),
                    "content": maybe(words),
                    "due_date": maybe(st.dates().map(str) | st.text(max_size=10)),
                    "due_time": maybe(st.times().map(str) | st.text(max_size=8)),
                    "done": maybe(st.booleans() | st.integers(min_value=0, max_value=1)),
                    "update_time": maybe(times),
                    "deal_ids": maybe(st.lists(st.integers(min_value=0, max_value=10**6), max_size=4)),
                    "org_id": maybe(st.integers(min_value=0, max_value=10**6)),
                    "job_title": maybe(words),
                },
            )
        ),
        "previous": maybe(
            st.dictionaries(
                st.sampled_from(
                    ["person_id", "org_id", "job_title", "stage_id", "owner_id", "value", "title"]
                ),
                json_values,
                max_size=3,
            )
        ),
    },
)
salesforce_event = _dict(
    {
        "ChangeEventHeader": maybe(
            _dict(
                {
                    "entityName": maybe(
                        st.sampled_from(["Opportunity", "OpportunityContactRole", "Task", "Event", "Account"])
                    ),
                    "recordIds": maybe(
                        st.lists(
                            st.sampled_from(["0065g00000AbCdEAAV", "00T5g000001AbCdEAA", "006*", ""])
                            | st.text(max_size=18),
                            max_size=3,
                        )
                    ),
                    "changeType": maybe(
                        st.sampled_from(
                            ["CREATE", "UPDATE", "DELETE", "UNDELETE", "GAP_UPDATE", "GAP_OVERFLOW"]
                        )
                    ),
                    "commitTimestamp": maybe(
                        st.integers(min_value=946_684_800_000, max_value=4_102_444_800_000), times
                    ),
                },
                {
                    "transactionKey": maybe(st.text(max_size=30)),
                    "sequenceNumber": maybe(st.integers(min_value=0, max_value=100)),
                    "changedFields": maybe(
                        st.lists(st.sampled_from(["StageName", "Role", "Amount"]), max_size=3)
                    ),
                    "nulledFields": maybe(st.lists(st.sampled_from(["Amount", "CloseDate"]), max_size=2)),
                },
            )
        )
    },
    {
        "StageName": maybe(st.sampled_from(["Prospecting", "Closed Won", "Closed Lost"])),
        "Amount": maybe(st.floats(allow_nan=False) | st.integers()),
        "CloseDate": maybe(st.dates().map(str) | st.text(max_size=10)),
        "IsClosed": maybe(st.booleans()),
        "IsWon": maybe(st.booleans()),
        "OwnerId": maybe(st.text(max_size=18)),
        "Description": maybe(words),
        "WhatId": maybe(st.sampled_from(["0065g00000AbCdEAAV", "0015g00000AbCdEAAV"])),
        "OpportunityId": maybe(st.text(max_size=18)),
        "ContactId": maybe(st.text(max_size=18)),
        "Role": maybe(st.sampled_from(["Decision Maker", "Economic Buyer", "Evaluator"])),
        "ActivityDate": maybe(st.dates().map(str)),
        "StartDateTime": maybe(times),
    },
)
SHAPES: dict[str, st.SearchStrategy[Any]] = {
    "generic": generic_event,
    "hubspot": hubspot_event,
    "pipedrive": pipedrive_event,
    "salesforce": salesforce_event,
}


def payloads(source: str) -> st.SearchStrategy[Any]:
    """One event, a batch of them, or any JSON at all."""
    shaped = SHAPES[source]
    return st.one_of(shaped, st.lists(shaped, min_size=0, max_size=4), shaped, json_values)


def encoded(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def damaged(draw: st.DrawFn, body: bytes) -> bytes:
    """``body`` with bytes flipped, cut, inserted or replaced by noise."""
    how = draw(st.sampled_from(["flip", "cut", "insert", "noise", "prefix"]))
    if how == "noise" or not body:
        return draw(st.binary(max_size=300))
    at = draw(st.integers(min_value=0, max_value=len(body) - 1))
    if how == "flip":
        bit = draw(st.integers(min_value=0, max_value=7))
        return body[:at] + bytes([body[at] ^ (1 << bit)]) + body[at + 1 :]
    if how == "cut":
        return body[:at]
    if how == "prefix":
        return draw(st.sampled_from([b"\xef\xbb\xbf", b"\xff\xfe", b" ", b"\x00"])) + body
    return body[:at] + draw(st.binary(min_size=1, max_size=8)) + body[at:]
