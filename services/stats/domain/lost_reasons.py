"""What a CRM's lost reason says, as one of the contract's causes, to compare with the cause dealwatch detected.

A lost reason is usually a picklist value or a few words ("Price", "Lost to competitor", "予算不足"). The first
cause whose words appear in it wins; the order puts the more specific causes first ("competitor (price)" is a
competitor). A reason that names none of them is unknown, and a lost deal with an unknown reason neither agrees
nor disagrees.
"""

from __future__ import annotations

import unicodedata

_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "competitor",
        ("competitor", "competition", "rival", "lost to", "went with", "競合", "他社", "他社製品"),
    ),
    (
        "staff_change",
        (
            "champion left",
            "contact left",
            "staff change",
            "担当者変更",
            "担当変更",
            "退職",
            "異動",
            "担当交代",
        ),
    ),
    (
        "policy_change",
        (
            "policy",
            "strategy",
            "management change",
            "reorganization",
            "reorganisation",
            "方針",
            "経営判断",
            "戦略",
            "グループ標準",
        ),
    ),
    (
        "budget",
        (
            "budget",
            "price",
            "pricing",
            "too expensive",
            "cost",
            "予算",
            "価格",
            "金額",
            "値段",
            "費用",
            "高い",
        ),
    ),
    (
        "internal_resources",
        (
            "could not meet",
            "could not deliver",
            "resource",
            "capacity",
            "リソース",
            "人手",
            "納期",
            "対応できず",
        ),
    ),
    (
        "no_response",
        (
            "no response",
            "unresponsive",
            "went dark",
            "ghosted",
            "no reply",
            "連絡がつかない",
            "連絡が取れ",
            "音信不通",
            "返信なし",
            "応答なし",
        ),
    ),
    (
        "follow_up_lapsed",
        ("no follow", "lost touch", "dropped the ball", "フォロー不足", "フォロー漏れ", "放置"),
    ),
    (
        "needs_change",
        (
            "no longer needed",
            "requirement",
            "postponed",
            "cancelled",
            "canceled",
            "on hold",
            "no decision",
            "project stopped",
            "延期",
            "中止",
            "見送り",
            "要件",
            "ニーズ",
            "保留",
            "白紙",
        ),
    ),
    (
        "external",
        ("economy", "market", "regulation", "disaster", "pandemic", "景気", "市況", "規制", "災害", "震災"),
    ),
)


def stated_cause(lost_reason: str | None) -> str | None:
    """The cause a lost reason names, or None when it names none (or there is no reason)."""
    if not lost_reason:
        return None
    text = unicodedata.normalize("NFKC", lost_reason).casefold()
    for cause, words in _WORDS:
        if any(word in text for word in words):
            return cause
    return None
