"""The log notifier never writes a code or token in production."""

from __future__ import annotations

import logging

import pytest

from mitra.auth import LogNotifier, Notification

OTP = Notification(
    channel="sms",
    to="+919876543210",
    subject="code",
    body="Your code is {code}",
    secret="482913",
    purpose="login_otp",
)


async def test_production_log_has_no_secret_and_masks_the_number(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mitra.notifier")
    await LogNotifier(production=True).send(OTP)
    record = caplog.records[-1]
    fields = record.fields  # type: ignore[attr-defined]
    assert "secret" not in fields
    assert "482913" not in repr(record.__dict__)
    assert "9876543210" not in repr(record.__dict__)
    assert fields["to"].endswith("3210")


async def test_development_log_shows_the_code(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mitra.notifier")
    await LogNotifier(production=False).send(OTP)
    assert caplog.records[-1].fields["secret"] == "482913"  # type: ignore[attr-defined]
