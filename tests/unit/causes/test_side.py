"""Whose person a staff change is about: our rep (ours) or the customer's person in charge (customer)."""

from __future__ import annotations

import pytest

from services.detector.domain.causes import Lexicon
from tests.unit.causes.conftest import extract

SIDED = [
    ("ours", "山田が10月1日付で福岡支店へ異動のため、佐々木に担当変更"),
    ("ours", "前任 山口 産休入りのため担当変更"),
    ("ours", "弊社の担当者が育休に入るため、本案件は小川が引き継ぎます"),
    ("ours", "Reassigning - Chris is leaving the company end of month"),
    ("ours", "Handover from Jess (left the company), need to reintroduce myself"),
    ("customer", "高橋さんが4月から別部署へ異動。後任未定とのこと"),
    ("customer", "担当の加藤主査が人事異動で税務課へ"),
    ("customer", "先方の部長が今月末で退職されるとのこと"),
    ("customer", "Laura Kim (our champion) left for another hospital"),
    ("customer", "Main contact Jake Morrison retired last week"),
]


@pytest.mark.parametrize(("side", "text"), SIDED, ids=[f"{s}-{i}" for i, (s, _) in enumerate(SIDED)])
def test_a_staff_change_tells_whose_person_changed(lexicon: Lexicon, side: str, text: str) -> None:
    found = extract(lexicon, text)
    assert found[0].cause == "staff_change"
    assert found[0].side == side


def test_a_reorganisation_on_our_side_is_a_staff_change_and_on_theirs_a_policy_change(
    lexicon: Lexicon,
) -> None:
    ours = extract(lexicon, "弊社の組織変更で担当エリアが変わった")
    theirs = extract(lexicon, "先方の組織再編で購買部門が本社に統合された")
    assert (ours[0].cause, ours[0].side) == ("staff_change", "ours")
    assert theirs[0].cause == "policy_change"


def test_a_staff_change_without_any_cue_leaves_the_side_open(lexicon: Lexicon) -> None:
    found = extract(lexicon, "退職")
    assert found[0].cause == "staff_change"
    assert found[0].side is None
