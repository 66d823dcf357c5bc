"""Email and SMS that reach people: a login code by SMS through an MSG91-style gateway, a reset
token by email over SMTP with STARTTLS or implicit TLS and AUTH, all on local servers speaking the
protocols, retried when the far side fails for now, and never logged with the secret; production
refuses a notifier that reaches nobody."""

from __future__ import annotations

import datetime
import email.policy
import ipaddress
import logging
import re
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from handlers.app import create_app
from mitra.settings import SettingsError, load_settings
from tests.conftest import SettingsFactory
from tests.e2e.test_serve import free_port
from tests.streams.conftest import eventually
from tests.support.api import PASSWORD, Api
from tests.unit.test_settings import PRODUCTION, STRONG_SECRET

SMTP_USER, SMTP_PASSWORD = "mitra", "smtp-secret-password"
SMS_KEY = "gateway-auth-key"
ME = "/api/v1/users/me"


def mitra_logs(caplog: pytest.LogCaptureFixture) -> str:
    # Only the server's own lines: the fake SMTP server logs what it received, as it should.
    return "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records
                     if r.name.startswith("mitra"))  # fmt: skip


class Mailbox:
    """An SMTP server's handler: keeps what it was given."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.encrypted: list[bool] = []
        self.refuse_next = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse_next:
            self.refuse_next -= 1
            return "451 try again later"
        self.messages.append(message_from_bytes(envelope.content, policy=email.policy.default))
        self.encrypted.append(server.transport.get_extra_info("ssl_object") is not None)
        return "250 OK"


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        SMTP_USER.encode(),
        SMTP_PASSWORD.encode(),
    )
    return AuthResult(success=ok)


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp.crt", directory / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextmanager
def serve_smtp(tmp_path: Path, tls: str, **options: Any) -> Iterator[tuple[Mailbox, int, Path]]:
    """aiosmtpd on loopback with a self-signed certificate, given to it as `tls` (its
    `tls_context` for STARTTLS, `ssl_context` for implicit TLS): (mailbox, port, cert)."""
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticate,
        **({tls: context} | options),
    )
    controller.start()
    try:
        yield mailbox, port, cert
    finally:
        controller.stop()


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[tuple[Mailbox, int, Path]]:
    with serve_smtp(
        tmp_path, "tls_context", require_starttls=True, auth_require_tls=True
    ) as served:
        yield served


@pytest.fixture
def smtps(tmp_path: Path) -> Iterator[tuple[Mailbox, int, Path]]:
    """An SMTP server on implicit TLS (port 465 style): TLS from the first byte, no STARTTLS."""
    # aiosmtpd counts only STARTTLS as TLS for AUTH; here the whole connection is TLS.
    with serve_smtp(tmp_path, "ssl_context", auth_required=True, auth_require_tls=False) as served:
        yield served


class Gateway:
    """An SMS gateway in MSG91's shape."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail_next = 0

    async def flow(self, request: web.Request) -> web.Response:
        if request.headers.get("authkey") != SMS_KEY:
            return web.json_response({"type": "error", "message": "Invalid authkey"}, status=401)
        if self.fail_next:
            self.fail_next -= 1
            return web.json_response({"type": "error", "message": "busy"}, status=503)
        self.sent.append(await request.json())
        return web.json_response({"type": "success", "message": "3763646c3058373530393938"})


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[Gateway, str]]:
    fake = Gateway()
    app = web.Application()
    app.router.add_post("/api/v5/flow/", fake.flow)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield fake, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest.fixture
def app(
    make_settings: SettingsFactory,
    smtp: tuple[Mailbox, int, Path],
    gateway: tuple[Gateway, str],
) -> web.Application:
    _, port, cert = smtp
    settings = make_settings(
        notifier={
            "backend": "deliver",
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_security": "starttls",
            "smtp_username": SMTP_USER,
            "smtp_password": SMTP_PASSWORD,
            "smtp_ca_file": str(cert),
            "sms_base_url": gateway[1],
            "sms_auth_key": SMS_KEY,
            "sms_template_id": "otp-template",
            "backoff_seconds": 0.01,
        }
    )
    return create_app(settings)  # no recording notifier: the real one delivers


async def test_a_reset_token_arrives_by_email_and_works(
    api: Api, smtp: tuple[Mailbox, int, Path], caplog: pytest.LogCaptureFixture
) -> None:
    mailbox, _, _ = smtp
    caplog.set_level(logging.DEBUG)
    admin = await api.tenant()
    mailbox.refuse_next = 1  # the server says "later" once: the notifier tries again
    await api.call(
        "POST", "/api/v1/auth/request-password-reset", json={"email": admin.email}, expect=200
    )
    await eventually(lambda: len(mailbox.messages) == 1, within=10)
    (mail,) = mailbox.messages
    assert mail["To"] == admin.email
    assert mail["Subject"] == "Reset your Mitra password"
    token = re.search(r"password: (\S+)", mail.get_content()).group(1)  # type: ignore[union-attr]
    await api.call(
        "POST",
        "/api/v1/auth/reset-password",
        json={"token": token, "new_password": "a brand new passphrase"},
        expect=200,
    )
    await api.call(
        "POST",
        "/api/v1/auth/login",
        json={"identifier": admin.email, "password": "a brand new passphrase"},
        expect=200,
    )
    assert token not in mitra_logs(caplog)
    metrics = await (await api.client.get("/metrics")).text()
    assert 'mitra_notifications_total{channel="email",outcome="retried"} 1' in metrics
    assert 'mitra_notifications_total{channel="email",outcome="sent"} 1' in metrics


