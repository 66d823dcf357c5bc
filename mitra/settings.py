"""Typed settings: code defaults, merged with an optional TOML file, overridden by MITRA_* env vars.

Every setting has its typed default here; `config/default.toml` documents the same keys and a test
keeps the two in agreement. A bad value, or a key or `MITRA_*` variable that is no setting, stops
start-up with one line naming the key (and the closest setting, for a typo).
"""

from __future__ import annotations

import base64
import difflib
import ipaddress
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

DEV_JWT_SECRET = "mitra-development-secret-do-not-use-in-production"  # noqa: S105
ENV_PREFIX = "MITRA_"
# 32 bytes, base64: encrypts provider credentials on a laptop; production refuses it.
DEV_SECRETS_KEY = "bWl0cmEtZGV2ZWxvcG1lbnQta2V5LWRvLW5vdC11c2U="
MIN_METRICS_TOKEN_CHARS = 32
# Variables under these prefixes belong to the test suite and the benchmarks (the PostgreSQL
# server they use, the loop they run on) and reach `mitra serve` through their environment.
TOOLING_ENV_PREFIXES = ("MITRA_TEST_", "MITRA_BENCH_")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _split_env_lists(cls, value: Any, info: Any) -> Any:
        # Env vars can only carry strings; lists are written comma-separated there.
        field = cls.model_fields.get(info.field_name)
        if isinstance(value, str) and field is not None and _is_list(field.annotation):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value


def _is_list(annotation: Any) -> bool:
    return getattr(annotation, "__origin__", None) is list


class ServerSettings(_Section):
    env: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    cors_origins: list[str] = Field(default_factory=list)
    allowed_hosts: list[str] = Field(default_factory=lambda: ["*"])
    trusted_proxy_count: int = Field(0, ge=0, le=10)
    seed_demo: bool = True
    shutdown_timeout_seconds: float = Field(10.0, gt=0)
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    gc_freeze: bool = True
    gc_threshold: int = Field(50_000, ge=100)
    switch_interval_ms: float = Field(5.0, gt=0, le=100)


class DatabaseSettings(_Section):
    url: str = "sqlite+aiosqlite:///var/mitra.db"
    echo: bool = False
    pool_size: int = Field(10, ge=1, le=200)
    pool_recycle_seconds: float = Field(1800.0, gt=0)
    auto_migrate: bool = True

    @field_validator("url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("expected a sqlite+aiosqlite:// or postgresql+asyncpg:// URL")
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


class StreamsSettings(_Section):
    url: str = "memory://"
    kafka_idempotence: bool = True
    kafka_client_id: str = "mitra"
    kafka_replication_factor: int = Field(1, ge=1)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = Field("", repr=False)
    kafka_ssl_cafile: str = ""
    # Kafka's smallest session by default (group.min.session.timeout.ms): a killed instance's
    # conversations move within ~6 s plus a heartbeat, not the 10 s + 3 s of the client default.
    # Less is refused by a stock broker with INVALID_SESSION_TIMEOUT, fatal to aiokafka's join.
    kafka_session_timeout_ms: int = Field(6_000, ge=1000)
    kafka_heartbeat_interval_ms: int = Field(500, ge=100)
    outbox_poll_interval_seconds: float = Field(1.0, gt=0)
    outbox_batch_size: int = Field(200, ge=1, le=10_000)
    outbox_retention_hours: float = Field(72.0, gt=0)
    outbox_max_backoff_seconds: float = Field(30.0, gt=0)
    memory_retention_records: int = Field(10_000, ge=16)
    memory_retention_bytes: int = Field(4_194_304, ge=16_384)
    memory_retention_seconds: float = Field(300.0, gt=0)
    processed_retention_hours: float = Field(336.0, gt=0)
    processed_prune_interval_seconds: float = Field(600.0, gt=0)
    processed_prune_batch_size: int = Field(1000, ge=1, le=50_000)

    @model_validator(mode="after")
    def _processed_outlive_memory_log(self) -> StreamsSettings:
        # An id pruned while its event can still be redelivered would let a consumer apply it
        # twice; the in-process log's retention is the one this process knows for sure.
        if self.processed_retention_hours * 3600 <= self.memory_retention_seconds:
            raise ValueError(
                "processed_retention_hours must be longer than memory_retention_seconds"
            )
        return self

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("memory://", "kafka://")):
            raise ValueError("expected memory:// or kafka://host:port[,host:port]")
        return value


