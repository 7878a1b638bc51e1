"""POST /webhooks/salesforce on the real broker: CDC JSON with the shared secret, Outbound Messages (SOAP)
from allowed organizations, acknowledged the way Salesforce expects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from schemas import DealChanged, Topics
from tests.helpers import compact

from .conftest import running, topic_values

pytestmark = pytest.mark.integration
SECRET = "salesforce-shared-secret-for-tests"
ORG = "00D5g000004AbCdEAK"
OPP = "0065g00000AbCdEAAV"
CDC: dict[str, Any] = {
    "ChangeEventHeader": {
        "entityName": "Opportunity",
        "recordIds": [OPP],
        "changeType": "UPDATE",
        "transactionKey": "tx-1",
        "sequenceNumber": 1,
        "commitTimestamp": 1_790_000_000_000,
        "changedFields": ["StageName"],
    },
    "StageName": "Closed Lost",
    "IsClosed": True,
    "IsWon": False,
}


def soap(org: str = ORG) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>
 <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
  <OrganizationId>{org}</OrganizationId><ActionId>04k5g0000008OAbAAM</ActionId>
  <Notification><Id>04l5g00000AbCdEAAZ</Id>
   <sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
    <sf:Id>{OPP}</sf:Id><sf:StageName>Negotiation/Review</sf:StageName><sf:IsClosed>false</sf:IsClosed>
   </sObject>
  </Notification>
 </notifications></soapenv:Body></soapenv:Envelope>""".encode()


XML = {"content-type": "text/xml; charset=utf-8"}


@pytest.fixture
async def salesforce(make_service: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with running(make_service(salesforce_secret=SECRET, salesforce_org_ids=[ORG[:15]])) as client:
        yield client


async def nothing_written(bootstrap: str, topics: Topics) -> bool:
    return not (
        await topic_values(bootstrap, topics.deal_changes)
        or await topic_values(bootstrap, topics.dead_letters)
    )


@pytest.mark.parametrize("auth", [{"x-dealwatch-secret": SECRET}, {"authorization": f"Bearer {SECRET}"}])
async def test_a_change_event_with_the_shared_secret_is_published(
    salesforce: httpx.AsyncClient, broker_bootstrap: str, topics: Topics, auth: dict[str, str]
) -> None:
    response = await salesforce.post(
        "/webhooks/salesforce", content=compact(CDC), headers={"content-type": "application/json", **auth}
    )
    assert response.status_code == 202
    [value] = await topic_values(broker_bootstrap, topics.deal_changes)
    change = DealChanged.model_validate_json(value)
    assert (change.key, change.deal.status) == (f"salesforce:{OPP}", "lost")


@pytest.mark.parametrize("auth", [{}, {"x-dealwatch-secret": "wrong"}, {"authorization": "Bearer wrong"}])
async def test_a_change_event_without_the_right_secret_gets_401_and_writes_nothing(
    salesforce: httpx.AsyncClient, broker_bootstrap: str, topics: Topics, auth: dict[str, str]
) -> None:
    response = await salesforce.post(
        "/webhooks/salesforce", content=compact(CDC), headers={"content-type": "application/json", **auth}
    )
    assert response.status_code == 401
    assert await nothing_written(broker_bootstrap, topics)


async def test_an_outbound_message_from_an_allowed_organization_is_acknowledged_and_published(
    salesforce: httpx.AsyncClient, broker_bootstrap: str, topics: Topics
) -> None:
    response = await salesforce.post("/webhooks/salesforce", content=soap(), headers=XML)
    assert response.status_code == 200
    assert b"<Ack>true</Ack>" in response.content
    [value] = await topic_values(broker_bootstrap, topics.deal_changes)
    assert DealChanged.model_validate_json(value).event_id == "sf-om-04l5g00000AbCdEAAZ"


@pytest.mark.parametrize(
    "body",
    [
        soap(org="00D5g000009ZzZzEAK"),
        b'<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><notifications>&xxe;</notifications>',
        b"<notifications><OrganizationId>",
    ],
    ids=["other-organization", "external-entity", "unreadable"],
)
async def test_an_outbound_message_that_cannot_be_authenticated_gets_401_and_writes_nothing(
    salesforce: httpx.AsyncClient, broker_bootstrap: str, topics: Topics, body: bytes
) -> None:
    response = await salesforce.post("/webhooks/salesforce", content=body, headers=XML)
    assert response.status_code == 401
    assert await nothing_written(broker_bootstrap, topics)


async def test_salesforce_without_a_secret_or_organizations_is_refused(make_service: Any) -> None:
    async with running(make_service()) as client:
        response = await client.post(
            "/webhooks/salesforce",
            content=compact(CDC),
            headers={"content-type": "application/json", "x-dealwatch-secret": "x"},
        )
    assert (response.status_code, response.json()["error"]) == (503, "source_not_configured")


async def test_xml_is_refused_on_the_json_only_endpoints(client: httpx.AsyncClient) -> None:
    response = await client.post("/webhooks/generic", content=soap(), headers=XML)
    assert response.status_code == 415
