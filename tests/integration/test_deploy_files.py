"""The compose stack would really run: the file is valid compose, its instances' settings load as
production settings through the config file the image reads, Kafka keeps its data on its
volume, Prometheus scrapes both instances with the token, and every Grafana panel asks for a
metric Mitra serves."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from mitra.settings import load_settings
from tests.support.api import Api

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
INTERPOLATION = re.compile(r"\$\{(\w+)(?::([?-])([^}]*))?\}")
DEPLOYMENT = {
    "POSTGRES_PASSWORD": "pg-secret",
    "MITRA_PUBLIC_HOST": "mitra.agency.example",
    "MITRA_AUTH_JWT_SECRET": "j" * 40,
    "MITRA_INTEGRATIONS_SECRETS_KEY": "c2VjcmV0LWtleS1vZi0zMi1ieXRlcy0tLS0tLS0tLS0=",
    "MITRA_METRICS_TOKEN": "m" * 40,
    "MITRA_NOTIFIER_SMTP_HOST": "smtp.agency.example",
    "MITRA_NOTIFIER_SMS_AUTH_KEY": "sms-key",
    "MITRA_NOTIFIER_SMS_TEMPLATE_ID": "otp-template",
}


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def interpolate(value: str, environ: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}`, as `docker compose` does."""

    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if environ.get(name):
            return environ[name]
        if kind == "?":
            raise AssertionError(f"{name} is required: {rest}")
        return rest or ""

    return INTERPOLATION.sub(one, value)


def service_env(name: str) -> dict[str, str]:
    environment = compose()["services"][name]["environment"]
    return {key: interpolate(str(value), DEPLOYMENT) for key, value in environment.items()}


def test_the_compose_file_is_valid_against_the_compose_specification() -> None:
    checked = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(COMPOSE)],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_test_the_deployment_files_point_to_exists() -> None:
    # An operator reading the compose file follows its pointer to the test that checks it.
    named = {
        match
        for name in (
            "docker-compose.yml",
            "Dockerfile",
            "config/Caddyfile",
            "config/prometheus.yml",
        )
        for match in re.findall(r"tests/[\w/]+\.py", (ROOT / name).read_text())
    }
    assert named  # the compose file names its test
    assert [path for path in sorted(named) if not (ROOT / path).is_file()] == []


def test_every_service_runs_a_named_image() -> None:
    unnamed = [name for name, service in compose()["services"].items() if "image" not in service]
    assert not unnamed


def test_the_instances_settings_load_as_production_through_the_images_config_file() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    entrypoint = re.search(r'^ENTRYPOINT \["mitra", "--config", "([^"]+)"\]', dockerfile, re.M)
    assert entrypoint, "the image's entry point names no config file"
    copied = re.search(rf"^COPY (\S+) {re.escape(entrypoint.group(1))}$", dockerfile, re.M)
    assert copied, "the config file the entry point reads is not copied into the image"
    for name in ("mitra-1", "mitra-2", "migrate"):
        settings = load_settings(ROOT / copied.group(1), service_env(name))
        assert settings.is_production
        assert settings.server.trusted_proxy_count == 1, "Caddy's X-Forwarded-For is not read"
        assert "mitra.agency.example" in settings.server.allowed_hosts
        assert "*" not in settings.server.allowed_hosts
        assert settings.streams.url == "kafka://kafka:9092"
        assert settings.database.url.startswith("postgresql+asyncpg://")


def test_the_proxy_passes_the_public_host_to_both_instances() -> None:
    caddyfile = (ROOT / "config" / "Caddyfile").read_text()
    assert re.search(r"^\{\$MITRA_PUBLIC_HOST\} \{", caddyfile, re.M)
    assert re.search(r"reverse_proxy mitra-1:8080 mitra-2:8080", caddyfile)
    mounts = compose()["services"]["proxy"]["volumes"]
    assert "./config/Caddyfile:/etc/caddy/Caddyfile:ro" in mounts


def test_kafka_keeps_its_log_on_the_mounted_volume() -> None:
    kafka = compose()["services"]["kafka"]
    log_dirs = kafka["environment"]["KAFKA_LOG_DIRS"]
    mounted = {mount.split(":")[1] for mount in kafka["volumes"]}
    assert log_dirs in mounted
    named = compose()["volumes"]
    assert any(mount.split(":")[0] in named for mount in kafka["volumes"])


def test_prometheus_scrapes_both_instances_with_the_token_it_is_given_as_a_secret() -> None:
    stack = compose()
    prometheus = yaml.safe_load((ROOT / "config" / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    targets = {t for static in job["static_configs"] for t in static["targets"]}
    instances = {name for name in stack["services"] if re.fullmatch(r"mitra-\d+", name)}
    assert targets == {f"{name}:8080" for name in instances}
    secret = job["authorization"]["credentials_file"].removeprefix("/run/secrets/")
    assert secret in stack["services"]["prometheus"]["secrets"]
    assert stack["secrets"][secret] == {"environment": "MITRA_METRICS_TOKEN"}


def test_grafana_is_provisioned_with_the_dashboard_and_its_data_source() -> None:
    grafana = ROOT / "config" / "grafana"
    source = yaml.safe_load((grafana / "provisioning/datasources/prometheus.yml").read_text())
    (datasource,) = source["datasources"]
    dashboard = json.loads((grafana / "dashboards/mitra.json").read_text())
    uids = {panel["datasource"]["uid"] for panel in dashboard["panels"]}
    assert uids == {datasource["uid"]}
    provider = yaml.safe_load((grafana / "provisioning/dashboards/mitra.yml").read_text())
    mounts = compose()["services"]["grafana"]["volumes"]
    assert f"./config/grafana/dashboards:{provider['providers'][0]['options']['path']}:ro" in mounts
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for subject in ("sockets", "latency", "consumer lag", "outbox backlog", "actor restarts"):
        assert subject in titles


async def test_every_metric_a_dashboard_panel_asks_for_is_served(api: Api) -> None:
    dashboard = json.loads((ROOT / "config/grafana/dashboards/mitra.json").read_text())
    asked = {
        re.sub(r"_(bucket|sum|count)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bmitra_[a-z_]+\b", target["expr"])
    }
    response = await api.client.get("/metrics", headers={"Accept": "text/plain"})
    assert response.status == 200
    served = set(re.findall(r"^# TYPE (\w+) ", await response.text(), re.M))
    assert asked <= served, f"panels ask for metrics Mitra does not serve: {asked - served}"