class AuthSettings(_Section):
    jwt_algorithm: Literal["HS256", "RS256"] = "HS256"
    jwt_secret: str = DEV_JWT_SECRET
    jwt_private_key_file: str = ""
    jwt_public_key_file: str = ""
    jwt_issuer: str = "mitra"
    access_token_ttl_seconds: int = Field(900, ge=60)
    refresh_token_ttl_seconds: int = Field(2_592_000, ge=300)
    max_failed_logins: int = Field(5, ge=1)
    lockout_seconds: int = Field(1800, ge=1)
    otp_ttl_seconds: int = Field(300, ge=30)
    otp_max_attempts: int = Field(5, ge=1)
    reset_token_ttl_seconds: int = Field(3600, ge=60)
    rate_limit_window_seconds: int = Field(60, ge=1)
    rate_limit_per_ip: int = Field(30, ge=1)
    rate_limit_per_account: int = Field(10, ge=1)
    rate_limit_register_per_ip: int = Field(10, ge=1)
    password_min_length: int = Field(10, ge=8)
    argon2_time_cost: int = Field(3, ge=1)
    argon2_memory_kib: int = Field(65_536, ge=8)
    argon2_parallelism: int = Field(2, ge=1)
    argon2_max_concurrent: int = Field(2, ge=1, le=64)
    argon2_wait_seconds: float = Field(5.0, gt=0, le=60)
    session_cache_seconds: float = Field(4.0, ge=0, le=300)
    session_cache_size: int = Field(100_000, ge=1)

    @model_validator(mode="after")
    def _argon2_memory_fits_lanes(self) -> AuthSettings:
        # argon2 needs 8 KiB per lane; anything less fails at the first hash, not at start-up.
        if self.argon2_memory_kib < 8 * self.argon2_parallelism:
            raise ValueError("argon2_memory_kib must be at least 8 x argon2_parallelism")
        return self


class ActorsSettings(_Section):
    idle_timeout_seconds: float = Field(300.0, gt=0)
    max_live_conversations: int = Field(2000, ge=1)
    ask_timeout_seconds: float = Field(5.0, gt=0)
    restart_max: int = Field(5, ge=0)
    restart_window_seconds: float = Field(60.0, gt=0)


# The most `chat.max_body_chars` may be set to: the request schemas state it as the body's
# maxLength, so the documents hold whatever a deployment configures.
BODY_CHARS_CEILING = 100_000


class ChatSettings(_Section):
    max_body_chars: int = Field(4000, ge=1, le=BODY_CHARS_CEILING)
    rate_limit_messages: int = Field(20, ge=1)
    rate_limit_window_seconds: float = Field(10.0, gt=0)
    rate_limit_typing: int = Field(10, ge=1)
    read_flush_seconds: float = Field(0.5, gt=0, le=60)
    send_queue_size: int = Field(256, ge=8)
    auth_timeout_seconds: float = Field(5.0, gt=0)
    heartbeat_seconds: float = Field(30.0, gt=0)
    compression: bool = False
    recovery_page_size: int = Field(500, ge=10, le=5000)
    session_check_seconds: float = Field(2.0, gt=0)


class AnalyticsSettings(_Section):
    timezone: str = "Asia/Kolkata"
    consumer_enabled: bool = True

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("expected an IANA time zone name such as Asia/Kolkata") from None
        return value


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "text"] = "auto"


class IntegrationsSettings(_Section):
    secrets_key: str = DEV_SECRETS_KEY

    @field_validator("secrets_key")
    @classmethod
    def _aead_key(cls, value: str) -> str:
        try:
            key = base64.b64decode(value, validate=True)
        except ValueError:
            raise ValueError("expected 32 bytes in base64") from None
        if len(key) != 32:
            raise ValueError(f"expected 32 bytes in base64, got {len(key)}")
        return value


