"""Salesforce Outbound Messages (SOAP ``notifications``) read safely into plain values; the acknowledgement.

A body that is not UTF-8 and a document type declaration are refused before parsing: without a declaration
there are no entities to expand (billion laughs) and no external entities to fetch (XXE), so the standard
library's expat parser is safe to use. (UTF-8 first: in UTF-16 a declaration would not be seen by a search of the
bytes, and expat would read it.)
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from services.ingest.domain.outcome import MalformedBody

XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
MAX_NOTIFICATIONS = 100
_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
ACK = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
    b'<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack>'
    b"</notificationsResponse></soapenv:Body></soapenv:Envelope>"
)


@dataclass(frozen=True)
class Notification:
    id: str
    object_type: str
    fields: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboundMessage:
    organization_id: str
    notifications: tuple[Notification, ...]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _text(element: ET.Element | None) -> str | None:
    if element is None or element.get(XSI_NIL) == "true":
        return None
    return (element.text or "").strip() or None


def parse_outbound_message(body: bytes) -> OutboundMessage:
    """The organization and the notifications of a SOAP body, or ``MalformedBody``."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody("bad_utf8", f"the body is not UTF-8 (byte {exc.start})") from None
    if _DECLARATION.search(body):
        raise MalformedBody("xml_declaration", "document type declarations are not accepted")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise MalformedBody("not_xml", f"not well-formed XML ({exc.position[0]}:{exc.position[1]})") from None
    found = next((e for e in root.iter() if _local(e.tag) == "notifications"), None)
    if found is None:
        raise MalformedBody("not_outbound_message", "no notifications element")
    org = _text(next((c for c in found if _local(c.tag) == "OrganizationId"), None))
    if not org:
        raise MalformedBody("not_outbound_message", "no OrganizationId")
    notifications = [_notification(n) for n in found if _local(n.tag) == "Notification"]
    if len(notifications) > MAX_NOTIFICATIONS:
        raise MalformedBody("too_many_notifications", f"more than {MAX_NOTIFICATIONS} notifications")
    return OutboundMessage(organization_id=org, notifications=tuple(notifications))


def _notification(element: ET.Element) -> Notification:
    children = {_local(c.tag): c for c in element}
    sobject = children.get("sObject")
    notification_id = _text(children.get("Id"))
    if sobject is None or not notification_id:
        raise MalformedBody("not_outbound_message", "a notification without Id or sObject")
    object_type = (sobject.get(XSI_TYPE) or "").rpartition(":")[2]
    fields = {_local(c.tag): _text(c) for c in sobject}
    return Notification(id=notification_id[:200], object_type=object_type, fields=fields)
