"""Salesforce Change Data Capture events and Outbound Messages into DealChanged; safe XML."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.ingest.domain.outcome import InvalidEvent, MalformedBody
from services.ingest.domain.salesforce import normalize_salesforce
from services.ingest.domain.salesforce_soap import parse_outbound_message
from services.ingest.domain.signatures import AuthFailure, OrganizationAllowList, SharedSecretVerifier

NOW = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
OPP = "0065g00000AbCdEAAV"
LOST: dict[str, Any] = {
    "ChangeEventHeader": {
        "entityName": "Opportunity",
        "recordIds": [OPP],
        "changeType": "UPDATE",
        "transactionKey": "0002343d-9d90-e395-ed20-cf416ba652ad",
        "sequenceNumber": 1,
        "commitTimestamp": 1_790_000_000_000,
        "commitUser": "0055g000003XyZaAAK",
        "changedFields": ["StageName", "IsClosed", "Loss_Reason__c"],
        "nulledFields": [],
    },
    "StageName": "Closed Lost",
    "IsClosed": True,
    "IsWon": False,
    "Loss_Reason__c": "Competitor pricing",
}


def cdc(
    entity: str = "Opportunity", change: str = "UPDATE", records: list[str] | None = None, **values: Any
) -> dict[str, Any]:
    event = copy.deepcopy(LOST)
    event["ChangeEventHeader"].update(entityName=entity, changeType=change, recordIds=records or [OPP])
    if entity != "Opportunity":
        event = {"ChangeEventHeader": event["ChangeEventHeader"]}
    event.update(values)
    return event


def normalize(payload: Any) -> Any:
    return normalize_salesforce(payload, received_at=NOW, max_events=100)


def test_a_closed_lost_opportunity_change_is_a_lost_deal_with_its_reason() -> None:
    [change] = normalize(LOST).events
    assert (change.key, change.type) == (f"salesforce:{OPP}", "deal.updated")
    assert (change.deal.stage, change.deal.status, change.deal.lost_reason) == (
        "Closed Lost",
        "lost",
        "Competitor pricing",
    )
    assert change.event_id == "sf-0002343d-9d90-e395-ed20-cf416ba652ad-1"
    assert change.occurred_at == datetime.fromtimestamp(1_790_000_000, tz=UTC)


@pytest.mark.parametrize(
    "wrapped", [{"payload": LOST, "event": {"replayId": 42}}, {"data": {"payload": LOST}}]
)
def test_an_event_wrapped_as_a_relay_posts_it_reads_the_same(wrapped: dict[str, Any]) -> None:
    assert normalize(wrapped).events == normalize(LOST).events


def test_a_new_opportunity_is_created_with_its_fields() -> None:
    [change] = normalize(
        cdc(
            change="CREATE",
            Name="北辰精工 生産管理",
            StageName="Prospecting",
            Amount=18500000,
            CloseDate="2026-12-20",
            OwnerId="0055g000003XyZa",
            IsClosed=False,
            NextStep="Demo with 工場長",
        )
    ).events
    assert change.type == "deal.created"
    assert (change.deal.name, change.deal.status, change.deal.amount, change.deal.close_date) == (
        "北辰精工 生産管理",
        "open",
        18_500_000.0,
        date(2026, 12, 20),
    )
    assert change.activity.text == "Demo with 工場長"


def test_a_deletion_marks_the_deal_deleted() -> None:
    [change] = normalize(cdc(change="DELETE")).events
    assert (change.type, change.deal.status) == ("deal.deleted", "deleted")


def test_one_change_to_several_records_gives_one_event_per_deal_with_distinct_ids() -> None:
    batch = normalize(cdc(records=[OPP, "0065g00000ZzZzZAAV"]))
    assert [e.deal_id for e in batch.events] == [OPP, "0065g00000ZzZzZAAV"]
    assert len({e.event_id for e in batch.events}) == 2


def test_a_logged_call_on_an_opportunity_is_an_activity_of_that_deal() -> None:
    [change] = normalize(
        cdc(
            "Task",
            "CREATE",
            ["00T5g00000AbCdE"],
            WhatId=OPP,
            Subject="フォロー電話",
            Description="先方より折り返しあり",
            TaskSubtype="Call",
            Status="Completed",
            OwnerId="0055g000003XyZa",
        )
    ).events
    assert (change.type, change.deal_id) == ("activity.logged", OPP)
    assert (change.activity.kind, change.activity.direction, change.activity.done) == (
        "call",
        "inbound",
        True,
    )


def test_a_future_event_is_a_booked_meeting() -> None:
    [change] = normalize(
        cdc(
            "Event",
            "CREATE",
            ["00U5g00000AbCdE"],
            WhatId=OPP,
            Subject="Demo",
            StartDateTime="2026-10-01T01:00:00.000Z",
        )
    ).events
    assert (change.activity.kind, change.activity.scheduled_at) == (
        "meeting",
        datetime(2026, 10, 1, 1, 0, tzinfo=UTC),
    )


def test_a_new_contact_role_adds_the_contact_to_the_deal() -> None:
    [change] = normalize(
        cdc(
            "OpportunityContactRole",
            "CREATE",
            ["00K5g00000AbCdE"],
            OpportunityId=OPP,
            ContactId="0035g00000AbCdE",
            Role="Decision Maker",
        )
    ).events
    assert (change.type, change.deal_id) == ("contact.changed", OPP)
    assert (change.contact.id, change.contact.change, change.contact.decision_maker) == (
        "0035g00000AbCdE",
        "added",
        True,
    )


@pytest.mark.parametrize(
    "event",
    [
        cdc(change="GAP_UPDATE"),
        cdc(records=["006*"]),
        cdc("Account", "UPDATE", ["0015g00000AbCdE"], Name="x"),
        cdc("Task", "CREATE", ["00T5g00000AbCdE"], WhatId="0015g00000AbCdE"),
        cdc("OpportunityContactRole", "DELETE", ["00K5g00000AbCdE"]),
    ],
)
def test_changes_that_name_no_deal_are_acknowledged_and_not_published(event: dict[str, Any]) -> None:
    batch = normalize(event)
    assert (batch.events, batch.ignored) == ((), 1)


@pytest.mark.parametrize("event", [{"StageName": "x"}, cdc(CloseDate="soon"), {"ChangeEventHeader": {}}])
def test_an_event_salesforce_would_not_send_is_refused(event: dict[str, Any]) -> None:
    with pytest.raises(InvalidEvent):
        normalize(event)


SOAP = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>00D5g000004AbCdEAK</OrganizationId>
   <ActionId>04k5g0000008OAbAAM</ActionId>
   <SessionId xsi:nil="true"/>
   <Notification>
    <Id>04l5g00000AbCdEAAZ</Id>
    <sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>0065g00000AbCdEAAV</sf:Id>
     <sf:Amount>1200000.0</sf:Amount>
     <sf:CloseDate>2026-12-20</sf:CloseDate>
     <sf:IsClosed>false</sf:IsClosed>
     <sf:LastModifiedDate>2026-09-21T10:00:00.000Z</sf:LastModifiedDate>
     <sf:Name>北辰精工 生産管理</sf:Name>
     <sf:OwnerId>0055g000003XyZaAAK</sf:OwnerId>
     <sf:StageName>Proposal/Price Quote</sf:StageName>
     <sf:Description xsi:nil="true"/>
    </sObject>
   </Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>""".encode()