class WhatsAppSettings(_Section):
    graph_base_url: str = "https://graph.facebook.com"
    graph_version: str = Field("v21.0", pattern=r"^v\d+\.\d+$")
    send_rate_per_second: float = Field(80.0, gt=0)
    send_burst: int = Field(10, ge=1)
    request_timeout_seconds: float = Field(10.0, gt=0)
    retry_base_seconds: float = Field(0.5, gt=0)
    retry_cap_seconds: float = Field(30.0, gt=0)
    retry_max_attempts: int = Field(5, ge=1)


class PaymentsSettings(_Section):
    """Premium payments: where the gateways' SDKs point, and the sagas' clocks."""

    razorpay_base_url: str = "https://api.razorpay.com"
    stripe_base_url: str = "https://api.stripe.com"
    currency: str = Field("INR", pattern=r"^[A-Z]{3}$")
    request_timeout_seconds: float = Field(15.0, gt=0)
    order_expiry_minutes: int = Field(30, ge=1, le=60 * 24 * 30)
    link_expiry_minutes: int = Field(60 * 24, ge=16, le=60 * 24 * 180)
    poll_after_seconds: float = Field(600.0, gt=0)
    poll_interval_seconds: float = Field(60.0, gt=0)
    webhook_max_bytes: int = Field(256 * 1024, ge=1024)
    # Where Stripe's hosted Checkout sends the customer once paid.
    return_url: str = "http://127.0.0.1:8080/"
    # Tests only (refused in production): the saga waits this long after recording `captured`
    # and before crediting, so a test can kill the process at exactly that point.
    test_pause_after_captured_seconds: float = Field(0.0, ge=0)


class MetricsSettings(_Section):
    # repr=False: a bearer token must not reach a log line through a settings dump.
    token: str = Field("", repr=False)
    allowed_networks: list[str] = Field(default_factory=list)

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"expected addresses or networks such as 10.0.0.0/8, not {item!r}"
                ) from None
        return value

    @property
    def is_open(self) -> bool:
        return not (self.token or self.allowed_networks)


class NotifierSettings(_Section):
    backend: Literal["log", "deliver"] = "log"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str = ""
    smtp_password: str = Field("", repr=False)
    smtp_ca_file: str = ""
    email_from: str = "Mitra <no-reply@mitra.example.com>"
    sms_base_url: str = "https://control.msg91.com"
    sms_auth_key: str = Field("", repr=False)
    sms_template_id: str = ""
    sms_sender_id: str = ""
    timeout_seconds: float = Field(10.0, gt=0)
    max_attempts: int = Field(5, ge=1)
    backoff_seconds: float = Field(1.0, gt=0)


class ChatbotSettings(_Section):
    """The in-conversation assistant (issue 12)."""

    enabled: bool = True
    default_mode: Literal["bot", "agent"] = "bot"
    agent_idle_minutes: float = Field(30.0, gt=0)
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: str = Field("", repr=False)
    model: str = "gpt-4o-mini"
    timeout_seconds: float = Field(8.0, gt=0)
    max_retries: int = Field(2, ge=0, le=5)
    breaker_failures: int = Field(3, ge=1)
    breaker_window_seconds: float = Field(60.0, gt=0)
    breaker_cooldown_seconds: float = Field(120.0, gt=0)
    daily_token_budget: int = Field(200_000, ge=0)
    max_reply_chars: int = Field(600, ge=40, le=4000)
    kb_strong_match: float = Field(0.6, gt=0, le=1)
    payment_link_timeout_seconds: float = Field(8.0, gt=0)


class DemoSettings(_Section):
    """The demo book (issue 14): customers, policies and a conversation for the console."""

    seed_book: bool = True


class ImportsSettings(_Section):
    directory: str = "var/imports"
    max_upload_bytes: int = Field(26_214_400, ge=1024)
    max_uncompressed_bytes: int = Field(268_435_456, ge=1024)
    max_compression_ratio: float = Field(200.0, ge=2)
    batch_size: int = Field(500, ge=1, le=10_000)
    progress_interval_seconds: float = Field(2.0, gt=0)
    lease_seconds: float = Field(30.0, gt=0)
    resume_scan_seconds: float = Field(5.0, gt=0)
    batch_attempts: int = Field(3, ge=1)


