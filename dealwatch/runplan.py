"""What ``dealwatch up`` decides before it starts anything: secrets, and the environment of its children."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.common.broker import free_port
from services.common.settings import Settings

DEMO_QUIET_SCAN_INTERVAL = "5"

SECRET_VARIABLES: dict[str, str] = {
    "api_token": "DEALWATCH_API_TOKEN",
    "generic_secret": "DEALWATCH_GENERIC_SECRET",
    "hubspot_client_secret": "DEALWATCH_HUBSPOT_CLIENT_SECRET",
    "pipedrive_user": "DEALWATCH_PIPEDRIVE_USER",
    "pipedrive_password": "DEALWATCH_PIPEDRIVE_PASSWORD",
    "salesforce_secret": "DEALWATCH_SALESFORCE_SECRET",
}
"""Settings field -> the contract's environment variable (CONTRACT.md §5)."""

SOURCE_SECRETS = {
    "generic": ("generic_secret",),
    "hubspot": ("hubspot_client_secret",),
    "pipedrive": ("pipedrive_user", "pipedrive_password"),
    "salesforce": ("salesforce_secret",),
}


class ConfigError(Exception):
    """The configuration cannot run; the message says what to set."""


def new_secret(field_name: str) -> str:
    if field_name == "generic_secret":
        return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    if field_name == "pipedrive_user":
        return "dealwatch"
    return secrets.token_urlsafe(32)


def unset_secrets(settings: Settings) -> list[str]:
    """The secret fields that neither the environment nor the TOML file set."""
    return [name for name in SECRET_VARIABLES if getattr(settings, name) in (None, "")]


def check_production_secrets(settings: Settings) -> None:
    """With a configured broker (production-like) nothing is generated: an API token and at least one
    webhook source's secret must be configured."""
    unset = set(unset_secrets(settings))
    problems = []
    if "api_token" in unset and not settings.api_tokens:
        problems.append("an API token (DEALWATCH_API_TOKEN, or api_tokens in dealwatch.toml)")
    if all(set(fields) & unset for fields in SOURCE_SECRETS.values()):
        problems.append(
            "a webhook secret for at least one CRM (DEALWATCH_GENERIC_SECRET, "
            "DEALWATCH_HUBSPOT_CLIENT_SECRET, "
            "DEALWATCH_PIPEDRIVE_USER + DEALWATCH_PIPEDRIVE_PASSWORD or DEALWATCH_SALESFORCE_SECRET)"
        )
    if problems:
        raise ConfigError(
            "a broker is configured (DEALWATCH_KAFKA_BOOTSTRAP), so dealwatch runs as in production and "
            "generates no secrets. Set " + " and ".join(problems) + "."
        )


@dataclass
class RunPlan:
    """Everything ``up`` passes to its children, and what it tells the user about it."""

    settings: Settings
    port: int
    generated: dict[str, str] = field(default_factory=dict)
    """Environment variable -> secret generated for this run."""

    def secret(self, field_name: str) -> str | None:
        generated = self.generated.get(SECRET_VARIABLES[field_name])
        if generated is not None:
            return generated
        value = getattr(self.settings, field_name)
        if value is None:
            return None
        return str(value.get_secret_value() if hasattr(value, "get_secret_value") else value)

    def child_environment(
        self, base: Mapping[str, str], bootstrap: str, metrics_dir: Path | None, demo: bool
    ) -> dict[str, str]:
        env = dict(base)
        env.update(self.generated)
        env["DEALWATCH_KAFKA_BOOTSTRAP"] = bootstrap
        if self.settings.embedded_broker:
            env["DEALWATCH_KAFKA_IDEMPOTENCE"] = "false"  # the embedded broker has no idempotent producers
        env["DEALWATCH_HTTP_PORT"] = str(self.port)
        # Under `up` every worker's metrics go out through the one /metrics of the web child.
        env.pop("DEALWATCH_METRICS_PORT", None)
        if metrics_dir is not None:
            env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        if demo and "quiet_scan_interval" not in self.settings.model_fields_set:
            env["DEALWATCH_QUIET_SCAN_INTERVAL"] = DEMO_QUIET_SCAN_INTERVAL
        if env.get("DEALWATCH_CONFIG"):
            env["DEALWATCH_CONFIG"] = str(Path(env["DEALWATCH_CONFIG"]).resolve())
        # The detector serves each deal's tracked state on loopback; the API asks it for GET /api/deals/{id}.
        web_port = self.settings.web_port or free_port(self.settings.web_host)
        env["DEALWATCH_WEB_PORT"] = str(web_port)
        env.setdefault("DEALWATCH_DETECTOR_URL", f"http://{self.settings.web_host}:{web_port}")
        env["PYTHONUNBUFFERED"] = "1"
        return env


def plan_run(settings: Settings, port: int) -> RunPlan:
    """Secrets for this run: generated where unset (embedded broker), or an error (configured broker)."""
    if not settings.embedded_broker:
        check_production_secrets(settings)
        return RunPlan(settings, port)
    generated = {SECRET_VARIABLES[name]: new_secret(name) for name in unset_secrets(settings)}
    return RunPlan(settings, port, generated)


def write_secrets_file(path: Path, values: Mapping[str, str]) -> None:
    """The generated secrets as ``KEY=value`` lines, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(
            "# Generated by `dealwatch up` for one run: a local development default, not for production.\n"
        )
        for key, value in sorted(values.items()):
            out.write(f"{key}={value}\n")
    os.chmod(path, 0o600)
