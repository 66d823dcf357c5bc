"""Cell values as spreadsheets hold them (numbers, dates, text typed every way) into clean ones.

Each parser takes what pyexcel gives for a cell (str, int, float, date, datetime, bool or None)
and returns the clean value or raises ValueError with a message fit for the agent.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from email_validator import EmailNotValidError, validate_email

from mitra.models import PolicyStatus, PolicyType, PremiumFrequency
from mitra.phones import to_e164

# Excel's day 0 in the 1900 date system, off by its leap-year bug so that serials past
# 1900-02-28 (every date an agent's book holds) land right.
_EXCEL_EPOCH = date(1899, 12, 30)
# Serials of 1910-01-01 .. 2150-12-31: a bare number in a date column outside them is no date.
_SERIAL_RANGE = (3654, 91_675)
_INTEGRAL_FLOAT = re.compile(r"^\d+\.0+$")
_DATE_FORMATS = (
    "%d/%m/%Y",
    "%d-%m-%Y",
    "%d.%m.%Y",
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%d/%m/%y",
    "%d-%m-%y",
    "%d %b %Y",
    "%d-%b-%Y",
    "%d %B %Y",
    "%d-%b-%y",
    "%b %d, %Y",
)
_MONEY_NOISE = re.compile(r"(₹|rs\.?|inr|,|\s|/-)", re.IGNORECASE)
_MAX_MONEY = Decimal("999999999999.99")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,4})?$")


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def as_text(value: Any) -> str:
    """A cell as the agent sees it: `9876543210.0` (a number cell) is `9876543210`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else str(value)
    if isinstance(value, date):
        return value.isoformat()
    text = str(value).strip()
    return text[: text.index(".")] if _INTEGRAL_FLOAT.match(text) else text


def text_field(value: Any, limit: int) -> str:
    text = " ".join(as_text(value).split())
    if not text:
        raise ValueError("must not be blank")
    if len(text) > limit:
        raise ValueError(f"must be at most {limit} characters")
    return text


def phone(value: Any) -> str:
    return to_e164(as_text(value))


# Most addresses in a book are plain ASCII; those skip email-validator's IDNA work (a third
# of a row's validation), and anything else takes the full check.
_PLAIN_EMAIL = re.compile(
    r"^[a-z0-9](?:[a-z0-9._%+-]{0,62}[a-z0-9])?@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"[a-z]{2,24}$"
)
_DMY = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$")


def email(value: Any) -> str:
    text = as_text(value)
    lowered = text.lower()
    if len(lowered) <= 254 and ".." not in lowered and _PLAIN_EMAIL.match(lowered):
        return lowered
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        raise ValueError("not a valid email address") from None
    return str(checked.normalized).lower()


def day(value: Any) -> date:
    """A date from a date cell, an Excel serial (a number or digits) or text such as dd/mm/yyyy."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _serial(float(value))
    text = as_text(value)
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return _serial(float(text))
    dmy = _DMY.match(text)
    if dmy is not None:
        try:
            return date(int(dmy[3]), int(dmy[2]), int(dmy[1]))
        except ValueError:
            raise ValueError("not a date (use dd/mm/yyyy)") from None
    for pattern in _DATE_FORMATS:
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise ValueError("not a date (use dd/mm/yyyy)")


def _serial(number: float) -> date:
    if not _SERIAL_RANGE[0] <= number <= _SERIAL_RANGE[1]:
        raise ValueError("not a date (use dd/mm/yyyy)")
    return _EXCEL_EPOCH + timedelta(days=int(number))


def money(value: Any) -> Decimal:
    """Rupees: `₹ 1,25,000.50`, `Rs. 2450/-`, `2450.5` (a number cell)."""
    if isinstance(value, bool):
        raise ValueError("not an amount")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        amount = Decimal(repr(value))
    else:
        text = _MONEY_NOISE.sub("", as_text(value))
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise ValueError("not an amount") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError("must be zero or more")
    if amount != amount.quantize(Decimal("0.01")):
        raise ValueError("must have at most two decimal places")
    if amount > _MAX_MONEY:
        raise ValueError("is too large")
    return amount.quantize(Decimal("0.01"))


def language(value: Any) -> str:
    text = as_text(value).lower()
    named = _LANGUAGES.get(text)
    if named:
        return named
    if not _LANGUAGE.match(text):
        raise ValueError("not a language code (en, hi, ta, ...)")
    return text


def _key(value: Any) -> str:
    return re.sub(r"[^a-z0-9]", "", as_text(value).lower())


def _enum_parser(kind: type[StrEnum], spellings: dict[str, str], what: str) -> Any:
    def parse(value: Any) -> StrEnum:
        found = spellings.get(_key(value))
        if found is None:
            raise ValueError(f"not a known {what}")
        return kind(found)

    return parse


def _spellings(members: dict[str, tuple[str, ...]]) -> dict[str, str]:
    table: dict[str, str] = {}
    for canonical, variants in members.items():
        for variant in (canonical, *variants):
            table[re.sub(r"[^a-z0-9]", "", variant.lower())] = canonical
    return table


policy_type = _enum_parser(
    PolicyType,
    _spellings(
        {
            PolicyType.TERM.value: ("term plan", "term insurance", "term life"),
            PolicyType.ENDOWMENT.value: ("endowment plan", "endow"),
            PolicyType.MONEY_BACK.value: ("money back", "moneyback plan", "mb"),
            PolicyType.ULIP.value: ("unit linked", "unit linked insurance plan"),
            PolicyType.WHOLE_LIFE.value: ("whole life", "wholelife plan"),
            PolicyType.HEALTH.value: ("mediclaim", "health insurance"),
            PolicyType.PENSION.value: ("annuity", "retirement", "pension plan"),
        }
    ),
    "policy type",
)
premium_frequency = _enum_parser(
    PremiumFrequency,
    _spellings(
        {
            PremiumFrequency.MONTHLY.value: ("mly", "month", "m", "monthly ecs", "ecs"),
            PremiumFrequency.QUARTERLY.value: ("qly", "qtly", "quarter", "q"),
            PremiumFrequency.HALF_YEARLY.value: (
                "half yearly",
                "hly",
                "semi annual",
                "semiannually",
                "h",
            ),
            PremiumFrequency.YEARLY.value: ("yly", "annual", "annually", "year", "y"),
        }
    ),
    "premium frequency",
)
policy_status = _enum_parser(
    PolicyStatus,
    _spellings(
        {
            PolicyStatus.PENDING.value: ("proposal", "under process"),
            PolicyStatus.ACTIVE.value: ("in force", "inforce", "running", "live"),
            PolicyStatus.GRACE.value: ("in grace", "grace period"),
            PolicyStatus.LAPSED.value: ("lapse",),
            PolicyStatus.MATURED.value: ("maturity", "claimed"),
            PolicyStatus.SURRENDERED.value: ("surrender",),
        }
    ),
    "policy status",
)
_LANGUAGES = {
    "english": "en",
    "hindi": "hi",
    "tamil": "ta",
    "telugu": "te",
    "kannada": "kn",
    "malayalam": "ml",
    "marathi": "mr",
    "bengali": "bn",
    "gujarati": "gu",
    "punjabi": "pa",
    "odia": "or",
}
