"""Who an activity went between, inferred from its kind and its words."""

from __future__ import annotations

import pytest

from services.ingest.domain.direction import infer_direction


@pytest.mark.parametrize(
    ("kind", "texts", "direction"),
    [
        ("meeting", ("工場見学・ヒアリング",), "outbound"),
        ("meeting", ("先方より要望あり",), "outbound"),
        ("call", ("要件確認TEL", "加藤部長と電話"), "outbound"),
        ("call", ("渡辺様不在、折り返し依頼",), "outbound"),
        ("call", ("田中様から電話あり",), "inbound"),
        ("call", ("Incoming call from the CFO",), "inbound"),
        ("email", ("再提案メール", "返信なし"), "outbound"),
        ("email", ("Following up on the quote - no reply yet",), "outbound"),
        ("email", ("先方より見積依頼あり。来週提出予定",), "inbound"),
        ("email", ("Marcus: can you send the pilot pricing and a timeline?",), "inbound"),
        ("email", ("Dana replied with the signed NDA",), "inbound"),
        ("email", ("Dana has not replied to the NDA",), "outbound"),
        ("note", ("Sarah says budget is frozen until next fiscal year",), "internal"),
        ("note", ("鈴木課長より：競合A社からも値引き提案が来ており比較検討中とのこと",), "internal"),
        ("note", ("先方より電話あり。来週打合せ希望",), "inbound"),
        ("note", ("The customer called to ask for a new quote",), "inbound"),
        ("note", ("Customer hasn't replied; customer called? no",), "internal"),
        ("task", ("先方より連絡あり",), "internal"),
        ("call", (None, ""), "outbound"),
        ("note", (), "internal"),
    ],
)
def test_the_direction_follows_the_kind_and_the_words(
    kind: str, texts: tuple[str | None, ...], direction: str
) -> None:
    assert infer_direction(kind, *texts) == direction  # type: ignore[arg-type]
