from __future__ import annotations

import pytest
from click.testing import CliRunner

from dealwatch.cli import cli
from dealwatch.workers import ROLES


@pytest.mark.parametrize("command", [[], ["up"], ["worker"], ["init"], ["topics"]])
def test_every_command_explains_itself_with_help(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])

    assert result.exit_code == 0
    assert "Usage: " in result.output
    assert len(result.output.splitlines()) > 5


def test_the_worker_help_lists_every_role() -> None:
    output = CliRunner().invoke(cli, ["worker", "--help"]).output

    assert all(role in output for role in ROLES)


def test_an_unknown_worker_role_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["worker", "billing"])

    assert result.exit_code == 2
    assert "billing" in result.output


def test_up_refuses_to_start_without_secrets_when_a_broker_is_configured() -> None:
    result = CliRunner().invoke(cli, ["up"], env={"DEALWATCH_KAFKA_BOOTSTRAP": "127.0.0.1:1"})

    assert result.exit_code == 1
    assert "DEALWATCH_API_TOKEN" in result.output
    assert "Traceback" not in result.output


def test_an_invalid_setting_is_reported_without_a_traceback() -> None:
    result = CliRunner().invoke(cli, ["up"], env={"DEALWATCH_HTTP_PORT": "not-a-port"})

    assert result.exit_code == 1
    assert "invalid configuration" in result.output
    assert "http_port" in result.output


def test_init_needs_a_configured_broker() -> None:
    result = CliRunner().invoke(cli, ["init"])

    assert result.exit_code == 1
    assert "DEALWATCH_KAFKA_BOOTSTRAP" in result.output


def test_topics_lists_the_contracts_topics_with_the_configured_prefix() -> None:
    result = CliRunner().invoke(cli, ["topics"], env={"DEALWATCH_TOPIC_PREFIX": "acme."})

    assert result.exit_code == 0
    for topic in (
        "crm.deal-changes.v1",
        "crm.deal-changes.dlq.v1",
        "deals.interruptions.v1",
        "tasks.recovery-tasks.v1",
    ):
        assert f"acme.{topic}" in result.output
