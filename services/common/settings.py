"""Typed settings: one TOML file (``DEALWATCH_CONFIG``, default ``./dealwatch.toml`` if present) plus
``DEALWATCH_*`` environment overrides. Nothing reads settings at import time: call :func:`load_settings`."""

from __future__ import annotations

import base64
import binascii
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

Scope = Literal["read", "write", "admin"]


class QuietSettings(BaseModel):
    """Quiet thresholds in working days: ``default``, per stage, per account tier, or per ``"stage/tier"``."""

    default_days: float = 10
    by_stage: dict[str, float] = Field(
        default_factory=lambda: {
            "lead": 15.0,
            "qualification": 12.0,
            "proposal": 10.0,
            "negotiation": 7.0,
            "contract": 5.0,
        }
    )
    by_tier: dict[str, float] = Field(default_factory=lambda: {"key": 0.7, "standard": 1.0, "small": 1.5})
    """Multipliers on the stage threshold by account tier (key accounts get attention sooner)."""
    by_stage_tier: dict[str, float] = Field(default_factory=dict)
    """Exact overrides, keyed ``"stage/tier"``, in working days."""
    qualifying_kinds: list[str] = Field(default_factory=lambda: ["call", "meeting", "email", "note"])
    qualifying_directions: list[str] = Field(default_factory=lambda: ["inbound", "outbound"])
    grace_seconds: float = 10.0
    """Wall-clock settle time: no quiet verdict on a deal that received events within this many seconds,
    so that a history delivered in a burst (an import, a backlog) is judged whole."""


class CalendarSettings(BaseModel):
    country: str | None = "JP"
    """Public holidays of this country (ISO code) are not working days; empty or ``none`` for no holidays."""
    weekend: list[int] = Field(default_factory=lambda: [5, 6])
    """Weekday numbers (Monday = 0) that are not working days."""
    timezone: str = "Asia/Tokyo"
    extra_holidays: list[str] = Field(default_factory=list)


class StalledSettings(BaseModel):
    close_date_pushes: int = 2
    """Close date pushed this many times (or more) in an open deal is a stall."""
    close_date_slip_days: int = 45
    """...or pushed by this many calendar days in total."""
    amount_cut_share: float = 0.3
    """Amount cut by more than this share at once."""


class ApiToken(BaseModel):
    token: SecretStr
    scopes: list[Scope] = Field(default_factory=lambda: list[Scope](["read"]))
    rep: str | None = None
    """When set, the token sees and changes only this rep's tasks."""
    name: str = "token"


