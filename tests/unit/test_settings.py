"""Settings: defaults, file, environment, and the one-line errors that stop start-up."""

from __future__ import annotations

import base64
import tomllib
from pathlib import Path

import pytest

from mitra.settings import (
    DEV_JWT_SECRET,
    DEV_SECRETS_KEY,
    SECTIONS,
    TOOLING_ENV_PREFIXES,
    Settings,
    SettingsError,
    load_settings,
    setting_for_env_var,
)

ROOT = Path(__file__).resolve().parents[2]
STRONG_SECRET = "x" * 40


def test_code_defaults_and_default_toml_agree() -> None:
    with (ROOT / "config" / "default.toml").open("rb") as handle:
        documented = tomllib.load(handle)
    defaults = Settings().model_dump(mode="json")
    assert documented == defaults


def test_every_documented_key_has_a_comment() -> None:
    """A key is documented by the comment above it, or above the group of keys it belongs to."""
    undocumented = []
    commented = False
    for line in (ROOT / "config" / "default.toml").read_text().splitlines():
        if line.startswith("#"):
            commented = True
        elif not line.strip() or line.startswith("["):
            commented = False
        elif not commented:
            undocumented.append(line)
    assert undocumented == []


def test_file_then_environment_override(tmp_path: Path) -> None:
    config = tmp_path / "mitra.toml"
    config.write_text('[server]\nport = 9000\nhost = "127.0.0.2"\n[logging]\nlevel = "DEBUG"\n')
    settings = load_settings(config, environ={"MITRA_SERVER_PORT": "9100"})
    assert settings.server.port == 9100
    assert settings.server.host == "127.0.0.2"
    assert settings.logging.level == "DEBUG"
    assert settings.database.url == "sqlite+aiosqlite:///var/mitra.db"


def test_lists_come_comma_separated_from_the_environment() -> None:
    settings = load_settings(
        environ={"MITRA_SERVER_CORS_ORIGINS": "https://a.example, https://b.example"}
    )
    assert settings.server.cors_origins == ["https://a.example", "https://b.example"]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"MITRA_SERVER_PORT": "eighty"},
            "invalid setting server.port (from MITRA_SERVER_PORT): Input should be a valid"
            " integer, unable to parse string as an integer, got 'eighty'",
        ),
        (
            {"MITRA_DATABASE_URL": "mysql://x"},
            "invalid setting database.url (from MITRA_DATABASE_URL): expected a"
            " sqlite+aiosqlite:// or postgresql+asyncpg:// URL, got 'mysql://x'",
        ),
        (
            {"MITRA_SERVER_ENV": "staging"},
            "invalid setting server.env (from MITRA_SERVER_ENV): Input should be 'development'"
            " or 'production', got 'staging'",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_the_key(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ=environ)
    assert str(caught.value) == expected
    assert "\n" not in str(caught.value)


def test_unknown_key_in_a_file_is_named_with_the_closest(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[server]\nprot = 1\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(config, environ={})
    assert (
        str(caught.value)
        == "invalid setting server.prot: no such setting; did you mean server.port?"
    )
    config.write_text("[sever]\nport = 1\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(config, environ={})
    assert (
        str(caught.value)
        == f"config file {config}: unknown section [sever]; did you mean [server]?"
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "MITRA_DATABSE_URL",
            "unknown environment variable MITRA_DATABSE_URL: no such setting; did you mean"
            " MITRA_DATABASE_URL (database.url)?",
        ),
        (
            "MITRA_AUTH_JWT_SECERT",
            "unknown environment variable MITRA_AUTH_JWT_SECERT: no such setting; did you mean"
            " MITRA_AUTH_JWT_SECRET (auth.jwt_secret)?",
        ),
        (
            "MITRA_SERVER_PORTS",
            "unknown environment variable MITRA_SERVER_PORTS: no such setting; did you mean"
            " MITRA_SERVER_PORT (server.port)?",
        ),
        (
            "MITRA_COLOUR",
            "unknown environment variable MITRA_COLOUR: no such setting (names are"
            " MITRA_<SECTION>_<KEY>, see config/default.toml)",
        ),
    ],
)
def test_an_unknown_mitra_variable_stops_start_up_naming_the_closest(
    name: str, expected: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={"MITRA_DATABASE_URL": "sqlite+aiosqlite:///x.db", name: "1"})
    assert str(caught.value) == expected


def test_the_suites_and_benchmarks_own_variables_are_not_settings() -> None:
    assert not {
        name.rstrip("_").removeprefix("MITRA_").lower() for name in TOOLING_ENV_PREFIXES
    } & set(SECTIONS)
    settings = load_settings(
        environ={
            "MITRA_TEST_POSTGRES_URL": "postgresql+asyncpg://postgres@127.0.0.1/test",
            "MITRA_BENCH_POSTGRES_URL": "postgresql+asyncpg://postgres@127.0.0.1/bench",
            "MITRAL": "not ours",
        }
    )
    assert settings == Settings()


METRICS_TOKEN = "m" * 40
PRODUCTION = {
    "MITRA_SERVER_ENV": "production",
    "MITRA_INTEGRATIONS_SECRETS_KEY": base64.b64encode(b"k" * 32).decode(),
    "MITRA_SERVER_SEED_DEMO": "false",
    "MITRA_SERVER_ALLOWED_HOSTS": "mitra.example.com",
    "MITRA_METRICS_TOKEN": METRICS_TOKEN,
    "MITRA_NOTIFIER_BACKEND": "deliver",
    "MITRA_NOTIFIER_SMS_AUTH_KEY": "gateway-key",
    "MITRA_NOTIFIER_SMS_TEMPLATE_ID": "otp-template",
}


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"MITRA_AUTH_JWT_SECRET": DEV_JWT_SECRET}, "auth.jwt_secret"),
        ({"MITRA_AUTH_JWT_SECRET": "short"}, "auth.jwt_secret"),
        ({"MITRA_SERVER_SEED_DEMO": "true"}, "server.seed_demo"),
        ({"MITRA_SERVER_ALLOWED_HOSTS": "*"}, "server.allowed_hosts"),
        ({"MITRA_AUTH_JWT_ALGORITHM": "RS256"}, "auth.jwt_private_key_file"),
        ({"MITRA_INTEGRATIONS_SECRETS_KEY": DEV_SECRETS_KEY}, "integrations.secrets_key"),
        ({"MITRA_METRICS_TOKEN": ""}, "metrics.token"),
        ({"MITRA_METRICS_TOKEN": "too-short-token"}, "metrics.token"),
    ],
)
def test_production_refuses_development_defaults(override: dict[str, str], key: str) -> None:
    environ = {**PRODUCTION, "MITRA_AUTH_JWT_SECRET": STRONG_SECRET, **override}
    with pytest.raises(SettingsError, match=rf"invalid setting {key}"):
        load_settings(environ=environ)


