"""Email over SMTP with aiosmtplib: implicit TLS or STARTTLS, and AUTH when a user is set."""

from __future__ import annotations

import ssl
from email.message import EmailMessage

import aiosmtplib

from mitra.notifications.errors import DeliveryFailed


class SmtpSender:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        username: str = "",
        password: str = "",
        security: str = "starttls",  # "starttls" | "tls" | "none"
        ca_file: str = "",
        timeout: float = 10.0,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._username = username
        self._password = password
        self._security = security
        self._timeout = timeout
        self._tls = ssl.create_default_context(cafile=ca_file or None)

    async def send(self, to: str, subject: str, text: str) -> None:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = to
        message["Subject"] = subject
        message.set_content(text)
        try:
            await aiosmtplib.send(
                message,
                hostname=self._host,
                port=self._port,
                username=self._username or None,
                password=self._password or None,
                use_tls=self._security == "tls",
                start_tls=self._security == "starttls",
                tls_context=self._tls,
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPResponseException as exc:
            # 4xx is the server's "later"; 5xx (bad address, refused) will not get better.
            raise DeliveryFailed(f"SMTP {exc.code}", retryable=400 <= exc.code < 500) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryFailed(f"SMTP: {type(exc).__name__}", retryable=True) from None
