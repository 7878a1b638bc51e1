from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from services.common.settings import Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[3] / "dealwatch.example.toml"


def test_the_example_configuration_loads_as_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEALWATCH_CONFIG", str(EXAMPLE))

    settings = load_settings()

    assert settings.quiet.by_stage["negotiation"] == 7
    assert settings.calendar.country == "JP"


def test_the_example_configuration_shows_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load_settings().model_dump()
    monkeypatch.setenv("DEALWATCH_CONFIG", str(EXAMPLE))

    assert load_settings().model_dump() == defaults


def test_every_key_of_the_example_configuration_is_a_setting() -> None:
    keys = set(tomllib.loads(EXAMPLE.read_text()))

    assert keys <= set(Settings.model_fields)


def test_settings_can_be_read_from_a_file_named_by_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    usual = tmp_path / "usual.toml"
    usual.write_text("[quiet]\ndefault_days = 7\n")
    other = tmp_path / "other.toml"
    other.write_text("[quiet]\ndefault_days = 30\n\n[stalled]\nclose_date_pushes = 5\n")
    monkeypatch.setenv("DEALWATCH_CONFIG", str(usual))
    monkeypatch.setenv("DEALWATCH_STALLED__CLOSE_DATE_PUSHES", "9")
    chosen = load_settings(config=other)
    assert chosen.quiet.default_days == 30
    assert chosen.stalled.close_date_pushes == 9  # the environment still applies over the file
    assert load_settings().quiet.default_days == 7  # and the usual file is read again after
    with pytest.raises(FileNotFoundError):
        load_settings(config=tmp_path / "missing.toml")