@pytest.mark.parametrize("bad_key", ["not base64!", base64.b64encode(b"too short").decode()])
def test_a_bad_secrets_key_is_refused_without_echoing_it(bad_key: str) -> None:
    with pytest.raises(SettingsError, match=r"integrations\.secrets_key") as refused:
        load_settings(environ={"MITRA_INTEGRATIONS_SECRETS_KEY": bad_key})
    assert bad_key not in str(refused.value)


def test_production_starts_with_real_values() -> None:
    settings = load_settings(environ={**PRODUCTION, "MITRA_AUTH_JWT_SECRET": STRONG_SECRET})
    assert settings.is_production


def test_production_metrics_may_be_guarded_by_networks_alone() -> None:
    environ = {
        **PRODUCTION,
        "MITRA_AUTH_JWT_SECRET": STRONG_SECRET,
        "MITRA_METRICS_TOKEN": "",
        "MITRA_METRICS_ALLOWED_NETWORKS": "10.0.0.0/8, 192.0.2.7",
    }
    assert load_settings(environ=environ).metrics.allowed_networks == ["10.0.0.0/8", "192.0.2.7"]


def test_a_bad_network_is_named() -> None:
    with pytest.raises(SettingsError, match=r"invalid setting metrics\.allowed_networks"):
        load_settings(environ={"MITRA_METRICS_ALLOWED_NETWORKS": "10.0.0.0/8,intranet"})


def test_the_metrics_token_never_shows_in_an_error_or_a_repr() -> None:
    short = "short-but-secret-token"
    environ = {**PRODUCTION, "MITRA_AUTH_JWT_SECRET": STRONG_SECRET, "MITRA_METRICS_TOKEN": short}
    with pytest.raises(SettingsError) as caught:
        load_settings(environ=environ)
    assert "metrics.token" in str(caught.value)
    assert short not in str(caught.value)
    settings = load_settings(environ={"MITRA_METRICS_TOKEN": short})
    assert short not in repr(settings)
    assert short not in str(settings)


def test_env_var_mapping() -> None:
    assert setting_for_env_var("MITRA_AUTH_JWT_SECRET") == ("auth", "jwt_secret")
    assert setting_for_env_var("MITRA_ACTORS_IDLE_TIMEOUT_SECONDS") == (
        "actors",
        "idle_timeout_seconds",
    )
    assert setting_for_env_var("MITRA_AUTH_NOPE") is None
    assert setting_for_env_var("PATH") is None


def test_sections_cover_the_documented_file() -> None:
    with (ROOT / "config" / "default.toml").open("rb") as handle:
        assert set(tomllib.load(handle)) == set(SECTIONS)


LIVE = {**PRODUCTION, "MITRA_AUTH_JWT_SECRET": STRONG_SECRET}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "text"),
        (LIVE, "json"),
        ({"MITRA_LOGGING_FORMAT": "json"}, "json"),
        ({**LIVE, "MITRA_LOGGING_FORMAT": "text"}, "text"),
    ],
)
def test_log_format_auto_is_text_in_development_and_json_in_production(
    environ: dict[str, str], expected: str
) -> None:
    assert load_settings(environ=environ).log_format == expected


def test_processed_ids_outlive_what_the_streams_can_redeliver() -> None:
    streams = load_settings(environ={}).streams
    kafka_default_retention_hours = 7 * 24
    assert streams.processed_retention_hours > kafka_default_retention_hours
    with pytest.raises(SettingsError) as caught:
        load_settings(
            environ={
                "MITRA_STREAMS_PROCESSED_RETENTION_HOURS": "0.05",
                "MITRA_STREAMS_MEMORY_RETENTION_SECONDS": "600",
            }
        )
    assert "processed_retention_hours must be longer than memory_retention_seconds" in str(
        caught.value
    )