async def test_a_login_code_arrives_by_sms_and_signs_in(
    api: Api, gateway: tuple[Gateway, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, _ = gateway
    caplog.set_level(logging.DEBUG)
    admin = await api.tenant()
    await api.call(
        "PATCH",
        ME,
        json={"mfa_enabled": True, "phone_number": "9876512345", "current_password": PASSWORD},
        token=admin.access_token,
        expect=200,
    )
    fake.fail_next = 2  # the gateway is busy twice
    _, login = await api.call(
        "POST",
        "/api/v1/auth/login",
        json={"identifier": admin.email, "password": PASSWORD},
        expect=200,
    )
    await eventually(lambda: len(fake.sent) == 1, within=10)
    (sms,) = fake.sent
    assert sms["template_id"] == "otp-template"
    (recipient,) = sms["recipients"]
    assert recipient["mobiles"] == "919876512345"
    code = re.search(r"code is (\d{6})", recipient["message"]).group(1)  # type: ignore[union-attr]
    _, done = await api.call(
        "POST",
        "/api/v1/auth/verify-otp",
        json={"mfa_token": login["data"]["mfa_token"], "otp_code": code},
        expect=200,
    )
    await api.call("GET", ME, token=done["data"]["access_token"], expect=200)
    assert code not in mitra_logs(caplog)
    metrics = await (await api.client.get("/metrics")).text()
    assert 'mitra_notifications_total{channel="sms",outcome="retried"} 2' in metrics


async def test_a_refusal_that_cannot_get_better_is_not_retried(
    make_settings: SettingsFactory, gateway: tuple[Gateway, str], aiohttp_client: Any
) -> None:
    fake, url = gateway
    settings = make_settings(
        notifier={"backend": "deliver", "sms_base_url": url, "sms_auth_key": "a wrong key",
                  "sms_template_id": "t", "backoff_seconds": 0.01}
    )  # fmt: skip
    client = await aiohttp_client(create_app(settings))
    api = Api(client, client.app, None)  # type: ignore[arg-type]
    admin = await api.tenant()
    await api.call(
        "PATCH",
        ME,
        json={"mfa_enabled": True, "phone_number": "9876512345", "current_password": PASSWORD},
        token=admin.access_token,
        expect=200,
    )
    await api.call(
        "POST", "/api/v1/auth/login", json={"identifier": admin.email, "password": PASSWORD}
    )

    async def failed_once() -> bool:
        metrics = await (await client.get("/metrics")).text()
        return 'mitra_notifications_total{channel="sms",outcome="failed"} 1' in metrics

    await eventually(failed_once, within=10)
    metrics = await (await client.get("/metrics")).text()
    assert 'outcome="retried"' not in metrics
    assert fake.sent == []


# aiosmtpd warns of AUTH without TLS because it counts only STARTTLS: this server is TLS-only.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_email_goes_over_implicit_tls_with_auth(
    make_settings: SettingsFactory, smtps: tuple[Mailbox, int, Path], aiohttp_client: Any
) -> None:
    mailbox, port, cert = smtps
    settings = make_settings(
        notifier={"backend": "deliver", "smtp_host": "127.0.0.1", "smtp_port": port,
                  "smtp_security": "tls", "smtp_username": SMTP_USER,
                  "smtp_password": SMTP_PASSWORD, "smtp_ca_file": str(cert),
                  "backoff_seconds": 0.01}
    )  # fmt: skip
    client = await aiohttp_client(create_app(settings))
    api = Api(client, client.app, None)  # type: ignore[arg-type]
    admin = await api.tenant()
    await api.call(
        "POST", "/api/v1/auth/request-password-reset", json={"email": admin.email}, expect=200
    )
    await eventually(lambda: len(mailbox.messages) == 1, within=10)
    assert mailbox.messages[0]["To"] == admin.email
    assert mailbox.encrypted == [True]
    metrics = await (await client.get("/metrics")).text()
    assert 'mitra_notifications_total{channel="email",outcome="sent"} 1' in metrics
    assert 'outcome="retried"' not in metrics


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"MITRA_NOTIFIER_BACKEND": "log"}, "notifier.backend"),
        ({"MITRA_NOTIFIER_SMS_AUTH_KEY": ""}, "notifier.sms_auth_key"),
    ],
)
def test_production_refuses_a_notifier_that_reaches_nobody(
    override: dict[str, str], key: str
) -> None:
    # The log notifier writes login codes and reset tokens to no one a user can read.
    environ = {**PRODUCTION, "MITRA_AUTH_JWT_SECRET": STRONG_SECRET, **override}
    with pytest.raises(SettingsError, match=rf"invalid setting {key}"):
        load_settings(environ=environ)
