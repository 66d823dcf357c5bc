"""Meta's customer-service window: free-form messages only within 24 hours of the customer's
last message; outside it only an approved template may start the conversation again."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from mitra.errors import InvalidInput

WINDOW = timedelta(hours=24)
TEMPLATE_ROUTE = "POST /api/v1/whatsapp/messages"
# Where the consumer keeps Meta's `timestamp` of a customer's message in the message's meta.
WA_TIMESTAMP = "wa_timestamp"


class OutsideWindow(InvalidInput):
    code = "outside_window"
    default_message = (
        "the customer last wrote on WhatsApp more than 24 hours ago (or never): only a "
        f"template can reach them now ({TEMPLATE_ROUTE})"
    )


def within_window(customer_wrote_at: datetime | None, now: datetime) -> bool:
    return customer_wrote_at is not None and now - customer_wrote_at < WINDOW


def customer_wrote_at(received_at: datetime, meta: Mapping[str, Any] | None) -> datetime:
    """When a customer's WhatsApp message opened the window: Meta's timestamp of it, since Meta
    counts from there and redelivers a webhook for days (a late delivery must not reopen the
    window), but never later than it reached us (a skewed clock must not stretch it)."""
    stamp = (meta or {}).get(WA_TIMESTAMP)
    if isinstance(stamp, int) and not isinstance(stamp, bool) and stamp > 0:
        try:
            return min(received_at, datetime.fromtimestamp(stamp, UTC))
        except (OverflowError, OSError, ValueError):
            pass
    return received_at
