"""Who an activity went between, for CRMs that do not say (Pipedrive, HubSpot).

- A meeting logged on a deal is ``outbound``: our rep met the customer.
- A call or an email is ``outbound`` unless its words say the customer reached us: "先方より見積依頼あり",
  "田中様から電話あり", "replied", "called us", or a quoted customer question ("Marcus: can you send ...?").
  Negations ("返信なし", "no reply yet", "折り返し依頼") keep it outbound.
- A note is ``internal``: it is our rep's write-up, even when it reports what the customer said ("Sarah says
  budget is frozen"); those words stay evidence for causes, but the note is not a contact. Only a note that
  records the customer contacting us ("先方より電話あり", "customer called") is ``inbound``.
- A task is ``internal``.
"""

from __future__ import annotations

import re

from schemas.events import ActivityKind, Direction

_WHO = r"(先方|お客様|顧客|客先|様|さん)"
_CONTACT = r"(電話|連絡|問い?合わ?せ|メール|返信|返事|回答|依頼|相談|見積依頼)"
_NEGATED = re.compile(
    r"(返信|返事|回答|連絡|応答)(が)?(なし|無し|ない|ありません)|折り返し(依頼|待ち)|"
    r"\b(no|without)\s+(reply|response|answer)\b|\bnot\s+(replied|responded|answered)\b|"
    r"\b(hasn't|haven't|didn't|did not|has not|have not)\s+(replied|responded|answered|got(ten)? back)\b",
    re.IGNORECASE,
)
_INBOUND = re.compile(
    rf"{_WHO}(より|から)|(から|より)(の)?{_CONTACT}(が)?(あり|有り|来|きた|届)|"
    r"\b(replied|responded|wrote back|got back to (us|me)|reached out|called (us|me)|emailed (us|me)|"
    r"inbound|incoming)\b|"
    r"^\s*[A-Z][\w.'-]{1,30}( [A-Z][\w.'-]{1,30})?\s*:\s+\S.*\?",
    re.IGNORECASE | re.MULTILINE,
)
_NOTE_INBOUND = re.compile(
    rf"{_WHO}(より|から)(の)?{_CONTACT}(が)?(あり|有り|来|きた|届)|"
    r"\b(customer|client|they)\s+(called|emailed|replied|wrote back|reached out)\b",
    re.IGNORECASE,
)


def infer_direction(kind: ActivityKind, *texts: str | None) -> Direction:
    """The direction of an activity of ``kind`` whose subject and body are ``texts``."""
    joined = "\n".join(t for t in texts if t)
    if kind == "meeting":
        return "outbound"
    if kind in ("call", "email"):
        return "inbound" if _says(_INBOUND, joined) else "outbound"
    if kind == "note" and _says(_NOTE_INBOUND, joined):
        return "inbound"
    return "internal"


def _says(pattern: re.Pattern[str], text: str) -> bool:
    return bool(text) and pattern.search(text) is not None and _NEGATED.search(text) is None