class Settings(BaseModel):
    """The whole configuration; one attribute per section of `config/default.toml`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    streams: StreamsSettings = Field(default_factory=StreamsSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    actors: ActorsSettings = Field(default_factory=ActorsSettings)
    chat: ChatSettings = Field(default_factory=ChatSettings)
    analytics: AnalyticsSettings = Field(default_factory=AnalyticsSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    notifier: NotifierSettings = Field(default_factory=NotifierSettings)
    integrations: IntegrationsSettings = Field(default_factory=IntegrationsSettings)
    whatsapp: WhatsAppSettings = Field(default_factory=WhatsAppSettings)
    payments: PaymentsSettings = Field(default_factory=PaymentsSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    chatbot: ChatbotSettings = Field(default_factory=ChatbotSettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)
    imports: ImportsSettings = Field(default_factory=ImportsSettings)

    @property
    def is_production(self) -> bool:
        return self.server.env == "production"

    @property
    def log_format(self) -> Literal["json", "text"]:
        """`logging.format` with "auto" decided: JSON for a log collector, text for a terminal."""
        if self.logging.format != "auto":
            return self.logging.format
        return "json" if self.is_production else "text"


class SettingsError(Exception):
    """A setting that cannot be used; the message is one line naming the key."""


SECTIONS: dict[str, type[_Section]] = {
    name: field.annotation  # type: ignore[misc]
    for name, field in Settings.model_fields.items()
}


def env_var_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section.upper()}_{key.upper()}"


def setting_for_env_var(name: str) -> tuple[str, str] | None:
    """Map `MITRA_AUTH_JWT_SECRET` to ("auth", "jwt_secret"), or None when no setting has it."""
    if not name.startswith(ENV_PREFIX):
        return None
    rest = name[len(ENV_PREFIX) :].lower()
    for section, model in SECTIONS.items():
        prefix = section + "_"
        if rest.startswith(prefix) and rest[len(prefix) :] in model.model_fields:
            return section, rest[len(prefix) :]
    return None


def load_settings(
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build settings from code defaults, then `config_file`, then `MITRA_*` variables."""
    environ = os.environ if environ is None else environ
    merged: dict[str, dict[str, Any]] = {}
    if config_file is not None:
        merged = _read_toml(Path(config_file))
    sources: dict[tuple[str, str], str] = {}
    for name, value in environ.items():
        target = setting_for_env_var(name)
        if target is None:
            _refuse_unknown_env_var(name)
            continue
        section, key = target
        merged.setdefault(section, {})[key] = value
        sources[target] = name
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, sources)) from None
    check_production(settings)
    return settings


def _refuse_unknown_env_var(name: str) -> None:
    """A `MITRA_*` name that is no setting is a typo: ignoring it would run on the default."""
    if not name.startswith(ENV_PREFIX) or name.startswith(TOOLING_ENV_PREFIXES):
        return
    known = {
        env_var_name(section, key): f"{section}.{key}"
        for section, model in SECTIONS.items()
        for key in model.model_fields
    }
    closest = _closest(name, known)
    hint = (
        f"; did you mean {closest} ({known[closest]})?"
        if closest
        else " (names are MITRA_<SECTION>_<KEY>, see config/default.toml)"
    )
    raise SettingsError(f"unknown environment variable {name}: no such setting{hint}")


