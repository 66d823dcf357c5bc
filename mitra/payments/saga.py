"""The saga's steps and the one rule they follow: forward only.

created → order_placed → authorised → captured → policy_credited → receipt_sent
failed (an attempt failed; the customer may still pay until expiry)
expired → compensated (order or link cancelled where the gateway allows; customer told)
flagged (captured, but not for the order's amount or currency, for a policy that takes no
premiums any more, or for a premium another payment already credited: not credited, a person
decides, staff may refund what was captured)
"""

from __future__ import annotations

from datetime import date

from mitra.models import PremiumFrequency

CREATED = "created"
ORDER_PLACED = "order_placed"
AUTHORISED = "authorised"
CAPTURED = "captured"
POLICY_CREDITED = "policy_credited"
RECEIPT_SENT = "receipt_sent"
FAILED = "failed"
EXPIRED = "expired"
COMPENSATED = "compensated"
FLAGGED = "flagged"

STATUSES = (
    CREATED, ORDER_PLACED, AUTHORISED, CAPTURED, POLICY_CREDITED, RECEIPT_SENT,
    FAILED, EXPIRED, COMPENSATED, FLAGGED,
)  # fmt: skip
WAITING = frozenset({CREATED, ORDER_PLACED, AUTHORISED, FAILED})
"""Nothing captured yet: a gateway event, a poll or the expiry moves these."""
UNFINISHED = frozenset({*WAITING, CAPTURED, POLICY_CREDITED, EXPIRED})
"""What a restart resumes."""
PAID = frozenset({CAPTURED, POLICY_CREDITED, RECEIPT_SENT})

# Which statuses each step may follow. A capture is money taken: it is applied even after a
# failed attempt or the order's expiry, because the customer did pay.
FROM: dict[str, frozenset[str]] = {
    ORDER_PLACED: frozenset({CREATED}),
    AUTHORISED: frozenset({CREATED, ORDER_PLACED, FAILED}),
    CAPTURED: frozenset({*WAITING, EXPIRED, COMPENSATED}),
    FLAGGED: frozenset({*WAITING, EXPIRED, COMPENSATED, CAPTURED}),
    POLICY_CREDITED: frozenset({CAPTURED}),
    RECEIPT_SENT: frozenset({POLICY_CREDITED}),
    FAILED: frozenset({CREATED, ORDER_PLACED, AUTHORISED}),
    EXPIRED: WAITING,
    COMPENSATED: frozenset({EXPIRED}),
}

_MONTHS = {
    PremiumFrequency.MONTHLY: 1,
    PremiumFrequency.QUARTERLY: 3,
    PremiumFrequency.HALF_YEARLY: 6,
    PremiumFrequency.YEARLY: 12,
}


def next_due(due: date, frequency: PremiumFrequency) -> date:
    """The due date one premium later; the 31st becomes the month's last day."""
    months = due.month - 1 + _MONTHS[frequency]
    year, month = due.year + months // 12, months % 12 + 1
    for day in (due.day, 30, 29, 28):
        try:
            return date(year, month, day)
        except ValueError:
            continue
    raise AssertionError("unreachable")  # pragma: no cover
