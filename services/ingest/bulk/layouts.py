"""The CSV exports of HubSpot, Pipedrive and Salesforce: which column holds which deal field, told by the header.

Column names are the vendors' own, compared without case and surrounding blanks:

- HubSpot, deals exported from the index page or the exports API, with property labels (``Record ID``,
  ``Deal Name``, ``Deal Stage``, ``Amount``, ``Close Date``, ``Deal owner``, ``Create Date``, ``Last Activity
  Date``, ...) or with internal names (``hs_object_id``, ``dealname``, ``dealstage``, ``hubspot_owner_id``, ...).
- Pipedrive, deals exported from the list view: ``Deal - ID``, ``Deal - Title``, ``Deal - Value``, ``Deal -
  Stage``, ``Deal - Owner``, ``Deal - Status``, ``Deal - Expected close date``, ``Deal - Lost reason``, ...
- Salesforce, an Opportunity report (``Opportunity ID``, ``Opportunity Name``, ``Stage``, ``Close Date``,
  ``Opportunity Owner``, ...) or a Data Loader export of Opportunity (``Id``, ``Name``, ``StageName``,
  ``CloseDate``, ``OwnerId``, ``AccountId``, ...).

Columns that hold nothing dealwatch uses (custom properties, probabilities, pipelines) are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from services.ingest.domain.salesforce import LOST_REASON_FIELDS


@dataclass(frozen=True)
class Layout:
    """One vendor's export: the columns of each field (first match wins) and how to recognize it."""

    name: str
    source: str
    """The webhook source of the same CRM, so that imported deals have the keys its webhooks give them."""
    event_prefix: str
    columns: Mapping[str, tuple[str, ...]]
    signature: tuple[str, ...]
    """Header names (lower case) of which the header must hold the id column and one more to be this layout."""


ColumnMap = tuple[tuple[str, int], ...]
"""Field name and the index of its column in the header, for the fields the header has."""


def _deal(*names: str) -> tuple[str, ...]:
    return tuple(f"Deal - {n}" for n in names)


HUBSPOT = Layout(
    name="hubspot-csv",
    source="hubspot",
    event_prefix="hs",
    columns={
        "id": ("Record ID", "hs_object_id", "Deal ID"),
        "name": ("Deal Name", "dealname"),
        "stage": ("Deal Stage", "dealstage"),
        "amount": ("Amount", "amount"),
        "currency": ("Currency", "deal_currency_code"),
        "close_date": ("Close Date", "closedate"),
        "owner": ("Deal owner", "hubspot_owner_id"),
        "account_id": ("Associated Company IDs (Primary)", "Associated Company IDs", "Associated Company ID"),
        "lost_reason": ("Closed Lost Reason", "closed_lost_reason"),
        "won_reason": ("Closed Won Reason", "closed_won_reason"),
        "description": ("Deal Description", "description"),
        "next_step": ("Next step", "hs_next_step"),
        "created_at": ("Create Date", "createdate"),
        "modified_at": ("Last Modified Date", "hs_lastmodifieddate"),
        "last_activity_at": ("Last Activity Date", "notes_last_updated"),
        "last_contacted_at": ("Last Contacted", "notes_last_contacted"),
        "next_activity_at": ("Next Activity Date", "notes_next_activity_date"),
        "closed_at": ("Closed Date", "hs_closed_date"),
        "is_closed": ("Is Deal Closed?", "Is Closed", "hs_is_closed"),
        "is_won": ("Is Closed Won", "hs_is_closed_won"),
        "is_lost": ("Is closed lost", "hs_is_closed_lost"),
    },
    signature=("record id", "hs_object_id", "deal name", "dealname", "deal stage", "dealstage"),
)

PIPEDRIVE = Layout(
    name="pipedrive-csv",
    source="pipedrive",
    event_prefix="pd",
    columns={
        "id": _deal("ID"),
        "name": _deal("Title"),
        "stage": _deal("Stage"),
        "status": _deal("Status"),
        "amount": _deal("Value"),
        "currency": _deal("Currency", "Currency of Value"),
        "close_date": _deal("Expected close date"),
        "owner": _deal("Owner"),
        "owner_id": _deal("Owner ID", "Owner id"),
        "account_id": (*_deal("Organization ID"), "Organization - ID"),
        "lost_reason": _deal("Lost reason"),
        "created_at": _deal("Deal created", "Add time", "Created"),
        "modified_at": _deal("Update time", "Last updated"),
        "last_activity_at": _deal("Last activity date"),
        "next_activity_at": _deal("Next activity date"),
        "won_at": _deal("Won time"),
        "lost_at": _deal("Lost time"),
        "closed_at": _deal("Deal closed on", "Close time"),
    },
    signature=("deal - id", "deal - title", "deal - stage", "deal - value", "deal - status"),
)

SALESFORCE = Layout(
    name="salesforce-csv",
    source="salesforce",
    event_prefix="sf",
    columns={
        "id": ("Id", "Opportunity ID", "Opportunity Id", "Opportunity.Id"),
        "name": ("Name", "Opportunity Name"),
        "stage": ("StageName", "Stage"),
        "amount": ("Amount",),
        "currency": ("CurrencyIsoCode", "Opportunity Currency", "Amount Currency", "Currency"),
        "close_date": ("CloseDate", "Close Date"),
        "owner": ("Opportunity Owner", "Owner Name", "Owner.Name", "Owner Full Name"),
        "owner_id": ("OwnerId", "Owner ID", "Opportunity Owner ID"),
        "account_id": ("AccountId", "Account ID"),
        "lost_reason": (
            *LOST_REASON_FIELDS,
            "Loss Reason",
            "Lost Reason",
            "Reason Lost",
            "Closed Lost Reason",
        ),
        "description": ("Description",),
        "next_step": ("NextStep", "Next Step"),
        "created_at": ("CreatedDate", "Created Date"),
        "modified_at": ("LastModifiedDate", "Last Modified Date", "SystemModstamp"),
        "last_activity_at": ("LastActivityDate", "Last Activity"),
        "is_closed": ("IsClosed", "Closed"),
        "is_won": ("IsWon", "Won"),
        "is_deleted": ("IsDeleted", "Deleted"),
    },
    signature=("id", "opportunity id", "opportunity.id", "stagename", "stage", "opportunity name"),
)

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (HUBSPOT, PIPEDRIVE, SALESFORCE)}


def _fold(name: str) -> str:
    return " ".join(name.strip().lower().split())


def column_map(layout: Layout, header: Iterable[str]) -> tuple[ColumnMap, tuple[str, ...]]:
    """Which column holds each field, and the header names left unused."""
    names = list(header)
    index: dict[str, int] = {}
    for position, name in enumerate(names):
        index.setdefault(_fold(name), position)
    used: dict[str, int] = {}
    for field, aliases in layout.columns.items():
        for alias in aliases:
            found = index.get(_fold(alias))
            if found is not None and found not in used.values():
                used[field] = found
                break
    ignored = tuple(n for i, n in enumerate(names) if i not in used.values() and n.strip())
    return tuple(used.items()), ignored


def detect_layout(header: Iterable[str]) -> Layout | None:
    """The vendor layout whose id column and at least one more of its telling columns the header holds."""
    folded = {_fold(n) for n in header}
    for layout in (PIPEDRIVE, HUBSPOT, SALESFORCE):
        ids = {_fold(n) for n in layout.columns["id"]}
        if folded & ids and folded & (set(layout.signature) - ids):
            return layout
    return None
