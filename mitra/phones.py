"""Phone numbers in E.164, accepting Indian numbers as people type them."""

from __future__ import annotations

import phonenumbers

DEFAULT_REGION = "IN"


def to_e164(raw: str, region: str = DEFAULT_REGION) -> str:
    """`98765 43210`, `+91-98765-43210` and `098765 43210` all become `+919876543210`.

    Raises ValueError with a message fit for the client when the number is not a valid one.
    """
    text = raw.strip()
    if not text:
        raise ValueError("phone number is empty")
    if len(text) > 32:
        raise ValueError("phone number is too long")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def mask(e164: str) -> str:
    """Enough of a number for a log line to be useful, not enough to identify the person."""
    return e164[:3] + "*" * max(0, len(e164) - 7) + e164[-4:]