class Subscriber(BaseModel):
    """A receiver of every task message as a signed webhook (Standard Webhooks)."""

    url: str
    """Where to POST; ``http://`` or ``https://``. Deliveries are kept per URL, so each URL appears once."""
    secret: SecretStr
    """Standard Webhooks secret (``whsec_`` + base64) used to sign deliveries."""
    max_attempts: int = Field(default=5, ge=1)
    """Tries before the delivery is given up on and kept as a dead-letter record."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("a subscriber URL starts with http:// or https://")
        return value

    @field_validator("secret")
    @classmethod
    def _base64_secret(cls, value: SecretStr) -> SecretStr:
        key = value.get_secret_value().removeprefix("whsec_")
        try:
            decoded = base64.b64decode(key, validate=True)
        except binascii.Error:
            decoded = b""
        if not decoded:
            raise ValueError("a subscriber secret is whsec_ followed by base64")
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DEALWATCH_", env_nested_delimiter="__", extra="ignore", toml_file=None
    )

    # broker
    kafka_bootstrap: str | None = None
    """Bootstrap servers; none means the embedded broker (Tansu on loopback)."""
    kafka_idempotence: bool | None = None
    """Idempotent producer: on for a real Kafka; must be off for the embedded broker (None = decide by that)."""
    topic_prefix: str = ""
    topic_partitions: int = Field(default=3, ge=1, le=256)
    topic_replication: int = Field(default=1, ge=1)

    # database
    database_url: str = "sqlite:///var/dealwatch.db"

    # HTTP
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = 1_048_576
    http_head_timeout_seconds: float = Field(default=30.0, gt=0)
    """How long a connection may take to send a request's head (from opening, or from the previous answer); a
    head still unfinished then (a client trickling it, or one that never sends) closes the connection."""
    http_body_timeout_seconds: float = Field(default=30.0, gt=0)
    """How long a request's body may take to arrive in full after its head: a webhook's is answered 408 then, and
    any connection whose body is still coming a few seconds later is closed."""
    max_batch_events: int = 1000
    max_json_depth: int = 32
    broker_timeout_seconds: float = 2.0
    """How long a webhook waits for the broker's acknowledgement before answering 503."""
    ingest_max_in_flight: int = Field(default=1000, ge=1)
    """Webhook requests handled at once; more are answered 429 with Retry-After."""

    # secrets
    generic_secret: SecretStr | None = None
    hubspot_client_secret: SecretStr | None = None
    pipedrive_user: str | None = None
    pipedrive_password: SecretStr | None = None
    salesforce_secret: SecretStr | None = None
    salesforce_org_ids: list[str] = Field(default_factory=list)
    webhook_tolerance_seconds: int = 300
    hubspot_webhook_url: str | None = None
    """The public URL HubSpot posts to, when a proxy changes the URL this service sees (v3 signs the URL)."""
    api_token: SecretStr | None = None
    api_tokens: list[ApiToken] = Field(default_factory=list)

    # detection
    quiet_scan_interval: float = Field(default=60.0, gt=0)
    quiet: QuietSettings = Field(default_factory=QuietSettings)
    calendar: CalendarSettings = Field(default_factory=CalendarSettings)
    stalled: StalledSettings = Field(default_factory=StalledSettings)
    competitors: list[str] = Field(default_factory=list)
    language: Literal["ja", "en", "auto"] = "auto"

    # recovery
    subscribers: list[Subscriber] = Field(default_factory=list)
    managers: dict[str, str] = Field(default_factory=dict)
    """Rep id -> manager id, for handover approval and escalation; ``default`` for everyone else."""
    escalation_interval_seconds: float = Field(default=60.0, gt=0)
    """Seconds between the recovery worker's checks for overdue tasks."""
    subscriber_retry_base_seconds: float = Field(default=5.0, gt=0)
    """A failed webhook delivery is tried again after base * 2^(attempts - 1) seconds (capped)."""
    subscriber_retry_max_seconds: float = Field(default=3600.0, gt=0)
    subscriber_timeout_seconds: float = Field(default=10.0, gt=0)

    # operations
    log_level: str = "INFO"
    data_dir: Path = Path("var")
    web_host: str = "127.0.0.1"
    """Where a Faust worker's own web server binds (loopback unless configured)."""
    web_port: int | None = None
    """The Faust worker's own web server port; none (the default) disables it."""
    detector_url: str | None = None
    """Where the API asks the detector for a deal's tracked state (its web server, ``web_port``)."""
    metrics_port: int | None = None
    """A worker without HTTP serves ``/metrics`` on this port (on ``web_host``); none disables it."""
    lag_check_interval: float = Field(default=5.0, gt=0)
    """Seconds between the API's readings of topic end offsets and consumer group lag (``/metrics``)."""
    rebalance_timeout: float = 5.0
    session_timeout: float = 6.0
    heartbeat_interval: float = 1.0
    standby_replicas: int = 0
    detector_batch_size: int = 500
    fetch_max_wait_ms: int = Field(default=50, ge=1, le=5000)
    """How long a consumer's fetch may wait at the broker for new records: the most an event waits to be read
    when the broker does not wake waiting fetches (the embedded one); each idle consumer asks that often."""
    detector_state_cache: int = 20_000
    """How many recently seen deals the detector also keeps decoded in memory (0: none; each costs ~2 KB)."""
    stage_order: list[str] = Field(default_factory=list)
    """Pipeline stages in order, for 'stage moved backwards' (empty: a built-in order of common stage names)."""

    @field_validator("subscribers")
    @classmethod
    def _one_subscriber_per_url(cls, value: list[Subscriber]) -> list[Subscriber]:
        urls = [s.url for s in value]
        if len(set(urls)) != len(urls):
            raise ValueError("each subscriber URL appears once")
        return value

    @field_validator("kafka_bootstrap", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value in ("", None) else value

    @property
    def embedded_broker(self) -> bool:
        return self.kafka_bootstrap is None

    @property
    def idempotent_producer(self) -> bool:
        if self.kafka_idempotence is not None:
            return self.kafka_idempotence
        return False

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = config_path()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


_chosen_file: ContextVar[Path | None] = ContextVar("dealwatch_config_file", default=None)
"""A configuration file chosen by the caller of ``load_settings`` (one command comparing two configurations)."""


def config_path() -> Path | None:
    """The file given to ``load_settings``, else ``DEALWATCH_CONFIG`` if set (it must exist), else
    ``./dealwatch.toml`` if it exists."""
    chosen = _chosen_file.get()
    if chosen is not None:
        if not chosen.is_file():
            raise FileNotFoundError(f"{chosen} is not a file")
        return chosen
    explicit = os.environ.get("DEALWATCH_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"DEALWATCH_CONFIG points at {path}, which is not a file")
        return path
    default = Path("dealwatch.toml")
    return default if default.is_file() else None


def load_settings(*, config: Path | None = None, **overrides: Any) -> Settings:
    """The settings; ``config`` names the TOML file to read instead of the usual one (the environment's
    ``DEALWATCH_*`` values still apply over it)."""
    token = _chosen_file.set(config)
    try:
        return Settings(**overrides)
    finally:
        _chosen_file.reset(token)
