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