def test_an_outbound_message_is_read_into_its_organization_and_notifications() -> None:
    message = parse_outbound_message(SOAP)
    assert message.organization_id == "00D5g000004AbCdEAK"
    [notification] = message.notifications
    assert (notification.id, notification.object_type) == ("04l5g00000AbCdEAAZ", "Opportunity")
    assert notification.fields["Description"] is None


def test_an_outbound_opportunity_is_a_snapshot_update_keyed_by_its_notification() -> None:
    [change] = normalize(parse_outbound_message(SOAP)).events
    assert (change.type, change.event_id, change.deal_id) == ("deal.updated", "sf-om-04l5g00000AbCdEAAZ", OPP)
    assert (change.deal.status, change.deal.amount, change.deal.owner_id) == (
        "open",
        1_200_000.0,
        "0055g000003XyZaAAK",
    )
    assert change.occurred_at == datetime(2026, 9, 21, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><lolz>&lol;</lolz>', "xml_declaration"),
        (b'<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><x>&xxe;</x>', "xml_declaration"),
        (b"<notifications><OrganizationId>1</OrganizationId>", "not_xml"),
        (
            '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY e "e">]><notifications/>'.encode(
                "utf-16"
            ),
            "bad_utf8",  # a declaration in UTF-16 would escape a search of the bytes
        ),
        (b"<Envelope><Body/></Envelope>", "not_outbound_message"),
        (b"<notifications><Notification><Id>1</Id></Notification></notifications>", "not_outbound_message"),
    ],
)
def test_unsafe_or_foreign_xml_is_refused(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedBody) as caught:
        parse_outbound_message(body)
    assert caught.value.reason == reason


def test_an_organization_matches_in_its_15_and_18_character_forms() -> None:
    allowed = OrganizationAllowList.of(["00D5g000004AbCd"])
    allowed.verify("00D5g000004AbCdEAK")
    allowed.verify("00D5g000004AbCd")
    with pytest.raises(AuthFailure):
        allowed.verify("00D5g000004AbCe")
    with pytest.raises(AuthFailure):
        allowed.verify("00d5g000004abcd")


@pytest.mark.parametrize("given", [None, "", "wrong", "s3cret ", "s3cre"])
def test_a_wrong_or_missing_shared_secret_is_refused(given: str | None) -> None:
    verifier = SharedSecretVerifier(secret=b"s3cret")
    verifier.verify("s3cret")
    with pytest.raises(AuthFailure):
        verifier.verify(given)
