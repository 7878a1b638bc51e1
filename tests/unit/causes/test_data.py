"""The lexicon and rules live in data files a team can extend; loading checks them."""

from __future__ import annotations

import re
import shutil
import unicodedata
from pathlib import Path

import pytest

from services.detector.domain.causes import CAUSES, Lexicon, Rules
from services.detector.domain.causes.lexicon import DATA_DIR
from services.detector.domain.causes.text import _PUNCT, _UNSTABLE, expand, prepare


def test_the_packaged_data_loads_for_both_languages() -> None:
    lexicon = Lexicon.load()
    assert lexicon.size > 1000
    assert {p.name for p in DATA_DIR.glob("causes_lexicon.*.toml")} >= {
        "causes_lexicon.ja.toml",
        "causes_lexicon.en.toml",
    }


def test_every_rule_names_a_contract_cause() -> None:
    rules = Rules.load()
    assert rules.rules
    assert {r.cause for r in rules.rules} <= set(CAUSES) - {"unknown"}
    assert set(rules.priority) == set(CAUSES) - {"unknown"}


def test_a_team_can_add_a_language_by_dropping_in_a_file(tmp_path: Path) -> None:
    for f in DATA_DIR.glob("causes_*.toml"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "causes_lexicon.de.toml").write_text(
        'language = "de"\n[[terms]]\ncause = "budget"\nweight = 2.0\npatterns = ["kein budget", "haushaltssperre"]\n',
        encoding="utf-8",
    )
    lexicon = Lexicon.load(tmp_path)
    found = lexicon.extract(
        "Leider Haushaltssperre bis März", event_id="e", at=0.0, direction="internal", kind="note"
    )
    assert found[0].cause == "budget"


def test_a_data_file_with_an_unknown_cause_is_refused(tmp_path: Path) -> None:
    (tmp_path / "causes_lexicon.xx.toml").write_text(
        'language = "xx"\n[[terms]]\ncause = "bad_luck"\npatterns = ["oops"]\n', encoding="utf-8"
    )
    with pytest.raises(ValueError, match="bad_luck"):
        Lexicon.load(tmp_path)


@pytest.mark.parametrize("setting", ["kind_factor = { note = nan }", "cap = -1.0", "max_per_text = 0"])
def test_extract_settings_that_are_not_finite_or_are_negative_are_refused(
    tmp_path: Path, setting: str
) -> None:
    shutil.copy(DATA_DIR / "causes_lexicon.en.toml", tmp_path)
    (tmp_path / "causes_rules.toml").write_text(f"[extract]\n{setting}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"\[extract\]"):
        Lexicon.load(tmp_path)


def test_braces_give_every_alternative_including_the_empty_one() -> None:
    assert sorted(expand("予算{が,は,}不足")) == sorted(["予算が不足", "予算は不足", "予算不足"])
    assert expand("plain") == ["plain"]


def test_normalisation_unifies_width_case_quotes_and_word_hyphens() -> None:
    shown, folded = prepare("ＤＩＤＮ’Ｔ  follow-up ﾃｽﾄ")
    assert folded == "didn't follow up テスト"
    assert len(shown) == len(folded)


def _second_of_a_composition() -> set[str]:
    """Every character that canonical composition can join onto the one before it."""
    second = {chr(c) for c in range(0x1161, 0x1176)} | {chr(c) for c in range(0x11A8, 0x11C3)}  # Hangul V, T
    for code in range(0x110000):
        parts = unicodedata.decomposition(chr(code)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            second.add(chr(int(parts[1], 16)))
    return second


def test_text_without_unstable_characters_needs_no_normalising() -> None:
    """``prepare`` skips NFKC and the punctuation map for a text ``_UNSTABLE`` finds nothing in: every character
    it lets through must be one NFKC leaves alone and never joins to a neighbour, and the map changes none of
    them but ASCII ones (which ``prepare`` still maps)."""
    second = _second_of_a_composition()
    stable = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and not _UNSTABLE.match(chr(c))]
    assert len(stable) > 20_000  # kana and the common ideographs among them
    for ch in stable:
        decomposed = unicodedata.normalize("NFD", ch)
        assert unicodedata.normalize("NFKC", ch) == ch, hex(ord(ch))
        assert unicodedata.combining(ch) == 0 and ch not in second and decomposed[0] not in second, hex(
            ord(ch)
        )
        assert ord(ch) < 128 or ord(ch) not in _PUNCT, hex(ord(ch))


@pytest.mark.parametrize(
    "text",
    [
        "先方の予算が凍結され、今期の導入は難しいとのこと。",
        "か\u3099ない",  # a voiced mark to join: NFKC makes it が
        "予算・稟議",  # the middle dot becomes a space
        "ＰｏＣ／検証_中",
        "“No budget”—先方",
    ],
)
def test_the_shortcut_gives_what_normalising_gives(text: str) -> None:
    slow = " ".join(
        re.sub(r"(?<=\w)-(?=\w)", " ", unicodedata.normalize("NFKC", text).translate(_PUNCT)).split()
    )
    assert prepare(text)[1] == slow.casefold()
