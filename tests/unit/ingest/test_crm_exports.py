"""CRM deal exports (HubSpot, Pipedrive, Salesforce CSV) read into the events that lead to each deal."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import DealChanged
from services.ingest.bulk.cells import BadCell, read_amount, read_date, read_id, read_instant, salesforce_id18
from services.ingest.bulk.rows import (
    BadHeader,
    Expanded,
    Rejected,
    Rules,
    Skipped,
    csv_records,
    normalize_records,
    read_csv_header,
)
from services.ingest.bulk.snapshots import OWNER_NAME_SKIPPED, ExportOptions

EXPORTS = Path(__file__).parent / "exports"
NOW = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
TOKYO = ExportOptions(timezone="Asia/Tokyo")
JST = timezone(timedelta(hours=9))


def read_export(
    text: str, options: ExportOptions = TOKYO, wanted: str = "csv"
) -> tuple[str, list[Expanded | Rejected | Skipped]]:
    header, records = csv_records(io.StringIO(text, newline=""), wanted)
    assert header.layout is not None
    rules = Rules(
        header.layout.source,
        NOW,
        32,
        header.names,
        layout=header.layout.name,
        columns=header.columns,
        options=options,
    )
    outcomes = normalize_records(list(records), rules)
    assert all(isinstance(o, Expanded | Rejected | Skipped) for o in outcomes)
    return header.layout.name, outcomes  # type: ignore[return-value]


def sample(name: str) -> str:
    return (EXPORTS / name).read_text(encoding="utf-8-sig")


def events_of(outcomes: list[Any]) -> list[DealChanged]:
    return [
        DealChanged.model_validate_json(value)
        for o in outcomes
        if isinstance(o, Expanded)
        for _key, value in o.events
    ]


def rejected(outcomes: list[Any]) -> list[tuple[int, str]]:
    return [(o.line, o.reason) for o in outcomes if isinstance(o, Rejected)]


def by_deal(events: list[DealChanged]) -> dict[str, list[DealChanged]]:
    out: dict[str, list[DealChanged]] = {}
    for e in events:
        out.setdefault(e.deal_id, []).append(e)
    return out


def test_a_hubspot_deals_export_gives_each_deal_its_creation_activity_and_current_state() -> None:
    layout, outcomes = read_export(sample("hubspot-deals.csv"))

    assert layout == "hubspot-csv"
    deals = by_deal(events_of(outcomes))
    northwind = deals["18273645001"]
    assert [(e.type, e.occurred_at) for e in northwind] == [
        ("deal.created", datetime(2026, 9, 1, 10, 15, tzinfo=JST)),
        ("activity.logged", datetime(2026, 10, 28, 17, 40, tzinfo=JST)),
        ("activity.logged", datetime(2026, 10, 28, 17, 40, tzinfo=JST)),
        ("activity.logged", datetime(2026, 10, 28, 17, 40, tzinfo=JST)),
        ("deal.updated", datetime(2026, 10, 28, 17, 40, tzinfo=JST)),
    ]
    assert all(e.key == "hubspot:18273645001" and e.source == "hubspot" for e in northwind)
    state = northwind[-1].deal
    assert (state.stage, state.status, state.amount, state.currency) == (
        "presentationscheduled",  # the label, as the internal id the webhooks send
        "open",
        1_200_000,
        "JPY",
    )
    assert (state.close_date, state.owner_id, state.account_id) == (date(2026, 12, 20), "8812001", "9001")
    booked = northwind[-1].activity
    assert booked is not None and booked.scheduled_at == datetime(2026, 11, 10, 14, 0, tzinfo=JST)
    contacted, _last_activity, note = northwind[1:4]
    assert contacted.activity is not None and (contacted.activity.kind, contacted.activity.direction) == (
        "call",
        "outbound",
    )
    assert note.activity is not None and "競合A社" in (note.activity.text or "")
    lost = deals["18273645002"][-1].deal
    assert (lost.stage, lost.status, lost.lost_reason) == (
        "closedlost",
        "lost",
        "Chose a competitor (A社) on price",
    )
    assert deals["18273645003"][-1].deal.status == "won"
    assert rejected(outcomes) == [(5, "bad_date"), (6, "missing_id"), (7, "no_date")]


def test_a_pipedrive_export_reads_status_value_and_dates_and_leaves_out_owner_names() -> None:
    layout, outcomes = read_export(sample("pipedrive-deals.csv"))

    assert layout == "pipedrive-csv"
    deals = by_deal(events_of(outcomes))
    assert sorted(deals) == ["1201", "1202", "1203"]
    contoso = deals["1202"][-1]
    assert (contoso.type, contoso.occurred_at) == ("deal.updated", datetime(2026, 10, 20, 11, 5, tzinfo=JST))
    assert (contoso.deal.status, contoso.deal.amount, contoso.deal.currency) == ("lost", 480_000.5, "USD")
    assert (contoso.deal.lost_reason, contoso.deal.account_id) == ("予算凍結のため見送り", "78")
    assert all(e.deal.owner_id is None for e in events_of(outcomes))
    notes = [n for o in outcomes if isinstance(o, Expanded) for n in o.notes]
    assert notes == [OWNER_NAME_SKIPPED] * 3
    assert rejected(outcomes) == [(5, "bad_amount"), (6, "bad_value")]
    [bad_status] = [o for o in outcomes if isinstance(o, Rejected) and o.reason == "bad_value"]
    assert "Deal - Status" in bad_status.detail and bad_status.deal_key == "pipedrive:1205"


def test_owner_names_become_owner_ids_only_when_asked() -> None:
    _, outcomes = read_export(sample("pipedrive-deals.csv"), ExportOptions("Asia/Tokyo", owner_names=True))
    owners = {e.deal_id: e.deal.owner_id for e in events_of(outcomes) if e.type == "deal.updated"}
    assert owners == {"1201": "佐藤 花子", "1202": "Ken Ito", "1203": "Ken Ito"}
    assert not [n for o in outcomes if isinstance(o, Expanded) for n in o.notes]


def test_a_salesforce_report_and_a_data_loader_export_give_the_same_18_character_deal_keys() -> None:
    _, report = read_export(sample("salesforce-opportunities-report.csv"))
    _, loader = read_export(sample("salesforce-dataloader.csv"))

    from_report, from_loader = by_deal(events_of(report)), by_deal(events_of(loader))
    assert "0065g00000AbCdEAAV" in from_report and "0065g00000AbCdEAAV" in from_loader
    assert {e.key for e in from_report["0065g00000fGHIjAAO"]} == {"salesforce:0065g00000fGHIjAAO"}
    assert from_report["0065g00000fGHIjAAO"][-1].deal.status == "lost"
    assert from_report["0065g00000KlmnOAAR"][-1].deal.owner_id == "0055g00000vwxyZAAQ"
    assert from_loader["0065g00000fGHIjAAO"][-1].deal.lost_reason == "Lost to competitor on price"
    assert from_loader["0065g00000ZzZzZAAV"][-1].type == "deal.deleted"
    amount = from_report["0065g00000AbCdEAAV"][-1].deal
    assert (amount.amount, amount.currency, amount.close_date) == (1_200_000, "JPY", date(2026, 12, 20))
    # The last activity date is the same fact in both files, so the same event id.
    assert {e.event_id for e in from_report["0065g00000AbCdEAAV"] if e.type == "activity.logged"} & {
        e.event_id for e in from_loader["0065g00000AbCdEAAV"] if e.type == "activity.logged"
    }


def test_a_salesforce_reports_footer_is_skipped_and_day_first_dates_need_the_option() -> None:
    _, outcomes = read_export(sample("salesforce-opportunities-report.csv"))
    assert [o.reason for o in outcomes if isinstance(o, Skipped)] == ["report_footer"] * 5
    assert rejected(outcomes) == [(5, "bad_date")]

    _, day_first = read_export(sample("salesforce-opportunities-report.csv"), ExportOptions(day_first=True))
    # 31/12/2026 is read, 8/1/2026 is 8 January, and the month-first dates of the other rows are refused.
    [tailspin] = by_deal(events_of(day_first)).values()
    assert tailspin[-1].deal.close_date == date(2026, 12, 31)
    assert tailspin[0].occurred_at.date() == date(2026, 1, 8)
    assert rejected(day_first) == [(2, "bad_date"), (3, "bad_date"), (4, "bad_date")]


def test_importing_the_same_export_twice_gives_the_same_event_ids_and_a_change_only_a_new_state() -> None:
    text = sample("hubspot-deals.csv")
    first = events_of(read_export(text)[1])
    again = events_of(read_export(text)[1])
    changed = events_of(read_export(text.replace('"1,200,000"', '"1,000,000"'))[1])

    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert len({e.event_id for e in first}) == len(first)
    different = {e.event_id for e in changed} - {e.event_id for e in first}
    assert [e for e in changed if e.event_id in different] == [
        e for e in changed if e.deal_id == "18273645001" and e.type == "deal.updated"
    ]


def test_a_deal_with_only_a_creation_date_is_one_created_event_with_its_state() -> None:
    text = '"Record ID","Deal Name","Deal Stage","Create Date"\n"77","Solo","Contract Sent","2026-10-01"\n'
    [only] = events_of(read_export(text)[1])
    assert (only.type, only.deal.stage, only.deal.status) == ("deal.created", "contractsent", "open")
    assert only.occurred_at == datetime(2026, 10, 1, tzinfo=JST)


@pytest.mark.parametrize(
    ("header", "layout"),
    [
        (["Record ID", "Deal Name", "Amount"], "hubspot-csv"),
        (["hs_object_id", "dealname", "dealstage", "hubspot_owner_id"], "hubspot-csv"),
        (["Deal - ID", "Deal - Title", "Person - Name"], "pipedrive-csv"),
        (["Opportunity ID", "Opportunity Name", "Stage"], "salesforce-csv"),
        (["ID", "NAME", "STAGENAME", "CLOSEDATE"], "salesforce-csv"),
        (["event_id", "occurred_at", "type", "deal_id"], "generic-csv"),
    ],
)
def test_the_header_tells_the_layout(header: list[str], layout: str) -> None:
    assert read_csv_header(header).format == layout


@pytest.mark.parametrize(
    ("header", "wanted", "complaint"),
    [
        (["Name", "Email", "Phone"], "csv", "neither the generic event columns"),
        (["Deal Name", "Amount"], "hubspot-csv", "no deal id column for hubspot-csv"),
        (["event_id", "occurred_at", "type", "deal_id", "Deal Name"], "csv", "unknown column"),
    ],
)
def test_a_header_that_is_no_known_layout_stops_the_import(
    header: list[str], wanted: str, complaint: str
) -> None:
    with pytest.raises(BadHeader, match=complaint):
        read_csv_header(header, wanted)


def test_a_row_with_more_filled_cells_than_the_header_is_refused() -> None:
    text = '"Record ID","Deal Name","Create Date"\n"1","A","2026-10-01",""\n"2","B","2026-10-01","extra"\n'
    _, outcomes = read_export(text)
    assert rejected(outcomes) == [(3, "wrong_cell_count")]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("2026-10-28 17:40", datetime(2026, 10, 28, 17, 40, tzinfo=JST)),
        ("2026-10-28T08:40:00.000Z", datetime(2026, 10, 28, 8, 40, tzinfo=UTC)),
        ("2026-10-28T17:40:00+0900", datetime(2026, 10, 28, 8, 40, tzinfo=UTC)),
        ("2026/10/28 17:40:05", datetime(2026, 10, 28, 17, 40, 5, tzinfo=JST)),
        ("10/28/2026 5:40 PM", datetime(2026, 10, 28, 17, 40, tzinfo=JST)),
        ("10/28/2026 12:05 AM", datetime(2026, 10, 28, 0, 5, tzinfo=JST)),
        ("2026-10-28", datetime(2026, 10, 28, tzinfo=JST)),
        ("1793173200000", datetime(2026, 10, 28, 7, 40, tzinfo=UTC)),
    ],
)
def test_times_are_read_in_the_forms_exports_write_them(cell: str, expected: datetime) -> None:
    assert read_instant(cell, "c", JST) == expected


@pytest.mark.parametrize("cell", ["yesterday", "2026-02-30", "13/13/2026", "10/28/2026 13:00 PM", "28.10.26"])
def test_an_unreadable_time_is_a_bad_date(cell: str) -> None:
    with pytest.raises(BadCell, match="is not a date or time") as caught:
        read_instant(cell, "Close Date", JST)
    assert caught.value.reason == "bad_date"


def test_a_close_date_given_as_a_utc_time_is_the_date_in_the_export_zone() -> None:
    assert read_date("2026-12-19T16:00:00Z", "c", JST) == date(2026, 12, 20)


@pytest.mark.parametrize(
    ("cell", "amount", "currency"),
    [
        ("1,200,000", 1_200_000, None),
        ("JPY 1,200,000", 1_200_000, "JPY"),
        ("¥1,200,000", 1_200_000, None),
        ("$12,000.50", 12_000.5, None),
        ("1.200,50 EUR", 1_200.5, "EUR"),
        ("12,5", 12.5, None),
        ("(300)", -300, None),
        ("", None, None),
    ],
)
def test_amounts_are_read_with_their_separators_and_currency(
    cell: str, amount: float | None, currency: str | None
) -> None:
    assert read_amount(cell, "Amount") == (amount, currency)


@pytest.mark.parametrize("cell", ["lots", "1e400", "12-5", "USD"])
def test_an_unreadable_amount_is_a_bad_amount(cell: str) -> None:
    with pytest.raises(BadCell, match="is not an amount"):
        read_amount(cell, "Amount")


def test_salesforce_15_character_ids_gain_their_case_checksum() -> None:
    assert salesforce_id18("0015000000VALDt") == "0015000000VALDtAAP"
    assert salesforce_id18("0065g00000AbCdEAAV") == "0065g00000AbCdEAAV"
    assert salesforce_id18("D-1") == "D-1"


cells = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)


@settings(max_examples=300, deadline=None)
@given(st.lists(cells, min_size=0, max_size=9))
def test_any_row_of_an_export_is_events_or_a_reason_never_an_error(row: list[str]) -> None:
    header = [
        "Record ID",
        "Deal Name",
        "Deal Stage",
        "Amount",
        "Close Date",
        "Create Date",
        "Deal owner",
        "Last Activity Date",
    ]
    rules = Rules(
        "hubspot",
        NOW,
        32,
        tuple(header),
        layout="hubspot-csv",
        columns=read_csv_header(header).columns,
        options=TOKYO,
    )
    [outcome] = normalize_records([(2, row)], rules)
    assert isinstance(outcome, Expanded | Rejected)
    if isinstance(outcome, Expanded):
        deal_id = read_id(row[0]) or ""
        assert outcome.events and all(key == f"hubspot:{deal_id}".encode() for key, _ in outcome.events)
