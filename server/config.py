"""Settings: the one place defaults live (IMMUNE_* environment, `.env`, CLI flags)."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class ConfigError(ValueError):
    """The configuration cannot run: the message says which setting and why (one line)."""


class Settings(BaseSettings):
    """Runtime configuration. Built once at start-up and passed down; never read at import."""

    model_config = SettingsConfigDict(env_prefix="IMMUNE_", env_file=".env", extra="ignore")

    # where it listens and stores
    host: str = Field("127.0.0.1", description="Bind address")
    port: int = Field(8000, ge=0, le=65535, description="Bind port (0 = ephemeral)")
    data_dir: Path = Field(Path("data"), description="SQLite file and generated secret live here")
    database_url: str | None = Field(None, description="SQLAlchemy async URL; default sqlite+aiosqlite in data_dir")
    redis_url: str | None = Field(
        None,
        description="Redis URL: run as one node of a cluster (needs a PostgreSQL IMMUNE_DATABASE_URL shared by all)",
    )
    node_id: str = Field(
        default_factory=lambda: f"node-{secrets.token_hex(3)}", description="This process's name in a cluster"
    )

    carrier_heartbeat_s: float = Field(
        1.0, gt=0, description="Cluster: how often a node proves its Redis subscription with a heartbeat"
    )
    carrier_dead_after_s: float = Field(
        3.0, gt=0, description="Cluster: a Redis subscription silent this long is dropped and made again"
    )
    log_follow_interval_s: float = Field(
        0.5, gt=0, description="Cluster: how often a node reads the log head to deliver what Redis did not bring"
    )

    # security
    jwt_secret: SecretStr | None = Field(
        None, description="HS256 secret (at least 32 bytes); generated in data_dir when unset"
    )
    jwt_public_key: SecretStr | None = Field(
        None, description="PEM public key: RSA (2048+ bits) means RS256 only, EC P-256 ES256 only"
    )
    jwt_leeway_s: float = Field(5.0, ge=0, description="Clock skew tolerated on exp/nbf")
    cors_origins: list[str] = Field(
        default_factory=list, description="Allowed browser origins; empty = same origin + localhost"
    )
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Proxies (IPs or CIDRs) whose X-Forwarded-For names the client for per-IP limits",
    )

    # real-time limits
    idle_timeout_s: float = Field(
        300.0, ge=0, description="Disconnect after this long without a client event (0 = off)"
    )
    max_queue: int = Field(1000, ge=1, description="Per-connection outgoing messages before slow_consumer")
    fast_path: bool = Field(True, description="Write pre-built WebSocket frames straight to idle sockets")
    send_timeout_s: float = Field(10.0, gt=0, description="A write blocked this long is a slow consumer")
    max_payload_bytes: int = Field(100_000, ge=1024, description="Largest Socket.IO message or REST body")
    max_frame_bytes: int = Field(
        1_000_000,
        ge=1024,
        description="Largest WebSocket frame or polling POST; past it the transport closes (1009 / 413). "
        "At least max_payload_bytes",
    )
    max_rooms_per_connection: int = Field(100, ge=1, description="Rooms one connection may join")
    max_filter_size: int = Field(64, ge=1, description="Event types one filter may hold")
    max_json_depth: int = Field(32, ge=2, description="Deepest nesting accepted in a client event or REST body")
    rate_limit_strikes: int = Field(
        40, ge=1, description="Refused client events in a row before disconnecting as rate_limited"
    )
    ping_interval_s: float = Field(25.0, gt=0, description="Engine.IO heartbeat interval")
    ping_timeout_s: float = Field(20.0, gt=0, description="Engine.IO heartbeat timeout")

    # rate limits (token buckets)
    client_events_per_min: float = Field(60.0, gt=0, description="Client events per connection, sustained")
    client_events_burst: int = Field(20, ge=1, description="Client events per connection, burst")
    rest_per_min: float = Field(600.0, gt=0, description="REST calls per identity, sustained")
    rest_burst: int = Field(100, ge=1, description="REST calls per identity, burst")
    connects_per_min_per_ip: float = Field(600.0, gt=0, description="Connection attempts per IP")
    connects_burst_per_ip: int = Field(100, ge=1, description="Connection attempts per IP, burst")
    max_connections_per_user: int = Field(100, ge=1, description="Concurrent connections per token subject")
    max_pending_sessions_per_ip: int = Field(
        50, ge=1, description="Open Engine.IO sessions per IP without a Socket.IO connection; past it 429"
    )
    connect_timeout_s: float = Field(
        10.0, gt=0, description="An Engine.IO session without a Socket.IO CONNECT by then is closed"
    )

    # event log
    event_retention_count: int = Field(100_000, ge=1, description="Events kept in the log")
    event_retention_seconds: float = Field(86_400.0, gt=0, description="Oldest event age kept")
    replay_cap: int = Field(10_000, ge=1, description="Most events replayed on one resume")
    replay_max_bytes: int = Field(
        8 << 20, ge=1024, description="Most encoded bytes replayed on one resume (more: recovered false)"
    )
    replay_budget_bytes: int = Field(
        64 << 20,
        ge=1024,
        description="Encoded replay bytes all connections may have waiting at once, shared frames counted once",
    )
    replay_cache_bytes: int = Field(
        16 << 20, ge=0, description="Encoded frames kept after their replays are sent, for the next resume"
    )
    retention_interval_s: float = Field(60.0, gt=0, description="How often retention prunes the log")
    sqlite_synchronous: Literal["full", "normal"] = Field(
        "full",
        description="full: a 2xx write is on disk (one fsync per group commit); normal: survives a crash of "
        "the process, may lose the last commits on power loss",
    )
    db_busy_timeout_s: float = Field(
        2.0, gt=0, description="How long a write waits for another process's SQLite lock before failing"
    )
    write_queue_max: int = Field(
        512, ge=1, description="Writes waiting for the group-commit writer; past it REST answers 503 overloaded"
    )
    write_timeout_s: float = Field(
        5.0, gt=0, description="A REST write not taken by the writer within this answers 503 unavailable"
    )

    # domain
    proposal_timeout_s: float = Field(300.0, gt=0, description="Default consensus proposal timeout")
    expiry_interval_s: float = Field(0.5, gt=0, description="How often due proposals are expired")

    # operations
    metrics_interval_s: float = Field(10.0, gt=0, description="metrics_updated period to the system room")
    log_level: LogLevel = Field("info", description="Least severe level logged: debug, info, warning, error, critical")
    log_format: Literal["json", "console"] = Field("json", description="json in production, console for dev")

    @model_validator(mode="after")
    def _frames_hold_a_message(self) -> Settings:
        # A frame limit under the message limit would close transports for messages the
        # application would have answered with `invalid_request`.
        if self.max_frame_bytes < self.max_payload_bytes:
            raise ValueError(
                f"IMMUNE_MAX_FRAME_BYTES ({self.max_frame_bytes}) must be at least "
                f"IMMUNE_MAX_PAYLOAD_BYTES ({self.max_payload_bytes})"
            )
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_any_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    def check_cluster(self) -> None:
        """Refuse a cluster that cannot work (ConfigError): every node must share one PostgreSQL database."""
        if self.redis_url and self.resolved_database_url().startswith("sqlite"):
            raise ConfigError(
                "IMMUNE_REDIS_URL needs IMMUNE_DATABASE_URL=postgresql+asyncpg://... shared by every node; "
                "a SQLite file is not shared between machines"
            )
        if self.carrier_dead_after_s <= self.carrier_heartbeat_s:
            raise ConfigError("IMMUNE_CARRIER_DEAD_AFTER_S must be longer than IMMUNE_CARRIER_HEARTBEAT_S")

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file under data_dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'immune.db').resolve()}"

    def masked(self) -> dict[str, Any]:
        """Effective configuration with every secret masked, for `immune-core config`."""
        shown: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                shown[name] = "********" if value.get_secret_value() else None
            elif name in {"database_url", "redis_url"} and isinstance(value, str):
                shown[name] = _mask_url_password(value)
            elif isinstance(value, Path):
                shown[name] = str(value)
            elif name == "trusted_proxies":
                shown[name] = [str(network) for network in value]
            else:
                shown[name] = value
        shown["database_url"] = _mask_url_password(self.resolved_database_url())
        return shown


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, `.env` and these overrides; a value that cannot be parsed is a ConfigError.

    pydantic-settings parses list settings as JSON before validation and raises a bare SettingsError
    naming the Python field; this names the environment variable and the expected form instead.
    (Values that parse but do not validate still raise pydantic's ValidationError, one error per field.)
    """
    try:
        return Settings(**overrides)
    except SettingsError as exc:
        found = re.search(r'field "(\w+)"', str(exc))
        if found is None:
            raise ConfigError(str(exc)) from None
        variable = f"IMMUNE_{found.group(1).upper()}"
        if _is_list_setting(found.group(1)):
            raise ConfigError(f"""{variable}: must be a JSON list, e.g. {variable}='["first", "second"]'""") from None
        raise ConfigError(f"{variable}: cannot parse the value") from None


def _is_list_setting(name: str) -> bool:
    field = Settings.model_fields.get(name)
    return field is not None and getattr(field.annotation, "__origin__", None) is list


def _mask_url_password(url: str) -> str:
    """Replace the password part of a URL with asterisks."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user, colon, _ = creds.partition(":")
    return f"{scheme}://{user}{':********' if colon else ''}@{host}"