def _closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate nearest to a misspelt `name`, if one is near enough to be what was meant."""
    matches = difflib.get_close_matches(name, list(candidates), n=1)
    return matches[0] if matches else None


def _read_toml(path: Path) -> dict[str, dict[str, Any]]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"config file {path}: not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path}: not valid TOML ({exc})") from None
    for section, values in data.items():
        if section not in SECTIONS:
            closest = _closest(section, SECTIONS)
            hint = f"; did you mean [{closest}]?" if closest else ""
            raise SettingsError(f"config file {path}: unknown section [{section}]{hint}")
        if not isinstance(values, dict):
            raise SettingsError(f"config file {path}: [{section}] must be a table")
    return data


def _describe(exc: ValidationError, sources: dict[tuple[str, str], str]) -> str:
    first = exc.errors()[0]
    location = [str(part) for part in first["loc"]]
    key = ".".join(location[:2]) if len(location) >= 2 else ".".join(location)
    origin = ""
    if len(location) >= 2 and (location[0], location[1]) in sources:
        origin = f" (from {sources[(location[0], location[1])]})"
    if first["type"] == "extra_forbidden":
        hint = ""
        if len(location) >= 2 and location[0] in SECTIONS:
            closest = _closest(location[1], SECTIONS[location[0]].model_fields)
            hint = f"; did you mean {location[0]}.{closest}?" if closest else ""
        return f"invalid setting {key}{origin}: no such setting{hint}"
    message = first["msg"].removeprefix("Value error, ")
    if _SECRET_NAME.search(key):
        # A start-up error lands in logs and terminals: a secret is never echoed back.
        return f"invalid setting {key}{origin}: {message}"
    return f"invalid setting {key}{origin}: {message}, got {first.get('input')!r}"


_SECRET_NAME = re.compile(r"secret|password|token|_key\b")


def _check_payments_production(payments: PaymentsSettings) -> None:
    if payments.test_pause_after_captured_seconds:
        raise SettingsError(
            "invalid setting payments.test_pause_after_captured_seconds: a test-only fault point,"
            " refused in production"
        )


def check_production(settings: Settings) -> None:
    """Refuse development-only defaults when `server.env` is production."""
    if not settings.is_production:
        return
    auth = settings.auth
    if auth.jwt_algorithm == "HS256":
        if auth.jwt_secret == DEV_JWT_SECRET:
            raise SettingsError(
                "invalid setting auth.jwt_secret: the development secret is refused in production;"
                " set MITRA_AUTH_JWT_SECRET"
            )
        if len(auth.jwt_secret.encode()) < 32:
            raise SettingsError(
                "invalid setting auth.jwt_secret: expected at least 32 bytes in production"
            )
    elif not (auth.jwt_private_key_file and auth.jwt_public_key_file):
        raise SettingsError(
            "invalid setting auth.jwt_private_key_file: RS256 needs both key files in production"
        )
    if settings.integrations.secrets_key == DEV_SECRETS_KEY:
        raise SettingsError(
            "invalid setting integrations.secrets_key: the development key is refused in"
            " production; set MITRA_INTEGRATIONS_SECRETS_KEY (32 random bytes, base64)"
        )
    _check_payments_production(settings.payments)
    notifier = settings.notifier
    if notifier.backend == "log":
        raise SettingsError(
            'invalid setting notifier.backend: "log" keeps login codes and reset tokens from'
            ' reaching people; set it to "deliver" with the SMTP and SMS settings'
        )
    if not (notifier.sms_auth_key and notifier.sms_template_id):
        raise SettingsError(
            "invalid setting notifier.sms_auth_key: the SMS gateway needs its key and"
            " notifier.sms_template_id in production"
        )
    if settings.server.seed_demo:
        raise SettingsError(
            "invalid setting server.seed_demo: the demo tenant is development-only; set it false"
        )
    if "*" in settings.server.allowed_hosts:
        raise SettingsError(
            "invalid setting server.allowed_hosts: '*' is development-only; list the host names"
        )
    metrics = settings.metrics
    if metrics.is_open:
        raise SettingsError(
            "invalid setting metrics.token: /metrics would be open to anyone in production;"
            " set MITRA_METRICS_TOKEN or metrics.allowed_networks"
        )
    # The message never includes the token: it is a secret, and this line goes to the log.
    if metrics.token and len(metrics.token) < MIN_METRICS_TOKEN_CHARS:
        raise SettingsError(
            f"invalid setting metrics.token: expected at least {MIN_METRICS_TOKEN_CHARS}"
            " characters in production"
        )
