from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from dealwatch.runplan import ConfigError, plan_run, write_secrets_file
from services.common.settings import Settings, load_settings

EVERY_SECRET = {
    "DEALWATCH_API_TOKEN",
    "DEALWATCH_GENERIC_SECRET",
    "DEALWATCH_HUBSPOT_CLIENT_SECRET",
    "DEALWATCH_PIPEDRIVE_USER",
    "DEALWATCH_PIPEDRIVE_PASSWORD",
    "DEALWATCH_SALESFORCE_SECRET",
}


def test_a_newcomer_without_any_configuration_gets_every_secret_generated() -> None:
    plan = plan_run(load_settings(), 8080)

    assert set(plan.generated) == EVERY_SECRET
    assert all(plan.generated.values())


def test_the_generated_generic_secret_is_a_standard_webhooks_secret() -> None:
    secret = plan_run(load_settings(), 8080).generated["DEALWATCH_GENERIC_SECRET"]

    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32


def test_every_run_generates_new_secrets() -> None:
    first = plan_run(load_settings(), 8080).generated
    second = plan_run(load_settings(), 8080).generated

    assert first["DEALWATCH_API_TOKEN"] != second["DEALWATCH_API_TOKEN"]
    assert first["DEALWATCH_GENERIC_SECRET"] != second["DEALWATCH_GENERIC_SECRET"]


def test_configured_secrets_are_used_and_not_generated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEALWATCH_API_TOKEN", "my-token")
    monkeypatch.setenv("DEALWATCH_GENERIC_SECRET", "whsec_" + base64.b64encode(b"k" * 32).decode())

    plan = plan_run(load_settings(), 8080)

    assert "DEALWATCH_API_TOKEN" not in plan.generated
    assert "DEALWATCH_GENERIC_SECRET" not in plan.generated
    assert plan.secret("api_token") == "my-token"


def test_a_configured_broker_without_secrets_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEALWATCH_KAFKA_BOOTSTRAP", "kafka:9092")

    with pytest.raises(ConfigError) as refused:
        plan_run(load_settings(), 8080)

    assert "DEALWATCH_API_TOKEN" in str(refused.value)
    assert "DEALWATCH_GENERIC_SECRET" in str(refused.value)


def test_a_configured_broker_without_a_webhook_secret_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEALWATCH_KAFKA_BOOTSTRAP", "kafka:9092")
    monkeypatch.setenv("DEALWATCH_API_TOKEN", "my-token")

    with pytest.raises(ConfigError, match="webhook secret"):
        plan_run(load_settings(), 8080)


def test_a_configured_broker_with_a_token_and_one_source_secret_starts_without_generating(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEALWATCH_KAFKA_BOOTSTRAP", "kafka:9092")
    monkeypatch.setenv("DEALWATCH_API_TOKEN", "my-token")
    monkeypatch.setenv("DEALWATCH_SALESFORCE_SECRET", "sf-secret")

    plan = plan_run(load_settings(), 8080)

    assert plan.generated == {}


def child_env(settings: Settings, demo: bool = False, base: dict[str, str] | None = None) -> dict[str, str]:
    plan = plan_run(settings, 9123)
    return plan.child_environment(base or {}, "127.0.0.1:9999", Path("/tmp/metrics"), demo)


def test_children_get_the_broker_the_port_the_metrics_directory_and_the_generated_secrets() -> None:
    env = child_env(load_settings())

    assert env["DEALWATCH_KAFKA_BOOTSTRAP"] == "127.0.0.1:9999"
    assert env["DEALWATCH_HTTP_PORT"] == "9123"
    assert env["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/metrics"
    assert set(env) >= EVERY_SECRET


def test_children_of_the_embedded_broker_do_not_use_idempotent_producers() -> None:
    env = child_env(load_settings(), base={"DEALWATCH_KAFKA_IDEMPOTENCE": "true"})

    assert env["DEALWATCH_KAFKA_IDEMPOTENCE"] == "false"


def test_children_keep_the_rest_of_the_parents_environment_but_not_a_metrics_port() -> None:
    env = child_env(load_settings(), base={"DEALWATCH_LOG_LEVEL": "DEBUG", "DEALWATCH_METRICS_PORT": "9100"})

    assert env["DEALWATCH_LOG_LEVEL"] == "DEBUG"
    assert "DEALWATCH_METRICS_PORT" not in env


def test_the_demo_shortens_the_quiet_scan_interval() -> None:
    assert child_env(load_settings(), demo=True)["DEALWATCH_QUIET_SCAN_INTERVAL"] == "5"
    assert "DEALWATCH_QUIET_SCAN_INTERVAL" not in child_env(load_settings(), demo=False)


def test_the_demo_keeps_a_quiet_scan_interval_the_user_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEALWATCH_QUIET_SCAN_INTERVAL", "30")

    env = child_env(load_settings(), demo=True, base={"DEALWATCH_QUIET_SCAN_INTERVAL": "30"})

    assert env["DEALWATCH_QUIET_SCAN_INTERVAL"] == "30"


def test_the_demo_keeps_a_quiet_scan_interval_set_in_the_toml_file(tmp_path: Path) -> None:
    (tmp_path / "dealwatch.toml").write_text("quiet_scan_interval = 30\n")

    env = child_env(load_settings(), demo=True)

    assert "DEALWATCH_QUIET_SCAN_INTERVAL" not in env


def test_the_secrets_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "var" / "dev-secrets.env"

    write_secrets_file(path, {"DEALWATCH_API_TOKEN": "t0k3n"})

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "DEALWATCH_API_TOKEN=t0k3n" in path.read_text().splitlines()
